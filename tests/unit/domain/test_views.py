"""TES task documents at the MINIMAL, BASIC and FULL views."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.domain.states import TaskState
from gateway.domain.task import ExecutorLog, OutputFileLog, Task, TaskSpec, View, system_log
from gateway.domain.views import rfc3339, task_document

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def finished_task() -> Task:
    spec = TaskSpec.from_dict(
        {
            "name": "n",
            "inputs": [
                {"path": "/in/secret.txt", "content": "patient 42"},
                {"path": "/in/data.csv", "url": "mem://inputs/p1/data.csv"},
            ],
            "outputs": [{"path": "/out/r.csv", "url": "mem://released/p1/r.csv"}],
            "executors": [{"image": "alpine", "command": ["true"]}],
            "tags": {"project": "p1"},
        }
    )
    return Task(
        id="t1",
        owner="alice",
        project="p1",
        spec=spec,
        state=TaskState.COMPLETE,
        creation_time=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        start_time=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
        end_time=datetime(2026, 1, 2, 3, 5, 0, tzinfo=UTC),
        executor_logs=(ExecutorLog(exit_code=0, start_time="s", end_time="e", stdout="row 1", stderr="warn"),),
        output_logs=(OutputFileLog(url="mem://released/p1/r.csv", path="/out/r.csv", size_bytes=1234),),
        system_logs=(system_log("note", "something"),),
        metadata={"backend": "fake"},
    )


def test_minimal_is_id_and_state_only() -> None:
    assert task_document(finished_task(), View.MINIMAL) == {"id": "t1", "state": "COMPLETE"}


def test_full_has_everything() -> None:
    doc = task_document(finished_task(), View.FULL)
    assert doc["inputs"][0]["content"] == "patient 42"
    (log,) = doc["logs"]
    assert log["logs"] == [
        {"start_time": "s", "end_time": "e", "stdout": "row 1", "stderr": "warn", "exit_code": 0}
    ]
    assert log["system_logs"] == [system_log("note", "something")]
    assert log["outputs"] == [{"url": "mem://released/p1/r.csv", "path": "/out/r.csv", "size_bytes": "1234"}]
    assert log["metadata"] == {"backend": "fake"}
    assert doc["name"] == "n" and doc["tags"] == {"project": "p1"}
    assert doc["executors"] == [{"image": "alpine", "command": ["true"]}]


def test_basic_hides_content_streams_and_system_logs_but_keeps_the_rest() -> None:
    doc = task_document(finished_task(), View.BASIC)
    assert [i.get("content") for i in doc["inputs"]] == [None, None]
    assert [i["path"] for i in doc["inputs"]] == ["/in/secret.txt", "/in/data.csv"]
    assert doc["inputs"][1]["url"] == "mem://inputs/p1/data.csv"
    (log,) = doc["logs"]
    assert log["logs"] == [{"start_time": "s", "end_time": "e", "exit_code": 0}]
    assert "system_logs" not in log
    assert log["outputs"][0]["size_bytes"] == "1234"
    assert log["metadata"] == {"backend": "fake"}
    assert "patient 42" not in repr(doc) and "row 1" not in repr(doc)


def test_times_are_rfc3339_utc_with_z() -> None:
    doc = task_document(finished_task(), View.BASIC)
    assert doc["creation_time"] == "2026-01-02T03:04:05.678Z"
    assert doc["logs"][0]["start_time"] == "2026-01-02T03:04:06.000Z"
    assert doc["logs"][0]["end_time"] == "2026-01-02T03:05:00.000Z"
    for value in (doc["creation_time"], doc["logs"][0]["start_time"], doc["logs"][0]["end_time"]):
        assert RFC3339_Z.match(value)


def test_unfinished_task_has_no_start_or_end_time() -> None:
    task = finished_task()
    queued = Task(id="t2", owner="a", project="p1", spec=task.spec, state=TaskState.QUEUED,
                  creation_time=task.creation_time)
    doc = task_document(queued, View.FULL)
    (log,) = doc["logs"]
    assert "start_time" not in log and "end_time" not in log and "system_logs" not in log and "metadata" not in log
    assert log["logs"] == [] and log["outputs"] == []


@pytest.mark.parametrize(
    "value, text",
    [
        (datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC), "2026-05-06T07:08:09.000Z"),
        (datetime(2026, 5, 6, 7, 8, 9), "2026-05-06T07:08:09.000Z"),  # naive times are stored UTC
        (datetime(2026, 5, 6, 9, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2))), "2026-05-06T07:08:09.123Z"),
        (datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=-5))), "2026-01-01T05:30:00.000Z"),
    ],
)
def test_rfc3339(value: datetime, text: str) -> None:
    assert rfc3339(value) == text


def test_rfc3339_of_none() -> None:
    assert rfc3339(None) is None
