"""Five Safes RO-Crate submissions: a request crate on its way through the TRE's review phases.

The crate itself (its metadata, with every phase recorded as the profile's actions) is kept as a file;
this record holds what the gateway needs to drive and list submissions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from gateway.domain.crates import ApprovedWorkflow
from gateway.domain.errors import InvalidRequest


class SubmissionState(StrEnum):
    RECEIVED = "RECEIVED"
    AWAITING_SIGN_OFF = "AWAITING_SIGN_OFF"
    EXECUTING = "EXECUTING"
    AWAITING_DISCLOSURE = "AWAITING_DISCLOSURE"
    PUBLISHED = "PUBLISHED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (SubmissionState.PUBLISHED, SubmissionState.REJECTED, SubmissionState.FAILED)


# The WES run tag that ties a run to the submission it executes.
SUBMISSION_TAG = "five_safes_submission"
MAX_APPROVED_WORKFLOWS = 1000


@dataclass(frozen=True)
class Submission:
    id: str
    owner: str
    project: str
    state: SubmissionState
    created_at: datetime
    updated_at: datetime
    version: int = 0
    profile: str = ""
    workflow_id: str = ""
    workflow_version: str = ""
    run_id: str | None = None
    repairs: tuple[str, ...] = ()
    reason: str | None = None
    seq: int | None = None

    def moved_to(self, state: SubmissionState, at: datetime, reason: str | None = None, **changes: Any) -> Submission:
        return replace(self, state=state, updated_at=at, reason=reason or self.reason, **changes)

    def updated(self, **changes: Any) -> Submission:
        return replace(self, **changes)


@dataclass(frozen=True)
class CratePolicy:
    """A project's rules for crate submissions: which workflows it may run, and who signs off."""

    automatic_sign_off: bool = True
    approved_workflows: tuple[ApprovedWorkflow, ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> CratePolicy:
        entries = body.get("approved_workflows")
        entries = [] if entries is None else entries
        if not isinstance(entries, list):
            raise InvalidRequest("approved_workflows: must be a list")
        automatic = body.get("automatic_sign_off", True)
        if not isinstance(automatic, bool):
            raise InvalidRequest("automatic_sign_off: must be true or false")
        if len(entries) > MAX_APPROVED_WORKFLOWS:
            raise InvalidRequest(f"approved_workflows: at most {MAX_APPROVED_WORKFLOWS} entries")
        workflows = []
        for index, entry in enumerate(entries):
            try:
                workflows.append(ApprovedWorkflow(str(entry["workflow_id"]), str(entry["version"]),
                                                  str(entry["checksum"])))
            except (KeyError, TypeError):
                raise InvalidRequest(
                    f"approved_workflows[{index}]: needs workflow_id, version and checksum") from None
        return cls(automatic, tuple(workflows))

    def to_dict(self) -> dict[str, Any]:
        return {
            "automatic_sign_off": self.automatic_sign_off,
            "approved_workflows": [
                {"workflow_id": w.workflow_id, "version": w.version, "checksum": w.checksum}
                for w in self.approved_workflows
            ],
        }
