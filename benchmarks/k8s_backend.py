"""Benchmark 6: the Kubernetes backend against the emulated API server (no real cluster can run here).

The emulated API is the test suite's (tests/integration/adapters/compute/k8s_support/emulator.py: kmock plus
resourceVersions, label selectors and watch-from-resourceVersion), served on 127.0.0.1 from a thread of this
process; the backend talks to it over HTTP through the official client, exactly as in the integration tests.

1. Launch rate. N tasks (one executor, no inputs or outputs: one pod each) go through `KubernetesBackend.start()`,
   sequentially, in alternating blocks with the baseline: the same official client posting the very same pod
   manifests (built beforehand) with `create_namespaced_pod`, reading the raw response and nothing else. The
   ratio of the two rates is the backend's overhead; the client thread's CPU time per call shows what the
   backend itself costs, apart from what the emulator costs.
2. Watch -> state latency. With the N launched tasks tracked at once, a thread playing the kubelet patches
   every pod's status twice through `pods/status` (first executor running, then executor terminated and pod
   Succeeded), as fast as the API accepts. The emulator timestamps each write as it commits it (server side,
   the moment its resourceVersion is assigned); the watch cache timestamps the moment it applies the event with
   that resourceVersion; a sweeper thread calls `poll()` on every tracked task in turn (a 50 ms pause between
   sweeps, as a dispatcher polls on a schedule) and timestamps the first answer with the new phase.
3. Memory. 10,000 executor pods (the backend's own manifests, a kubelet-shaped running status, the emulator's
   metadata) are put straight into a fresh emulator's store (creating them over HTTP would take minutes here);
   then a separate worker process builds the backend on that namespace (its watch LISTs them all), polls every
   task once and reports its RSS growth over a warmed-up baseline, and in a second run tracemalloc's retained
   and peak sizes with the top allocation sites.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, Sample, log

IMAGE = "localhost/tre-base:latest"
BLOCK = 50  # tasks per alternating block in the launch series
SWEEP_PAUSE = 0.05  # seconds between poll sweeps (a dispatcher polls every 0.2-0.5 s)


# ---------------------------------------------------------------- emulator with commit timestamps


def _timed_server() -> Any:
    """The test suite's emulated API server, with a server-side timestamp for every pod status it commits."""
    import asyncio

    import attrs
    import kmock

    from tests.integration.adapters.compute.k8s_support.emulator import ApiEmulator, EmulatedApiServer

    @attrs.define(kw_only=True)
    class TimedEmulator(ApiEmulator):  # type: ignore[misc]
        commits: dict[int, tuple[str, str, float]] = attrs.field(factory=dict)

        def _record(self, resource: Any, event: dict[str, Any]) -> None:
            super()._record(resource, event)  # assigns the resourceVersion and fans the event out to watches
            obj = event.get("object")
            if isinstance(obj, dict) and (obj.get("status") or {}).get("phase"):
                meta = obj.get("metadata") or {}
                self.commits[int(meta["resourceVersion"])] = (
                    str(meta.get("name")), str(obj["status"]["phase"]), time.perf_counter())

    class TimedServer(EmulatedApiServer):
        async def _main(self) -> None:  # as EmulatedApiServer._main, with the timed emulator
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            async with TimedEmulator() as emulator, kmock.Server(emulator) as server:
                self.emulator = emulator
                self.url = str(server.url).rstrip("/")
                if server.host not in ("127.0.0.1", "localhost"):
                    raise RuntimeError(f"the emulator must listen on loopback, not {server.host}")
                self._ready.set()
                await self._stopping.wait()
                emulator.release_watches()
                emulator.drop_watches()

    return TimedServer().start()


def _api_client(url: str) -> Any:
    from kubernetes import client

    return client.ApiClient(client.Configuration(host=url))


def _settings(namespace: str) -> Any:
    from gateway.adapters.compute.k8s.manifests import PodSettings

    return PodSettings(namespace=namespace, helper_image=IMAGE, uid=10001, gid=10001)


