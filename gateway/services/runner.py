"""Driving one task one step along its lifecycle. Re-entrant: after a crash the same call resumes it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from gateway.domain.airlock import EgressFile
from gateway.domain.errors import DomainError
from gateway.domain.images import ImagePolicy
from gateway.domain.states import TaskState
from gateway.domain.task import Executor, Task, system_log
from gateway.services.audit import state_change
from gateway.services.egress import EgressService, deliver
from gateway.services.locations import input_location, task_work_prefix
from gateway.services.observer import NullObserver, Observer
from gateway.services.ports import (
    AuditLog,
    ComputeBackend,
    Job,
    JobPhase,
    ObjectStore,
    StagedInput,
    TaskRepository,
)

log = logging.getLogger(__name__)


@dataclass
class TaskRunner:
    repo: TaskRepository
    backend: ComputeBackend
    store: ObjectStore
    images: ImagePolicy
    egress: EgressService
    now: Callable[[], datetime]
    audit: AuditLog
    observer: Observer = NullObserver()
    # Called when a task is cancelled, e.g. to withdraw its open egress request.
    on_cancel: Callable[[str], None] = lambda task_id: None

    def persist(self, task: Task, previous: TaskState) -> Task:
        """Persist, with the audit entry of the state change (if any) in the same transaction."""
        events = (state_change(task, previous),) if task.state is not previous else ()
        return self.repo.save(task, events)

    def build_job(self, task: Task) -> Job:
        """Resolve images and input locations again: policy may have changed since submission."""
        executors = tuple(
            Executor(**{**e.__dict__, "image": self.images.resolve(e.image)}) for e in task.spec.executors
        )
        work = task_work_prefix(task.project, task.spec.tags)
        inputs = tuple(
            StagedInput(
                path=i.path,
                type=i.type,
                source=input_location(self.store, task.project, i.url, work) if i.url else None,
                content=i.content,
            )
            for i in task.spec.inputs
        )
        return Job(
            task_id=task.id,
            project=task.project,
            executors=executors,
            inputs=inputs,
            outputs=task.spec.outputs,
            volumes=task.spec.volumes,
            resources=task.spec.resources,
        )

    def advance(self, task: Task) -> Task:
        """Take `task` one step further and persist it. Raises StaleTask if it changed meanwhile."""
        state = task.state
        if state is TaskState.CANCELING:
            self.backend.cancel(task.id)
            self.backend.cleanup(task.id)
            self.on_cancel(task.id)
            return self._finish(task.moved_to(TaskState.CANCELED, at=self.now()), state)
        try:
            job = self.build_job(task)
        except DomainError as exc:
            return self._fail(task, "job_rejected", exc.msg)
        if state is TaskState.QUEUED:
            task = self.persist(task.moved_to(TaskState.INITIALIZING, at=self.now()), state)
            state = task.state
        if state is TaskState.INITIALIZING:
            try:
                self.backend.start(job)
            except DomainError as exc:
                self.observer.backend_error("start")
                return self._fail(task, "staging_failed", exc.msg)
            started = self.now()
            task = self.persist(task.moved_to(TaskState.RUNNING, at=started), state)
            self.observer.task_started((started - task.creation_time).total_seconds())
            return task
        if state is TaskState.RUNNING:
            return self._observe(task, job)
        return task

    def _observe(self, task: Task, job: Job) -> Task:
        previous = task.state
        status = self.backend.poll(job)
        logs_changed = status.executor_logs != task.executor_logs
        if logs_changed:
            task = task.with_logs(executor_logs=status.executor_logs)
        phase = status.phase
        if phase in (JobPhase.PENDING, JobPhase.RUNNING):
            return self.repo.save(task) if logs_changed else task
        deliveries: tuple[EgressFile, ...] = ()
        if phase is JobPhase.SUCCEEDED:
            # Outputs are in quarantine now; the job goes once the outcome is saved (a failed save retries).
            outcome, deliveries = self.egress.process(task, status.outputs)
        elif phase is JobPhase.FAILED:
            outcome = task.moved_to(TaskState.EXECUTOR_ERROR, at=self.now(), reason=status.reason)
        elif phase is JobPhase.PREEMPTED:
            outcome = task.moved_to(TaskState.PREEMPTED, at=self.now(), reason=status.reason)
        else:
            reason = status.reason or system_log("job_lost", "the backend has no record of this task")
            outcome = task.moved_to(TaskState.SYSTEM_ERROR, at=self.now(), reason=reason)
        saved = self._finish(outcome, previous)
        if deliveries:
            deliver(self.store, self.audit, saved.project, None, deliveries)
        self.backend.cleanup(task.id)
        return saved

    def _fail(self, task: Task, reason: str, detail: str) -> Task:
        self.backend.cancel(task.id)
        self.backend.cleanup(task.id)
        return self._finish(
            task.moved_to(TaskState.SYSTEM_ERROR, at=self.now(), reason=system_log(reason, detail)), task.state
        )

    def _finish(self, task: Task, previous: TaskState) -> Task:
        saved = self.persist(task, previous)
        if saved.state.is_terminal:
            self.observer.task_finished(saved.state)
            log.info("task finished", extra={"task_id": saved.id, "state": saved.state.value})
        return saved
