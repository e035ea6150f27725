"""RunRunner driving workflow runs through their lifecycle against a fake engine and the real TaskService."""

from __future__ import annotations

import io
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.storage.local import LocalObjectStore
from gateway.domain.errors import BackendError, Unauthenticated
from gateway.domain.identity import Principal, Role
from gateway.domain.images import ImagePolicy
from gateway.domain.runs import RUN_TAG, Run, RunState
from gateway.domain.states import TaskState
from gateway.domain.task import Task, system_log
from gateway.services.ports import Area, EngineExit, StaleRun
from gateway.services.run_runner import RELEASE_STEP, RunRunner, output_object_name
from gateway.services.runs import RunService, Upload
from gateway.services.tasks import TaskService
from tests.fakes import (
    FakeObjectStore,
    FakeRunRepository,
    FakeWorkflowEngine,
    InMemoryTaskRepository,
    mem_url,
)

ALICE = Principal("alice", frozenset({Role.RESEARCHER}), frozenset({"p1"}))
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


class WallClock:
    """Datetimes for the services: each reading one second later than the last."""

    def __init__(self) -> None:
        self.ticks = itertools.count()

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=next(self.ticks))


class World:
    def __init__(self, store: Any = None) -> None:
        self.store = store if store is not None else FakeObjectStore()
        self.now = WallClock()
        self.task_repo = InMemoryTaskRepository()
        task_ids = itertools.count(1)
        self.tasks = TaskService(self.task_repo, self.store, ImagePolicy({"alpine": "localhost/tre-base:latest"}),
                                 lambda: f"t{next(task_ids):03d}", self.now)
        self.repo = FakeRunRepository()
        run_ids = itertools.count(1)
        self.service = RunService(self.repo, self.tasks, self.store, lambda: f"run{next(run_ids):03d}", self.now)
        self.engine = FakeWorkflowEngine(worker="w1")
        self.runner = self.make_runner("w1", self.engine)

    def make_runner(self, worker: str, engine: FakeWorkflowEngine) -> RunRunner:
        return RunRunner(self.repo, self.tasks, self.store, engine, self.now, self.service.mint_engine_credential,
                         worker_id=worker, release_image="alpine", lease_seconds=30)

    def submit(self) -> Run:
        form = {"workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_url": "main.cwl"}
        return self.service.submit(ALICE, form, [Upload("main.cwl", io.BytesIO(b"class: Workflow"))])

    def run(self, run_id: str) -> Run:
        run = self.repo.get(run_id)
        assert run is not None
        return run

    def task(self, task_id: str) -> Task:
        task = self.task_repo.get(task_id)
        assert task is not None
        return task

    def started(self) -> Run:
        """A submitted run whose engine runs."""
        run = self.submit()
        assert self.runner.run_once() == 1
        assert self.run(run.id).state is RunState.RUNNING
        return self.run(run.id)

    def engine_principal(self, run: Run) -> Principal:
        return self.service.engine_principal(self.engine.started[run.id])

    def step(self, run: Run, name: str = "step") -> Task:
        """A step task as the engine's step command submits it, with the run's credential."""
        folder = self.store.url_for(Area.WORK, f"p1/runs/{run.id}/")
        return self.tasks.create(self.engine_principal(run), {
            "name": name,
            "executors": [{"image": "alpine", "command": ["true"]}],
            "inputs": [{"path": "/in/main.cwl", "url": folder + "workflow/main.cwl"}],
            "outputs": [{"path": "/out/x", "url": folder + f"tmp/{name}/x"}],
        })

    def move_task(self, task_id: str, *states: TaskState, reason: str | None = None) -> Task:
        task = self.task(task_id)
        for state in states:
            task = self.task_repo.save(task.moved_to(state, at=self.now(), reason=reason if state.is_terminal
                                                     else None))
        return task

    def output(self, run: Run, relative: str, data: bytes = b"x") -> str:
        key = f"p1/runs/{run.id}/outputs/{relative}"
        self.store.put_bytes(Area.WORK, key, data)
        return self.store.url_for(Area.WORK, key)

    def release(self, run: Run, relative: str, data: bytes = b"x") -> None:
        self.store.put_bytes(Area.RELEASED, f"p1/runs/{run.id}/{relative}", data)

    def transitions(self, run_id: str) -> list[tuple[str, str]]:
        return [(e.event.details["previous"], e.event.details["state"]) for e in self.repo.audit.rows
                if e.event.action == "run.state_changed" and e.event.object_id == run_id]


