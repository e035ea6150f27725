"""The release step: every output passes through quarantine, automated checks and review.

`EgressService.process` is the one way outputs reach their destination. Outputs that pass every
check are released at once only if the project's policy says so (`auto_release_clean`); otherwise an
egress request is opened for output checkers and the task waits in PAUSED.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.domain.airlock import EgressFile, EgressRequest, ProjectPolicy
from gateway.domain.disclosure import CellFlag
from gateway.domain.egress import CheckResult, EgressPolicy, QuarantinedFile, check_files, sniff_media_type
from gateway.domain.states import TaskState
from gateway.domain.task import OutputFileLog, Task
from gateway.services.audit import record
from gateway.services.disclosure import acro_verdicts
from gateway.services.locations import output_location, task_work_prefix
from gateway.services.ports import Area, AuditLog, CollectedOutput, EgressRequestRepository, Location, ObjectStore

SNIFF_BYTES = 8192

# Content checks beyond size and type: (file, its project's policy, ACRO verdicts by file name)
# -> (results, flagged cells).
ContentInspector = Callable[
    [QuarantinedFile, ProjectPolicy, dict[str, str]], tuple[tuple[CheckResult, ...], tuple[CellFlag, ...]]
]


def deliver(
    store: ObjectStore, audit: AuditLog, project: str, request_id: str | None, files: Iterable[EgressFile]
) -> tuple[OutputFileLog, ...]:
    """Copy approved files from quarantine to their destinations, auditing each release (idempotent)."""
    logs = []
    for f in files:
        target = output_location(store, project, f.file.destination)
        store.copy(Location(Area.QUARANTINE, f.file.quarantine_key), target)
        logs.append(OutputFileLog(f.file.destination, f.file.container_path, f.file.size_bytes))
        record(audit, "gateway", "egress.released", "egress_request", request_id or "-", project,
               file_id=f.file_id, destination=f.file.destination, sha256=f.file.sha256)
    return tuple(logs)


@dataclass
class EgressService:
    store: ObjectStore
    policy: EgressPolicy
    now: Callable[[], datetime]
    requests: EgressRequestRepository
    project_policy: Callable[[str], ProjectPolicy]
    audit: AuditLog
    inspect_content: ContentInspector | None = None

    def quarantine_record(self, collected: CollectedOutput) -> QuarantinedFile:
        with self.store.open(Area.QUARANTINE, collected.stored.key) as stream:
            head = stream.read(SNIFF_BYTES)
        return QuarantinedFile(
            destination=collected.destination,
            container_path=collected.container_path,
            quarantine_key=collected.stored.key,
            size_bytes=collected.stored.size_bytes,
            sha256=collected.stored.sha256,
            media_type=sniff_media_type(head),
        )

    def inspect(self, files: list[QuarantinedFile], policy: ProjectPolicy) -> tuple[EgressFile, ...]:
        basic = check_files(files, self.policy)
        acro = acro_verdicts(self.store, files) if self.inspect_content is not None else {}
        inspected = []
        for index, f in enumerate(files):
            checks = tuple(basic[f.quarantine_key])
            flags: tuple[CellFlag, ...] = ()
            if self.inspect_content is not None:
                extra, flags = self.inspect_content(f, policy, acro)
                checks += extra
            inspected.append(EgressFile(str(index), f, checks, flags))
        return tuple(inspected)

    def keep_inside(self, task: Task, collected: tuple[CollectedOutput, ...]) -> tuple[CollectedOutput, ...]:
        """Deliver outputs bound for the run's work folder at once; return the rest (bound for release).

        A workflow step's outputs go to its run's folder of the `work` area, which never leaves the TRE,
        so they skip review. They are delivered before the task is reported finished, because the
        engine reads them as soon as it sees the step complete.
        """
        work = task_work_prefix(task.project, task.spec.tags)
        if work is None:
            return collected
        leaving = []
        kept = 0
        for c in collected:
            where = self.store.locate(c.destination)
            if where is not None and where.area is Area.WORK:
                target = output_location(self.store, task.project, c.destination, work)
                self.store.copy(Location(Area.QUARANTINE, c.stored.key), target)
                kept += 1
            else:
                leaving.append(c)
        if kept:
            record(self.audit, "gateway", "egress.kept_inside", "task", task.id, task.project, files=kept)
        return tuple(leaving)

    def process(self, task: Task, collected: tuple[CollectedOutput, ...]) -> tuple[Task, tuple[EgressFile, ...]]:
        """Check the task's quarantined outputs, then approve them for release or open an egress request.

        Returns the task in COMPLETE or PAUSED and the files to deliver. The caller persists the task
        first and delivers afterwards, so a task that was cancelled meanwhile releases nothing.
        """
        at = self.now()
        collected = self.keep_inside(task, collected)
        if not collected:
            return task.moved_to(TaskState.COMPLETE, at=at), ()
        policy = self.project_policy(task.project)
        files = self.inspect([self.quarantine_record(c) for c in collected], policy)
        for f in files:
            record(self.audit, "gateway", "egress.checked", "task", task.id, task.project, file_id=f.file_id,
                   path=f.file.container_path, sha256=f.file.sha256, failed=list(f.failed_rule_ids))
        if policy.auto_release_clean and all(f.checks_passed for f in files):
            logs = tuple(OutputFileLog(f.file.destination, f.file.container_path, f.file.size_bytes) for f in files)
            complete = task.with_logs(output_logs=logs, metadata={**task.metadata, "egress_state": "RELEASED"})
            return complete.moved_to(TaskState.COMPLETE, at=at), files
        request = self.requests.for_task(task.id)
        if request is None:
            request = EgressRequest(
                id="er-" + secrets.token_hex(8),
                task_id=task.id,
                project=task.project,
                requester=task.owner,
                created_at=at,
                files=files,
                required_approvals=policy.required_approvals,
            )
            self.requests.add(request)
            record(self.audit, "gateway", "egress.requested", "egress_request", request.id, task.project,
                   task_id=task.id, files=len(files), required_approvals=policy.required_approvals)
        metadata = {**task.metadata, "egress_request": request.id, "egress_state": request.state.value}
        return task.with_logs(metadata=metadata).moved_to(TaskState.PAUSED, at=at), ()
