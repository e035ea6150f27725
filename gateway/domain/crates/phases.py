"""The processing phases of a Five Safes request, recorded in the crate as schema.org actions.

Each phase is one action the root data entity `mentions`, shaped as the profile asks:

    phase               @type           additionalType       object                           instrument
    CHECK_VALUE         AssessAction    shp:CheckValue       the crate root                   sha-512 DefinedTerm
    VALIDATION_CHECK    AssessAction    shp:ValidationCheck  the crate root                   the profile IRI
    WORKFLOW_RETRIEVAL  DownloadAction  -                    the workflow's distribution      -
    SIGN_OFF            AssessAction    shp:SignOff          root, workflow, project          the agreement policy
    EXECUTION           CreateAction    -                    (the request's own action)       the workflow
    DISCLOSURE_CHECK    AssessAction    shp:DisclosureCheck  the crate root                   -
    PUBLISHING          UpdateAction    shp:GenerateCheckValue  the crate root                sha-512 DefinedTerm

An action's `actionStatus` moves Potential -> Active -> Completed or Failed (a phase may also fail before
it starts). Starting stamps `startTime`, finishing stamps `endTime`; any other move is refused with
Conflict, so the record in the crate can only tell the order in which things really happened.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gateway.domain.crates.agents import Agent, ensure_agent
from gateway.domain.crates.model import Crate, Entity, reference_ids, references, types_of
from gateway.domain.crates.vocab import (
    GENERATE_CHECK_VALUE,
    ROOT_ID,
    SHA512_ALGORITHM_ID,
    ActionStatus,
    AssessmentType,
)
from gateway.domain.errors import Conflict, InvalidRequest


class Phase(StrEnum):
    CHECK_VALUE = "check_value"
    VALIDATION_CHECK = "validation_check"
    WORKFLOW_RETRIEVAL = "workflow_retrieval"
    SIGN_OFF = "sign_off"
    EXECUTION = "execution"
    DISCLOSURE_CHECK = "disclosure_check"
    PUBLISHING = "publishing"


@dataclass(frozen=True)
class _PhaseKind:
    action_type: str
    additional_type: str | None
    id_prefix: str
    # Shapes ask for a human-readable name of at least 10 characters.
    name: str


_KINDS: dict[Phase, _PhaseKind] = {
    Phase.CHECK_VALUE: _PhaseKind(
        "AssessAction", AssessmentType.CHECK_VALUE, "check", "BagIt checksum verification of the crate"
    ),
    Phase.VALIDATION_CHECK: _PhaseKind(
        "AssessAction",
        AssessmentType.VALIDATION_CHECK,
        "validate",
        "Validation against the Five Safes RO-Crate profile",
    ),
    Phase.WORKFLOW_RETRIEVAL: _PhaseKind("DownloadAction", None, "download", "Retrieval of the requested workflow"),
    Phase.SIGN_OFF: _PhaseKind(
        "AssessAction", AssessmentType.SIGN_OFF, "signoff", "Sign-off of the workflow run against the agreement policy"
    ),
    Phase.EXECUTION: _PhaseKind("CreateAction", None, "run", "Execution of the requested workflow"),
    Phase.DISCLOSURE_CHECK: _PhaseKind(
        "AssessAction", AssessmentType.DISCLOSURE_CHECK, "disclosure", "Disclosure check of the workflow outputs"
    ),
    Phase.PUBLISHING: _PhaseKind(
        "UpdateAction", GENERATE_CHECK_VALUE, "publish", "BagIt manifests of the crate updated"
    ),
}

# The gateway records these kinds of actions itself; a client's copies are never trusted.
GATEWAY_ACTION_TYPES = frozenset({"AssessAction", "DownloadAction", "UpdateAction"})

_ALLOWED_MOVES: dict[ActionStatus, frozenset[ActionStatus]] = {
    ActionStatus.POTENTIAL: frozenset({ActionStatus.ACTIVE, ActionStatus.FAILED}),
    ActionStatus.ACTIVE: frozenset({ActionStatus.COMPLETED, ActionStatus.FAILED}),
    ActionStatus.COMPLETED: frozenset(),
    ActionStatus.FAILED: frozenset(),
}


@dataclass(frozen=True)
class Policy:
    """The agreement policy a sign-off is judged against (a CreativeWork; its name is shown to people)."""

    id: str
    name: str


def timestamp(at: datetime) -> str:
    """RFC 3339 with an explicit offset, as the profile requires. Naive datetimes are a programming error."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("phase times must be timezone-aware")
    return at.isoformat(timespec="seconds")