@pytest.fixture
def w() -> World:
    return World()


def reason_of(run: Run) -> str:
    return str(json.loads(run.system_logs[-1])["reason"])


# ---------------------------------------------------------------- starting


def test_a_queued_run_is_started_with_a_working_credential(w: World) -> None:
    run = w.submit()
    assert w.runner.run_once() == 1
    running = w.run(run.id)
    assert running.state is RunState.RUNNING
    assert running.start_time is not None and running.end_time is None
    token = w.engine.started[run.id]
    assert running.engine["worker"] == "w1" and running.engine["pid"] == 1001
    assert running.engine["workflow"] == "main.cwl"
    assert "credential_sha256" in running.engine and token not in json.dumps(running.engine)
    principal = w.service.engine_principal(token)
    assert (principal.run_scope, principal.projects) == (run.id, frozenset({"p1"}))
    assert w.transitions(run.id) == [("QUEUED", "INITIALIZING"), ("INITIALIZING", "RUNNING")]
    # While the engine runs nothing else happens.
    w.runner.run_once()
    assert w.run(run.id).version == running.version
    assert w.runner.any_active()


def test_an_engine_that_cannot_start_fails_the_run(w: World) -> None:
    w.engine.start_error = BackendError("cwltool is not installed")
    run = w.submit()
    w.runner.run_once()
    failed = w.run(run.id)
    assert failed.state is RunState.SYSTEM_ERROR
    assert reason_of(failed) == "engine_start_failed"
    assert "cwltool is not installed" in failed.system_logs[-1]
    assert run.id in w.engine.stopped
    assert failed.end_time is not None
    assert not w.runner.any_active()


def test_a_run_left_initializing_by_a_dead_worker_ends_engine_lost(w: World) -> None:
    run = w.submit()
    w.repo.save(w.run(run.id).moved_to(RunState.INITIALIZING, at=T0))
    w.runner.run_once()
    lost = w.run(run.id)
    assert lost.state is RunState.SYSTEM_ERROR and reason_of(lost) == "engine_lost"
    assert run.id not in w.engine.started


# ---------------------------------------------------------------- the happy path and the release


