"""TaskRunner, Dispatcher and EgressService driving tasks end to end against the in-memory fakes."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.domain.airlock import ProjectPolicy, RequestState
from gateway.domain.audit import AuditEvent
from gateway.domain.egress import EgressPolicy
from gateway.domain.errors import BackendError
from gateway.domain.identity import Principal, Role
from gateway.domain.images import ImagePolicy
from gateway.domain.states import TaskState
from gateway.domain.task import Executor, Task
from gateway.services.airlock import AirlockService
from gateway.services.audit import verify
from gateway.services.dispatcher import Dispatcher
from gateway.services.egress import EgressService
from gateway.services.ports import Area, CollectedOutput, Job, JobStatus
from gateway.services.runner import TaskRunner
from gateway.services.tasks import TaskService
from tests.fakes import (
    FakeBackend,
    FakeObjectStore,
    InMemoryAuditLog,
    InMemoryEgressRequests,
    InMemoryPolicies,
    InMemoryTaskRepository,
)

ALICE = Principal("alice", frozenset({Role.RESEARCHER}), frozenset({"p1"}))
CAROL = Principal("carol", frozenset({Role.OUTPUT_CHECKER}), frozenset({"p1"}))
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


class ManualClock:
    """Monotonic seconds for the fake backend (so `sleep` executors end only when a test says so)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class WallClock:
    """Datetimes for the services: each reading one second later than the last."""

    def __init__(self) -> None:
        self.ticks = itertools.count()

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=next(self.ticks))


class RecordingObserver:
    def __init__(self) -> None:
        self.started: list[float] = []
        self.finished: list[TaskState] = []
        self.errors: list[str] = []

    def task_started(self, queue_seconds: float) -> None:
        self.started.append(queue_seconds)

    def task_finished(self, state: TaskState) -> None:
        self.finished.append(state)

    def backend_error(self, operation: str) -> None:
        self.errors.append(operation)


class World:
    """One gateway's services wired to fakes. `human_review=False` is `egress_review = "automatic"`."""

    def __init__(self, *, human_review: bool = False, worker_id: str = "w1") -> None:
        self.store = FakeObjectStore()
        self.backend_clock = ManualClock()
        self.backend = FakeBackend(self.store, clock=self.backend_clock)
        self.repo = InMemoryTaskRepository()
        self.images = ImagePolicy({"alpine": "localhost/tre-base:latest"})
        self.now = WallClock()
        self.observer = RecordingObserver()
        self.audit = InMemoryAuditLog()
        self.requests = InMemoryEgressRequests()
        self.airlock = AirlockService(
            self.requests, self.repo, self.store, self.audit, InMemoryPolicies(),
            ProjectPolicy(auto_release_clean=not human_review), self.now,
        )
        self.egress = EgressService(
            self.store, EgressPolicy(), self.now, self.requests, self.airlock.policy_for, self.audit
        )
        self.runner = TaskRunner(
            self.repo, self.backend, self.store, self.images, self.egress, self.now, self.audit,
            observer=self.observer, on_cancel=self.airlock.withdraw,
        )
        self.dispatcher = self.make_dispatcher(worker_id)
        ids = itertools.count(1)
        self.tasks = TaskService(self.repo, self.store, self.images, lambda: f"t{next(ids):03d}", self.now)

    def make_dispatcher(self, worker_id: str, runner: TaskRunner | None = None) -> Dispatcher:
        return Dispatcher(self.repo, runner or self.runner, self.backend, worker_id=worker_id, threads=2,
                          observer=self.observer)

    def submit(self, *commands: list[str], outputs: list[dict[str, str]] | None = None,
               inputs: list[dict[str, str]] | None = None, ignore_error: bool = False) -> str:
        body: dict[str, Any] = {
            "executors": [{"image": "alpine", "command": c, "ignore_error": ignore_error} for c in commands],
            "outputs": outputs or [],
            "inputs": inputs or [],
        }
        return self.tasks.create(ALICE, body).id

    def settle(self, max_passes: int = 20) -> None:
        """Run dispatcher passes until a pass changes nothing (no real or backend time passes)."""
        for _ in range(max_passes):
            before = {t.id: t.version for _, t in self.repo.rows.values()}
            self.dispatcher.run_once()
            after = {t.id: t.version for _, t in self.repo.rows.values()}
            if before == after:
                return
        raise AssertionError("tasks keep changing")

    def task(self, task_id: str) -> Task:
        task = self.repo.get(task_id)
        assert task is not None
        return task

    def released(self) -> dict[str, bytes]:
        return {o.key: self.store.open(Area.RELEASED, o.key).read() for o in self.store.list(Area.RELEASED)}