def _job(task_id: str) -> Any:
    from gateway.domain.task import Executor
    from gateway.services.ports import Job

    # stdout and stderr redirected to files: a finished executor's log is not read through pods/log.
    executor = Executor(image=IMAGE, command=("tre-fake", "exit", "0"), stdout="/out/stdout", stderr="/out/stderr")
    return Job(task_id=task_id, project="bench", executors=(executor,))


def _manifest(job: Any, settings: Any) -> dict[str, Any]:
    from gateway.adapters.compute.k8s.manifests import executor_pod, task_options

    return executor_pod(job, settings, task_options(job.resources, settings))


def _post(core: Any, namespace: str, manifest: dict[str, Any]) -> None:
    response = core.create_namespaced_pod(namespace, manifest, _preload_content=False)
    try:
        response.data  # noqa: B018 - read the body so the connection can be reused
    finally:
        response.release_conn()


# ---------------------------------------------------------------- 1. launch rate


def launch(server: Any, backend: Any, jobs: list[Any], namespace: str) -> dict[str, Any]:
    from kubernetes import client

    core = client.CoreV1Api(_api_client(server.url))
    raw_settings = _settings(namespace + "-raw")
    raw = [_manifest(_job(f"raw{i:06d}"), raw_settings) for i in range(len(jobs))]
    # Warm-up, untimed: the backend's NetworkPolicy and first connection, the client's first request.
    backend.start(_job("warmup0"))
    _post(core, raw_settings.namespace, _manifest(_job("warmup1"), raw_settings))
    series: dict[str, dict[str, list[float]]] = {
        side: {"latency": [], "cpu": [], "wall": []} for side in ("backend", "raw")}

    def timed(side: str, calls: list[Callable[[], None]]) -> None:
        wall = time.perf_counter()
        for call in calls:
            t0, c0 = time.perf_counter(), time.thread_time()
            call()
            series[side]["cpu"].append(time.thread_time() - c0)
            series[side]["latency"].append(time.perf_counter() - t0)
        series[side]["wall"].append(time.perf_counter() - wall)

    for first in range(0, len(jobs), BLOCK):
        block = range(first, min(first + BLOCK, len(jobs)))
        timed("raw", [lambda m=raw[i]: _post(core, raw_settings.namespace, m) for i in block])
        timed("backend", [lambda j=jobs[i]: backend.start(j) for i in block])
    out = {}
    for side, d in series.items():
        out[side] = {"sample": Sample(d["latency"], sum(d["wall"])), "cpu": statistics.mean(d["cpu"])}
    return out


# ---------------------------------------------------------------- 2. watch -> state latency


def _status(stage: str) -> dict[str, Any]:
    """Pod status as a kubelet reports it: executor 0 running (pod still Pending: init containers), or done."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    done = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now,
                           "containerID": "containerd://" + "f" * 64}}
    running = stage == "running"

    def entry(name: str, state: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "image": IMAGE, "imageID": IMAGE + "@sha256:" + "e" * 64,
                "containerID": "containerd://" + "c" * 64, "ready": False, "started": "running" in state,
                "restartCount": 0, "state": state}

    def condition(kind: str, ok: bool) -> dict[str, Any]:
        return {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None, "lastTransitionTime": now}

    return {
        "phase": "Pending" if running else "Succeeded",
        "startTime": now, "hostIP": "10.0.0.12", "podIP": "10.244.1.17", "podIPs": [{"ip": "10.244.1.17"}],
        "qosClass": "Guaranteed",
        "conditions": [condition("PodReadyToStartContainers", True), condition("Initialized", not running),
                       condition("Ready", False), condition("ContainersReady", False),
                       condition("PodScheduled", True)],
        "initContainerStatuses": [entry("setup", done), entry("exec-0", {"running": {"startedAt": now}}
                                                                if running else done)],
        "containerStatuses": [entry("done", {"waiting": {"reason": "PodInitializing"}} if running else done)],
    }


class _Kubelet(threading.Thread):
    """Plays the node for the tracked pods: patches each pod's status, stage by stage, as fast as accepted."""

    def __init__(self, url: str, namespace: str, pods: list[str]) -> None:
        super().__init__(name="bench-kubelet", daemon=True)
        from kubernetes import client

        self.core = client.CoreV1Api(_api_client(url))
        self.namespace = namespace
        self.pods = pods
        self.wall: dict[str, float] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for stage in ("running", "succeeded"):
                body = {"status": _status(stage)}
                t0 = time.perf_counter()
                for name in self.pods:
                    response = self.core.patch_namespaced_pod_status(name, self.namespace, body,
                                                                     _preload_content=False)
                    response.data  # noqa: B018
                    response.release_conn()
                self.wall[stage] = time.perf_counter() - t0
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc


