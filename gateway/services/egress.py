"""The release step: every output passes through quarantine, automated checks and (by default) human review.

`EgressService.process` is the one seam through which outputs reach their destination. The human
review of the airlock plugs in where the decision is AWAIT_REVIEW: the task then waits in PAUSED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from gateway.domain.egress import (
    EgressPolicy,
    QuarantinedFile,
    ReleaseDecision,
    check_files,
    decide,
    failed_checks,
    sniff_media_type,
)
from gateway.domain.states import TaskState
from gateway.domain.task import OutputFileLog, Task, system_log
from gateway.services.locations import output_location
from gateway.services.ports import Area, CollectedOutput, Location, ObjectStore

SNIFF_BYTES = 8192


@dataclass
class EgressService:
    store: ObjectStore
    policy: EgressPolicy
    now: Callable[[], datetime]

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

    def process(self, task: Task, collected: tuple[CollectedOutput, ...]) -> Task:
        """Check the task's quarantined outputs and release, hold for review, or reject them.

        Returns the task in COMPLETE, PAUSED or SYSTEM_ERROR; the caller persists it.
        """
        at = self.now()
        if not collected:
            return task.moved_to(TaskState.COMPLETE, at=at)
        files = [self.quarantine_record(c) for c in collected]
        results = check_files(files, self.policy)
        task = task.with_logs(
            egress_files=tuple(files),
            egress_checks={k: tuple(v) for k, v in results.items()},
        )
        decision = decide(results, self.policy)
        if decision is ReleaseDecision.AWAIT_REVIEW:
            return task.moved_to(TaskState.PAUSED, at=at)
        if decision is ReleaseDecision.REJECT:
            failures = failed_checks(results)
            detail = "; ".join(f"{key}: {c.rule_id} ({c.detail})" for key, c in failures)
            return task.moved_to(
                TaskState.SYSTEM_ERROR,
                at=at,
                reason=system_log(
                    "egress_rejected",
                    "automated output checks failed; nothing was released",
                    failures=[{"file": k, "rule_id": c.rule_id, "detail": c.detail} for k, c in failures],
                    summary=detail,
                ),
            )
        return self.release(task, files)

    def release(self, task: Task, files: list[QuarantinedFile]) -> Task:
        """Copy approved files from quarantine to their destinations and complete the task."""
        logs = []
        for f in files:
            target = output_location(self.store, task.project, f.destination)
            self.store.copy(Location(Area.QUARANTINE, f.quarantine_key), target)
            logs.append(OutputFileLog(url=f.destination, path=f.container_path, size_bytes=f.size_bytes))
        return task.with_logs(output_logs=tuple(logs)).moved_to(TaskState.COMPLETE, at=self.now())
