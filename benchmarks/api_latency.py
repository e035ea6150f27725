"""Benchmark 1: API latency of the gateway against a bare connexion app serving the same specification.

Both run under uvicorn on 127.0.0.1 in their own process. The gateway is the real `tre-gateway serve`
(`create_app` with SQLite in a temporary data directory, dev-mode bearer authentication, no
dispatcher); the bare app (benchmarks.bare_app) returns the gateway's own response documents as
constants. One keep-alive client sends a fixed number of sequential requests after a warm-up, in
alternating blocks so that drift of the machine affects both sides alike; then a small concurrent run.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import PROJECT, Sample, dev_token, free_ports, gateway_env, log, serve

TES = "/ga4gh/tes/v1"


def task_body(i: int, released_prefix: str) -> dict[str, Any]:
    """A realistic one-executor task with an inline input, one output and a few tags."""
    return {
        "name": f"bench-task-{i}",
        "description": "benchmark task: copies its input to its output",
        "inputs": [{"path": "/data/in.txt", "content": "hello\n", "name": "greeting"}],
        "outputs": [{"path": "/data/out.txt", "url": f"{released_prefix}{PROJECT}/out-{i}.txt"}],
        "executors": [
            {
                "image": "alpine",
                "command": ["sh", "-c", "cat /data/in.txt > /data/out.txt"],
                "env": {"GREETING": "hello"},
            }
        ],
        "resources": {"cpu_cores": 1, "ram_gb": 0.5},
        "tags": {"project": PROJECT, "batch": str(i % 10)},
    }


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.method} {response.request.url} -> {response.status_code}: "
                           f"{response.text[:300]}")
    return response


def _sequential(call: Callable[[], httpx.Response], count: int) -> Sample:
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        _checked(call())
        latencies.append(time.perf_counter() - t0)
    return Sample(latencies, time.perf_counter() - started)


def _concurrent(base_url: str, headers: dict[str, str], path: str, clients: int, each: int) -> Sample:
    """`clients` threads, each with its own keep-alive connection, `each` requests per thread."""
    results: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def worker(index: int) -> None:
        try:
            with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
                _checked(client.get(path))
                barrier.wait()
                for _ in range(each):
                    t0 = time.perf_counter()
                    _checked(client.get(path))
                    results[index].append(time.perf_counter() - t0)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"concurrent run failed: {errors[0]!r}")
    return Sample([x for r in results for x in r], wall)


def run(quick: bool = False) -> dict[str, Any]:
    warmup = 50 if quick else 200
    rounds, block = (2, 100) if quick else (5, 300)
    create_rounds, create_block = (2, 30) if quick else (3, 100)
    clients, each = 4, (50 if quick else 150)
    with tempfile.TemporaryDirectory(prefix="tre-bench-api-") as tmp:
        root = Path(tmp)
        data_dir = root / "gateway-data"
        data_dir.mkdir()
        token = dev_token(data_dir)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        gw_port, bare_port, novalid_port = free_ports(3)
        gw_args = ["-m", "gateway.cli", "serve", "--no-dispatcher", "--port", str(gw_port)]
        log("API latency: starting the gateway")
        with serve(gw_args, env=gateway_env(data_dir), port=gw_port, ready_path="/healthz",
                   log_file=root / "gateway.log") as gw, \
                httpx.Client(base_url=gw.base_url, headers=headers, timeout=60) as gwc:
            released = _checked(gwc.get(f"{TES}/service-info")).json()["storage"][1]
            ids = [_checked(gwc.post(f"{TES}/tasks", json=task_body(i, released))).json()["id"] for i in range(60)]
            get_path = f"{TES}/tasks/{ids[len(ids) // 2]}?view=BASIC"
            list_path = f"{TES}/tasks?view=BASIC&page_size=50"
            documents = {
                "GetTask": _checked(gwc.get(get_path)).json(),
                "ListTasks": _checked(gwc.get(list_path)).json(),
                "CreateTask": {"id": ids[0]},
            }
            assert len(documents["ListTasks"]["tasks"]) == 50
            doc_file = root / "documents.json"
            doc_file.write_text(json.dumps(documents))
            bare_args = ["-m", "benchmarks.bare_app", "--port", str(bare_port), "--documents", str(doc_file)]
            novalid_args = ["-m", "benchmarks.bare_app", "--port", str(novalid_port), "--documents", str(doc_file),
                            "--no-response-validation"]
            log("API latency: starting the bare connexion app (and a copy without response validation)")
            with serve(bare_args, env=gateway_env(data_dir), port=bare_port, ready_path=f"{TES}/service-info",
                       log_file=root / "bare.log") as bare, \
                    serve(novalid_args, env=gateway_env(data_dir), port=novalid_port,
                          ready_path=f"{TES}/service-info", log_file=root / "bare-novalid.log") as novalid, \
                    httpx.Client(base_url=bare.base_url, headers=headers, timeout=60) as barec, \
                    httpx.Client(base_url=novalid.base_url, headers=headers, timeout=60) as novalidc:
                sides = {"gateway": gwc, "bare": barec}
                reference = {**sides, "bare_novalid": novalidc}
                sizes = {
                    op: {name: len(_checked(c.get(path)).content) for name, c in reference.items()}
                    for op, path in (("GetTask", get_path), ("ListTasks", list_path))
                }
                sequential: dict[str, dict[str, Sample]] = {}
                for op, path in (("GetTask", get_path), ("ListTasks", list_path)):
                    log(f"API latency: {op} sequential, {rounds} x {block} per side after {warmup} warm-up")
                    for c in reference.values():
                        _sequential(lambda c=c, path=path: c.get(path), warmup)
                    blocks: dict[str, list[Sample]] = {name: [] for name in reference}
                    for _ in range(rounds):
                        for name, c in reference.items():
                            blocks[name].append(_sequential(lambda c=c, path=path: c.get(path), block))
                    sequential[op] = {name: Sample.merge(b) for name, b in blocks.items()}
                concurrent: dict[str, dict[str, Sample]] = {}
                for op, path in (("GetTask", get_path), ("ListTasks", list_path)):
                    log(f"API latency: {op} concurrent, {clients} clients x {each}")
                    concurrent[op] = {
                        name: _concurrent(str(c.base_url), headers, path, clients, each) for name, c in sides.items()
                    }
                log(f"API latency: CreateTask sequential, {create_rounds} x {create_block} per side")
                counter = iter(range(1000, 100000))
                blocks = {name: [] for name in sides}
                for c in sides.values():
                    _sequential(lambda c=c: c.post(f"{TES}/tasks", json=task_body(next(counter), released)), 20)
                for _ in range(create_rounds):
                    for name, c in sides.items():
                        blocks[name].append(_sequential(
                            lambda c=c: c.post(f"{TES}/tasks", json=task_body(next(counter), released)),
                            create_block,
                        ))
                sequential["CreateTask"] = {name: Sample.merge(b) for name, b in blocks.items()}
    return {
        "sequential": sequential,
        "concurrent": concurrent,
        "sizes": sizes,
        "settings": {"warmup": warmup, "rounds": rounds, "block": block, "clients": clients, "each": each,
                     "create_rounds": create_rounds, "create_block": create_block},
    }
