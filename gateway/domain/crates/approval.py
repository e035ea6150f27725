"""The sign-off rule: only approved workflows run, and only for members of the project.

A project keeps a list of approved workflows, each pinned by id, version and checksum of the workflow
RO-Crate. A request passes when the workflow it names is on that list at the requested version, the copy
the gateway retrieved has the approved checksum, and the requester is a member of the project.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway.domain.crates.agents import Agent
from gateway.domain.crates.model import Crate
from gateway.domain.crates.phases import Phase, complete_phase, fail_phase

_ALGORITHM_BY_LENGTH = {64: "sha256", 128: "sha512"}
_CHECKSUM = re.compile(r"(?:(sha256|sha512):)?([0-9a-fA-F]+)")


@dataclass(frozen=True)
class ApprovedWorkflow:
    """One entry of a project's approved-workflow list. `checksum` is "sha256:<hex>", "sha512:<hex>" or bare hex."""

    workflow_id: str
    version: str
    checksum: str


@dataclass(frozen=True)
class RequestedWorkflow:
    """The workflow a crate asks to run: its `mainEntity` id and version."""

    workflow_id: str
    version: str | None

    @classmethod
    def from_crate(cls, crate: Crate) -> RequestedWorkflow:
        """Version from the workflow's `version` property, else from a `version` query parameter of its id."""
        workflow = crate.main_entity()
        workflow_id = str(workflow["@id"])
        declared = workflow.get("version")
        if isinstance(declared, str | int | float) and not isinstance(declared, bool) and str(declared).strip():
            return cls(workflow_id, str(declared).strip())
        return cls(workflow_id, _version_parameter(workflow_id))


@dataclass(frozen=True)
class RuleOutcome:
    passed: bool
    reason: str


def check_workflow_approved(
    requested: RequestedWorkflow, approved: Sequence[ApprovedWorkflow], retrieved_checksum: str
) -> RuleOutcome:
    """Whether `requested`, retrieved with `retrieved_checksum`, matches an entry of `approved`.

    Ids are compared without a `version` query parameter, so ".../workflows/289?version=1" matches an
    entry for ".../workflows/289" at version "1". Checksums must use the same algorithm as the entry.
    """
    if requested.version is None:
        return RuleOutcome(False, f"the requested workflow {requested.workflow_id!r} does not state a version")
    same_workflow = [a for a in approved if _unversioned(a.workflow_id) == _unversioned(requested.workflow_id)]
    if not same_workflow:
        return RuleOutcome(False, f"workflow {requested.workflow_id!r} is not on the project's approved list")
    entry = next((a for a in same_workflow if a.version == requested.version), None)
    if entry is None:
        versions = ", ".join(sorted(a.version for a in same_workflow))
        return RuleOutcome(
            False, f"version {requested.version!r} of the workflow is not approved (approved: {versions})"
        )
    expected, actual = _checksum(entry.checksum), _checksum(retrieved_checksum)
    if expected is None:
        return RuleOutcome(False, f"the approved entry for version {entry.version!r} has an unreadable checksum")
    if actual is None:
        return RuleOutcome(False, "the retrieved workflow's checksum is unreadable")
    if expected[0] != actual[0]:
        return RuleOutcome(
            False, f"the retrieved workflow was hashed with {actual[0]}, the approval uses {expected[0]}"
        )
    if expected != actual:
        return RuleOutcome(False, "the retrieved workflow's checksum differs from the approved one")
    return RuleOutcome(True, f"workflow version {entry.version!r} is approved and its checksum matches")


def check_sign_off(
    requested: RequestedWorkflow,
    approved: Sequence[ApprovedWorkflow],
    retrieved_checksum: str,
    requester: str,
    project_members: Collection[str],
) -> RuleOutcome:
    """The whole sign-off rule: the requester belongs to the project and the workflow is approved."""
    if requester not in project_members:
        return RuleOutcome(False, f"the requester {requester!r} is not a member of the project")
    return check_workflow_approved(requested, approved, retrieved_checksum)


def _version_parameter(workflow_id: str) -> str | None:
    values = [v for k, v in parse_qsl(urlsplit(workflow_id).query) if k == "version" and v]
    return values[0] if len(values) == 1 else None


def _unversioned(workflow_id: str) -> str:
    parts = urlsplit(workflow_id)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "version"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), query, parts.fragment))


def _checksum(value: str) -> tuple[str, str] | None:
    match = _CHECKSUM.fullmatch(value.strip())
    if match is None:
        return None
    digest = match.group(2).lower()
    algorithm = match.group(1) or _ALGORITHM_BY_LENGTH.get(len(digest))
    if algorithm is None or len(digest) != {"sha256": 64, "sha512": 128}[algorithm]:
        return None
    return algorithm, digest


def record_sign_off(crate: Crate, outcome: RuleOutcome, *, agent: Agent, at: datetime) -> None:
    """Finish the started SIGN_OFF phase: Completed "approved", or Failed "rejected" with the rule's reason."""
    if outcome.passed:
        complete_phase(crate, Phase.SIGN_OFF, at=at, agent=agent, outcome="approved")
    else:
        fail_phase(crate, Phase.SIGN_OFF, at=at, agent=agent, reason=outcome.reason, outcome="rejected")
