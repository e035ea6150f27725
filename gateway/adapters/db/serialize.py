"""Task <-> JSON columns. Kept apart from the domain so the domain stays storage-agnostic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.domain.states import TaskState
from gateway.domain.task import ExecutorLog, OutputFileLog, Task, TaskSpec


def as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time the gateway stores is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_time(value: str | None) -> datetime | None:
    return as_utc(datetime.fromisoformat(value)) if value else None


def logs_to_json(task: Task) -> dict[str, Any]:
    return {
        "start_time": task.start_time.isoformat() if task.start_time else None,
        "end_time": task.end_time.isoformat() if task.end_time else None,
        "executor_logs": [e.__dict__ for e in task.executor_logs],
        "output_logs": [o.__dict__ for o in task.output_logs],
        "system_logs": list(task.system_logs),
        "metadata": dict(task.metadata),
    }


def task_from_row(row: Any) -> Task:
    logs = row.logs
    created = as_utc(row.creation_time)
    return Task(
        id=row.id,
        owner=row.owner,
        project=row.project,
        spec=TaskSpec.from_dict(row.spec),
        state=TaskState(row.state),
        creation_time=created,
        start_time=parse_time(logs.get("start_time")),
        end_time=parse_time(logs.get("end_time")),
        executor_logs=tuple(ExecutorLog(**e) for e in logs.get("executor_logs", [])),
        output_logs=tuple(OutputFileLog(**o) for o in logs.get("output_logs", [])),
        system_logs=tuple(logs.get("system_logs", [])),
        metadata=dict(logs.get("metadata", {})),
        version=row.version,
    )
