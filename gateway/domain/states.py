"""TES task states and the legal transitions between them (see DESIGN.md, task lifecycle)."""

from enum import StrEnum

from gateway.domain.errors import Conflict


class TaskState(StrEnum):
    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    EXECUTOR_ERROR = "EXECUTOR_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    CANCELED = "CANCELED"
    CANCELING = "CANCELING"
    PREEMPTED = "PREEMPTED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {
        TaskState.COMPLETE,
        TaskState.EXECUTOR_ERROR,
        TaskState.SYSTEM_ERROR,
        TaskState.CANCELED,
        TaskState.PREEMPTED,
    }
)

# States a dispatcher must keep driving until they end.
ACTIVE_STATES = frozenset(
    {TaskState.QUEUED, TaskState.INITIALIZING, TaskState.RUNNING, TaskState.CANCELING}
)

_FAILURES = {TaskState.SYSTEM_ERROR, TaskState.CANCELING, TaskState.PREEMPTED}

LEGAL_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.INITIALIZING} | _FAILURES),
    TaskState.INITIALIZING: frozenset({TaskState.RUNNING} | _FAILURES),
    TaskState.RUNNING: frozenset(
        {TaskState.COMPLETE, TaskState.PAUSED, TaskState.EXECUTOR_ERROR} | _FAILURES
    ),
    # PAUSED waits for egress review; cancelling it withdraws the release request.
    TaskState.PAUSED: frozenset({TaskState.COMPLETE, TaskState.SYSTEM_ERROR, TaskState.CANCELING}),
    TaskState.CANCELING: frozenset({TaskState.CANCELED}),
}


def check_transition(current: TaskState, target: TaskState) -> None:
    """Raise Conflict unless `current -> target` is a legal step of the lifecycle."""
    if target not in LEGAL_TRANSITIONS.get(current, frozenset()):
        raise Conflict(f"task cannot move from {current.value} to {target.value}")