def reasons(task: Task) -> list[str]:
    return [json.loads(line)["reason"] for line in task.system_logs]


def out(name: str, url_name: str | None = None) -> dict[str, str]:
    return {"path": f"/out/{name}", "url": f"mem://released/p1/results/{url_name or name}"}


# ---------------------------------------------------------------- outputs and egress


def test_clean_outputs_are_released_under_automatic_review() -> None:
    w = World(human_review=False)
    task_id = w.submit(["write", "/out/table.csv", "a,b\n1,2\n"], outputs=[out("table.csv")])
    w.dispatcher.drain(timeout=5)
    task = w.task(task_id)
    assert task.state is TaskState.COMPLETE, task.system_logs
    assert w.released() == {"p1/results/table.csv": b"a,b\n1,2\n"}
    (log,) = task.output_logs
    assert (log.url, log.path, log.size_bytes) == ("mem://released/p1/results/table.csv", "/out/table.csv", 8)
    assert task.metadata["egress_state"] == "RELEASED"
    assert w.requests.for_task(task_id) is None  # no human was asked
    assert task.start_time is not None and task.end_time is not None and task.start_time < task.end_time
    assert task_id not in w.backend.known_task_ids()  # cleaned up
    assert w.observer.finished == [TaskState.COMPLETE] and len(w.observer.started) == 1
    assert w.audit.actions().count("egress.released") == 1
    assert verify(w.audit) == []


def test_task_without_outputs_completes_without_review() -> None:
    w = World(human_review=True)
    task_id = w.submit(["true"])
    w.dispatcher.drain(timeout=5)
    assert w.task(task_id).state is TaskState.COMPLETE
    assert w.requests.for_task(task_id) is None


def test_human_review_holds_outputs_in_paused_and_releases_nothing() -> None:
    w = World(human_review=True)
    task_id = w.submit(["write", "/out/table.csv", "a,b\n"], outputs=[out("table.csv")])
    w.dispatcher.drain(timeout=5)
    task = w.task(task_id)
    assert task.state is TaskState.PAUSED
    assert w.released() == {}
    assert task.output_logs == () and task.end_time is None
    request = w.requests.for_task(task_id)
    assert request is not None and request.state is RequestState.AWAITING_REVIEW
    assert task.metadata["egress_request"] == request.id
    assert task.metadata["egress_state"] == "AWAITING_REVIEW"
    assert request.requester == "alice" and request.project == "p1"
    (egress_file,) = request.files
    assert egress_file.checks_passed
    assert egress_file.file.media_type == "text/plain"
    assert w.store.open(Area.QUARANTINE, egress_file.file.quarantine_key).read() == b"a,b\n"
    assert task_id not in w.backend.known_task_ids()  # outputs are in quarantine: the job is gone
    assert w.observer.finished == []


