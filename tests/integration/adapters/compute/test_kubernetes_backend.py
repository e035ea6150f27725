"""The Kubernetes backend, proven in three layers (no real API server can be installed here):

1. Emulated API: the official client talks HTTP on loopback to kmock (extended in k8s_support/emulator.py)
   while a fake kubelet (k8s_support/kubelet.py) plays the node by patching pod status. The shared
   ComputeBackend contract, plus eviction, restarts, watch disconnects, resync, cancel, keep-on-failure.
2. Schemas: every object the backend sends to the API passes kubernetes-validate --strict for 1.29 and 1.33.
3. Real execution: the executor pod the backend generates runs under `podman kube play` with local images,
   with the stager's real entry point staging through S3 (moto on loopback) before and after it.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

kubernetes = pytest.importorskip("kubernetes", reason="the kubernetes client is a dependency of this backend")
pytest.importorskip("kmock", reason="kmock is a test dependency (emulated Kubernetes API)")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is a test dependency")

from kubernetes import client  # noqa: E402

from gateway.adapters.compute.k8s import manifests  # noqa: E402
from gateway.adapters.compute.k8s.manifests import (  # noqa: E402
    CREDENTIALS_DIR,
    LABEL_EXECUTOR_COUNT,
    LABEL_PROJECT,
    LABEL_ROLE,
    LABEL_STAGE,
    LABEL_TASK,
    NETWORK_POLICY_NAME,
    VOLUME_DIR,
    PodSettings,
)
from gateway.adapters.compute.k8s.stager import work_prefix  # noqa: E402
from gateway.adapters.compute.kubernetes import KubernetesBackend, kubernetes_backend_from_settings  # noqa: E402
from gateway.config import SettingsError  # noqa: E402
from gateway.domain.errors import InvalidRequest  # noqa: E402
from gateway.domain.states import TaskState  # noqa: E402
from gateway.domain.task import Executor, FileType, Output, Resources, Task, TaskSpec  # noqa: E402
from gateway.services.dispatcher import Dispatcher  # noqa: E402
from gateway.services.ports import Area, Job, JobPhase, Location, StagedInput  # noqa: E402
from tests.contracts.compute_backend import ComputeBackendContract, wait  # noqa: E402
from tests.fakes import FakeObjectStore, InMemoryTaskRepository  # noqa: E402
from tests.integration.adapters.compute.k8s_support.emulator import EmulatedApiServer  # noqa: E402
from tests.integration.adapters.compute.k8s_support.kubelet import FakeKubelet, KubeletCommands  # noqa: E402

IMAGE = "localhost/tre-base:latest"  # the kubelet's only "pulled" image; also the helper image here
VERSIONS = ("1.29", "1.33")
cmds = KubeletCommands()

# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def api_server() -> Iterator[EmulatedApiServer]:
    server = EmulatedApiServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_store() -> FakeObjectStore:
    return FakeObjectStore()


@pytest.fixture(scope="module")
def kubelet(api_server: EmulatedApiServer, shared_store: FakeObjectStore,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKubelet]:
    node = FakeKubelet(api_server, shared_store, tmp_path_factory.mktemp("node"), images=frozenset({IMAGE}),
                       namespace_prefix="t-").start()
    yield node
    node.stop()


@pytest.fixture
def store(shared_store: FakeObjectStore) -> FakeObjectStore:
    return shared_store


@pytest.fixture
def namespace() -> str:
    return "t-" + uuid.uuid4().hex[:10]


_validated: set[str] = set()


def validate(objects: list[dict[str, Any]]) -> int:
    """kubernetes-validate --strict for each version; returns how many distinct objects were checked."""
    for obj in objects:
        key = json.dumps(obj, sort_keys=True)
        if key in _validated:
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        _validated.add(key)
    return len(objects)


def created_in(api_server: EmulatedApiServer, namespace: str) -> list[dict[str, Any]]:
    assert api_server.emulator is not None
    return [copy.deepcopy(o) for o in list(api_server.emulator.created)
            if (o.get("metadata") or {}).get("namespace") == namespace]


class Backends:
    """Builds backends on the emulator; closes them and validates what they created afterwards."""

    def __init__(self, api_server: EmulatedApiServer, store: Any, namespace: str) -> None:
        self.api_server = api_server
        self.store = store
        self.namespace = namespace
        self.made: list[KubernetesBackend] = []

    def __call__(self, **kwargs: Any) -> KubernetesBackend:
        settings = kwargs.pop("settings", None) or PodSettings(
            namespace=self.namespace, helper_image=IMAGE, uid=10001, gid=10001,
            stager_env={"TRE_GATEWAY_OBJECT_STORE": "s3", "TRE_GATEWAY_S3_BUCKET": "tre"},
            stager_credentials_secret="tre-stager-s3")
        kwargs.setdefault("image_pull_grace_seconds", 0)
        backend = KubernetesBackend(self.store, api_client(self.api_server), settings, **kwargs)
        self.made.append(backend)
        return backend

    def close(self) -> None:
        for backend in self.made:
            backend.close()
        validate(created_in(self.api_server, self.namespace))


@pytest.fixture
def backends(api_server: EmulatedApiServer, kubelet: FakeKubelet, store: FakeObjectStore,
             namespace: str) -> Iterator[Backends]:
    made = Backends(api_server, store, namespace)
    yield made
    made.close()


@pytest.fixture
def backend(backends: Backends) -> KubernetesBackend:
    return backends()


@pytest.fixture
def image() -> str:
    return IMAGE


@pytest.fixture
def commands() -> KubeletCommands:
    return cmds


def api_client(api_server: EmulatedApiServer) -> client.ApiClient:
    return client.ApiClient(client.Configuration(host=api_server.url))


def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def live(api_server: EmulatedApiServer, plural: str, namespace: str) -> dict[str, dict[str, Any]]:
    """Objects the emulator holds now, by name."""
    emulator = api_server.emulator
    assert emulator is not None

    def collect() -> dict[str, dict[str, Any]]:
        return {name: copy.deepcopy(obj.raw) for (res, ns, name), obj in emulator._objects.items()
                if res.plural == plural and ns == namespace and not obj.deleted}

    return api_server.call(collect)  # type: ignore[no-any-return]


def job_of(*executors: Executor, **kw: Any) -> Job:
    return Job(task_id="k" + uuid.uuid4().hex[:12], project=kw.pop("project", "p1"), executors=executors, **kw)


def ex(command: tuple[str, ...], **kw: Any) -> Executor:
    return Executor(image=kw.pop("image", IMAGE), command=command, **kw)


def executor_running(backend: KubernetesBackend, job: Job) -> bool:
    status = backend.poll(job)
    return status.phase is JobPhase.RUNNING and bool(status.executor_logs)


def gate() -> str:
    return "gate-" + uuid.uuid4().hex[:8]


# ---------------------------------------------------------------- the shared contract


class TestKubernetesBackendContract(ComputeBackendContract):
    pass


# ---------------------------------------------------------------- pod model and sandbox


def test_pods_are_sandboxed_labelled_and_isolated_by_a_deny_all_policy(backends, api_server, store, namespace):
    backend = backends()
    store.put_bytes(Area.INPUTS, "p1/in.txt", b"x")
    job = job_of(ex(cmds.copy("/in/in.txt", "/out/o.txt")),
                 inputs=(StagedInput("/in/in.txt", FileType.FILE, source=Location(Area.INPUTS, "p1/in.txt")),),
                 outputs=(Output(path="/out/o.txt", url="mem://released/p1/o.txt"),), project="Project X/1")
    backend.start(job)
    assert wait(backend, job).phase is JobPhase.SUCCEEDED
    pods = {o["metadata"]["name"]: o for o in created_in(api_server, namespace) if o["kind"] == "Pod"}
    names = manifests.names(job.task_id)
    assert set(pods) == {names.stage_in, names.executor, names.stage_out}
    for pod in pods.values():
        spec, labels = pod["spec"], pod["metadata"]["labels"]
        assert labels[LABEL_TASK] == job.task_id
        assert labels[LABEL_PROJECT].startswith("Project-X-1-")  # a valid label value; full name annotated
        assert pod["metadata"]["annotations"]["tre-gateway/project"] == "Project X/1"
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["restartPolicy"] == "Never"
        assert not any("hostPath" in v for v in spec["volumes"])
        for container in spec.get("initContainers", []) + spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["runAsNonRoot"] is True and isinstance(sc["runAsUser"], int) and sc["runAsUser"] > 0
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert container["resources"]["limits"] and container["resources"]["requests"]
    executor = pods[names.executor]
    assert executor["metadata"]["labels"][LABEL_ROLE] == "executor"
    assert executor["metadata"]["labels"][LABEL_STAGE] == "exec"
    assert executor["metadata"]["labels"][LABEL_EXECUTOR_COUNT] == "1"
    assert [c["name"] for c in executor["spec"]["initContainers"]] == ["setup", "exec-0"]
    # No credentials anywhere near executors; stagers get them as mounted files only.
    assert "secret" not in json.dumps(executor["spec"]["volumes"])
    for stage in (names.stage_in, names.stage_out):
        pod = pods[stage]
        assert pod["metadata"]["labels"][LABEL_ROLE] == "stager"
        (container,) = pod["spec"]["containers"]
        assert {v["name"]: v for v in pod["spec"]["volumes"]}["credentials"]["secret"]["secretName"] == \
            "tre-stager-s3"
        assert {"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True} in container["volumeMounts"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["TRE_GATEWAY_S3_ACCESS_KEY_ID_FILE"].startswith(CREDENTIALS_DIR + "/")
        assert not any("SECRET_ACCESS_KEY" == k.removeprefix("TRE_GATEWAY_S3_") for k in env)
    (policy,) = live(api_server, "networkpolicies", namespace).values()
    assert policy["metadata"]["name"] == NETWORK_POLICY_NAME
    assert policy["spec"] == {"podSelector": {"matchLabels": {LABEL_ROLE: "executor"}},
                              "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []}
    # A second backend (another worker) finds the policy in place: still exactly one.
    other = backends()
    job2 = job_of(ex(cmds.exit(0)))
    other.start(job2)
    assert wait(other, job2).phase is JobPhase.SUCCEEDED
    assert list(live(api_server, "networkpolicies", namespace)) == [NETWORK_POLICY_NAME]
    backend.cleanup(job.task_id)
    other.cleanup(job2.task_id)


def test_a_task_without_inputs_or_outputs_is_one_pod_with_an_empty_dir(backend, api_server, namespace):
    job = job_of(ex(cmds.exit(0)), ex(cmds.exit(0)))
    backend.start(job)
    assert wait(backend, job).phase is JobPhase.SUCCEEDED
    assert list(live(api_server, "pods", namespace)) == [manifests.names(job.task_id).executor]
    assert live(api_server, "persistentvolumeclaims", namespace) == {}
    (pod,) = live(api_server, "pods", namespace).values()
    assert {"name": "work", "emptyDir": {}} in pod["spec"]["volumes"]
    backend.cleanup(job.task_id)
    assert live(api_server, "pods", namespace) == {}


def test_resources_and_backend_parameters_reach_the_pod(backend, api_server, namespace):
    job = job_of(
        ex(cmds.exit(0)),
        outputs=(Output(path="/out/x", url="mem://released/p1/x"),),
        resources=Resources(cpu_cores=2, ram_gb=1.5, disk_gb=3, zones=("zone-a",), backend_parameters={
            "gpu_count": "1", "node_selector": "pool=batch,tre.example/tier=secure",
            "active_deadline_seconds": "600"}),
    )
    backend.start(job)
    until(lambda: manifests.names(job.task_id).executor in live(api_server, "pods", namespace), what="exec pod")
    pod = live(api_server, "pods", namespace)[manifests.names(job.task_id).executor]
    container = pod["spec"]["initContainers"][1]
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "1536Mi", "ephemeral-storage": "3072Mi"}
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1536Mi", "ephemeral-storage": "3072Mi",
                                                "nvidia.com/gpu": "1"}
    assert pod["spec"]["nodeSelector"] == {"pool": "batch", "tre.example/tier": "secure"}
    assert pod["spec"]["activeDeadlineSeconds"] == 600
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["zone-a"]
    (claim,) = live(api_server, "persistentvolumeclaims", namespace).values()
    assert claim["spec"]["resources"]["requests"]["storage"] == "3072Mi"
    backend.cancel(job.task_id)


def test_backend_parameters_unknown_when_strict_or_malformed_are_refused(backend, api_server, namespace):
    strict = job_of(ex(cmds.exit(0)), resources=Resources(
        backend_parameters={"queue": "short", "gpu_count": "1"}, backend_parameters_strict=True))
    with pytest.raises(InvalidRequest) as refused:
        backend.start(strict)
    assert "queue" in refused.value.msg and "gpu_count" in refused.value.msg  # names what is supported
    malformed = job_of(ex(cmds.exit(0)), resources=Resources(backend_parameters={"gpu_count": "lots"}))
    with pytest.raises(InvalidRequest, match="gpu_count"):
        backend.start(malformed)
    too_many = job_of(ex(cmds.exit(0)), resources=Resources(backend_parameters={"gpu_count": "99"}))
    with pytest.raises(InvalidRequest, match="between"):
        backend.start(too_many)
    assert live(api_server, "pods", namespace) == {}
    lenient = job_of(ex(cmds.exit(0)), resources=Resources(backend_parameters={"queue": "short"}))
    backend.start(lenient)
    assert wait(backend, lenient).phase is JobPhase.SUCCEEDED
    backend.cleanup(lenient.task_id)


def test_logs_streams_env_and_workdir(backend, api_server, store, namespace):
    job = job_of(
        ex(cmds.echo("first line"), env={"GREETING": "hi there"}, workdir="/out"),
        ex(cmds.echo("to a file"), stdout="/out/a.txt"),
        ex(cmds.cat(), stdin="/out/a.txt", stdout="/out/b.txt"),
        ex(cmds.echo("a warning", stream="stderr"), stdout="/out/c.txt"),
        outputs=(Output(path="/out/b.txt", url="mem://released/p1/b.txt"),),
    )
    backend.start(job)
    status = wait(backend, job)
    assert status.phase is JobPhase.SUCCEEDED, status.reason
    logs = status.executor_logs
    assert [entry.exit_code for entry in logs] == [0, 0, 0, 0]
    assert logs[0].stdout == "first line\n" and logs[0].stderr is None
    assert logs[1].stdout is None and logs[1].stderr == ""  # stdout went to the file
    assert logs[3].stderr == "a warning\n"
    assert all(entry.start_time and entry.end_time for entry in logs)
    assert store.open(Area.QUARANTINE, status.outputs[0].stored.key).read() == b"to a file\n"
    for _ in range(3):
        backend.poll(job)
    requests = [r for r in api_server.emulator.log_requests if r[0] == namespace]
    assert sorted(requests) == sorted({(namespace, manifests.names(job.task_id).executor, f"exec-{i}")
                                       for i in range(4)})  # each finished log is read once
    pod = live(api_server, "pods", namespace)[manifests.names(job.task_id).executor]
    first = pod["spec"]["initContainers"][1]
    assert first["env"] == [{"name": "GREETING", "value": "hi there"}]
    assert first["workingDir"] == "/out"
    backend.cleanup(job.task_id)


# ---------------------------------------------------------------- failures with structured reasons


def test_node_pressure_eviction_is_preempted(backend, kubelet):
    wait_for = gate()
    job = job_of(ex(cmds.wait(wait_for)))
    backend.start(job)
    until(lambda: executor_running(backend, job), what="the executor to run")
    kubelet.evict(manifests.names(job.task_id).executor)
    status = wait(backend, job)
    assert status.phase is JobPhase.PREEMPTED
    reason = json.loads(status.reason)
    assert reason["reason"] == "preempted" and "low on resource" in reason["detail"]
    backend.cleanup(job.task_id)


def test_api_eviction_that_deletes_the_pod_is_preempted(backend, api_server, namespace):
    wait_for = gate()
    job = job_of(ex(cmds.wait(wait_for)))
    backend.start(job)
    until(lambda: executor_running(backend, job), what="the executor to run")
    # What the Eviction API (a node drain) does: mark the pod as a disruption target, then delete it.
    admin = client.CoreV1Api(api_client(api_server))
    name = manifests.names(job.task_id).executor
    admin.patch_namespaced_pod_status(name, namespace, {"status": {"conditions": [
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
         "message": "Eviction API: evicting"}]}}, _preload_content=False)
    admin.delete_namespaced_pod(name, namespace, _preload_content=False)
    status = wait(backend, job)
    assert status.phase is JobPhase.PREEMPTED
    assert "Eviction API" in status.reason
    backend.cleanup(job.task_id)


def test_image_pull_failure_is_a_system_error(backend):
    job = job_of(ex(cmds.exit(0), image="registry.example/not-mirrored:1"))
    backend.start(job)
    status = wait(backend, job)
    assert status.phase is JobPhase.SYSTEM_ERROR
    reason = json.loads(status.reason)
    assert reason["reason"] == "image_pull_failed"
    assert reason["image"] == "registry.example/not-mirrored:1"
    assert reason["container"] == "exec-0"
    backend.cleanup(job.task_id)


def test_image_pull_errors_are_tolerated_during_the_grace_period(backends):
    backend = backends(image_pull_grace_seconds=60)
    job = job_of(ex(cmds.exit(0), image="registry.example/slow:1"))
    backend.start(job)
    until(lambda: "ImagePullBackOff" in json.dumps(backend.cache.pods_of(job.task_id)), what="a pull back-off")
    assert backend.poll(job).phase in (JobPhase.PENDING, JobPhase.RUNNING)
    backend.cancel(job.task_id)
    assert backend.poll(job).phase is JobPhase.MISSING


def test_oom_killed_executor_fails_with_its_reason(backend):
    job = job_of(ex(cmds.oom()), ex(cmds.exit(0)))
    backend.start(job)
    status = wait(backend, job)
    assert status.phase is JobPhase.FAILED
    assert [entry.exit_code for entry in status.executor_logs] == [137]
    assert json.loads(status.reason)["reason"] == "oom_killed"
    backend.cleanup(job.task_id)


def test_deadline_exceeded_fails_the_task(backend):
    job = job_of(ex(cmds.sleep(30)), resources=Resources(backend_parameters={"active_deadline_seconds": "1"}))
    backend.start(job)
    status = wait(backend, job, timeout=15)
    assert status.phase is JobPhase.FAILED
    assert json.loads(status.reason)["reason"] == "deadline_exceeded"
    backend.cleanup(job.task_id)


def test_input_that_cannot_be_staged_is_a_system_error(backend):
    job = job_of(ex(cmds.exit(0)), inputs=(
        StagedInput("/in/gone.csv", FileType.FILE, source=Location(Area.INPUTS, "p1/never-uploaded.csv")),))
    backend.start(job)
    status = wait(backend, job)
    assert status.phase is JobPhase.SYSTEM_ERROR
    reason = json.loads(status.reason)
    assert reason["reason"] == "staging_failed" and "never-uploaded.csv" in reason["detail"]
    assert status.executor_logs == ()
    backend.cleanup(job.task_id)


# ---------------------------------------------------------------- cancel, cleanup, restarts


def test_cancel_mid_run_deletes_every_object_of_the_task(backend, api_server, kubelet, store, namespace):
    store.put_bytes(Area.INPUTS, "p1/in.csv", b"1\n")
    job = job_of(ex(cmds.wait(gate())),
                 inputs=(StagedInput("/in/in.csv", FileType.FILE, source=Location(Area.INPUTS, "p1/in.csv")),),
                 outputs=(Output(path="/out/x.csv", url="mem://released/p1/x.csv"),))
    backend.start(job)
    until(lambda: executor_running(backend, job), what="the executor to run")
    assert live(api_server, "persistentvolumeclaims", namespace)
    assert list(store.list(Area.WORK, work_prefix(job.task_id)))
    run = kubelet.run_of(manifests.names(job.task_id).executor)
    backend.cancel(job.task_id)
    assert live(api_server, "pods", namespace) == {}
    assert live(api_server, "persistentvolumeclaims", namespace) == {}
    assert list(store.list(Area.WORK, work_prefix(job.task_id))) == []
    until(lambda: run.deleted.is_set(), what="the node to stop the pod")
    assert backend.poll(job).phase is JobPhase.MISSING
    assert job.task_id not in backend.known_task_ids()


def test_failed_pods_are_kept_for_debugging_until_their_ttl(backends, api_server, namespace):
    backend = backends(keep_failed_seconds=60)
    job = job_of(ex(cmds.write("/out/partial.txt", "x")), ex(cmds.exit(2)),
                 outputs=(Output(path="/out/partial.txt", url="mem://released/p1/partial.txt"),))
    backend.start(job)
    assert wait(backend, job).phase is JobPhase.FAILED
    backend.cleanup(job.task_id)
    names = manifests.names(job.task_id)
    assert list(live(api_server, "pods", namespace)) == [names.executor]
    assert list(live(api_server, "persistentvolumeclaims", namespace)) == [names.volume]
    assert job.task_id not in backend.known_task_ids()  # the reconciler leaves it alone meanwhile
    later = backends(keep_failed_seconds=60, now=lambda: datetime.now(UTC) + timedelta(seconds=120))
    until(lambda: later.cache.pods_of(job.task_id), what="the second backend's cache")
    assert job.task_id in later.known_task_ids()
    later.cleanup(job.task_id)
    assert live(api_server, "pods", namespace) == {}
    assert live(api_server, "persistentvolumeclaims", namespace) == {}


def test_gateway_restart_mid_task_is_reconciled(backends, api_server, kubelet, store, namespace):
    first = backends()
    store.put_bytes(Area.INPUTS, "p1/r.txt", b"resumed")
    release = gate()
    job = job_of(ex(cmds.copy("/in/r.txt", "/out/r.txt")), ex(cmds.wait(release)),
                 inputs=(StagedInput("/in/r.txt", FileType.FILE, source=Location(Area.INPUTS, "p1/r.txt")),),
                 outputs=(Output(path="/out/r.txt", url="mem://released/p1/r.txt"),))
    orphan = job_of(ex(cmds.wait(gate())))
    first.start(job)
    first.start(orphan)
    until(lambda: len(first.poll(job).executor_logs) == 2, what="the second executor to run")
    until(lambda: executor_running(first, orphan), what="the orphan to run")
    first.close()  # the worker dies

    second = backends()  # a new process: nothing in memory
    assert {job.task_id, orphan.task_id} <= second.known_task_ids()
    repo = InMemoryTaskRepository()
    repo.add(Task(id=job.task_id, owner="alice", project="p1", spec=TaskSpec(executors=job.executors),
                  state=TaskState.RUNNING, creation_time=datetime.now(UTC)))
    dispatcher = Dispatcher(repo=repo, runner=None, backend=second, worker_id="w2")  # type: ignore[arg-type]
    assert dispatcher.reconcile_orphans() == [orphan.task_id]  # unknown to the database: removed
    assert orphan.task_id not in second.known_task_ids()
    assert manifests.names(orphan.task_id).executor not in live(api_server, "pods", namespace)
    assert second.poll(job).phase is JobPhase.RUNNING
    kubelet.open_gate(release)
    status = wait(second, job)
    assert status.phase is JobPhase.SUCCEEDED, status.reason
    assert [entry.exit_code for entry in status.executor_logs] == [0, 0]
    assert store.open(Area.QUARANTINE, status.outputs[0].stored.key).read() == b"resumed"
    second.cleanup(job.task_id)


# ---------------------------------------------------------------- the watch


def test_watch_disconnect_resumes_from_the_last_resource_version_without_missing_a_transition(
        backend, api_server, kubelet, namespace):
    release = gate()
    job = job_of(ex(cmds.wait(release)))
    backend.start(job)
    until(lambda: executor_running(backend, job), what="the executor to run")
    emulator = api_server.emulator
    lists_before = backend.cache.stats["lists"]
    watches_before = len([w for w in emulator.watch_params if w["namespace"] == namespace])
    last_seen = backend.cache.resource_version
    api_server.call(emulator.hold_watches)
    api_server.call(emulator.drop_watches)
    until(lambda: len([w for w in emulator.watch_params if w["namespace"] == namespace]) > watches_before,
          what="the backend to watch again")
    # The pod finishes while the backend is disconnected.
    kubelet.open_gate(release)
    name = manifests.names(job.task_id).executor
    until(lambda: live(api_server, "pods", namespace)[name]["status"]["phase"] == "Succeeded", what="the pod to end")
    time.sleep(0.2)
    assert backend.poll(job).phase is JobPhase.RUNNING  # the backend has not seen it yet
    api_server.call(emulator.release_watches)
    status = wait(backend, job)
    assert status.phase is JobPhase.SUCCEEDED
    resumed = [w for w in emulator.watch_params if w["namespace"] == namespace][watches_before]
    assert resumed["resourceVersion"] == last_seen
    assert resumed["labelSelector"] == LABEL_ROLE
    assert backend.cache.stats["lists"] == lists_before  # the transition came from the resumed watch
    assert backend.cache.stats["resumes"] >= 1
    backend.cleanup(job.task_id)


def test_expired_resource_version_lists_again(backend, api_server, kubelet, namespace):
    release = gate()
    job = job_of(ex(cmds.wait(release)))
    backend.start(job)
    until(lambda: executor_running(backend, job), what="the executor to run")
    emulator = api_server.emulator
    lists_before = backend.cache.stats["lists"]
    watches_before = len([w for w in emulator.watch_params if w["namespace"] == namespace])
    api_server.call(emulator.hold_watches)
    api_server.call(emulator.drop_watches)
    until(lambda: len([w for w in emulator.watch_params if w["namespace"] == namespace]) > watches_before,
          what="the backend to watch again")
    kubelet.open_gate(release)
    name = manifests.names(job.task_id).executor
    until(lambda: live(api_server, "pods", namespace)[name]["status"]["phase"] == "Succeeded", what="the pod to end")
    api_server.call(emulator.compact)  # the history the backend would resume from is gone
    api_server.call(emulator.release_watches)
    status = wait(backend, job)
    assert status.phase is JobPhase.SUCCEEDED
    assert backend.cache.stats["gone"] >= 1
    assert backend.cache.stats["lists"] == lists_before + 1
    backend.cleanup(job.task_id)


def test_periodic_resync_repairs_what_no_event_reported(backends, api_server, namespace):
    backend = backends(resync_seconds=1.0)
    job = job_of(ex(cmds.wait(gate())))
    backend.start(job)
    until(lambda: executor_running(backend, job), what="the executor to run")
    name = manifests.names(job.task_id).executor
    events_before = backend.cache.stats["events"]
    api_server.call(api_server.emulator.silently_patch, "pods", namespace, name, {"status": {
        "phase": "Failed",
        "initContainerStatuses": [
            {"name": "setup", "image": IMAGE, "ready": False, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "exec-0", "image": IMAGE, "ready": False, "restartCount": 0,
             "state": {"terminated": {"exitCode": 9, "reason": "Error", "message": '{"exit_code": 9}'}}},
        ]}})
    status = wait(backend, job, timeout=10)
    assert status.phase is JobPhase.FAILED
    assert [entry.exit_code for entry in status.executor_logs] == [9]
    assert backend.cache.stats["lists"] >= 2
    assert backend.cache.stats["events"] == events_before  # no event carried it: the re-list did
    backend.cleanup(job.task_id)


def test_the_watch_is_one_stream_per_namespace_with_the_role_selector(backend, api_server, namespace):
    jobs = [job_of(ex(cmds.exit(0))) for _ in range(3)]
    for job in jobs:
        backend.start(job)
    for job in jobs:
        assert wait(backend, job).phase is JobPhase.SUCCEEDED
    watches = [w for w in api_server.emulator.watch_params if w["namespace"] == namespace]
    assert len(watches) == 1 and watches[0]["labelSelector"] == LABEL_ROLE
    lists = [w for w in api_server.emulator.list_params
             if w["namespace"] == namespace and w.get("labelSelector") == LABEL_ROLE]
    assert len(lists) == 1  # polling three tasks to the end made no further pod LISTs
    for job in jobs:
        backend.cleanup(job.task_id)


# ---------------------------------------------------------------- composition and schemas


def test_factory_reads_settings_and_a_kubeconfig(api_server, kubelet, store, namespace, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "emu",
        "clusters": [{"name": "emu", "cluster": {"server": api_server.url}}],
        "users": [{"name": "worker", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "worker", "namespace": namespace}}],
    }))
    settings = SimpleNamespace(
        kubernetes_kubeconfig=kubeconfig, kubernetes_namespace=namespace, kubernetes_helper_image=IMAGE,
        kubernetes_stager_credentials_secret="stager-s3", kubernetes_service_account="tre-executor",
        executor_uid=12345, executor_gid=12345, object_store="s3", s3_bucket="tre-data",
        s3_endpoint_url="https://s3.tre.example", s3_region="eu-west-2", kubernetes_image_pull_grace_seconds=0,
    )
    backend = kubernetes_backend_from_settings(settings, store)
    try:
        store.put_bytes(Area.INPUTS, "p1/f.txt", b"via factory")
        job = job_of(ex(cmds.copy("/in/f.txt", "/out/f.txt")),
                     inputs=(StagedInput("/in/f.txt", FileType.FILE, source=Location(Area.INPUTS, "p1/f.txt")),),
                     outputs=(Output(path="/out/f.txt", url="mem://released/p1/f.txt"),))
        backend.start(job)
        status = wait(backend, job)
        assert status.phase is JobPhase.SUCCEEDED, status.reason
        pods = {o["metadata"]["name"]: o for o in created_in(api_server, namespace) if o["kind"] == "Pod"}
        executor = pods[manifests.names(job.task_id).executor]
        assert executor["spec"]["securityContext"]["runAsUser"] == 12345
        assert executor["spec"]["serviceAccountName"] == "tre-executor"
        stager_env = {e["name"]: e["value"] for e in
                      pods[manifests.names(job.task_id).stage_in]["spec"]["containers"][0]["env"]}
        assert stager_env["TRE_GATEWAY_S3_BUCKET"] == "tre-data"
        assert stager_env["TRE_GATEWAY_S3_ENDPOINT_URL"] == "https://s3.tre.example"
        assert "not-a-real-token" not in json.dumps(pods)
        backend.cleanup(job.task_id)
        validate(created_in(api_server, namespace))
    finally:
        backend.close()
    with pytest.raises(SettingsError, match="s3"):
        kubernetes_backend_from_settings(SimpleNamespace(**{**vars(settings), "object_store": "local"}), store)
    with pytest.raises(SettingsError, match="helper_image"):
        kubernetes_backend_from_settings(SimpleNamespace(**{**vars(settings), "kubernetes_helper_image": ""}), store)


def test_every_kind_of_object_validates_strictly_and_validation_bites(backend, api_server, store, namespace):
    store.put_bytes(Area.INPUTS, "p1/v/a.txt", b"a")
    job = job_of(
        ex(cmds.copy("/data/v/a.txt", "/out/a.txt"), env={"A": "1"}, workdir="/out", stdin="/data/v/a.txt",
           stdout="/scratch/log.txt", stderr="/scratch/err.txt", ignore_error=True),
        inputs=(StagedInput("/data/v", FileType.DIRECTORY, source=Location(Area.INPUTS, "p1/v")),
                StagedInput("/cfg/c.json", FileType.FILE, content="{}")),
        outputs=(Output(path="/out/a.txt", url="mem://released/p1/a.txt"),
                 Output(path="/out/*.csv", path_prefix="/out", url="mem://released/p1/csv")),
        volumes=("/scratch",),
        resources=Resources(cpu_cores=1, ram_gb=0.5, disk_gb=0.25, zones=("z",), backend_parameters={
            "gpu_count": "2", "node_selector": '{"pool": "gpu"}', "active_deadline_seconds": "3600"}),
    )
    backend.start(job)
    assert wait(backend, job).phase is JobPhase.SUCCEEDED
    created = created_in(api_server, namespace)
    assert {o["kind"] for o in created} == {"Pod", "PersistentVolumeClaim", "NetworkPolicy"}
    assert validate(created) == len(created) >= 5
    broken = copy.deepcopy(next(o for o in created if o["kind"] == "Pod"))
    broken["spec"]["securityContext"]["runAsNonRot"] = True
    with pytest.raises(Exception, match="runAsNonRot"):
        kubernetes_validate.validate(broken, "1.33", strict=True)
    backend.cleanup(job.task_id)


# ---------------------------------------------------------------- real execution under podman

PODMAN_CONF = str(Path(manifests.__file__).parent.parent / "containers.conf")


def _podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": PODMAN_CONF}
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {args[0]} failed: {proc.stderr[-2000:]}")
    return proc


@pytest.fixture(scope="module")
def podman_image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    if _podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.skip(f"{IMAGE} is missing (scripts/build-base-image.sh builds it)")
    return IMAGE


def for_podman(pod: dict[str, Any], claim_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The only changes podman 4.3 needs (docs/kubernetes-backend.md):

    - it ignores `subPath` on volumes, so each (claim, subPath) mount becomes a hostPath volume of exactly that
      directory of the claim (what the kubelet bind-mounts for a subPath) and the claim itself a hostPath;
    - it turns an emptyDir into a named volume called like the pod's volume, so emptyDirs get unique names.
    Returns the adapted pod and the named volumes to remove afterwards.
    """
    pod = copy.deepcopy(pod)
    spec = pod["spec"]
    suffix = uuid.uuid4().hex[:8]
    renamed = {v["name"]: f'{v["name"]}-{suffix}' for v in spec["volumes"] if "emptyDir" in v}
    claim_volumes = {v["name"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    volumes = [{**v, "name": renamed[v["name"]]} for v in spec["volumes"] if v["name"] in renamed]
    count = 0
    for container in spec.get("initContainers", []) + spec["containers"]:
        for mount in container.get("volumeMounts", []):
            if mount["name"] in renamed:
                mount["name"] = renamed[mount["name"]]
            elif mount["name"] in claim_volumes:
                count += 1
                source = claim_dir / mount.pop("subPath", "")
                volumes.append({"name": f"claim-{count}", "hostPath": {"path": str(source), "type": "Directory"}})
                mount["name"] = f"claim-{count}"
    spec["volumes"] = volumes
    return pod, list(renamed.values())


def play(pod: dict[str, Any], directory: Path, claim_dir: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """`podman kube play` the pod, wait for it, and return play's result and `podman ps -a` of its containers."""
    import yaml

    adapted, named_volumes = for_podman(pod, claim_dir)
    path = directory / f'{pod["metadata"]["name"]}.yaml'
    path.write_text(yaml.safe_dump(adapted, sort_keys=False))
    name = pod["metadata"]["name"]
    try:
        played = _podman("kube", "play", str(path), check=False)
        if played.returncode == 0:
            _podman("wait", f"{name}-done", timeout=60)
        listing = _podman("ps", "-a", "--filter", f"pod={name}", "--format", "{{.Names}} {{.Status}}").stdout
        return played, listing
    finally:
        _podman("kube", "down", str(path), check=False)
        if named_volumes:
            _podman("volume", "rm", "-f", *named_volumes, check=False)


def run_stager_container(pod: dict[str, Any], claim_dir: Path, secrets_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run a stager pod's container command on this host (the gateway image is not available here): same
    command, arguments and environment; the claim and the credentials Secret mapped to local directories."""
    (container,) = pod["spec"]["containers"]
    command = [sys.executable if part == "python" else part for part in container["command"]]
    args = [str(claim_dir) if a == VOLUME_DIR else a for a in container["args"]]
    env = {e["name"]: e["value"].replace(CREDENTIALS_DIR, str(secrets_dir)) for e in container["env"]}
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[4])
    env["HOME"] = str(claim_dir.parent)
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=60)


def kubelet_reports(api: client.CoreV1Api, pod: dict[str, Any], codes: dict[str, int]) -> None:
    """Report what podman observed, as the kubelet would."""
    spec = pod["spec"]

    def entry(c: dict[str, Any]) -> dict[str, Any]:
        return {"name": c["name"], "image": c["image"], "ready": False, "restartCount": 0, "state": {"terminated": {
            "exitCode": codes.get(c["name"], 0), "reason": "Completed",
            "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"}}}

    status = {"phase": "Succeeded" if not any(codes.values()) else "Failed",
              "initContainerStatuses": [entry(c) for c in spec.get("initContainers", [])],
              "containerStatuses": [entry(c) for c in spec["containers"]]}
    api.patch_namespaced_pod_status(pod["metadata"]["name"], pod["metadata"]["namespace"], {"status": status},
                                    _preload_content=False)


@pytest.mark.podman
def test_generated_pods_really_run_two_executors_with_staging_through_s3(api_server, podman_image, tmp_path):
    from gateway.adapters.storage.s3 import s3_store_from_settings
    from tests.integration.adapters.compute.k8s_support.s3 import moto_s3

    namespace = "podman-" + uuid.uuid4().hex[:8]  # the fake kubelet ignores it: podman is the node here
    with moto_s3(tmp_path) as s3:
        store = s3_store_from_settings(SimpleNamespace(
            s3_bucket="tre-k8s", s3_endpoint_url=s3.url, s3_region="us-east-1", s3_create_bucket=True,
            s3_access_key_id_file=s3.key_file, s3_secret_access_key_file=s3.secret_file))
        store.put_bytes(Area.INPUTS, "p1/greeting.txt", b"hello kubernetes\n")
        settings = PodSettings(namespace=namespace, helper_image=podman_image, stager_env=s3.settings("tre-k8s"),
                               stager_credentials_secret="tre-stager-s3", uid=10001, gid=10001)
        backend = KubernetesBackend(store, api_client(api_server), settings, image_pull_grace_seconds=0)
        api = client.CoreV1Api(api_client(api_server))
        claim = tmp_path / "claim"  # what the PersistentVolumeClaim would provide
        claim.mkdir()
        try:
            job = job_of(
                ex(("tr", "a-z", "A-Z"), stdin="/in/greeting.txt", stdout="/scratch/upper.txt"),
                ex(("sh", "-c", 'cat /scratch/upper.txt; echo "$GREETING from $(pwd) as $(id -u)"; '
                                "touch /root-is-writable 2>/dev/null || echo read-only root"),
                   stdout="/out/result.txt", env={"GREETING": "hi"}, workdir="/out"),
                inputs=(StagedInput("/in/greeting.txt", FileType.FILE,
                                    source=Location(Area.INPUTS, "p1/greeting.txt")),),
                outputs=(Output(path="/out/result.txt", url=store.url_for(Area.RELEASED, "p1/result.txt")),),
                volumes=("/scratch",),
            )
            backend.start(job)
            names = manifests.names(job.task_id)
            pods = lambda: {o["metadata"]["name"]: o for o in created_in(api_server, namespace)  # noqa: E731
                            if o["kind"] == "Pod"}
            stage_in = pods()[names.stage_in]
            staged = run_stager_container(stage_in, claim, s3.key_file.parent)
            assert staged.returncode == 0, staged.stderr
            assert "kube-test-secret" not in staged.stdout + staged.stderr
            kubelet_reports(api, stage_in, {})
            until(lambda: backend.poll(job) and names.executor in pods(), what="the executor pod")

            executor = pods()[names.executor]
            validate([executor])
            played, listing = play(executor, tmp_path, claim)
            assert played.returncode == 0, played.stderr[-2000:]
            assert f"{names.executor}-done Exited (0)" in listing
            kubelet_reports(api, executor, {})

            until(lambda: backend.poll(job) and names.stage_out in pods(), what="the stage-out pod")
            stage_out = pods()[names.stage_out]
            collected = run_stager_container(stage_out, claim, s3.key_file.parent)
            assert collected.returncode == 0, collected.stderr
            kubelet_reports(api, stage_out, {})
            status = until(lambda: (s := backend.poll(job)).phase is JobPhase.SUCCEEDED and s, what="success")
            (output,) = status.outputs
            assert output.destination == store.url_for(Area.RELEASED, "p1/result.txt")
            assert store.open(Area.QUARANTINE, output.stored.key).read() == \
                b"HELLO KUBERNETES\nhi from /out as 10001\nread-only root\n"
            backend.cleanup(job.task_id)
            assert list(store.list(Area.WORK, work_prefix(job.task_id))) == []
            validate(created_in(api_server, namespace))
        finally:
            backend.close()


@pytest.mark.podman
def test_under_podman_ignore_error_continues_and_a_failure_stops_the_pod(podman_image, tmp_path):
    job = job_of(
        ex(("sh", "-c", "echo before > /scratch/0.txt; exit 4"), ignore_error=True),
        ex(("sh", "-c", "cat /scratch/0.txt > /scratch/1.txt; exit 3")),
        ex(("sh", "-c", "echo never > /scratch/2.txt")),
        volumes=("/scratch",),
    )
    settings = PodSettings(namespace="podman", helper_image=podman_image)
    pod = manifests.executor_pod(job, settings, manifests.task_options(None, settings))
    validate([pod])
    claim = tmp_path / "claim"
    (claim / "ws" / "root" / "scratch").mkdir(parents=True)
    os.chown(claim / "ws" / "root" / "scratch", 10001, 10001)
    pod["spec"]["volumes"] = [v if v["name"] != "work" else {"name": "work", "persistentVolumeClaim": {
        "claimName": "unused"}} for v in pod["spec"]["volumes"]]
    played, listing = play(pod, tmp_path, claim)
    name = pod["metadata"]["name"]
    assert played.returncode != 0 and "exited with code 3" in played.stderr
    assert f"{name}-exec-1 Exited (3)" in listing  # the wrapper passes the executor's own code through
    assert f"{name}-exec-2 Created" in listing and f"{name}-done Created" in listing  # never started
    assert (claim / "ws/root/scratch/1.txt").read_text() == "before\n"  # exec-0 failed, was ignored, exec-1 ran
    assert not (claim / "ws/root/scratch/2.txt").exists()


# ---------------------------------------------------------------- pure pieces: names, parameters, status rules


def test_label_values_and_names_are_always_valid():
    assert manifests.label_value("p1") == "p1"
    long = manifests.label_value("a project name with spaces / and a very long tail " * 3)
    assert len(long) <= 63 and long[0].isalnum() and long[-1].isalnum()
    with pytest.raises(InvalidRequest):
        manifests.names("Not_A_DNS_Label")


def test_node_selector_parameter_rules():
    settings = PodSettings(namespace="n", helper_image=IMAGE, node_selector={"tre.example/zone": "secure"})
    opts = manifests.task_options(Resources(backend_parameters={"node_selector": '{"pool": "gpu"}'}), settings)
    assert opts.node_selector == {"pool": "gpu"}
    with pytest.raises(InvalidRequest, match="set by the TRE"):
        manifests.task_options(Resources(backend_parameters={"node_selector": "tre.example/zone=open"}), settings)
    with pytest.raises(InvalidRequest, match="not a valid node label"):
        manifests.task_options(Resources(backend_parameters={"node_selector": "bad key=x"}), settings)
    with pytest.raises(InvalidRequest, match="between"):
        manifests.task_options(Resources(backend_parameters={"active_deadline_seconds": "0"}), settings)


def test_status_rules_for_unschedulable_pods_and_recorded_exit_codes():
    from gateway.adapters.compute.k8s import status as rules

    now = datetime.now(UTC)
    pending = {"metadata": {"creationTimestamp": (now - timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%SZ")},
               "status": {"phase": "Pending", "conditions": [{
                   "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                   "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
                   "lastTransitionTime": (now - timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%SZ")}]}}
    waiting = rules.executor_outcome(pending, [False], now=now, grace_seconds=60, unschedulable_seconds=0)
    assert waiting.phase is JobPhase.PENDING  # by default a cluster may still scale up
    late = rules.executor_outcome(pending, [False], now=now, grace_seconds=60, unschedulable_seconds=60)
    assert late.phase is JobPhase.SYSTEM_ERROR and "Insufficient nvidia.com/gpu" in late.reason
    ignored = {"state": {"terminated": {"exitCode": 0, "message": '{"exit_code": 5}'}}}
    killed = {"state": {"terminated": {"exitCode": 137, "message": '{"exit_code": 0}'}}}
    assert rules.recorded_exit_code(ignored) == 5  # the helper's record, for ignore_error
    assert rules.recorded_exit_code(killed) == 137  # a non-zero container code always wins


def test_stage_out_never_follows_a_symlink_out_of_the_volume(tmp_path):
    from gateway.adapters.compute.k8s import stager

    store = FakeObjectStore()
    job = job_of(ex(cmds.exit(0)), outputs=(Output(path="/out/leak.txt", url="mem://released/p1/leak.txt"),))
    stager.write_plan(store, job, os.getuid(), os.getgid())
    assert stager.stage_in(store, job.task_id, tmp_path).exit_code == 0
    secret = tmp_path / "host-secret.txt"
    secret.write_text("not the task's")
    (tmp_path / "ws" / "root" / "out" / "leak.txt").symlink_to(secret)
    result = stager.stage_out(store, job.task_id, tmp_path)
    assert result.exit_code == 1 and json.loads(result.message)["reason"] == "output_missing"
    assert list(store.list(Area.QUARANTINE, job.task_id + "/")) == []
    outputs, error = stager.read_collected(store, job.task_id)
    assert outputs == () and json.loads(error)["reason"] == "output_missing"


# ---------------------------------------------------------------- a real cluster, when one is configured


@pytest.mark.skipif(not (os.environ.get("KUBECONFIG") and os.environ.get("TRE_GATEWAY_TEST_K8S_IMAGE")),
                    reason="needs a real cluster: set KUBECONFIG and TRE_GATEWAY_TEST_K8S_IMAGE (an image with sh)")
def test_on_a_real_cluster_executors_run_in_order_with_their_exit_codes_and_logs():
    image = os.environ["TRE_GATEWAY_TEST_K8S_IMAGE"]
    settings = SimpleNamespace(
        kubernetes_kubeconfig=os.environ["KUBECONFIG"].split(os.pathsep)[0],
        kubernetes_namespace=os.environ.get("TRE_GATEWAY_TEST_K8S_NAMESPACE", "default"),
        # an image whose /bin/busybox is static, e.g. the gateway image or docker.io/library/busybox
        kubernetes_helper_image=os.environ.get("TRE_GATEWAY_TEST_K8S_HELPER_IMAGE", image),
        object_store="s3", s3_bucket="unused-without-inputs-or-outputs",
    )
    backend = kubernetes_backend_from_settings(settings, FakeObjectStore())
    job = job_of(ex(("sh", "-c", "echo one; exit 3"), image=image, ignore_error=True),
                 ex(("sh", "-c", "echo two"), image=image))
    try:
        backend.start(job)
        status = wait(backend, job, timeout=300)
        assert status.phase is JobPhase.SUCCEEDED, status.reason
        assert [(entry.exit_code, entry.stdout) for entry in status.executor_logs] == [(3, "one\n"), (0, "two\n")]
    finally:
        backend.cleanup(job.task_id)
        backend.close()