def test_the_happy_path_releases_the_outputs_through_a_paused_review(w: World) -> None:
    run = w.started()
    step = w.step(run)
    w.move_task(step.id, TaskState.INITIALIZING, TaskState.RUNNING, TaskState.COMPLETE)
    kept = w.output(run, "result.txt")
    withheld = w.output(run, "secret.txt")
    in_dir_kept = w.output(run, "sub/a.txt")
    in_dir_withheld = w.output(run, "sub/b.txt")
    engine_outputs = {
        "result": {"class": "File", "location": kept, "path": "/tmp/x/result.txt", "size": 1},
        "secret": {"class": "File", "location": withheld},
        "many": [{"class": "File", "location": kept}, {"class": "File", "location": withheld}],
        "folder": {"class": "Directory", "location": w.store.url_for(Area.WORK, f"p1/runs/{run.id}/outputs/sub"),
                   "listing": [{"class": "File", "location": in_dir_kept},
                               {"class": "File", "location": in_dir_withheld}]},
        "count": 3,
        "nothing": None,
    }
    w.engine.outputs_of[run.id] = engine_outputs
    w.engine.finish(run.id, 0)

    w.runner.run_once()
    finished = w.run(run.id)
    assert finished.state is RunState.RUNNING  # not done until the outputs are released
    assert finished.exit_code == 0
    assert finished.outputs == engine_outputs
    # The output object (values too, not only files) goes through review as a file of its own.
    values_key = f"p1/runs/{run.id}/outputs/{output_object_name(run)}"
    assert json.loads(w.store.open(Area.WORK, values_key).read()) == engine_outputs
    release = w.task(finished.release_task_id)
    assert release.state is TaskState.QUEUED
    assert (release.owner, release.project) == ("alice", "p1")
    assert release.spec.tags == {"project": "p1", "wes_step": RELEASE_STEP, RUN_TAG: run.id}
    outputs_url = mem_url(Area.WORK, f"p1/runs/{run.id}/outputs")
    assert [(i.url, i.path) for i in release.spec.inputs] == [(outputs_url, "/outputs")]
    assert [(o.url, o.path) for o in release.spec.outputs] == [(f"mem://released/p1/runs/{run.id}", "/outputs")]

    # The release task runs, then waits for review: the run waits too.
    w.move_task(release.id, TaskState.INITIALIZING, TaskState.RUNNING)
    w.runner.run_once()
    assert w.run(run.id).state is RunState.RUNNING
    w.move_task(release.id, TaskState.PAUSED)
    w.runner.run_once()
    paused = w.run(run.id)
    assert paused.state is RunState.PAUSED
    assert reason_of(paused) == "awaiting_output_review"
    assert json.loads(paused.system_logs[-1])["release_task"] == release.id
    w.runner.run_once()
    assert w.run(run.id).version == paused.version  # a paused run is followed, not changed
    assert w.runner.repo.claim_active("w1", 30, 10)  # and still leased while it waits

    # The reviewer releases some of the files, and the output object.
    w.release(run, "result.txt")
    w.release(run, "sub/a.txt")
    w.release(run, output_object_name(run))
    note = system_log("partially_released", "2 files withheld", withheld=["secret.txt", "sub/b.txt"])
    w.move_task(release.id, TaskState.COMPLETE, reason=note)
    w.runner.run_once()
    done = w.run(run.id)
    assert done.state is RunState.COMPLETE
    released = f"mem://released/p1/runs/{run.id}/"
    assert done.outputs == {
        "result": {"class": "File", "location": released + "result.txt", "size": 1},
        "secret": None,
        "many": [{"class": "File", "location": released + "result.txt"}, None],
        "folder": {"class": "Directory", "location": released + "sub",
                   "listing": [{"class": "File", "location": released + "sub/a.txt"}]},
        "count": 3,
        "nothing": None,
    }
    assert done.system_logs[-1] == note
    assert done.end_time is not None and done.exit_code == 0
    assert w.transitions(run.id) == [
        ("QUEUED", "INITIALIZING"), ("INITIALIZING", "RUNNING"), ("RUNNING", "PAUSED"), ("PAUSED", "COMPLETE"),
    ]
    with pytest.raises(Unauthenticated):
        w.engine_principal(run)  # the credential ended with the run
    assert w.runner.run_once() == 0
    assert w.task(step.id).state is TaskState.COMPLETE


def test_values_stay_hidden_when_the_output_object_is_withheld(w: World) -> None:
    run = w.started()
    kept = w.output(run, "r.txt")
    w.engine.outputs_of[run.id] = {
        "r": {"class": "File", "location": kept, "contents": "secret line", "checksum": "sha1$00"},
        "count": 3, "names": ["a", "b"], "nested": {"k": "v"},
    }
    w.engine.finish(run.id, 0)
    w.runner.run_once()
    release_id = w.run(run.id).release_task_id
    w.move_task(release_id, TaskState.INITIALIZING, TaskState.RUNNING, TaskState.COMPLETE)
    w.release(run, "r.txt")  # but not the output object
    w.runner.run_once()
    done = w.run(run.id)
    assert done.state is RunState.COMPLETE
    assert done.outputs == {
        "r": {"class": "File", "location": f"mem://released/p1/runs/{run.id}/r.txt", "checksum": "sha1$00"},
        "count": None, "names": [None, None], "nested": {"k": None},
    }


def test_a_release_without_review_completes_the_run_directly(w: World) -> None:
    run = w.started()
    location = w.output(run, "r.txt")
    w.engine.outputs_of[run.id] = {"r": {"class": "File", "location": location}}
    w.engine.finish(run.id, 0)
    w.runner.run_once()
    release_id = w.run(run.id).release_task_id
    w.move_task(release_id, TaskState.INITIALIZING, TaskState.RUNNING, TaskState.COMPLETE)
    w.release(run, "r.txt")
    w.runner.run_once()
    done = w.run(run.id)
    assert done.state is RunState.COMPLETE
    assert done.outputs == {"r": {"class": "File", "location": f"mem://released/p1/runs/{run.id}/r.txt"}}