def test_approved_outputs_are_released_and_the_task_completes() -> None:
    w = World(human_review=True)
    task_id = w.submit(["write", "/out/table.csv", "a,b\n"], outputs=[out("table.csv")])
    w.settle()
    request = w.requests.for_task(task_id)
    assert request is not None
    w.airlock.decide(CAROL, request.id, "0", "approve", "aggregate counts only")
    task = w.task(task_id)
    assert task.state is TaskState.COMPLETE
    assert w.released() == {"p1/results/table.csv": b"a,b\n"}
    assert [o.url for o in task.output_logs] == ["mem://released/p1/results/table.csv"]


@pytest.mark.parametrize(
    "path, text, failed_rules",
    [
        ("tool.exe", "MZ but text", ["type.extension_allowed"]),
        ("table.csv", "PK\x03\x04not-a-table", ["type.content_matches"]),
        ("notes.txt", "\x7fELF", ["type.content_matches"]),
    ],
)
def test_failing_output_is_never_released_automatically(path: str, text: str, failed_rules: list[str]) -> None:
    w = World(human_review=False)
    task_id = w.submit(
        ["write", "/out/good.csv", "x,y\n"], ["write", f"/out/{path}", text],
        outputs=[out("good.csv"), out(path)],
    )
    w.dispatcher.drain(timeout=5)
    task = w.task(task_id)
    assert task.state is TaskState.PAUSED  # an output checker must look at it
    assert w.released() == {}  # not even the good file
    request = w.requests.for_task(task_id)
    assert request is not None
    good, bad = request.files
    assert good.checks_passed
    assert list(bad.failed_rule_ids) == failed_rules
    assert bad.file.container_path == f"/out/{path}"


def test_output_rejected_by_the_checker_ends_in_egress_rejected() -> None:
    w = World(human_review=False)
    task_id = w.submit(["write", "/out/table.csv", "PK\x03\x04zip"], outputs=[out("table.csv")])
    w.settle()
    request = w.requests.for_task(task_id)
    assert request is not None
    w.airlock.decide(CAROL, request.id, "0", "reject", "a zip archive is not a table")
    task = w.task(task_id)
    assert task.state is TaskState.SYSTEM_ERROR
    entry = json.loads(task.system_logs[-1])
    assert entry["reason"] == "egress_rejected"
    assert entry["withheld"] == [{"file": "/out/table.csv", "reasons": ["a zip archive is not a table"]}]
    assert w.released() == {}
    assert task.output_logs == ()


def test_oversized_output_is_held_for_review() -> None:
    w = World(human_review=False)
    w.egress.policy = EgressPolicy(max_file_bytes=4)
    task_id = w.submit(["write", "/out/big.txt", "12345"], outputs=[out("big.txt")])
    w.dispatcher.drain(timeout=5)
    assert w.task(task_id).state is TaskState.PAUSED
    request = w.requests.for_task(task_id)
    assert request is not None and request.files[0].failed_rule_ids == ("size.file_cap",)
    assert w.released() == {}


def test_egress_request_is_opened_once_when_processing_is_repeated() -> None:
    w = World(human_review=True)
    task_id = w.submit(["write", "/out/a.txt", "a"], outputs=[out("a.txt")])
    w.settle()
    paused = w.task(task_id)
    (stored,) = w.store.list(Area.QUARANTINE)
    collected = (CollectedOutput("mem://released/p1/results/a.txt", "/out/a.txt", stored),)
    running = Task(**{**paused.__dict__, "state": TaskState.RUNNING})
    again, deliveries = w.egress.process(running, collected)  # e.g. the gateway crashed before saving PAUSED
    assert deliveries == ()
    assert again.metadata["egress_request"] == paused.metadata["egress_request"]
    assert len(w.requests.rows) == 1


def test_missing_output_is_a_system_error() -> None:
    w = World()
    task_id = w.submit(["write", "/out/other.txt", "x"], outputs=[out("wanted.txt")])
    w.dispatcher.drain(timeout=5)
    task = w.task(task_id)
    assert task.state is TaskState.SYSTEM_ERROR
    assert reasons(task) == ["output_missing"]
    assert w.released() == {}


