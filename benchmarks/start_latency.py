"""Benchmark 2: create -> executor start through the real gateway and podman, against plain `podman run`.

Start times are the container runtime's own: podman's `StartedAt` of the executor's container, which
the gateway reports as `logs[0].logs[0].start_time` (millisecond precision) in the FULL view. The
clock is the same host clock on both sides, so "start - moment the client sent the request" needs
no clock synchronisation.

Three series (plain and gateway interleaved sample by sample):
  * plain      `podman run --network=none IMAGE true`  (StartedAt - moment `podman` was invoked), and
               the wall time of `podman run --rm ...`, as the brief's baseline;
  * backend    PodmanBackend.start() called directly (workspace staging, the sandbox flags, no API,
               no database, no dispatcher): separates the sandbox's cost from the gateway's;
  * gateway    POST /tasks to `tre-gateway serve` with its in-process dispatcher.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import PROJECT, dev_token, free_port, gateway_env, log, serve

IMAGE = "localhost/tre-base:latest"
TES = "/ga4gh/tes/v1"
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED", "PAUSED"}


def _podman_env() -> dict[str, str]:
    from gateway.config import Settings

    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(Settings().resolved_containers_conf)
    return env


def _epoch(text: str) -> float:
    """RFC 3339 / podman time (nanoseconds allowed) -> seconds since the epoch."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    return datetime.fromisoformat(text).timestamp()


@contextmanager
def private_storage(root: Path) -> Iterator[None]:
    """Run podman (ours, the in-process backend's, the gateway's) on a storage of its own.

    Every gateway removes containers labelled as tasks that its own database does not know (orphan
    reconciliation), so a gateway or test-suite running on the same host at the same time would remove
    ours, and ours theirs. A private graph root, holding a copy of the base image, keeps both apart.
    """
    conf = root / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "graph"}"\nrunroot = "{root / "run"}"\n')
    env = _podman_env()
    archive = root / "image.tar"
    subprocess.run(["podman", "save", "--quiet", "-o", str(archive), IMAGE], check=True, env=env, capture_output=True)
    previous = os.environ.get("CONTAINERS_STORAGE_CONF")
    os.environ["CONTAINERS_STORAGE_CONF"] = str(conf)
    try:
        env = _podman_env()
        graph = subprocess.run(["podman", "info", "--format", "{{.Store.GraphRoot}}"], check=True, env=env,
                               capture_output=True, text=True).stdout.strip()
        if Path(graph) != root / "graph":
            raise RuntimeError(f"podman ignored the private storage configuration (graph root {graph})")
        subprocess.run(["podman", "load", "--quiet", "-i", str(archive)], check=True, env=env, capture_output=True)
        yield
        subprocess.run(["podman", "rmi", "--force", IMAGE], env=env, capture_output=True)
    finally:
        if previous is None:
            os.environ.pop("CONTAINERS_STORAGE_CONF", None)
        else:
            os.environ["CONTAINERS_STORAGE_CONF"] = previous


def podman_version() -> str:
    proc = subprocess.run(["podman", "--version"], capture_output=True, text=True, env=_podman_env())
    return proc.stdout.strip() or "podman not found"


def plain_sample(env: dict[str, str], index: int) -> dict[str, float]:
    """One plain container: start latency (StartedAt - invocation) and `podman run --rm` wall time."""
    name = f"tre-bench-plain-{os.getpid()}-{index}"
    t0 = time.time()
    subprocess.run(["podman", "run", "--name", name, "--network=none", IMAGE, "true"],
                   check=True, env=env, capture_output=True)
    state = json.loads(subprocess.run(["podman", "inspect", name], check=True, env=env,
                                      capture_output=True, text=True).stdout)[0]["State"]
    subprocess.run(["podman", "rm", "--force", name], env=env, capture_output=True)
    w0 = time.perf_counter()
    subprocess.run(["podman", "run", "--rm", "--network=none", IMAGE, "true"], check=True, env=env,
                   capture_output=True)
    return {"start": _epoch(state["StartedAt"]) - t0, "rm_wall": time.perf_counter() - w0}


