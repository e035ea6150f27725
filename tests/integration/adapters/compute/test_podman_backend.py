"""The compute contract against real podman containers, plus sandbox properties only a real runtime shows."""

import shlex
from pathlib import Path

import pytest

from gateway.adapters.compute.podman import PodmanBackend
from gateway.adapters.storage.local import LocalObjectStore
from gateway.config import Settings
from gateway.domain.task import Executor, FileType, Output
from gateway.services.ports import Area, Job, JobPhase
from tests.contracts.compute_backend import Commands, ComputeBackendContract, wait

IMAGE = "localhost/tre-base:latest"


class ShellCommands(Commands):
    def write(self, path, text):
        return ("sh", "-c", f"printf %s {shlex.quote(text)} > {shlex.quote(path)}")

    def copy(self, source, target):
        return ("cp", source, target)

    def exit(self, code):
        return ("sh", "-c", f"exit {code}")

    def sleep(self, seconds):
        return ("sleep", str(seconds))


class _MemUrlStore(LocalObjectStore):
    """The local store, also accepting the contract suite's mem:// URLs."""

    def locate(self, url):
        from tests.fakes import FakeObjectStore

        return FakeObjectStore.locate(self, url) or super().locate(url)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path):
    return _MemUrlStore(tmp_path / "store")


@pytest.fixture
def backend(store, tmp_path):
    settings = Settings()
    return PodmanBackend(store, tmp_path / "work", containers_conf=settings.resolved_containers_conf)


@pytest.fixture
def image():
    return IMAGE


@pytest.fixture
def commands():
    return ShellCommands()


class TestPodmanBackend(ComputeBackendContract):
    pass


def _run(backend, job):
    backend.start(job)
    status = wait(backend, job)
    return status


def test_sandbox_has_no_network_no_root_and_a_read_only_root(backend, store):
    probe = (
        "id -u; "
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ','; echo; "
        "touch /should-fail 2>/dev/null && echo writable || echo readonly; "
        "grep CapEff /proc/self/status"
    )
    job = Job(task_id="sandbox1", project="p1", executors=(Executor(IMAGE, ("sh", "-c", probe)),))
    status = _run(backend, job)
    assert status.phase is JobPhase.SUCCEEDED, status.reason
    uid, interfaces, rootfs, caps = status.executor_logs[0].stdout.strip().splitlines()
    assert uid != "0"
    assert interfaces == "lo,"
    assert rootfs == "readonly"
    assert caps.split()[-1] == "0000000000000000"
    backend.cleanup(job.task_id)


def test_stdin_stdout_stderr_paths_and_env_and_workdir(backend, store):
    job = Job(
        task_id="streams1",
        project="p1",
        executors=(
            Executor(IMAGE, ("sh", "-c", "echo $GREETING; pwd"), stdout="/out/first.txt", workdir="/out",
                     env={"GREETING": "hi there"}),
            Executor(IMAGE, ("sh", "-c", "tr a-z A-Z; echo oops >&2"), stdin="/out/first.txt",
                     stdout="/out/upper.txt", stderr="/out/err.txt"),
        ),
        outputs=(Output(path="/out/upper.txt", url="mem://released/p1/u.txt"),
                 Output(path="/out/err.txt", url="mem://released/p1/e.txt")),
    )
    status = _run(backend, job)
    assert status.phase is JobPhase.SUCCEEDED, status.reason
    upper = store.open(Area.QUARANTINE, status.outputs[0].stored.key).read().decode()
    assert upper == "HI THERE\n/OUT\n"
    assert store.open(Area.QUARANTINE, status.outputs[1].stored.key).read() == b"oops\n"
    # The executor log shows the tail of the redirected streams.
    assert status.executor_logs[1].stdout == "HI THERE\n/OUT\n"
    backend.cleanup(job.task_id)


def test_directory_and_wildcard_outputs(backend, store):
    job = Job(
        task_id="globs1",
        project="p1",
        executors=(Executor(IMAGE, ("sh", "-c", "mkdir -p /out/d/sub && echo 1 > /out/d/a.txt && "
                                              "echo 2 > /out/d/sub/b.txt && echo 3 > /out/r1.csv && "
                                              "echo 4 > /out/r2.csv && echo 5 > /out/skip.txt")),),
        outputs=(
            Output(path="/out/d", url="mem://released/p1/dir", type=FileType.DIRECTORY),
            Output(path="/out/*.csv", path_prefix="/out", url="mem://released/p1/csv"),
        ),
    )
    status = _run(backend, job)
    assert status.phase is JobPhase.SUCCEEDED, status.reason
    dests = sorted(o.destination for o in status.outputs)
    assert dests == [
        "mem://released/p1/csv/r1.csv",
        "mem://released/p1/csv/r2.csv",
        "mem://released/p1/dir/a.txt",
        "mem://released/p1/dir/sub/b.txt",
    ]
    backend.cleanup(job.task_id)


def test_symlinked_outputs_never_leave(backend, store, tmp_path):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host data")
    job = Job(
        task_id="symlink1",
        project="p1",
        executors=(Executor(IMAGE, ("sh", "-c", f"ln -s {secret} /out/leak.txt; ln -s /etc/passwd /out/p.txt")),),
        outputs=(Output(path="/out/leak.txt", url="mem://released/p1/leak.txt"),),
    )
    status = _run(backend, job)
    assert status.phase is JobPhase.SYSTEM_ERROR
    assert not list(store.list(Area.QUARANTINE, "symlink1/"))
    backend.cleanup(job.task_id)


def test_memory_limit_and_oom_is_reported(backend):
    from gateway.domain.task import Resources

    job = Job(
        task_id="oom1",
        project="p1",
        executors=(Executor(IMAGE, ("sh", "-c", "cat /proc/self/cgroup >/dev/null; "
                                              "head -c 200000000 /dev/zero | tail -c 100000000 > /dev/null")),),
        resources=Resources(ram_gb=0.03),
    )
    status = _run(backend, job)
    assert status.phase is JobPhase.FAILED
    assert status.executor_logs[0].exit_code != 0
    backend.cleanup(job.task_id)


def test_unavailable_image_is_a_clear_error(backend):
    from gateway.domain.errors import BackendError

    job = Job(task_id="noimg1", project="p1", executors=(Executor("localhost/not-there:1", ("true",)),))
    with pytest.raises(BackendError, match="not available"):
        backend.start(job)
    backend.cleanup(job.task_id)


def test_helper_binary_is_required(store, tmp_path):
    from gateway.domain.errors import BackendError

    with pytest.raises(BackendError, match="helper binary"):
        PodmanBackend(store, tmp_path / "w", helper_binary=Path("/nonexistent/busybox"))


def test_gateways_sharing_podman_never_see_or_remove_each_others_containers(store, tmp_path):
    settings = Settings()
    mine = PodmanBackend(store, tmp_path / "a", containers_conf=settings.resolved_containers_conf, instance="gw-a")
    theirs = PodmanBackend(store, tmp_path / "b", containers_conf=settings.resolved_containers_conf, instance="gw-b")
    job = Job(task_id="shared1", project="p1", executors=(Executor(IMAGE, ("sleep", "60")),))
    theirs.start(job)
    try:
        assert "shared1" not in mine.known_task_ids()
        mine.cancel("shared1")  # e.g. a reconciler of the other gateway: must not touch it
        assert theirs.poll(job).phase is JobPhase.RUNNING
    finally:
        theirs.cleanup("shared1")
    assert "shared1" not in theirs.known_task_ids()