def watch_latency(server: Any, backend: Any, jobs: list[Any], namespace: str) -> dict[str, Any]:
    from gateway.adapters.compute.k8s.manifests import names
    from gateway.services.ports import JobPhase

    emulator = server.emulator
    cache = backend.cache
    applied: dict[int, float] = {}
    original = cache._apply_locked

    def apply_timed(kind: str, pod: dict[str, Any]) -> None:
        original(kind, pod)
        rv = (pod.get("metadata") or {}).get("resourceVersion")
        if rv and kind == "MODIFIED":
            applied.setdefault(int(rv), time.perf_counter())

    cache._apply_locked = apply_timed  # the watch thread applies every event through this
    pod_names = [names(j.task_id).executor for j in jobs]
    by_pod = dict(zip(pod_names, jobs, strict=True))
    wanted = {"Pending": JobPhase.RUNNING, "Succeeded": JobPhase.SUCCEEDED}
    seen: dict[tuple[str, JobPhase], float] = {}
    last = {j.task_id: backend.poll(j).phase for j in jobs}
    if set(last.values()) != {JobPhase.PENDING}:
        raise RuntimeError(f"launched tasks are not all PENDING: {set(last.values())}")
    start_rv = emulator.resource_version
    sweeps: list[float] = []
    kubelet = _Kubelet(server.url, namespace, pod_names)
    deadline = time.monotonic() + 300
    kubelet.start()
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        for job in jobs:
            phase = backend.poll(job).phase
            if phase is not last[job.task_id]:
                last[job.task_id] = phase
                seen.setdefault((job.task_id, phase), time.perf_counter())
        sweeps.append(time.perf_counter() - t0)
        if not kubelet.is_alive() and all(p is JobPhase.SUCCEEDED for p in last.values()):
            break
        time.sleep(SWEEP_PAUSE)
    kubelet.join(5)
    time.sleep(0.2)
    cache._apply_locked = original
    if kubelet.error is not None:
        raise RuntimeError("the kubelet thread failed") from kubelet.error
    commits = {rv: c for rv, c in list(emulator.commits.items()) if rv > start_rv}
    cache_lat = {"running": [], "succeeded": []}
    poll_lat: dict[str, list[float]] = {"running": [], "succeeded": []}
    missed = {"running": 0, "succeeded": 0}
    for rv, (name, pod_phase, committed) in commits.items():
        stage = "running" if pod_phase == "Pending" else "succeeded"
        if rv in applied:
            cache_lat[stage].append(applied[rv] - committed)
        job = by_pod.get(name)
        at = seen.get((job.task_id, wanted[pod_phase])) if job is not None else None
        if at is None:
            missed[stage] += 1
        else:
            poll_lat[stage].append(at - committed)
    return {
        "tasks": len(jobs),
        "patches": len(commits),
        "patch_rate": {s: len(jobs) / w for s, w in kubelet.wall.items()},
        "cache": cache_lat,
        "poll": poll_lat,
        "missed": missed,
        "sweep": {"n": len(sweeps), "median": statistics.median(sweeps), "max": max(sweeps)},
        "poll_us": statistics.median(sweeps) / len(jobs) * 1e6,
        "cache_stats": dict(cache.stats),
    }


# ---------------------------------------------------------------- 3. memory (worker in a subprocess)