def test_outputs_naming_files_outside_the_run_outputs_are_withheld(w: World) -> None:
    run = w.started()
    w.output(run, "r.txt")
    w.release(run, "r.txt")
    outputs_url = w.store.url_for(Area.WORK, f"p1/runs/{run.id}/outputs/")
    w.engine.outputs_of[run.id] = {
        "elsewhere": {"class": "File", "location": mem_url(Area.WORK, f"p1/runs/{run.id}/workflow/main.cwl")},
        "input": {"class": "File", "location": "mem://inputs/p1/a.csv"},
        "climbing": {"class": "File", "location": outputs_url + "../../other/outputs/r.txt"},
        "climbing_dir": {"class": "Directory", "location": outputs_url + "../../../../p2"},
        "ok": {"class": "File", "location": outputs_url + "r.txt"},
    }
    w.engine.finish(run.id, 0)
    w.runner.run_once()
    w.move_task(w.run(run.id).release_task_id, TaskState.INITIALIZING, TaskState.RUNNING, TaskState.COMPLETE)
    w.runner.run_once()
    done = w.run(run.id)
    assert done.state is RunState.COMPLETE
    assert done.outputs == {"elsewhere": None, "input": None, "climbing": None, "climbing_dir": None,
                            "ok": {"class": "File", "location": f"mem://released/p1/runs/{run.id}/r.txt"}}


def test_released_outputs_on_a_filesystem_store_keep_names_that_need_quoting(tmp_path: Path) -> None:
    w = World(LocalObjectStore(tmp_path / "store"))
    run = w.started()
    plain = w.output(run, "plain.txt")
    spaced = w.output(run, "my results/run 1.csv")  # a file:// URL percent-encodes these
    assert "%20" in spaced
    w.engine.outputs_of[run.id] = {"plain": {"class": "File", "location": plain},
                                   "spaced": {"class": "File", "location": spaced}}
    w.engine.finish(run.id, 0)
    w.runner.run_once()
    w.move_task(w.run(run.id).release_task_id, TaskState.INITIALIZING, TaskState.RUNNING, TaskState.COMPLETE)
    w.release(run, "plain.txt")
    w.release(run, "my results/run 1.csv")
    w.runner.run_once()
    done = w.run(run.id)
    assert done.state is RunState.COMPLETE
    released = f"p1/runs/{run.id}/"
    assert done.outputs == {
        "plain": {"class": "File", "location": w.store.url_for(Area.RELEASED, released + "plain.txt")},
        "spaced": {"class": "File", "location": w.store.url_for(Area.RELEASED, released + "my results/run 1.csv")},
    }


@pytest.mark.parametrize("end", [TaskState.SYSTEM_ERROR, TaskState.EXECUTOR_ERROR])
def test_a_failed_release_fails_the_run_and_shows_no_outputs(w: World, end: TaskState) -> None:
    run = w.started()
    w.engine.outputs_of[run.id] = {"r": {"class": "File", "location": w.output(run, "r.txt")}}
    w.engine.finish(run.id, 0)
    w.runner.run_once()
    release_id = w.run(run.id).release_task_id
    w.move_task(release_id, TaskState.INITIALIZING, TaskState.RUNNING)
    w.move_task(release_id, end, reason=system_log("quarantine_failed", "scan failed"))
    w.runner.run_once()
    failed = w.run(run.id)
    assert failed.state is RunState.SYSTEM_ERROR
    assert failed.outputs == {}
    assert reason_of(failed) == "quarantine_failed"


def test_a_release_rejected_in_review_fails_the_paused_run(w: World) -> None:
    run = w.started()
    w.engine.outputs_of[run.id] = {"r": {"class": "File", "location": w.output(run, "r.txt")}}
    w.engine.finish(run.id, 0)
    w.runner.run_once()
    release_id = w.run(run.id).release_task_id
    w.move_task(release_id, TaskState.INITIALIZING, TaskState.RUNNING, TaskState.PAUSED)
    w.runner.run_once()
    w.move_task(release_id, TaskState.SYSTEM_ERROR)  # no system log of its own
    w.runner.run_once()
    failed = w.run(run.id)
    assert failed.state is RunState.SYSTEM_ERROR
    assert reason_of(failed) == "release_failed"
    assert w.transitions(run.id)[-2:] == [("RUNNING", "PAUSED"), ("PAUSED", "SYSTEM_ERROR")]