# ---------------------------------------------------------------- executors


def test_failing_executor_is_an_executor_error_with_logs() -> None:
    w = World()
    task_id = w.submit(["exit", "3"], ["write", "/out/never.txt", "x"], outputs=[out("never.txt")])
    w.dispatcher.drain(timeout=5)
    task = w.task(task_id)
    assert task.state is TaskState.EXECUTOR_ERROR
    assert [log.exit_code for log in task.executor_logs] == [3]
    assert task.executor_logs[0].stdout == "exit 3"
    assert reasons(task) == ["executor_failed"]
    assert w.released() == {}
    assert task_id not in w.backend.known_task_ids()
    assert w.observer.finished == [TaskState.EXECUTOR_ERROR]


def test_ignore_error_continues_with_the_next_executor() -> None:
    w = World()
    task_id = w.submit(["exit", "5"], ["write", "/out/after.txt", "ran"], outputs=[out("after.txt")],
                       ignore_error=True)
    w.dispatcher.drain(timeout=5)
    task = w.task(task_id)
    assert task.state is TaskState.COMPLETE, task.system_logs
    assert [log.exit_code for log in task.executor_logs] == [5, 0]
    assert w.released() == {"p1/results/after.txt": b"ran"}


def test_preempted_job_ends_preempted() -> None:
    w = World()
    task_id = w.submit(["true"], ["preempt"])
    w.dispatcher.drain(timeout=5)
    task = w.task(task_id)
    assert task.state is TaskState.PREEMPTED
    assert reasons(task) == ["preempted"]
    assert task.end_time is not None
    assert task_id not in w.backend.known_task_ids()


def test_running_logs_are_saved_while_the_job_runs() -> None:
    w = World()
    task_id = w.submit(["write", "/out/a.txt", "a"], ["sleep", "10"], ["true"])
    w.settle()
    task = w.task(task_id)
    assert task.state is TaskState.RUNNING
    assert [log.exit_code for log in task.executor_logs] == [0]
    w.backend_clock.t += 10
    w.settle()
    assert w.task(task_id).state is TaskState.COMPLETE
    assert len(w.task(task_id).executor_logs) == 3


# ---------------------------------------------------------------- cancel


def test_cancel_during_a_sleep_ends_canceled_and_forgets_the_job() -> None:
    w = World()
    task_id = w.submit(["sleep", "30"])
    w.settle()
    assert w.task(task_id).state is TaskState.RUNNING
    assert task_id in w.backend.known_task_ids()
    assert w.tasks.cancel(ALICE, task_id).state is TaskState.CANCELING
    w.settle()
    task = w.task(task_id)
    assert task.state is TaskState.CANCELED
    assert task_id not in w.backend.known_task_ids()
    assert task_id not in w.backend.jobs and task_id not in w.backend.files
    assert w.tasks.cancel(ALICE, task_id) == task  # idempotent afterwards


def test_cancel_before_the_dispatcher_runs_starts_nothing() -> None:
    w = World()
    task_id = w.submit(["true"])
    started: list[str] = []
    real_start = w.backend.start
    w.backend.start = lambda job: (started.append(job.task_id), real_start(job))  # type: ignore[method-assign]
    w.tasks.cancel(ALICE, task_id)
    w.settle()
    assert w.task(task_id).state is TaskState.CANCELED
    assert w.task(task_id).start_time is None
    assert started == []


def test_cancel_of_a_paused_task_ends_canceled_without_release() -> None:
    w = World(human_review=True)
    task_id = w.submit(["write", "/out/a.txt", "a"], outputs=[out("a.txt")])
    w.settle()
    assert w.task(task_id).state is TaskState.PAUSED
    request_id = w.task(task_id).metadata["egress_request"]
    w.tasks.cancel(ALICE, task_id)
    w.settle()
    assert w.task(task_id).state is TaskState.CANCELED
    assert w.requests.get(request_id).state is RequestState.WITHDRAWN
    assert w.released() == {}
    assert task_id not in w.backend.known_task_ids()


