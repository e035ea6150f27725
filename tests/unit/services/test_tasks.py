"""TaskService: the TES use cases against in-memory fakes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.domain.errors import (
    Conflict,
    DestinationNotAllowed,
    Forbidden,
    ImageNotAllowed,
    InvalidRequest,
    NotFound,
)
from gateway.domain.identity import Principal, Role
from gateway.domain.images import ImagePolicy
from gateway.domain.states import TaskState
from gateway.domain.task import Task
from gateway.services.paging import encode_token
from gateway.services.ports import StaleTask
from gateway.services.tasks import TaskService
from tests.fakes import FakeObjectStore, InMemoryAuditLog, InMemoryTaskRepository

NOW = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)

ALICE = Principal("alice", frozenset({Role.RESEARCHER}), frozenset({"p1"}))
AMIR = Principal("amir", frozenset({Role.RESEARCHER}), frozenset({"p1", "p2"}))
BOB = Principal("bob", frozenset({Role.RESEARCHER}), frozenset({"p2"}))
ADMIN = Principal("root", frozenset({Role.ADMIN}), frozenset({"ops"}))


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def repo() -> InMemoryTaskRepository:
    return InMemoryTaskRepository()


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
def service(repo: InMemoryTaskRepository, wakes: Wakes) -> TaskService:
    ids = itertools.count(1)
    return TaskService(
        repo=repo,
        store=FakeObjectStore(),
        images=ImagePolicy({"alpine": "localhost/tre-base:latest"}),
        new_id=lambda: f"task-{next(ids):04d}",
        now=lambda: NOW,
        wake=wakes,
    )


def body(**fields: Any) -> dict[str, Any]:
    return {"executors": [{"image": "alpine", "command": ["true"]}], **fields}


# ---------------------------------------------------------------- create


def test_create_stores_a_queued_task_with_its_project_tag(service: TaskService, repo: InMemoryTaskRepository,
                                                          wakes: Wakes) -> None:
    task = service.create(ALICE, body(name="n", tags={"run": "r1"}))
    stored = repo.get(task.id)
    assert stored == task
    assert (task.id, task.owner, task.project, task.state) == ("task-0001", "alice", "p1", TaskState.QUEUED)
    assert task.creation_time == NOW
    assert task.spec.tags == {"run": "r1", "project": "p1"}
    assert wakes.count == 1


def test_create_uses_the_project_tag_to_choose_among_projects(service: TaskService) -> None:
    assert service.create(AMIR, body(tags={"project": "p2"})).project == "p2"
    with pytest.raises(InvalidRequest):
        service.create(AMIR, body())


def test_create_accepts_inputs_and_outputs_of_the_own_project(service: TaskService) -> None:
    task = service.create(
        ALICE,
        body(
            inputs=[
                {"path": "/in/a.csv", "url": "mem://inputs/p1/a.csv"},
                {"path": "/in/prev.csv", "url": "mem://released/p1/earlier/prev.csv"},
                {"path": "/in/c.txt", "content": "inline"},
            ],
            outputs=[{"path": "/out/r.csv", "url": "mem://released/p1/r.csv"}],
        ),
    )
    assert len(task.spec.inputs) == 3 and len(task.spec.outputs) == 1


@pytest.mark.parametrize(
    "principal, task_body, error",
    [
        (ALICE, body(executors=[{"image": "python:3.12", "command": ["true"]}]), ImageNotAllowed),
        (ALICE, body(executors=[{"image": "alpine", "command": ["true"]},
                                {"image": "evil/alpine", "command": ["true"]}]), ImageNotAllowed),
        (ALICE, body(inputs=[{"path": "/in/a", "url": "mem://inputs/p2/a"}]), DestinationNotAllowed),
        (ALICE, body(inputs=[{"path": "/in/a", "url": "mem://inputs/p1/../p2/a"}]), DestinationNotAllowed),
        (ALICE, body(inputs=[{"path": "/in/a", "url": "mem://quarantine/p1/a"}]), DestinationNotAllowed),
        (ALICE, body(inputs=[{"path": "/in/a", "url": "https://example.org/a"}]), DestinationNotAllowed),
        (ALICE, body(outputs=[{"path": "/out/a", "url": "mem://inputs/p1/a"}]), DestinationNotAllowed),
        (ALICE, body(outputs=[{"path": "/out/a", "url": "mem://released/p2/a"}]), DestinationNotAllowed),
        (ALICE, body(outputs=[{"path": "/out/a", "url": "s3://bucket/p1/a"}]), DestinationNotAllowed),
        (ALICE, body(tags={"project": "p2"}), InvalidRequest),
        (ALICE, body(executors=[{"image": "alpine", "command": ["true"], "workdir": "/proc"}]), InvalidRequest),
        (Principal("nobody", frozenset({Role.RESEARCHER}), frozenset()), body(), InvalidRequest),
        (Principal("checker", frozenset({Role.OUTPUT_CHECKER}), frozenset({"p1"})), body(), Forbidden),
        (ADMIN, body(tags={"project": "p1"}), InvalidRequest),
    ],
)
def test_create_refuses_bad_requests_and_stores_nothing(service: TaskService, repo: InMemoryTaskRepository,
                                                         wakes: Wakes, principal: Principal,
                                                         task_body: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        service.create(principal, task_body)
    assert repo.rows == {}
    assert wakes.count == 0


def test_output_to_another_project_names_the_allowed_locations(service: TaskService) -> None:
    with pytest.raises(DestinationNotAllowed) as info:
        service.create(ALICE, body(outputs=[{"path": "/out/a", "url": "https://example.org/a"}]))
    assert "mem://released/p1/" in info.value.msg


# ---------------------------------------------------------------- get / list


def test_get_shows_own_project_tasks_only(service: TaskService) -> None:
    task = service.create(AMIR, body(tags={"project": "p1"}))
    assert service.get(ALICE, task.id) == task  # same project, other owner
    with pytest.raises(NotFound) as info:
        service.get(BOB, task.id)
    assert task.id in info.value.msg
    assert service.get(ADMIN, task.id) == task


def test_get_of_an_unknown_id_is_not_found(service: TaskService) -> None:
    with pytest.raises(NotFound):
        service.get(ALICE, "nope")


def test_list_shows_only_visible_projects_newest_first(service: TaskService) -> None:
    a = service.create(ALICE, body())
    b = service.create(BOB, body())
    c = service.create(AMIR, body(tags={"project": "p2"}))
    assert [t.id for t in service.list(ALICE).tasks] == [a.id]
    assert [t.id for t in service.list(BOB).tasks] == [c.id, b.id]
    assert [t.id for t in service.list(AMIR).tasks] == [c.id, b.id, a.id]
    assert [t.id for t in service.list(ADMIN).tasks] == [c.id, b.id, a.id]
    assert service.list(Principal("x", frozenset(), frozenset())).tasks == []


def test_list_pages_with_tokens(service: TaskService) -> None:
    created = [service.create(ALICE, body()) for _ in range(5)]
    seen, token, pages = [], None, 0
    while True:
        result = service.list(ALICE, size=2, token=token)
        pages += 1
        seen += [t.id for t in result.tasks]
        if result.next_page_token is None:
            break
        token = result.next_page_token
    assert pages == 3
    assert seen == [t.id for t in reversed(created)]


def test_exact_page_has_no_next_token(service: TaskService) -> None:
    for _ in range(2):
        service.create(ALICE, body())
    result = service.list(ALICE, size=2)
    assert len(result.tasks) == 2 and result.next_page_token is None


def test_page_size_is_capped_and_must_be_positive(service: TaskService) -> None:
    service.max_page_size = 3
    for _ in range(5):
        service.create(ALICE, body())
    result = service.list(ALICE, size=1000)
    assert len(result.tasks) == 3 and result.next_page_token is not None
    with pytest.raises(InvalidRequest):
        service.list(ALICE, size=0)


def test_default_page_size_applies(service: TaskService) -> None:
    service.default_page_size = 2
    for _ in range(3):
        service.create(ALICE, body())
    assert len(service.list(ALICE).tasks) == 2


def test_a_token_from_another_projects_listing_shows_nothing_foreign(service: TaskService) -> None:
    mine = service.create(ALICE, body())
    service.create(BOB, body())
    token = encode_token(10_000)
    assert [t.id for t in service.list(ALICE, token=token).tasks] == [mine.id]


@pytest.mark.parametrize("token", ["garbage", "!!!!", encode_token(5)[:-2] + "@@", "azE6LTE", "eDE6NQ"])
def test_page_token_garbage_is_invalid_request(service: TaskService, token: str) -> None:
    # "azE6LTE" is "k1:-1" and "eDE6NQ" is "x1:5": well-formed base64, but not tokens this server issues.
    with pytest.raises(InvalidRequest):
        service.list(ALICE, token=token)


def test_list_filters_by_tags_name_and_state(service: TaskService, repo: InMemoryTaskRepository) -> None:
    a = service.create(ALICE, body(name="align-1", tags={"run": "r1", "kind": "x"}))
    b = service.create(ALICE, body(name="align-2", tags={"run": "r2"}))
    c = service.create(ALICE, body(name="call-1", tags={"run": "r1"}))
    repo.save(c.moved_to(TaskState.SYSTEM_ERROR, at=NOW))

    def ids(**kw: Any) -> set[str]:
        return {t.id for t in service.list(ALICE, **kw).tasks}

    assert ids(tag_keys=["run"], tag_values=["r1"]) == {a.id, c.id}
    assert ids(tag_keys=["run"]) == {a.id, b.id, c.id}
    assert ids(tag_keys=["run", "kind"], tag_values=["r1"]) == {a.id}  # a key without value matches any value
    assert ids(tag_keys=["project"], tag_values=["p1"]) == {a.id, b.id, c.id}
    assert ids(name_prefix="align") == {a.id, b.id}
    assert ids(name_prefix="") == {a.id, b.id, c.id}
    assert ids(state="SYSTEM_ERROR") == {c.id}
    assert ids(state="QUEUED", name_prefix="align-2") == {b.id}


def test_more_tag_values_than_keys_is_invalid(service: TaskService) -> None:
    with pytest.raises(InvalidRequest):
        service.list(ALICE, tag_keys=["a"], tag_values=["1", "2"])


# ---------------------------------------------------------------- cancel


def test_cancel_moves_to_canceling_and_wakes_the_dispatcher(service: TaskService, repo: InMemoryTaskRepository,
                                                            wakes: Wakes) -> None:
    task = service.create(ALICE, body())
    canceled = service.cancel(ALICE, task.id)
    assert canceled.state is TaskState.CANCELING
    assert repo.get(task.id) == canceled
    assert canceled.end_time is None
    assert wakes.count == 2


@pytest.mark.parametrize("terminal", [TaskState.COMPLETE, TaskState.EXECUTOR_ERROR, TaskState.SYSTEM_ERROR,
                                      TaskState.CANCELED, TaskState.PREEMPTED])
def test_cancel_of_a_finished_task_changes_nothing(service: TaskService, repo: InMemoryTaskRepository,
                                                   terminal: TaskState) -> None:
    task = service.create(ALICE, body())
    path = {
        TaskState.COMPLETE: [TaskState.INITIALIZING, TaskState.RUNNING, TaskState.COMPLETE],
        TaskState.EXECUTOR_ERROR: [TaskState.INITIALIZING, TaskState.RUNNING, TaskState.EXECUTOR_ERROR],
        TaskState.CANCELED: [TaskState.CANCELING, TaskState.CANCELED],
    }.get(terminal, [terminal])
    for state in path:
        task = repo.save(task.moved_to(state, at=NOW))
    assert service.cancel(ALICE, task.id) == task
    assert repo.get(task.id) == task


def test_cancel_twice_is_idempotent(service: TaskService, repo: InMemoryTaskRepository) -> None:
    task = service.create(ALICE, body())
    first = service.cancel(ALICE, task.id)
    second = service.cancel(ALICE, task.id)
    assert second == first and repo.get(task.id).version == first.version


def test_cancel_of_a_paused_task_withdraws_it(service: TaskService, repo: InMemoryTaskRepository) -> None:
    task = service.create(ALICE, body())
    for state in (TaskState.INITIALIZING, TaskState.RUNNING, TaskState.PAUSED):
        task = repo.save(task.moved_to(state, at=NOW))
    assert service.cancel(ALICE, task.id).state is TaskState.CANCELING


def test_cancel_respects_visibility(service: TaskService, repo: InMemoryTaskRepository) -> None:
    task = service.create(ALICE, body())
    with pytest.raises(NotFound):
        service.cancel(BOB, task.id)
    assert repo.get(task.id).state is TaskState.QUEUED
    assert service.cancel(ADMIN, task.id).state is TaskState.CANCELING


def test_cancel_retries_after_a_concurrent_change(service: TaskService, repo: InMemoryTaskRepository) -> None:
    task = service.create(ALICE, body())
    real_save = repo.save
    calls = []

    def racing_save(t: Task, events: Any = ()) -> Task:
        calls.append(t.state)
        if len(calls) == 1:  # the dispatcher moves the task first
            current = repo.get(t.id)
            real_save(current.moved_to(TaskState.INITIALIZING, at=NOW))
        return real_save(t, events)

    repo.save = racing_save  # type: ignore[method-assign]
    canceled = service.cancel(ALICE, task.id)
    assert canceled.state is TaskState.CANCELING
    assert canceled.start_time == NOW  # it was based on the INITIALIZING copy
    assert len(calls) == 2


def test_cancel_gives_up_with_conflict_when_the_task_keeps_changing(service: TaskService,
                                                                    repo: InMemoryTaskRepository) -> None:
    task = service.create(ALICE, body())

    def always_stale(t: Task, events: Any = ()) -> Task:
        raise StaleTask(t.id)

    repo.save = always_stale  # type: ignore[method-assign]
    with pytest.raises(Conflict):
        service.cancel(ALICE, task.id)


# ---------------------------------------------------------------- audit


def test_submission_and_cancel_requests_are_audited_once() -> None:
    audit = InMemoryAuditLog()
    repo = InMemoryTaskRepository(audit)  # events saved with a task land in the same log
    service = TaskService(repo, FakeObjectStore(), ImagePolicy({"alpine": "a"}), lambda: "t1", lambda: NOW,
                          audit=audit)
    with pytest.raises(ImageNotAllowed):
        service.create(ALICE, body(executors=[{"image": "python", "command": ["true"]}]))
    assert audit.actions() == []  # nothing stored, nothing audited
    task = service.create(ALICE, body(name="n", outputs=[{"path": "/out/a", "url": "mem://released/p1/a"}]))
    service.cancel(ALICE, task.id)
    service.cancel(ALICE, task.id)  # idempotent: no second event
    assert audit.actions() == ["task.submitted", "task.cancel_requested", "task.state_changed"]
    submitted, cancelled, changed = (e.event for e in audit.rows)
    assert (changed.actor, changed.details["state"], changed.details["previous"]) == ("alice", "CANCELING", "QUEUED")
    assert (submitted.actor, submitted.object_id, submitted.project) == ("alice", "t1", "p1")
    assert submitted.details["outputs"] == ["mem://released/p1/a"]
    assert cancelled.details == {"previous": "QUEUED"}