def test_a_lost_release_task_fails_the_run(w: World) -> None:
    run = w.started()
    w.engine.outputs_of[run.id] = {"r": {"class": "File", "location": w.output(run, "r.txt")}}
    w.engine.finish(run.id, 0)
    w.runner.run_once()
    del w.task_repo.rows[w.run(run.id).release_task_id]
    w.runner.run_once()
    lost = w.run(run.id)
    assert lost.state is RunState.SYSTEM_ERROR and reason_of(lost) == "release_lost"


def test_file_contents_stay_hidden_at_any_depth_when_the_output_object_is_withheld(w: World) -> None:
    run = w.started()
    top = w.output(run, "d/top.txt")
    idx = w.output(run, "d/top.txt.idx")
    folder = w.store.url_for(Area.WORK, f"p1/runs/{run.id}/outputs/d")
    w.engine.outputs_of[run.id] = {
        "dir": {"class": "Directory", "location": folder, "listing": [
            {"class": "File", "location": top, "contents": "line 1", "size": 6,
             "secondaryFiles": [{"class": "File", "location": idx, "contents": "index"}]},
        ]},
    }
    w.engine.finish(run.id, 0)
    w.runner.run_once()
    w.move_task(w.run(run.id).release_task_id, TaskState.INITIALIZING, TaskState.RUNNING, TaskState.COMPLETE)
    w.release(run, "d/top.txt")
    w.release(run, "d/top.txt.idx")  # the files, but not the output object
    w.runner.run_once()
    done = w.run(run.id)
    assert done.state is RunState.COMPLETE
    released = f"mem://released/p1/runs/{run.id}/d"
    assert done.outputs == {
        "dir": {"class": "Directory", "location": released, "listing": [
            {"class": "File", "location": released + "/top.txt", "size": 6,
             "secondaryFiles": [{"class": "File", "location": released + "/top.txt.idx"}]},
        ]},
    }


def test_no_outputs_complete_the_run_without_a_release_task(w: World) -> None:
    run = w.started()
    w.engine.finish(run.id, 0)  # the engine printed no output object
    w.runner.run_once()
    done = w.run(run.id)
    assert done.state is RunState.COMPLETE
    assert done.release_task_id is None
    assert (done.outputs, done.exit_code) == ({}, 0)
    assert w.task_repo.rows == {}
    assert not any(True for _ in w.store.list(Area.WORK, f"p1/runs/{run.id}/outputs/"))
    assert w.transitions(run.id)[-1] == ("RUNNING", "COMPLETE")


def test_values_without_files_are_still_reviewed_before_release(w: World) -> None:
    run = w.started()
    w.engine.outputs_of[run.id] = {"count": 42, "message": "hello"}
    w.engine.finish(run.id, 0)
    w.runner.run_once()
    waiting = w.run(run.id)
    assert waiting.state is RunState.RUNNING and waiting.release_task_id is not None
    assert [o.key for o in w.store.list(Area.WORK, f"p1/runs/{run.id}/outputs/")] == [
        f"p1/runs/{run.id}/outputs/{output_object_name(run)}"]
    w.move_task(waiting.release_task_id, TaskState.INITIALIZING, TaskState.RUNNING, TaskState.COMPLETE)
    w.release(run, output_object_name(run))
    w.runner.run_once()
    done = w.run(run.id)
    assert done.state is RunState.COMPLETE
    assert done.outputs == {"count": 42, "message": "hello"}


# ---------------------------------------------------------------- failures