def test_stale_task_during_advance_does_not_lose_a_concurrent_cancel() -> None:
    """The API cancels while the dispatcher is starting the job: its save fails, the cancel wins."""
    w = World()
    task_id = w.submit(["sleep", "30"])
    real_start = w.backend.start

    def start_and_get_cancelled(job: Job) -> None:
        real_start(job)
        w.tasks.cancel(ALICE, job.task_id)

    w.backend.start = start_and_get_cancelled  # type: ignore[method-assign]
    assert w.dispatcher.run_once() == 1
    assert w.task(task_id).state is TaskState.CANCELING  # the runner's RUNNING save was stale
    assert w.repo.leases == {}  # lease released despite the StaleTask
    w.settle()
    assert w.task(task_id).state is TaskState.CANCELED
    assert task_id not in w.backend.known_task_ids()
    assert w.observer.errors == []


def test_a_cancel_racing_automatic_release_does_not_leave_unrecorded_releases() -> None:
    w = World(human_review=False)
    task_id = w.submit(["sleep", "1"], ["write", "/out/b.txt", "b"], outputs=[out("b.txt")])
    w.settle()
    assert w.task(task_id).state is TaskState.RUNNING
    real_poll = w.backend.poll

    def poll_then_cancel(job: Job) -> JobStatus:
        status = real_poll(job)
        w.tasks.cancel(ALICE, job.task_id)  # the API, between the runner's poll and its save
        return status

    w.backend.poll = poll_then_cancel  # type: ignore[method-assign]
    w.backend_clock.t += 1
    w.settle()
    task = w.task(task_id)
    assert task.state in (TaskState.COMPLETE, TaskState.CANCELED)
    recorded = {log.url.removeprefix("mem://released/") for log in task.output_logs}
    assert set(w.released()) == recorded


# ---------------------------------------------------------------- system errors


def test_image_removed_from_policy_after_submission_is_rejected() -> None:
    w = World()
    task_id = w.submit(["true"])
    del w.images.mapping["alpine"]
    w.settle()
    task = w.task(task_id)
    assert task.state is TaskState.SYSTEM_ERROR
    entry = json.loads(task.system_logs[-1])
    assert entry["reason"] == "job_rejected" and "alpine" in entry["detail"]
    assert task.start_time is None
    assert task_id not in w.backend.known_task_ids()


def test_image_removed_while_running_stops_the_job() -> None:
    w = World()
    task_id = w.submit(["sleep", "30"])
    w.settle()
    assert task_id in w.backend.known_task_ids()
    w.images.mapping.clear()
    w.settle()
    assert reasons(w.task(task_id)) == ["job_rejected"]
    assert task_id not in w.backend.known_task_ids()


def test_images_are_resolved_for_the_backend() -> None:
    w = World()
    seen: list[tuple[str, ...]] = []
    real_start = w.backend.start
    w.backend.start = lambda job: (seen.append(tuple(e.image for e in job.executors)), real_start(job))  # type: ignore[method-assign]
    w.submit(["true"])
    w.settle()
    assert seen == [("localhost/tre-base:latest",)]


def test_staging_failure_is_a_system_error() -> None:
    w = World()
    task_id = w.submit(["copy", "/in/data.csv", "/out/data.csv"],
                       inputs=[{"path": "/in/data.csv", "url": "mem://inputs/p1/missing.csv"}],
                       outputs=[out("data.csv")])
    w.settle()
    task = w.task(task_id)
    assert task.state is TaskState.SYSTEM_ERROR
    entry = json.loads(task.system_logs[-1])
    assert entry["reason"] == "staging_failed" and "missing.csv" in entry["detail"]
    assert task.start_time is not None  # it got as far as INITIALIZING
    assert w.observer.errors == ["start"]
    assert task_id not in w.backend.known_task_ids()


