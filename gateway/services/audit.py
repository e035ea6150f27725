"""Recording and verifying the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gateway.domain.audit import AuditEntry, AuditEvent, verify_chain
from gateway.domain.states import TaskState
from gateway.domain.task import Task
from gateway.services.ports import AuditLog


class NullAuditLog:
    """For unit tests of unrelated use cases: remembers events, chains nothing."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> AuditEntry:
        self.events.append(event)
        return AuditEntry(len(self.events), "", event, "", "")

    def entries(self) -> Iterator[AuditEntry]:
        return iter(())

    def head(self) -> tuple[int, str]:
        return 0, ""


def record(
    log: AuditLog,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    project: str | None = None,
    **details: Any,
) -> None:
    log.record(AuditEvent(actor, action, object_type, object_id, project, details))


def state_change(task: Task, previous: TaskState, actor: str = "gateway") -> AuditEvent:
    """The audit event of a task moving from `previous` to its current state (with the reason, if final)."""
    reason = task.system_logs[-1] if task.system_logs and task.state.is_terminal else None
    return AuditEvent(actor, "task.state_changed", "task", task.id, task.project,
                      {"state": task.state.value, "previous": previous.value, "reason": reason})


def verify(log: AuditLog) -> list[str]:
    """Problems in the stored chain; an empty list means every entry is intact and none is missing."""
    seq, digest = log.head()
    return verify_chain(list(log.entries()), seq, digest)
