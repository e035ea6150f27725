"""The task lifecycle: which moves are legal, and what a move records on the task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.domain.errors import Conflict
from gateway.domain.states import ACTIVE_STATES, LEGAL_TRANSITIONS, TERMINAL_STATES, TaskState, check_transition
from gateway.domain.task import Task, TaskSpec

S = TaskState
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# The lifecycle written out by hand, so a change to the table is a visible, deliberate change here.
EXPECTED = {
    (S.QUEUED, S.INITIALIZING), (S.QUEUED, S.SYSTEM_ERROR), (S.QUEUED, S.CANCELING), (S.QUEUED, S.PREEMPTED),
    (S.INITIALIZING, S.RUNNING), (S.INITIALIZING, S.SYSTEM_ERROR), (S.INITIALIZING, S.CANCELING),
    (S.INITIALIZING, S.PREEMPTED),
    (S.RUNNING, S.COMPLETE), (S.RUNNING, S.PAUSED), (S.RUNNING, S.EXECUTOR_ERROR), (S.RUNNING, S.SYSTEM_ERROR),
    (S.RUNNING, S.CANCELING), (S.RUNNING, S.PREEMPTED),
    (S.PAUSED, S.COMPLETE), (S.PAUSED, S.SYSTEM_ERROR), (S.PAUSED, S.CANCELING),
    (S.CANCELING, S.CANCELED),
}
ALL_PAIRS = [(a, b) for a in TaskState for b in TaskState]


def make_task(state: TaskState = S.QUEUED, **kw: object) -> Task:
    spec = TaskSpec.from_dict({"executors": [{"image": "alpine", "command": ["true"]}]})
    return Task(id="t1", owner="alice", project="p1", spec=spec, state=state, creation_time=T0, **kw)  # type: ignore[arg-type]


def test_the_table_is_the_documented_lifecycle() -> None:
    table = {(a, b) for a, targets in LEGAL_TRANSITIONS.items() for b in targets}
    assert table == EXPECTED


@pytest.mark.parametrize("current, target", sorted(EXPECTED))
def test_every_legal_transition_is_allowed(current: TaskState, target: TaskState) -> None:
    check_transition(current, target)
    assert make_task(current).moved_to(target, at=T0).state is target


@pytest.mark.parametrize(
    "current, target",
    [
        (S.QUEUED, S.RUNNING),          # must initialise first
        (S.QUEUED, S.COMPLETE),
        (S.QUEUED, S.CANCELED),         # cancelling goes through CANCELING
        (S.QUEUED, S.QUEUED),
        (S.INITIALIZING, S.COMPLETE),
        (S.INITIALIZING, S.QUEUED),
        (S.INITIALIZING, S.EXECUTOR_ERROR),
        (S.RUNNING, S.QUEUED),
        (S.RUNNING, S.INITIALIZING),
        (S.RUNNING, S.CANCELED),
        (S.PAUSED, S.RUNNING),
        (S.PAUSED, S.EXECUTOR_ERROR),
        (S.PAUSED, S.PREEMPTED),
        (S.CANCELING, S.RUNNING),
        (S.CANCELING, S.COMPLETE),
        (S.CANCELING, S.SYSTEM_ERROR),
        (S.UNKNOWN, S.QUEUED),
        (S.UNKNOWN, S.RUNNING),
    ],
)
def test_illegal_transitions_raise_conflict(current: TaskState, target: TaskState) -> None:
    with pytest.raises(Conflict) as info:
        check_transition(current, target)
    assert info.value.msg == f"task cannot move from {current.value} to {target.value}"
    task = make_task(current)
    with pytest.raises(Conflict):
        task.moved_to(target, at=T0)
    assert task.state is current


def test_every_pair_outside_the_table_is_refused() -> None:
    for current, target in ALL_PAIRS:
        if (current, target) in EXPECTED:
            continue
        with pytest.raises(Conflict):
            check_transition(current, target)


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES))
def test_terminal_states_have_no_way_out(terminal: TaskState) -> None:
    assert terminal.is_terminal
    assert terminal not in ACTIVE_STATES
    for target in TaskState:
        with pytest.raises(Conflict):
            check_transition(terminal, target)


def test_terminal_and_active_sets() -> None:
    assert {s for s in TaskState if s.is_terminal} == {
        S.COMPLETE, S.EXECUTOR_ERROR, S.SYSTEM_ERROR, S.CANCELED, S.PREEMPTED
    }
    assert ACTIVE_STATES == {S.QUEUED, S.INITIALIZING, S.RUNNING, S.CANCELING}
    # PAUSED waits for a human: it is neither driven by the dispatcher nor finished.
    assert not S.PAUSED.is_terminal and S.PAUSED not in ACTIVE_STATES


# ---------------------------------------------------------------- Task.moved_to


def test_start_time_is_set_on_initializing_and_kept_afterwards() -> None:
    t1, t2, t3 = (T0 + timedelta(seconds=n) for n in (1, 2, 3))
    task = make_task().moved_to(S.INITIALIZING, at=t1)
    assert (task.start_time, task.end_time) == (t1, None)
    task = task.moved_to(S.RUNNING, at=t2)
    assert (task.start_time, task.end_time) == (t1, None)
    task = task.moved_to(S.COMPLETE, at=t3)
    assert (task.start_time, task.end_time) == (t1, t3)


def test_an_existing_start_time_is_not_overwritten() -> None:
    earlier = T0 - timedelta(hours=1)
    task = make_task(start_time=earlier).moved_to(S.INITIALIZING, at=T0)
    assert task.start_time == earlier


@pytest.mark.parametrize(
    "path",
    [
        [S.SYSTEM_ERROR],
        [S.CANCELING, S.CANCELED],
        [S.PREEMPTED],
        [S.INITIALIZING, S.RUNNING, S.EXECUTOR_ERROR],
        [S.INITIALIZING, S.RUNNING, S.PAUSED, S.COMPLETE],
    ],
)
def test_end_time_is_set_only_on_reaching_a_terminal_state(path: list[TaskState]) -> None:
    task = make_task()
    for n, state in enumerate(path, start=1):
        task = task.moved_to(state, at=T0 + timedelta(minutes=n))
        if state.is_terminal:
            assert task.end_time == T0 + timedelta(minutes=n)
        else:
            assert task.end_time is None


def test_queued_task_failing_has_an_end_but_no_start() -> None:
    task = make_task().moved_to(S.SYSTEM_ERROR, at=T0)
    assert task.start_time is None and task.end_time == T0


def test_reason_is_appended_to_system_logs() -> None:
    task = make_task(system_logs=("first",))
    task = task.moved_to(S.INITIALIZING, at=T0)
    assert task.system_logs == ("first",)
    task = task.moved_to(S.SYSTEM_ERROR, at=T0, reason='{"reason": "x"}')
    assert task.system_logs == ("first", '{"reason": "x"}')


def test_moved_to_returns_a_new_task_and_keeps_everything_else() -> None:
    task = make_task(metadata={"k": "v"}, version=7)
    moved = task.moved_to(S.CANCELING, at=T0)
    assert task.state is S.QUEUED
    assert (moved.id, moved.owner, moved.project, moved.spec, moved.metadata, moved.version) == (
        task.id, task.owner, task.project, task.spec, task.metadata, 7
    )