def test_staged_input_reaches_the_output() -> None:
    w = World()
    w.store.put_bytes(Area.INPUTS, "p1/data.csv", b"a,b\n")
    task_id = w.submit(["copy", "/in/data.csv", "/out/data.csv"],
                       inputs=[{"path": "/in/data.csv", "url": "mem://inputs/p1/data.csv"}],
                       outputs=[out("data.csv")])
    w.dispatcher.drain(timeout=5)
    assert w.task(task_id).state is TaskState.COMPLETE
    assert w.released() == {"p1/results/data.csv": b"a,b\n"}


def test_job_lost_by_the_backend_is_a_system_error() -> None:
    w = World()
    task_id = w.submit(["sleep", "30"])
    w.settle()
    w.backend.cleanup(task_id)  # e.g. the node was wiped
    w.settle()
    task = w.task(task_id)
    assert task.state is TaskState.SYSTEM_ERROR
    assert reasons(task) == ["job_lost"]


def test_backend_error_while_polling_fails_the_task() -> None:
    w = World()
    task_id = w.submit(["sleep", "30"])
    w.settle()

    def broken_poll(job: Job) -> JobStatus:
        raise BackendError("podman is gone")

    w.backend.poll = broken_poll  # type: ignore[method-assign]
    w.settle()
    task = w.task(task_id)
    assert task.state is TaskState.SYSTEM_ERROR
    entry = json.loads(task.system_logs[-1])
    assert (entry["reason"], entry["detail"]) == ("backend_error", "podman is gone")
    assert w.observer.errors == ["advance"]
    assert task_id not in w.backend.known_task_ids()


def test_unexpected_error_leaves_the_task_to_be_retried() -> None:
    w = World()
    task_id = w.submit(["true"])
    real_start = w.backend.start
    failures = iter([RuntimeError("bug")])

    def flaky_start(job: Job) -> None:
        for exc in failures:
            raise exc
        real_start(job)

    w.backend.start = flaky_start  # type: ignore[method-assign]
    assert w.dispatcher.run_once() == 1
    assert w.task(task_id).state is TaskState.INITIALIZING
    assert w.repo.leases == {}
    w.dispatcher.drain(timeout=5)
    assert w.task(task_id).state is TaskState.COMPLETE


def fail_first_save_into(w: World, state: TaskState) -> None:
    """The database hiccups once, when the runner saves a task moving into `state`."""
    real_save = w.repo.save
    failed: list[str] = []

    def save(task: Task, events: Sequence[AuditEvent] = ()) -> Task:
        if task.state is state and not failed:
            failed.append(task.id)
            raise RuntimeError("database connection lost")
        return real_save(task, events)

    w.repo.save = save  # type: ignore[method-assign]


def test_a_failed_save_after_quarantine_resumes_into_review() -> None:
    w = World(human_review=True)
    task_id = w.submit(["write", "/out/a.txt", "a"], outputs=[out("a.txt")])
    fail_first_save_into(w, TaskState.PAUSED)
    w.settle()
    task = w.task(task_id)
    assert task.state is TaskState.PAUSED, task.system_logs
    assert task.metadata["egress_request"] == w.requests.for_task(task_id).id


def test_a_failed_save_of_an_executor_error_keeps_the_executor_error() -> None:
    w = World()
    task_id = w.submit(["exit", "2"])
    fail_first_save_into(w, TaskState.EXECUTOR_ERROR)
    w.settle()
    assert w.task(task_id).state is TaskState.EXECUTOR_ERROR, w.task(task_id).system_logs


# ---------------------------------------------------------------- orphans