def phase_action(crate: Crate, phase: Phase) -> Entity | None:
    """The action recording `phase`, or None while the phase has not been planned."""
    if phase is Phase.EXECUTION:
        return crate.workflow_run()
    kind = _KINDS[phase]
    for action in crate.mentioned_of_type(kind.action_type):
        if kind.additional_type is None or kind.additional_type in reference_ids(action.get("additionalType")):
            return action
    return None


def phase_status(crate: Crate, phase: Phase) -> ActionStatus | None:
    action = phase_action(crate, phase)
    return None if action is None else _status(action)


def plan_phase(
    crate: Crate,
    phase: Phase,
    *,
    agent: Agent | None = None,
    policy: Policy | None = None,
    name: str | None = None,
) -> str:
    """Add the action for `phase` in PotentialActionStatus and return its `@id`.

    Sets the profile's `additionalType`, `object` and `instrument` for the phase. SIGN_OFF needs the
    agreement `policy`. The workflow run (EXECUTION) is not planned here: it is the request's own
    CreateAction. Raises Conflict when the phase already has an action.
    """
    if phase is Phase.EXECUTION:
        raise ValueError("the workflow run is the request's own CreateAction and is never added")
    if phase_action(crate, phase) is not None:
        raise Conflict(f"the {phase.value} phase is already recorded in the crate")
    kind = _KINDS[phase]
    if name is not None and len(name) < 10:
        raise ValueError("the profile asks for action names of at least 10 characters")
    action: Entity = {
        "@id": f"#{kind.id_prefix}-{uuid.uuid4()}",
        "@type": kind.action_type,
        "name": name or kind.name,
        "actionStatus": ActionStatus.POTENTIAL.value,
    }
    if kind.additional_type is not None:
        action["additionalType"] = {"@id": kind.additional_type}
    action["object"] = references(_objects(crate, phase))
    instrument = _instrument(crate, phase, policy)
    if instrument is not None:
        action["instrument"] = {"@id": instrument}
    if agent is not None:
        ensure_agent(crate, agent)
        action["agent"] = {"@id": agent.id}
    crate.put(action)
    crate.mention(action["@id"])
    return str(action["@id"])


def start_phase(crate: Crate, phase: Phase, *, at: datetime, agent: Agent | None = None) -> None:
    """Potential -> Active, stamping `startTime`."""
    _move(crate, phase, ActionStatus.ACTIVE, at, agent)


def complete_phase(
    crate: Crate,
    phase: Phase,
    *,
    at: datetime,
    agent: Agent | None = None,
    outcome: str | None = None,
    note: str | None = None,
) -> None:
    """Active -> Completed, stamping `endTime`.

    `outcome` ("approved", "OK") is appended to the name; `note` becomes the description (for example
    the repairs made to the crate, on the validation check).
    """
    action = _move(crate, phase, ActionStatus.COMPLETED, at, agent)
    if outcome:
        action["name"] = f"{action.get('name', '')}: {outcome}"
    if note:
        action["description"] = note


def fail_phase(
    crate: Crate,
    phase: Phase,
    *,
    at: datetime,
    reason: str,
    agent: Agent | None = None,
    outcome: str = "failed",
) -> None:
    """Potential or Active -> Failed, stamping `endTime` and keeping `reason` as the description."""
    if not reason.strip():
        raise InvalidRequest("a failed phase needs a reason")
    action = _move(crate, phase, ActionStatus.FAILED, at, agent)
    action["name"] = f"{action.get('name', '')}: {outcome}"
    action["description"] = reason.strip()


def complete_workflow_retrieval(crate: Crate, *, local_id: str, at: datetime, shipped_in_crate: bool = False) -> None:
    """Finish WORKFLOW_RETRIEVAL, describing the retrieved copy as the action's `result`.

    The copy is a Dataset `sameAs` the requested workflow whose `distribution` is what was downloaded,
    which is how the profile ties the copy to the request. `local_id` is its path in the crate
    (e.g. "workflow/"); pass `shipped_in_crate` when its files travel with the crate, to list it in `hasPart`.
    """
    action = require_phase_action(crate, Phase.WORKFLOW_RETRIEVAL)
    workflow = crate.main_entity()
    # Move first: an illegal transition must leave the crate untouched.
    complete_phase(crate, Phase.WORKFLOW_RETRIEVAL, at=at)
    retrieved: Entity = {
        "@id": local_id,
        "@type": "Dataset",
        "name": workflow.get("name", "Retrieved workflow"),
        "sameAs": {"@id": workflow["@id"]},
        "distribution": references(reference_ids(action.get("object"))),
    }
    if "conformsTo" in workflow:
        retrieved["conformsTo"] = workflow["conformsTo"]
    crate.put(retrieved)
    action["result"] = {"@id": local_id}
    if shipped_in_crate:
        crate.add_part(local_id)


