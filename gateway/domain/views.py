"""Rendering a task as a TES 1.1 document at a given view (MINIMAL, BASIC, FULL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.domain.task import Task, View


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_document(task: Task, view: View) -> dict[str, Any]:
    """The task at `view`: MINIMAL is id and state; BASIC drops streams, content and system logs."""
    if view is View.MINIMAL:
        return {"id": task.id, "state": task.state.value}
    full = view is View.FULL
    doc: dict[str, Any] = {"id": task.id, "state": task.state.value}
    doc.update(task.spec.to_dict(with_content=full))
    doc["creation_time"] = rfc3339(task.creation_time)
    log: dict[str, Any] = {
        "logs": [e.to_dict(with_streams=full) for e in task.executor_logs],
        "outputs": [
            {"url": o.url, "path": o.path, "size_bytes": str(o.size_bytes)} for o in task.output_logs
        ],
    }
    if task.metadata:
        log["metadata"] = dict(task.metadata)
    if task.start_time:
        log["start_time"] = rfc3339(task.start_time)
    if task.end_time:
        log["end_time"] = rfc3339(task.end_time)
    if full and task.system_logs:
        log["system_logs"] = list(task.system_logs)
    doc["logs"] = [log]
    return doc