def _seed(server: Any, namespace: str, count: int) -> int:
    """Put `count` running executor pods into the emulator's store directly (the backend's own manifests)."""
    import uuid

    from kubernetes import client

    settings = _settings(namespace)
    core_client = _api_client(server.url)
    status = _status("running")  # executor 0 running
    first = _manifest(_job("mem0000000"), settings)
    core = client.CoreV1Api(core_client)
    _post(core, namespace, first)  # over HTTP: gives the emulator's key for pods
    response = core.patch_namespaced_pod_status(first["metadata"]["name"], namespace, {"status": status},
                                                _preload_content=False)
    response.data  # noqa: B018
    response.release_conn()
    emulator = server.emulator
    resource = next(key[0] for key in emulator._objects.keys() if key[2] == first["metadata"]["name"])
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    pods = []
    for i in range(1, count):
        pod = _manifest(_job(f"mem{i:07d}"), settings)
        pod["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=created)
        pod["status"] = copy.deepcopy(status)
        pods.append(pod)

    def insert(chunk: list[dict[str, Any]]) -> None:
        for pod in chunk:
            pod["metadata"]["resourceVersion"] = str(emulator._next_rv())
            emulator._objects[(resource, namespace, pod["metadata"]["name"])] = pod

    for at in range(0, len(pods), 1000):
        server.call(insert, pods[at:at + 1000], timeout=60)
    return len(json.dumps(pods[0]).encode())


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def memory_worker(url: str, namespace: str, count: int, trace: bool) -> dict[str, Any]:
    """Runs in its own process: the backend with `count` tracked tasks, nothing else."""
    from gateway.adapters.compute.kubernetes import KubernetesBackend
    from gateway.services.ports import JobPhase
    from tests.fakes import FakeObjectStore

    jobs = [_job(f"mem{i:07d}") for i in range(count)]  # the dispatcher holds these anyway: not counted
    store = FakeObjectStore()
    warm = KubernetesBackend(store, _api_client(url), _settings(namespace + "-empty"))  # imports, threads, pools
    if not warm.cache.wait_synced(30):
        raise RuntimeError("warm-up backend did not sync")
    warm.poll(jobs[0])
    warm.close()
    del warm
    gc.collect()
    rss0 = _rss()
    if trace:
        tracemalloc.start(1)
    t0 = time.perf_counter()
    backend = KubernetesBackend(store, _api_client(url), _settings(namespace))
    if not backend.cache.wait_synced(120):
        raise RuntimeError("backend did not sync")
    sync_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    phases = {backend.poll(j).phase for j in jobs}
    poll_seconds = time.perf_counter() - t0
    if phases != {JobPhase.RUNNING}:
        raise RuntimeError(f"unexpected phases: {phases}")
    gc.collect()
    out: dict[str, Any] = {"count": count, "cached": len(backend.cache.all_pods()), "sync_seconds": sync_seconds,
                           "poll_seconds": poll_seconds, "rss_before": rss0, "listed": {"rss": _rss()}}
    if trace:
        out["listed"]["traced"], out["listed"]["peak"] = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
    # Steady state: in a running worker each pod's latest copy came from its own watch event (or the create
    # response), decoded on its own, so it shares no dict keys with the other pods as a LIST's items do.
    # Feed every pod through the cache's event handler once, as the watch stream would deliver it.
    t0 = time.perf_counter()
    pods = backend.cache.all_pods()
    while pods:  # one at a time: each replaced copy is freed at once, as in a running worker
        backend.cache._handle_line(json.dumps({"type": "MODIFIED", "object": pods.pop()}))
    del pods
    event_seconds = time.perf_counter() - t0
    if {backend.poll(j).phase for j in jobs} != {JobPhase.RUNNING}:
        raise RuntimeError("the re-fed pods changed phase")
    gc.collect()
    out.update(event_seconds=event_seconds, watched={"rss": _rss()})
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        top = tracemalloc.take_snapshot().statistics("lineno")[:5]
        out["watched"].update(traced=current, peak=peak)
        out["top"] = [(_site(s.traceback[0]), s.size) for s in top]
        # The fix to propose, sized: keep only the fields poll() reads, each pod decoded alone.
        slim = [json.loads(json.dumps(_slim(p))) for p in backend.cache.all_pods()]
        gc.collect()
        out["slim_bytes"] = tracemalloc.get_traced_memory()[0] - current
        del slim
        tracemalloc.stop()
    backend.close()
    return out


def _site(frame: Any) -> str:
    path = Path(frame.filename)
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) and ".venv" not in path.parts else \
        Path(*path.parts[-2:])
    return f"{shown}:{frame.lineno}"


