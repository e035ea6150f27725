"""The egress request: one task's quarantined outputs, their check results, and the reviewers' decisions.

Rules (Five Safes "safe outputs"):
- only users holding the `output_checker` role review, and never the requester of the outputs;
- a file is approved once `required_approvals` distinct checkers approved it, rejected as soon as
  one checker rejects it (a rejection needs a reason);
- a file that failed an automated check can only be approved with an explicit, written override;
- each checker decides a file once: approving twice never counts as two approvals.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from gateway.domain.disclosure import CellFlag
from gateway.domain.egress import CheckResult, QuarantinedFile
from gateway.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound
from gateway.domain.identity import Principal, Role


class Verdict(str, Enum):
    APPROVE = "approve"
    REJECT = "reject"


class FileState(str, Enum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class RequestState(str, Enum):
    AWAITING_REVIEW = "AWAITING_REVIEW"
    RELEASED = "RELEASED"                      # every file approved and delivered
    PARTIALLY_RELEASED = "PARTIALLY_RELEASED"  # some approved and delivered, the rest withheld
    REJECTED = "REJECTED"                      # nothing delivered
    WITHDRAWN = "WITHDRAWN"                    # the task was cancelled while under review

    @property
    def is_open(self) -> bool:
        return self is RequestState.AWAITING_REVIEW


@dataclass(frozen=True)
class Decision:
    reviewer: str
    verdict: Verdict
    reason: str
    at: datetime
    override: bool = False


@dataclass(frozen=True)
class EgressFile:
    file_id: str
    file: QuarantinedFile
    checks: tuple[CheckResult, ...]
    flagged_cells: tuple[CellFlag, ...] = ()
    decisions: tuple[Decision, ...] = ()

    @property
    def checks_passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed_rule_ids(self) -> tuple[str, ...]:
        return tuple(c.rule_id for c in self.checks if not c.passed)

    def state(self, required_approvals: int) -> FileState:
        if any(d.verdict is Verdict.REJECT for d in self.decisions):
            return FileState.REJECTED
        approvers = {d.reviewer for d in self.decisions if d.verdict is Verdict.APPROVE}
        return FileState.APPROVED if len(approvers) >= required_approvals else FileState.PENDING


@dataclass(frozen=True)
class EgressRequest:
    id: str
    task_id: str
    project: str
    requester: str
    created_at: datetime
    files: tuple[EgressFile, ...]
    required_approvals: int = 1
    state: RequestState = RequestState.AWAITING_REVIEW
    decided_at: datetime | None = None
    version: int = 0

    def file(self, file_id: str) -> EgressFile:
        for f in self.files:
            if f.file_id == file_id:
                return f
        raise NotFound(f"file {file_id!r} not found in egress request {self.id!r}")

    def file_state(self, file_id: str) -> FileState:
        return self.file(file_id).state(self.required_approvals)

    @property
    def all_decided(self) -> bool:
        return all(f.state(self.required_approvals) is not FileState.PENDING for f in self.files)

    def approved(self) -> tuple[EgressFile, ...]:
        return tuple(f for f in self.files if f.state(self.required_approvals) is FileState.APPROVED)

    def rejected(self) -> tuple[EgressFile, ...]:
        return tuple(f for f in self.files if f.state(self.required_approvals) is FileState.REJECTED)

    def check_reviewer(self, reviewer: Principal) -> None:
        """Output checkers of this project only, and never the person who asked for the release."""
        if Role.OUTPUT_CHECKER not in reviewer.roles:
            raise Forbidden("reviewing outputs needs the output_checker role")
        reviewer.check_visible(self.project, f"egress request {self.id!r}")
        if reviewer.user == self.requester:
            raise Forbidden("you cannot review outputs of your own task")

    def decide(
        self,
        reviewer: Principal,
        file_id: str,
        verdict: Verdict,
        reason: str,
        *,
        override: bool,
        at: datetime,
    ) -> EgressRequest:
        """Record one reviewer's decision on one file; the request closes once every file is decided."""
        self.check_reviewer(reviewer)
        if not self.state.is_open:
            raise Conflict(f"egress request {self.id!r} is already {self.state.value}")
        target = self.file(file_id)
        if target.state(self.required_approvals) is not FileState.PENDING:
            raise Conflict(f"file {file_id!r} is already {target.state(self.required_approvals).value}")
        if any(d.reviewer == reviewer.user for d in target.decisions):
            raise Conflict(
                f"you already decided on file {file_id!r}; another output checker must make the next decision"
            )
        reason = reason.strip()
        if verdict is Verdict.REJECT and not reason:
            raise InvalidRequest("reason: a rejection needs a reason the researcher can act on")
        if verdict is Verdict.APPROVE and not target.checks_passed:
            if not override or not reason:
                failed = ", ".join(target.failed_rule_ids)
                raise InvalidRequest(
                    f"file {file_id!r} failed automated checks ({failed}): approving it needs override=true "
                    "and a written reason"
                )
        decision = Decision(reviewer.user, verdict, reason, at, override=override and verdict is Verdict.APPROVE)
        files = tuple(
            replace(f, decisions=f.decisions + (decision,)) if f.file_id == file_id else f for f in self.files
        )
        updated = replace(self, files=files)
        if updated.all_decided:
            updated = updated.closed(at)
        return updated

    def closed(self, at: datetime) -> EgressRequest:
        approved, total = len(self.approved()), len(self.files)
        if approved == total:
            state = RequestState.RELEASED
        elif approved == 0:
            state = RequestState.REJECTED
        else:
            state = RequestState.PARTIALLY_RELEASED
        return replace(self, state=state, decided_at=at)

    def withdrawn(self, at: datetime) -> EgressRequest:
        if not self.state.is_open:
            return self
        return replace(self, state=RequestState.WITHDRAWN, decided_at=at)


@dataclass(frozen=True)
class ProjectPolicy:
    """How a project's outputs are reviewed. Set per project by an admin; defaults come from settings."""

    required_approvals: int = 1
    # Release outputs that pass every automated check without a human (never the production default).
    auto_release_clean: bool = False
    small_cell_threshold: int = 10
    max_rows: int = 1_000_000

    def validated(self) -> ProjectPolicy:
        if not 1 <= self.required_approvals <= 5:
            raise InvalidRequest("required_approvals: must be between 1 and 5")
        if not 1 <= self.small_cell_threshold <= 1000:
            raise InvalidRequest("small_cell_threshold: must be between 1 and 1000")
        if self.max_rows < 1:
            raise InvalidRequest("max_rows: must be positive")
        return self