def test_a_failing_workflow_ends_in_executor_error_and_its_steps_are_cancelled(w: World) -> None:
    run = w.started()
    queued = w.step(run, "queued")
    running = w.step(run, "running")
    w.move_task(running.id, TaskState.INITIALIZING, TaskState.RUNNING)
    finished = w.step(run, "finished")
    w.move_task(finished.id, TaskState.INITIALIZING, TaskState.RUNNING, TaskState.COMPLETE)
    unrelated = w.tasks.create(ALICE, {"executors": [{"image": "alpine", "command": ["true"]}]})
    w.output(run, "partial.txt")  # a failed workflow's outputs are never released
    w.engine.script(run.id, None, EngineExit(2))
    w.runner.run_once()
    assert w.run(run.id).state is RunState.RUNNING
    w.runner.run_once()
    failed = w.run(run.id)
    assert failed.state is RunState.EXECUTOR_ERROR
    assert failed.exit_code == 2
    assert reason_of(failed) == "workflow_failed"
    assert failed.release_task_id is None
    assert w.task(queued.id).state is TaskState.CANCELING
    assert w.task(running.id).state is TaskState.CANCELING
    assert w.task(finished.id).state is TaskState.COMPLETE
    assert w.task(unrelated.id).state is TaskState.QUEUED
    assert len(w.task_repo.rows) == 4  # no release task


def test_a_crashed_engine_is_a_system_error(w: World) -> None:
    run = w.started()
    step = w.step(run)
    w.engine.finish(run.id, -9, crashed=True)
    w.runner.run_once()
    failed = w.run(run.id)
    assert failed.state is RunState.SYSTEM_ERROR
    assert reason_of(failed) == "engine_failed"
    assert failed.exit_code == -9
    assert run.id in w.engine.stopped
    assert w.task(step.id).state is TaskState.CANCELING


def test_a_run_whose_engine_this_worker_does_not_know_ends_engine_lost(w: World) -> None:
    run = w.started()
    step = w.step(run)
    other_engine = FakeWorkflowEngine(worker="w2")
    other = w.make_runner("w2", other_engine)
    assert other.run_once() == 0  # w1 holds the lease while its engine runs
    assert w.run(run.id).state is RunState.RUNNING
    w.repo.expire_lease(run.id)  # w1 died (its lease ran out); w2 restarts nothing, it finds no engine
    assert other.run_once() == 1
    lost = w.run(run.id)
    assert lost.state is RunState.SYSTEM_ERROR
    assert reason_of(lost) == "engine_lost"
    assert run.id in other_engine.stopped
    assert other_engine.started == {}
    assert w.task(step.id).state is TaskState.CANCELING


class ExplodingEngine(FakeWorkflowEngine):
    """Polling one particular run fails with an unexpected error."""

    bad: str = ""

    def poll(self, run_id: str) -> EngineExit | None:
        if run_id == self.bad:
            raise RuntimeError("boom")
        return super().poll(run_id)


def test_one_broken_run_does_not_stop_the_others(w: World) -> None:
    engine = ExplodingEngine(worker="w1")
    w.engine = engine
    w.runner = w.make_runner("w1", engine)
    first, second = w.submit(), w.submit()
    assert w.runner.run_once() == 2
    engine.bad = first.id
    engine.finish(second.id, 0)
    assert w.runner.run_once() == 2
    assert w.run(first.id).state is RunState.RUNNING
    assert w.run(second.id).state is RunState.COMPLETE


# ---------------------------------------------------------------- cancel


def test_cancel_stops_the_engine_and_every_step_then_ends_when_they_have(w: World) -> None:
    run = w.started()
    queued = w.step(run, "a")
    running = w.step(run, "b")
    w.move_task(running.id, TaskState.INITIALIZING, TaskState.RUNNING)
    done = w.step(run, "c")
    w.move_task(done.id, TaskState.INITIALIZING, TaskState.RUNNING, TaskState.COMPLETE)
    assert w.service.cancel(ALICE, run.id).state is RunState.CANCELING
    assert w.engine_principal(run).run_scope == run.id  # the engine may still act while it is stopped
    w.runner.run_once()
    assert w.engine.stopped[:1] == [run.id]
    assert w.task(queued.id).state is TaskState.CANCELING
    assert w.task(running.id).state is TaskState.CANCELING
    assert w.task(done.id).state is TaskState.COMPLETE
    assert w.run(run.id).state is RunState.CANCELING  # steps are still stopping

    w.move_task(queued.id, TaskState.CANCELED)
    w.runner.run_once()
    assert w.run(run.id).state is RunState.CANCELING
    w.move_task(running.id, TaskState.CANCELED)
    w.runner.run_once()
    canceled = w.run(run.id)
    assert canceled.state is RunState.CANCELED
    assert canceled.end_time is not None
    assert set(w.engine.stopped) == {run.id}
    assert w.transitions(run.id)[-2:] == [("RUNNING", "CANCELING"), ("CANCELING", "CANCELED")]
    with pytest.raises(Unauthenticated):
        w.engine_principal(run)
    assert w.runner.run_once() == 0


