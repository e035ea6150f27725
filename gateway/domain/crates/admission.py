"""Admitting a client's request crate: repair, check, strip what only the gateway may say, stamp the requester.

This is the one entry point the request pipeline needs before any phase is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.domain.crates.checks import require_processable
from gateway.domain.crates.model import Crate
from gateway.domain.crates.phases import remove_client_actions
from gateway.domain.crates.repair import Repair, repair_type_keys
from gateway.domain.crates.requester import RequestingAgent, set_requesting_agent
from gateway.domain.crates.vocab import ProfileVersion


@dataclass(frozen=True)
class AdmittedRequest:
    """A request crate ready for the phases, with a record of what admission changed."""

    crate: Crate
    profile: ProfileVersion
    repairs: tuple[Repair, ...]
    removed_actions: tuple[str, ...]


def admit_request(document: Mapping[str, Any], requester: RequestingAgent) -> AdmittedRequest:
    """Turn a client's ro-crate-metadata.json into a crate the gateway can process.

    1. repairs `type` written for `@type` (recorded in `repairs`);
    2. rejects, with InvalidRequest listing every problem, a crate that is structurally unusable;
    3. removes client-supplied assessment, retrieval and publishing actions and resets the workflow run;
    4. makes the authenticated `requester` the run's agent and its project the crate's source organisation.
    """
    repaired, repairs = repair_type_keys(document)
    crate = Crate(repaired)
    require_processable(crate)
    removed = remove_client_actions(crate)
    set_requesting_agent(crate, requester)
    return AdmittedRequest(crate, crate.profile_version(), repairs, removed)