def set_phase_agents(crate: Crate, phase: Phase, agents: Sequence[Agent]) -> None:
    """Replace the agents of a gateway-recorded phase (reviewers of a sign-off or disclosure check)."""
    if phase is Phase.EXECUTION:
        raise ValueError("the workflow run's agent is the requester; set it with set_requesting_agent")
    if not agents:
        raise ValueError("a phase needs at least one agent")
    action = require_phase_action(crate, phase)
    for agent in agents:
        ensure_agent(crate, agent)
    action["agent"] = references(a.id for a in agents)


def remove_client_actions(crate: Crate) -> tuple[str, ...]:
    """Strip what only the gateway may record, and return the ids of the actions removed.

    Removes every AssessAction, DownloadAction and UpdateAction (assessments, retrievals and publishing
    records a client could forge) and returns the workflow run to a fresh request: Potential, with no
    times, results or errors.
    """
    removed = tuple(e["@id"] for e in crate if types_of(e) & GATEWAY_ACTION_TYPES)
    crate.remove(removed)
    for run in crate.of_type("CreateAction"):
        for key in ("startTime", "endTime", "result", "error"):
            run.pop(key, None)
        run["actionStatus"] = ActionStatus.POTENTIAL.value
    return removed


def _move(crate: Crate, phase: Phase, target: ActionStatus, at: datetime, agent: Agent | None) -> Entity:
    # Everything is checked before anything changes: a refused move leaves the action as it was.
    if agent is not None and phase is Phase.EXECUTION:
        raise ValueError("the workflow run's agent is the requester; set it with set_requesting_agent")
    action = require_phase_action(crate, phase)
    current = _status(action)
    if current is None or target not in _ALLOWED_MOVES[current]:
        shown = current.name if current is not None else repr(action.get("actionStatus"))
        raise Conflict(f"the {phase.value} phase cannot move from {shown} to {target.name}")
    stamp = timestamp(at)
    if target is ActionStatus.ACTIVE:
        action["startTime"] = stamp
    else:
        started = action.get("startTime")
        if isinstance(started, str) and _parse(started) > at:
            raise InvalidRequest(f"the {phase.value} phase cannot end ({stamp}) before it started ({started})")
        action["endTime"] = stamp
    action["actionStatus"] = target.value
    if agent is not None:
        ensure_agent(crate, agent)
        action["agent"] = {"@id": agent.id}
    return action


def require_phase_action(crate: Crate, phase: Phase) -> Entity:
    """The action recording `phase`; Conflict when the phase has not been planned."""
    action = phase_action(crate, phase)
    if action is None:
        raise Conflict(f"the {phase.value} phase has not been planned")
    return action


def _status(action: Entity) -> ActionStatus | None:
    value = action.get("actionStatus")
    known = {s.value: s for s in ActionStatus}
    return known.get(value) if isinstance(value, str) else None


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00").replace("z", "+00:00"))


def _objects(crate: Crate, phase: Phase) -> list[str]:
    if phase is Phase.WORKFLOW_RETRIEVAL:
        return [workflow_source(crate)]
    if phase is Phase.SIGN_OFF:
        workflow = crate.main_entity()["@id"]
        projects = reference_ids(crate.root().get("sourceOrganization"))
        return [ROOT_ID, workflow, *projects]
    return [ROOT_ID]


def workflow_source(crate: Crate) -> str:
    """Where the workflow is retrieved from: its `distribution` (the workflow RO-Crate download) when given."""
    distribution = reference_ids(crate.main_entity().get("distribution"))
    return distribution[0] if distribution else str(crate.main_entity()["@id"])


def _instrument(crate: Crate, phase: Phase, policy: Policy | None) -> str | None:
    if phase in (Phase.CHECK_VALUE, Phase.PUBLISHING):
        if SHA512_ALGORITHM_ID not in crate:
            crate.put({"@id": SHA512_ALGORITHM_ID, "@type": "DefinedTerm", "name": "SHA-512 algorithm"})
        return SHA512_ALGORITHM_ID
    if phase is Phase.VALIDATION_CHECK:
        profile = crate.profile_version()
        if profile.iri not in crate:
            crate.put({"@id": profile.iri, "@type": "Profile", "name": "Five Safes RO-Crate profile"})
        return profile.iri
    if phase is Phase.SIGN_OFF:
        if policy is None:
            raise ValueError("a sign-off is judged against an agreement policy")
        crate.put({"@id": policy.id, "@type": "CreativeWork", "name": policy.name})
        return policy.id
    return None