def backend_sample(backend: Any, index: int) -> float:
    """PodmanBackend.start() for a one-executor job, measured to the container's StartedAt."""
    from gateway.domain.task import Executor
    from gateway.services.ports import Job, JobPhase

    job = Job(
        task_id=f"benchbackend{os.getpid():x}{index:04d}",
        project=PROJECT,
        executors=(Executor(image=IMAGE, command=("true",)),),
    )
    t0 = time.time()
    backend.start(job)
    deadline = time.monotonic() + 60
    try:
        while True:
            status = backend.poll(job)
            if status.phase not in (JobPhase.PENDING, JobPhase.RUNNING):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("backend job did not finish in 60 s")
            time.sleep(0.02)
        if status.phase is not JobPhase.SUCCEEDED or not status.executor_logs[0].start_time:
            raise RuntimeError(f"backend job ended {status.phase}: {status.reason}")
        return _epoch(status.executor_logs[0].start_time) - t0
    finally:
        backend.cleanup(job.task_id)


def gateway_sample(client: httpx.Client) -> dict[str, float]:
    """Submit a task running `true`; wait for it to finish; read its executor's start time."""
    body = {
        "name": "start-latency",
        "executors": [{"image": "alpine", "command": ["true"]}],
        "tags": {"project": PROJECT},
    }
    t0 = time.time()
    response = client.post(f"{TES}/tasks", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"CreateTask -> {response.status_code}: {response.text[:300]}")
    task_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while True:
        time.sleep(0.05)
        state = client.get(f"{TES}/tasks/{task_id}").json()["state"]
        if state in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"task {task_id} still {state} after 120 s")
    doc = client.get(f"{TES}/tasks/{task_id}", params={"view": "FULL"}).json()
    if state != "COMPLETE":
        raise RuntimeError(f"task {task_id} ended {state}: {doc['logs'][0].get('system_logs')}")
    started = _epoch(doc["logs"][0]["logs"][0]["start_time"])
    created = _epoch(doc["creation_time"])
    return {"start": started - t0, "accepted": created - t0, "queue_to_start": started - created}


def run(quick: bool = False) -> dict[str, Any]:
    from gateway.adapters.compute.podman import PodmanBackend
    from gateway.adapters.storage.local import LocalObjectStore
    from gateway.config import Settings

    samples, warmup = (5, 1) if quick else (15, 2)
    plain: list[dict[str, float]] = []
    backend_starts: list[float] = []
    gateway: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="tre-bench-start-", ignore_cleanup_errors=True) as tmp, \
            private_storage(Path(tmp)):
        root = Path(tmp)
        env = _podman_env()
        data_dir = root / "gateway-data"
        data_dir.mkdir()
        backend = PodmanBackend(
            LocalObjectStore(root / "backend-store"),
            root / "backend-work",
            containers_conf=Settings().resolved_containers_conf,
        )
        # Directly, before the gateway runs: its orphan reconciler would remove these containers.
        log(f"start latency: PodmanBackend.start() directly, {warmup} warm-up + {samples} samples")
        for i in range(warmup + samples):
            b = backend_sample(backend, i)
            if i >= warmup:
                backend_starts.append(b)
        token = dev_token(data_dir)
        port = free_port()
        args = ["-m", "gateway.cli", "serve", "--port", str(port)]
        log("start latency: starting the gateway with its dispatcher")
        with serve(args, env=gateway_env(data_dir, egress_review="automatic"), port=port, ready_path="/healthz",
                   log_file=root / "gateway.log") as gw, \
                httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            log(f"start latency: {warmup} warm-up + {samples} samples of plain podman and the gateway, interleaved")
            for i in range(warmup + samples):
                p = plain_sample(env, i)
                g = gateway_sample(c)
                if i >= warmup:
                    plain.append(p)
                    gateway.append(g)
    return {
        "plain_start": [p["start"] for p in plain],
        "plain_rm_wall": [p["rm_wall"] for p in plain],
        "backend_start": backend_starts,
        "gateway_start": [g["start"] for g in gateway],
        "gateway_accepted": [g["accepted"] for g in gateway],
        "gateway_queue_to_start": [g["queue_to_start"] for g in gateway],
        "samples": samples,
    }