def _slim(pod: dict[str, Any]) -> dict[str, Any]:
    """What k8s/status.py and the cache read of a pod: a few metadata fields, phase, conditions, container states."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    slim: dict[str, Any] = {
        "metadata": {k: meta[k] for k in ("name", "uid", "labels", "creationTimestamp", "deletionTimestamp")
                     if k in meta},
        "status": {k: status[k] for k in ("phase", "reason", "message") if k in status},
    }
    slim["status"]["conditions"] = [
        {k: c[k] for k in ("type", "status", "reason", "message", "lastTransitionTime") if k in c}
        for c in status.get("conditions") or []]
    for key in ("initContainerStatuses", "containerStatuses"):
        slim["status"][key] = [{k: e[k] for k in ("name", "image", "state") if k in e} for e in status.get(key) or []]
    return slim


def memory(count: int) -> dict[str, Any]:
    server = _timed_server()
    try:
        namespace = "bench-mem"
        t0 = time.perf_counter()
        pod_bytes = _seed(server, namespace, count)
        log(f"k8s: {count:,} pods in the emulator ({time.perf_counter() - t0:.1f} s); worker process: RSS, "
            "then tracemalloc")
        runs = {}
        for mode in ("rss", "trace"):
            cmd = [sys.executable, "-m", "benchmarks.k8s_backend", "memory-worker", "--url", server.url,
                   "--namespace", namespace, "--count", str(count)] + (["--trace"] if mode == "trace" else [])
            done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"memory worker failed:\n{done.stderr[-3000:]}")
            runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        return {"count": count, "pod_json_bytes": pod_bytes, **runs}
    finally:
        server.stop()


# ---------------------------------------------------------------- run


def run(quick: bool = False) -> dict[str, Any]:
    from gateway.adapters.compute.kubernetes import KubernetesBackend
    from tests.fakes import FakeObjectStore

    count = 100 if quick else 1000
    mem_count = 1000 if quick else 10_000
    namespace = "bench-k8s"
    server = _timed_server()
    backend = KubernetesBackend(FakeObjectStore(), _api_client(server.url), _settings(namespace),
                                image_pull_grace_seconds=0)
    try:
        if not backend.cache.wait_synced(30):
            raise RuntimeError("the backend's pod watch did not sync")
        jobs = [_job(f"t{i:06d}") for i in range(count)]
        log(f"k8s: launching {count} tasks through KubernetesBackend.start(), alternating with raw creates")
        launched = launch(server, backend, jobs, namespace)
        log(f"k8s: backend {launched['backend']['sample'].rps:.0f} tasks/s, raw {launched['raw']['sample'].rps:.0f}"
            " pods/s; now the kubelet thread patches every pod's status twice")
        watched = watch_latency(server, backend, jobs, namespace)
        log(f"k8s: poll-visible p95 {max(_p95(v) for v in watched['poll'].values()) * 1e3:.0f} ms")
    finally:
        backend.close()
        server.stop()
    mem = memory(mem_count)
    return {"count": count, "launch": launched, "watch": watched, "memory": mem}


def _p95(values: list[float]) -> float:
    from benchmarks.common import percentile

    return percentile(values, 95) if values else float("nan")


def _worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["memory-worker"])
    p.add_argument("--url", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--trace", action="store_true")
    args = p.parse_args(argv)
    if not args.url.startswith(("http://127.0.0.1:", "http://localhost:")):
        p.error("loopback only")
    print(json.dumps(memory_worker(args.url, args.namespace, args.count, args.trace)))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
