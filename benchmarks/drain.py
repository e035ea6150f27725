"""Benchmark 4: how fast the dispatcher drives tasks to COMPLETE when the backend costs nothing.

1,000 tasks are created through TaskService.create (the API's use case) into the real SQLite
repository; then Dispatcher.drain() runs them all with tests.fakes.FakeBackend, which starts and
finishes a job instantly. Each task writes one output file, so the automated egress path (quarantine,
checks, release) runs too. What is left is the gateway's own bookkeeping per task: leases, state
saves and egress. The whole run is repeated (fresh database each time) to show its spread.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import PROJECT, USER, log


def _body(i: int, released: str) -> dict[str, Any]:
    return {
        "name": f"drain-{i}",
        "executors": [{"image": "alpine", "command": ["write", "/out/result.txt", f"result {i}\n"]}],
        "outputs": [{"path": "/out/result.txt", "url": f"{released}{PROJECT}/drain-{i}.txt"}],
        "tags": {"project": PROJECT},
    }


def drain_once(count: int, data_dir: Path) -> dict[str, Any]:
    from gateway.bootstrap import build
    from gateway.config import Settings
    from gateway.domain.identity import Principal, Role
    from gateway.services.ports import Area
    from tests.fakes import FakeBackend, FakeObjectStore

    store = FakeObjectStore()
    settings = Settings(data_dir=data_dir, egress_review="automatic", auth="none")
    components = build(settings, store=store, backend=FakeBackend(store))
    principal = Principal(user=USER, roles=frozenset({Role.RESEARCHER}), projects=frozenset({PROJECT}))
    released = store.url_for(Area.RELEASED)
    t0 = time.perf_counter()
    for i in range(count):
        components.tasks.create(principal, _body(i, released))
    create_seconds = time.perf_counter() - t0
    dispatcher = components.dispatcher
    t0 = time.perf_counter()
    dispatcher.drain(timeout=600)
    drain_seconds = time.perf_counter() - t0
    states = {s.value: n for s, n in components.tasks.repo.count_by_state().items()}
    components.engine.dispose()
    if states.get("COMPLETE", 0) != count:
        raise RuntimeError(f"not every task completed: {dict(states)}")
    return {
        "count": count,
        "create_seconds": create_seconds,
        "drain_seconds": drain_seconds,
        "tasks_per_second": count / drain_seconds,
        "threads": dispatcher.threads,
        "batch_size": dispatcher.batch_size,
    }


def run(quick: bool = False) -> dict[str, Any]:
    count = 200 if quick else 1000
    runs = []
    for attempt in range(2 if quick else 3):
        with tempfile.TemporaryDirectory(prefix="tre-bench-drain-") as tmp:
            log(f"drain: run {attempt + 1}: creating {count} tasks, then Dispatcher.drain() on the fake backend")
            runs.append(drain_once(count, Path(tmp)))
            log(f"drain: {runs[-1]['tasks_per_second']:.1f} tasks/s")
    return {"count": count, "runs": runs}
