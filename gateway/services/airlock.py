"""Airlock use cases: list and inspect egress requests, review files, release what was approved.

Quarantined bytes are only ever returned to output checkers of the project (never the requester);
released bytes only to members of the project. Every access, decision and release is audited,
and so is every refusal.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, TypeVar

from gateway.domain.airlock import (
    EgressFile,
    EgressRequest,
    FileState,
    ProjectPolicy,
    RequestState,
    Verdict,
)
from gateway.domain.errors import Conflict, Forbidden, NotFound
from gateway.domain.identity import Principal
from gateway.domain.states import TaskState
from gateway.domain.task import OutputFileLog, Task, system_log
from gateway.services.audit import record, state_change
from gateway.services.egress import deliver
from gateway.services.locations import output_location
from gateway.services.paging import decode_token, next_token, page_size
from gateway.services.ports import (
    Area,
    AuditLog,
    EgressRequestRepository,
    Location,
    ObjectStore,
    ProjectPolicyRepository,
    StaleRequest,
    StaleTask,
    TaskRepository,
)

T = TypeVar("T")
PREVIEW_BYTES = 256 * 1024


@dataclass(frozen=True)
class Preview:
    kind: str  # "table", "text" or "none"
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    flagged: frozenset[tuple[int, int]] = frozenset()
    text: str = ""
    truncated: bool = False


@dataclass
class AirlockService:
    requests: EgressRequestRepository
    tasks: TaskRepository
    store: ObjectStore
    audit: AuditLog
    policies: ProjectPolicyRepository
    default_policy: ProjectPolicy
    now: Callable[[], datetime]

    # ------------------------------------------------------------ policy

    def policy_for(self, project: str) -> ProjectPolicy:
        return self.policies.get(project) or self.default_policy

    def set_policy(self, principal: Principal, project: str, policy: ProjectPolicy) -> ProjectPolicy:
        if not principal.is_admin:
            raise Forbidden("only admins set a project's review policy")
        policy = policy.validated()
        self.policies.put(project, policy)
        record(self.audit, principal.user, "policy.updated", "project", project, project, **policy.__dict__)
        return policy

    # ------------------------------------------------------------ reading

    def _guarded(self, principal: Principal, action: str, request_id: str, check: Callable[[], T]) -> T:
        try:
            return check()
        except (Forbidden, NotFound) as exc:
            record(self.audit, principal.user, "access.denied", "egress_request", request_id, None,
                   attempted=action, reason=exc.msg)
            raise

    def _load(self, principal: Principal, request_id: str) -> EgressRequest:
        request = self.requests.get(request_id)
        if request is None:
            raise NotFound(f"egress request {request_id!r} not found")
        principal.check_visible(request.project, f"egress request {request_id!r}")
        return request

    def get(self, principal: Principal, request_id: str) -> EgressRequest:
        return self._guarded(principal, "get", request_id, lambda: self._load(principal, request_id))

    def list_requests(
        self,
        principal: Principal,
        *,
        state: str | None = None,
        project: str | None = None,
        size: int | None = None,
        token: str | None = None,
    ) -> tuple[list[EgressRequest], str | None]:
        projects = None if principal.is_admin else principal.projects
        if project:
            projects = frozenset({project}) if projects is None or project in projects else frozenset()
        page = self.requests.query(
            states=frozenset({RequestState(state)}) if state else None,
            projects=projects,
            limit=page_size(size, 50, 500),
            before_seq=decode_token(token) if token else None,
        )
        return page.requests, next_token(page.has_more, page.last_seq)

    def _quarantined(self, principal: Principal, request_id: str, file_id: str) -> tuple[EgressFile, BinaryIO]:
        def check() -> tuple[EgressRequest, EgressFile]:
            request = self._load(principal, request_id)
            request.check_reviewer(principal)
            return request, request.file(file_id)

        request, egress_file = self._guarded(principal, "read_quarantined", request_id, check)
        record(self.audit, principal.user, "egress.file_viewed", "egress_request", request_id, request.project,
               file_id=file_id)
        return egress_file, self.store.open(Area.QUARANTINE, egress_file.file.quarantine_key)

    def open_quarantined(self, principal: Principal, request_id: str, file_id: str) -> tuple[str, BinaryIO]:
        """(file name, bytes in quarantine): output checkers of the project only, never the requester."""
        egress_file, stream = self._quarantined(principal, request_id, file_id)
        return egress_file.file.quarantine_key.rsplit("/", 1)[-1], stream

    def preview(self, principal: Principal, request_id: str, file_id: str, max_rows: int = 50) -> Preview:
        egress_file, stream = self._quarantined(principal, request_id, file_id)
        name = egress_file.file.quarantine_key.rsplit("/", 1)[-1]
        with stream:
            head = stream.read(PREVIEW_BYTES)
            truncated = bool(stream.read(1))
        media = egress_file.file.media_type
        if not media.startswith("text/"):
            return Preview(kind="none")
        text = head.decode("utf-8", "replace")
        if name.lower().endswith((".csv", ".tsv")):
            delimiter = "\t" if name.lower().endswith(".tsv") else ","
            reader = csv.reader(io.StringIO(text), delimiter=delimiter)
            rows: list[list[str]] = []
            for row in reader:
                if not row:
                    continue  # blank lines: CellFlag.row counts non-blank data rows only
                if len(rows) > max_rows:
                    truncated = True
                    break
                rows.append(row)
            header, body = (rows[0], rows[1:]) if rows else ([], [])
            flagged = frozenset((c.row, c.column) for c in egress_file.flagged_cells if c.row < len(body))
            return Preview(kind="table", header=header, rows=body, flagged=flagged, truncated=truncated)
        lines = text.splitlines()
        if len(lines) > max_rows:
            lines, truncated = lines[:max_rows], True
        return Preview(kind="text", text="\n".join(lines), truncated=truncated)

    # ------------------------------------------------------------ deciding

    def decide(
        self,
        principal: Principal,
        request_id: str,
        file_id: str,
        verdict: str,
        reason: str,
        override: bool = False,
    ) -> EgressRequest:
        for _ in range(5):
            request = self.get(principal, request_id)

            def decided(current: EgressRequest = request) -> EgressRequest:
                return current.decide(principal, file_id, Verdict(verdict), reason, override=override, at=self.now())

            try:
                saved = self.requests.save(self._guarded(principal, "decide", request_id, decided))
            except StaleRequest:
                continue
            record(self.audit, principal.user, "egress.decision", "egress_request", request_id, request.project,
                   file_id=file_id, verdict=verdict, reason=reason.strip(), override=override,
                   file_state=saved.file_state(file_id).value)
            if not saved.state.is_open:
                self.finalize(saved)
            return saved
        raise Conflict(f"egress request {request_id!r} is being decided concurrently; try again")

    def finalize(self, request: EgressRequest) -> None:
        """Deliver approved files, then move the task to its final state (idempotent per file)."""
        released = deliver(self.store, self.audit, request.project, request.id, request.approved())
        withheld: list[dict[str, object]] = [
            {"file": f.file.container_path, "reasons": [d.reason for d in f.decisions if d.verdict is Verdict.REJECT]}
            for f in request.rejected()
        ]
        for _ in range(5):
            task = self.tasks.get(request.task_id)
            if task is None or task.state is not TaskState.PAUSED:
                return
            try:
                self._close_task(task, request, released, withheld)
                return
            except StaleTask:
                continue

    def _close_task(self, task: Task, request: EgressRequest, released: tuple[OutputFileLog, ...],
                    withheld: list[dict[str, object]]) -> None:
        at = self.now()
        task = task.with_logs(
            output_logs=released, metadata={**task.metadata, "egress_state": request.state.value}
        )
        if request.state is RequestState.REJECTED:
            done = task.moved_to(TaskState.SYSTEM_ERROR, at=at, reason=system_log(
                "egress_rejected", "output checkers rejected every output; nothing was released", withheld=withheld))
        elif withheld:
            done = task.moved_to(TaskState.COMPLETE, at=at, reason=system_log(
                "egress_partially_released", "some outputs were withheld by output checkers", withheld=withheld))
        else:
            done = task.moved_to(TaskState.COMPLETE, at=at)
        self.tasks.save(done, (state_change(done, TaskState.PAUSED),))

    def withdraw(self, task_id: str) -> None:
        request = self.requests.for_task(task_id)
        if request is None or not request.state.is_open:
            return
        self.requests.save(request.withdrawn(self.now()))
        record(self.audit, "gateway", "egress.withdrawn", "egress_request", request.id, request.project)

    # ------------------------------------------------------------ downloading

    def open_released(self, principal: Principal, request_id: str, file_id: str) -> tuple[str, BinaryIO]:
        """An approved, released file: members of the project (and admins) only."""

        def check() -> tuple[EgressRequest, Location]:
            request = self._load(principal, request_id)
            egress_file = request.file(file_id)
            if request.state.is_open or request.file_state(file_id) is not FileState.APPROVED:
                raise NotFound(f"file {file_id!r} of egress request {request_id!r} has not been released")
            return request, output_location(self.store, request.project, egress_file.file.destination)

        request, where = self._guarded(principal, "download", request_id, check)
        record(self.audit, principal.user, "egress.downloaded", "egress_request", request_id, request.project,
               file_id=file_id)
        return where.key.rsplit("/", 1)[-1], self.store.open(where.area, where.key)