def test_reconcile_orphans_removes_jobs_of_finished_and_unknown_tasks() -> None:
    w = World(human_review=True)
    running = w.submit(["sleep", "30"])
    done = w.submit(["sleep", "1"])
    paused = w.submit(["write", "/out/a.txt", "a"], outputs=[out("a.txt")])
    w.settle()
    assert w.task(running).state is TaskState.RUNNING
    assert w.task(paused).state is TaskState.PAUSED
    # `done` finishes in the database while its container lingers (e.g. the gateway crashed before cleanup),
    # the paused task's job likewise survived, and "ghost" has no task at all.
    task = w.task(done)
    w.repo.save(task.moved_to(TaskState.EXECUTOR_ERROR, at=T0))
    for leftover in (paused, "ghost"):
        w.backend.start(Job(task_id=leftover, project="p1", executors=(Executor(image="x", command=("true",)),)))
    assert w.backend.known_task_ids() == {running, done, paused, "ghost"}

    removed = w.dispatcher.reconcile_orphans()
    assert removed == sorted([done, paused, "ghost"])
    assert w.backend.known_task_ids() == {running}
    assert w.task(running).state is TaskState.RUNNING
    assert w.dispatcher.reconcile_orphans() == []


# ---------------------------------------------------------------- concurrency


class Guard:
    """Notices any moment at which two runners advance the same task."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight: set[str] = set()
        self.overlaps: list[str] = []


class GuardedRunner(TaskRunner):
    def __init__(self, guard: Guard, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self.advanced: Counter[str] = Counter()

    def advance(self, task: Task) -> Task:
        with self.guard.lock:
            if task.id in self.guard.in_flight:
                self.guard.overlaps.append(task.id)
            self.guard.in_flight.add(task.id)
            self.advanced[task.id] += 1
        try:
            time.sleep(0.001)  # widen the window a race would need
            return super().advance(task)
        finally:
            with self.guard.lock:
                self.guard.in_flight.discard(task.id)


class TickingClock:
    """Backend time that moves on by itself, so `sleep` executors take a few polls each."""

    def __init__(self) -> None:
        self.t = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            self.t += 0.01
            return self.t


def test_two_dispatchers_never_advance_the_same_task_at_once() -> None:
    w = World()
    w.backend.clock = TickingClock()
    guard = Guard()
    runners = [GuardedRunner(guard, w.repo, w.backend, w.store, w.images, w.egress, w.now, w.audit) for _ in "12"]
    starts: Counter[str] = Counter()
    real_start = w.backend.start

    def counting_start(job: Job) -> None:
        starts[job.task_id] += 1
        real_start(job)

    w.backend.start = counting_start  # type: ignore[method-assign]
    ids = [
        w.submit(["sleep", "0.2"], ["write", "/out/r.txt", str(n)], outputs=[out("r.txt", f"r{n}.txt")])
        for n in range(24)
    ]
    dispatchers = [w.make_dispatcher("w1", runners[0]), w.make_dispatcher("w2", runners[1])]
    for d in dispatchers:
        d.batch_size = 5
    errors: list[BaseException] = []

    def work(d: Dispatcher) -> None:
        try:
            d.drain(timeout=10)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert errors == []
    assert guard.overlaps == []
    assert dict(starts) == {task_id: 1 for task_id in ids}
    assert {w.task(i).state for i in ids} == {TaskState.COMPLETE}
    assert len(w.released()) == 24
    # Both workers took part, and some task was advanced by both (one after the other).
    assert all(sum(r.advanced.values()) > 0 for r in runners)
    assert set(runners[0].advanced) & set(runners[1].advanced)


def test_a_lease_held_by_another_worker_is_respected() -> None:
    w = World()
    task_id = w.submit(["true"])
    assert [t.id for t in w.repo.claim_active("other", 30, 10)] == [task_id]
    assert w.dispatcher.run_once() == 0
    assert w.task(task_id).state is TaskState.QUEUED
    w.repo.release_lease(task_id, "other")
    assert w.dispatcher.run_once() == 1
    assert w.task(task_id).state is TaskState.COMPLETE
