"""What every ComputeBackend must do. Subclasses provide `backend`, `store`, `image` and `commands` fixtures."""

from __future__ import annotations

import time
import uuid

import pytest

from gateway.domain.task import Executor, FileType, Output
from gateway.services.ports import Area, Job, JobPhase, JobStatus, Location, StagedInput


class Commands:
    """Translates abstract executor actions into commands the backend under test understands."""

    def write(self, path: str, text: str) -> tuple[str, ...]:
        raise NotImplementedError

    def copy(self, source: str, target: str) -> tuple[str, ...]:
        raise NotImplementedError

    def exit(self, code: int) -> tuple[str, ...]:
        raise NotImplementedError

    def sleep(self, seconds: float) -> tuple[str, ...]:
        raise NotImplementedError


def wait(backend, job: Job, timeout: float = 30.0) -> JobStatus:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.poll(job)
        if status.phase not in (JobPhase.PENDING, JobPhase.RUNNING):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job.task_id} did not finish in {timeout}s")


class ComputeBackendContract:
    def job(self, image: str, *executors: Executor, **kw) -> Job:  # type: ignore[no-untyped-def]
        return Job(task_id="c" + uuid.uuid4().hex[:12], project="p1", executors=executors, **kw)

    def ex(self, image: str, command: tuple[str, ...], **kw) -> Executor:  # type: ignore[no-untyped-def]
        return Executor(image=image, command=command, **kw)

    def test_executors_run_in_order_and_outputs_reach_quarantine(self, backend, store, image, commands):
        job = self.job(
            image,
            self.ex(image, commands.copy("/in/greeting.txt", "/scratch/step1.txt")),
            self.ex(image, commands.copy("/scratch/step1.txt", "/out/result.txt")),
            inputs=(StagedInput("/in/greeting.txt", FileType.FILE, content="hello"),),
            outputs=(Output(path="/out/result.txt", url="mem://released/p1/result.txt"),),
            volumes=("/scratch",),
        )
        backend.start(job)
        status = wait(backend, job)
        assert status.phase is JobPhase.SUCCEEDED, status.reason
        assert [log.exit_code for log in status.executor_logs] == [0, 0]
        (collected,) = status.outputs
        assert collected.destination == "mem://released/p1/result.txt"
        assert store.open(Area.QUARANTINE, collected.stored.key).read() == b"hello"
        assert collected.stored.key.startswith(job.task_id + "/")
        backend.cleanup(job.task_id)

    def test_input_from_store_is_staged(self, backend, store, image, commands):
        store.put_bytes(Area.INPUTS, "p1/data.csv", b"a,b\n1,2\n")
        job = self.job(
            image,
            self.ex(image, commands.copy("/data/data.csv", "/out/copy.csv")),
            inputs=(StagedInput("/data/data.csv", FileType.FILE, source=Location(Area.INPUTS, "p1/data.csv")),),
            outputs=(Output(path="/out/copy.csv", url="mem://released/p1/copy.csv"),),
        )
        backend.start(job)
        status = wait(backend, job)
        assert status.phase is JobPhase.SUCCEEDED, status.reason
        assert store.open(Area.QUARANTINE, status.outputs[0].stored.key).read() == b"a,b\n1,2\n"
        backend.cleanup(job.task_id)

    def test_failing_executor_stops_the_job_with_its_exit_code(self, backend, image, commands):
        job = self.job(
            image,
            self.ex(image, commands.exit(3)),
            self.ex(image, commands.write("/out/never.txt", "x")),
        )
        backend.start(job)
        status = wait(backend, job)
        assert status.phase is JobPhase.FAILED
        assert [log.exit_code for log in status.executor_logs] == [3]
        assert status.reason and "executor" in status.reason
        backend.cleanup(job.task_id)

    def test_ignore_error_continues_with_the_next_executor(self, backend, image, commands):
        job = self.job(
            image,
            self.ex(image, commands.exit(5), ignore_error=True),
            self.ex(image, commands.write("/out/after.txt", "ran")),
            outputs=(Output(path="/out/after.txt", url="mem://released/p1/after.txt"),),
        )
        backend.start(job)
        status = wait(backend, job)
        assert status.phase is JobPhase.SUCCEEDED, status.reason
        assert [log.exit_code for log in status.executor_logs] == [5, 0]
        backend.cleanup(job.task_id)

    def test_missing_output_is_a_system_error(self, backend, image, commands):
        job = self.job(
            image,
            self.ex(image, commands.write("/out/other.txt", "x")),
            outputs=(Output(path="/out/wanted.txt", url="mem://released/p1/wanted.txt"),),
        )
        backend.start(job)
        status = wait(backend, job)
        assert status.phase is JobPhase.SYSTEM_ERROR
        assert "output_missing" in (status.reason or "")
        backend.cleanup(job.task_id)

    def test_start_twice_runs_once(self, backend, image, commands):
        job = self.job(image, self.ex(image, commands.sleep(0.2)))
        backend.start(job)
        backend.start(job)
        status = wait(backend, job)
        assert status.phase is JobPhase.SUCCEEDED
        assert len(status.executor_logs) == 1
        backend.cleanup(job.task_id)

    def test_cancel_stops_a_running_job_and_cleanup_forgets_it(self, backend, image, commands):
        job = self.job(image, self.ex(image, commands.sleep(60)))
        backend.start(job)
        assert backend.poll(job).phase in (JobPhase.PENDING, JobPhase.RUNNING)
        assert job.task_id in backend.known_task_ids()
        backend.cancel(job.task_id)
        backend.cleanup(job.task_id)
        assert job.task_id not in backend.known_task_ids()
        assert backend.poll(job).phase is JobPhase.MISSING
        backend.cancel(job.task_id)  # idempotent

    def test_cancel_and_cleanup_of_unknown_ids_are_harmless(self, backend):
        backend.cancel("never-started")
        backend.cleanup("never-started")

    @pytest.mark.parametrize("n", [1])
    def test_poll_of_unknown_job_is_missing(self, backend, image, commands, n):
        job = self.job(image, self.ex(image, commands.sleep(0)))
        assert backend.poll(job).phase is JobPhase.MISSING
