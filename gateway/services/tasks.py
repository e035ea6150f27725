"""TES use cases: create, get, list and cancel tasks on behalf of an authenticated principal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.domain.audit import AuditEvent
from gateway.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound
from gateway.domain.identity import Principal
from gateway.domain.images import ImagePolicy
from gateway.domain.runs import RUN_TAG
from gateway.domain.states import TaskState
from gateway.domain.task import Task, TaskSpec
from gateway.services.audit import NullAuditLog, record, state_change
from gateway.services.locations import input_location, output_location, run_work_prefix
from gateway.services.paging import decode_token, next_token, page_size
from gateway.services.ports import AuditLog, ObjectStore, StaleTask, TaskQuery, TaskRepository

PROJECT_TAG = "project"


def _state(value: str | None) -> TaskState | None:
    if not value:
        return None
    try:
        return TaskState(value)
    except ValueError:
        raise InvalidRequest(f"state: {value!r} is not a TES task state") from None


@dataclass
class ListResult:
    tasks: list[Task]
    next_page_token: str | None


@dataclass
class TaskService:
    repo: TaskRepository
    store: ObjectStore
    images: ImagePolicy
    new_id: Callable[[], str]
    now: Callable[[], datetime]
    default_page_size: int = 256
    max_page_size: int = 2047
    audit: AuditLog = field(default_factory=NullAuditLog)
    # Nudges an in-process dispatcher so a new or cancelled task is picked up at once.
    wake: Callable[[], None] = field(default=lambda: None)

    def create(self, principal: Principal, body: dict[str, Any]) -> Task:
        """Validate `body` fully, then store the task as QUEUED. Nothing is stored if any check fails."""
        spec = TaskSpec.from_dict(body)
        project = principal.project_for_submission(spec.tags.get(PROJECT_TAG))
        run = principal.run_scope
        if RUN_TAG in spec.tags and spec.tags[RUN_TAG] != run:
            raise InvalidRequest(f"tags: {RUN_TAG!r} is reserved for the steps of a workflow run")
        work = run_work_prefix(project, run) if run else None
        for executor in spec.executors:
            self.images.resolve(executor.image)
        for inp in spec.inputs:
            if inp.url is not None:
                input_location(self.store, project, inp.url, work)
        for out in spec.outputs:
            output_location(self.store, project, out.url, work)
        tags = dict(spec.tags)
        tags[PROJECT_TAG] = project
        if run:
            tags[RUN_TAG] = run
        spec = TaskSpec(**{**spec.__dict__, "tags": tags})
        task = Task(
            id=self.new_id(),
            owner=principal.user,
            project=project,
            spec=spec,
            state=TaskState.QUEUED,
            creation_time=self.now(),
        )
        self.repo.add(task)
        record(self.audit, principal.user, "task.submitted", "task", task.id, project, name=spec.name,
               images=[e.image for e in spec.executors], outputs=[o.url for o in spec.outputs])
        self.wake()
        return task

    def get(self, principal: Principal, task_id: str) -> Task:
        task = self.repo.get(task_id)
        if task is None:
            raise NotFound(f"task {task_id!r} not found")
        principal.check_visible(task.project, f"task {task_id!r}")
        if principal.run_scope is not None and task.spec.tags.get(RUN_TAG) != principal.run_scope:
            # A run's engine sees (and so can cancel) only its own run's tasks.
            raise NotFound(f"task {task_id!r} not found")
        return task

    def list(
        self,
        principal: Principal,
        *,
        name_prefix: str | None = None,
        state: str | None = None,
        tag_keys: list[str] | None = None,
        tag_values: list[str] | None = None,
        size: int | None = None,
        token: str | None = None,
    ) -> ListResult:
        keys, values = tag_keys or [], tag_values or []
        if len(values) > len(keys):
            raise InvalidRequest("tag_value: every tag_value needs a tag_key before it")
        tags = tuple((k, values[i] if i < len(values) else "") for i, k in enumerate(keys))
        if principal.run_scope is not None:
            tags += ((RUN_TAG, principal.run_scope),)
        query = TaskQuery(
            projects=None if principal.is_admin else principal.projects,
            name_prefix=name_prefix or None,
            state=_state(state),
            tags=tags,
            before_seq=decode_token(token) if token else None,
            limit=page_size(size, self.default_page_size, self.max_page_size),
        )
        page = self.repo.query(query)
        return ListResult(page.tasks, next_token(page.has_more, page.last_seq))

    def cancel(self, principal: Principal, task_id: str) -> Task:
        """Ask for the task to stop. Idempotent: cancelling a finished or cancelled task changes nothing."""
        for _ in range(5):
            task = self.get(principal, task_id)
            if principal.user != task.owner and not principal.is_admin:
                raise Forbidden("only the task's submitter or an admin can cancel it")
            if task.state.is_terminal or task.state is TaskState.CANCELING:
                return task
            try:
                canceling = task.moved_to(TaskState.CANCELING, at=self.now(), reason=None)
                requested = AuditEvent(principal.user, "task.cancel_requested", "task", task.id, task.project,
                                       {"previous": task.state.value})
                saved = self.repo.save(canceling, (requested, state_change(canceling, task.state, principal.user)))
            except StaleTask:
                continue
            self.wake()
            return saved
        raise Conflict(f"task {task_id!r} is changing state too quickly; try again")