def test_a_run_cancelled_before_it_started_never_starts(w: World) -> None:
    run = w.submit()
    w.service.cancel(ALICE, run.id)
    w.runner.run_once()
    assert w.run(run.id).state is RunState.CANCELED
    assert w.engine.started == {}


def test_cancelling_a_run_in_review_withdraws_its_release(w: World) -> None:
    run = w.started()
    w.engine.outputs_of[run.id] = {"r": {"class": "File", "location": w.output(run, "r.txt")}}
    w.engine.finish(run.id, 0)
    w.runner.run_once()
    release_id = w.run(run.id).release_task_id
    w.move_task(release_id, TaskState.INITIALIZING, TaskState.RUNNING, TaskState.PAUSED)
    w.runner.run_once()
    assert w.run(run.id).state is RunState.PAUSED
    w.service.cancel(ALICE, run.id)
    w.runner.run_once()
    assert w.task(release_id).state is TaskState.CANCELING
    assert w.run(run.id).state is RunState.CANCELING
    w.move_task(release_id, TaskState.CANCELED)
    w.runner.run_once()
    canceled = w.run(run.id)
    assert canceled.state is RunState.CANCELED
    assert w.transitions(run.id)[-2:] == [("PAUSED", "CANCELING"), ("CANCELING", "CANCELED")]


def test_a_run_cancelled_meanwhile_is_not_overwritten(w: World) -> None:
    """The API cancels while a worker holds an old copy: the worker's save is stale and the cancel wins."""
    run = w.started()
    (claimed,) = w.repo.claim_active("w1", 30, 10)
    w.service.cancel(ALICE, run.id)
    w.engine.finish(run.id, 0)
    w.engine.outputs_of[run.id] = {"n": 1}
    with pytest.raises(StaleRun):
        w.runner.advance(claimed)
    assert w.run(run.id).state is RunState.CANCELING
    assert w.run(run.id).release_task_id is None
    # A release task created by the stale pass is still a step of the run: it is cancelled with the others.
    orphans = [t for _, t in w.task_repo.rows.values() if t.spec.tags.get(RUN_TAG) == run.id]
    w.runner.run_once()
    assert all(w.task(t.id).state is TaskState.CANCELING for t in orphans)
    for t in orphans:
        w.move_task(t.id, TaskState.CANCELED)
    w.runner.run_once()
    assert w.run(run.id).state is RunState.CANCELED


class CancelledWhileStarting(FakeWorkflowEngine):
    """The submitter cancels the run while its engine is being launched."""

    service: Any = None

    def start(self, run: Run, engine_token: str) -> dict[str, Any]:
        handle = super().start(run, engine_token)
        self.service.cancel(ALICE, run.id)
        return handle


def test_a_run_cancelled_while_its_engine_starts_gets_its_engine_stopped(w: World) -> None:
    engine = CancelledWhileStarting(worker="w1")
    engine.service = w.service
    w.engine = engine
    w.runner = w.make_runner("w1", engine)
    run = w.submit()
    w.runner.run_once()
    assert run.id in engine.started
    assert w.run(run.id).state is RunState.CANCELING  # the runner's RUNNING save lost to the cancel
    w.runner.run_once()
    assert engine.stopped == [run.id]
    assert w.run(run.id).state is RunState.CANCELED


def test_a_release_task_that_cannot_be_created_fails_the_run_instead_of_hanging(w: World) -> None:
    w.runner.release_image = "not-on-the-image-policy"
    run = w.started()
    w.engine.outputs_of[run.id] = {"r": {"class": "File", "location": w.output(run, "r.txt")}}
    w.engine.finish(run.id, 0)
    for _ in range(3):
        w.runner.run_once()
    ended = w.run(run.id)
    assert ended.state is RunState.SYSTEM_ERROR
    assert ended.release_task_id is None
    assert w.task_repo.rows == {}
