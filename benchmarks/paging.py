"""Benchmark 3: ListTasks at page 1 and page 1000 (page_size 100) of 100,000 stored tasks.

The tasks are bulk-inserted straight into a fresh SQLite database (schema from the gateway's own
migrations, rows shaped by the gateway's own serialisation), then the real gateway serves it. The
page-1000 token is found by following next_page_token from page 1 once; then page 1 and page 1000 are
requested repeatedly, alternately. The same pages are also timed in-process through TaskService.list
(no HTTP), and, as the baseline that keyset paging avoids, with raw SQL using OFFSET at the same depth.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text

from benchmarks.common import PROJECT, USER, Sample, dev_token, free_port, gateway_env, log, serve, time_calls

TES = "/ga4gh/tes/v1"
PAGE_SIZE = 100


def _spec_and_logs(n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A few distinct specs (as the gateway stores them) and the logs of a finished task."""
    from gateway.adapters.db.serialize import logs_to_json
    from gateway.domain.states import TaskState
    from gateway.domain.task import ExecutorLog, Task, TaskSpec

    specs = []
    for i in range(n):
        spec = TaskSpec.from_dict({
            "name": f"bulk-{i}",
            "inputs": [{"path": "/data/in.csv", "content": "a,b\n1,2\n"}],
            "executors": [{"image": "alpine", "command": ["sh", "-c", f"wc -l /data/in.csv # {i}"]}],
            "tags": {"project": PROJECT, "batch": str(i)},
        })
        specs.append(spec.to_dict())
    created = datetime(2026, 1, 1, tzinfo=UTC)
    done = Task(
        id="x", owner=USER, project=PROJECT, spec=TaskSpec.from_dict(specs[0]), state=TaskState.COMPLETE,
        creation_time=created, start_time=created + timedelta(seconds=1), end_time=created + timedelta(seconds=2),
        executor_logs=(ExecutorLog(exit_code=0, start_time="2026-01-01T00:00:01.000Z",
                                   end_time="2026-01-01T00:00:02.000Z", stdout="2 /data/in.csv\n", stderr=""),),
    )
    return specs, logs_to_json(done)


def populate(engine: Any, count: int, chunk: int = 5000) -> float:
    """Insert `count` COMPLETE tasks of project PROJECT, two tags each; return the seconds it took."""
    from gateway.adapters.db.tables import task_tags, tasks

    specs, logs = _spec_and_logs(10)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for first in range(1, count + 1, chunk):
            rows, tags = [], []
            for seq in range(first, min(first + chunk, count + 1)):
                created = start + timedelta(milliseconds=seq)
                rows.append({
                    "seq": seq,
                    "id": f"{int(created.timestamp() * 1000):012x}{secrets.token_hex(8)}",
                    "owner": USER,
                    "project": PROJECT,
                    "name": f"bulk-{seq}",
                    "state": "COMPLETE",
                    "version": 3,
                    "creation_time": created,
                    "spec": specs[seq % len(specs)],
                    "logs": logs,
                })
                tags.append({"task_seq": seq, "key": "project", "value": PROJECT})
                tags.append({"task_seq": seq, "key": "batch", "value": str(seq % 10)})
            conn.execute(insert(tasks), rows)
            conn.execute(insert(task_tags), tags)
    return time.perf_counter() - t0


def _get(client: httpx.Client, params: dict[str, Any]) -> dict[str, Any]:
    response = client.get(f"{TES}/tasks", params=params)
    if response.status_code != 200:
        raise RuntimeError(f"ListTasks -> {response.status_code}: {response.text[:300]}")
    return dict(response.json())


def run(quick: bool = False) -> dict[str, Any]:
    from gateway.adapters.db.engine import make_engine, migrate
    from gateway.domain.identity import Principal, Role
    from gateway.services.paging import encode_token
    from gateway.services.ports import TaskQuery

    count = 20_000 if quick else 100_000
    deep_page = count // PAGE_SIZE
    repeats = 50 if quick else 200
    with tempfile.TemporaryDirectory(prefix="tre-bench-paging-") as tmp:
        root = Path(tmp)
        data_dir = root / "gateway-data"
        data_dir.mkdir()
        engine = make_engine(f"sqlite:///{data_dir / 'gateway.db'}")
        migrate(engine)
        log(f"paging: bulk-inserting {count} tasks with 2 tags each")
        insert_seconds = populate(engine, count)
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
        token = dev_token(data_dir)
        port = free_port()
        args = ["-m", "gateway.cli", "serve", "--no-dispatcher", "--port", str(port)]
        http: dict[str, dict[str, Sample]] = {}
        with serve(args, env=gateway_env(data_dir), port=port, ready_path="/healthz",
                   log_file=root / "gateway.log") as gw, \
                httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            log(f"paging: walking to page {deep_page} by next_page_token")
            walk: list[float] = []
            params: dict[str, Any] = {"page_size": PAGE_SIZE}
            first_ids: list[str] = []
            for page in range(1, deep_page):
                t0 = time.perf_counter()
                body = _get(c, params)
                walk.append(time.perf_counter() - t0)
                if page == 1:
                    first_ids = [t["id"] for t in body["tasks"]]
                params = {"page_size": PAGE_SIZE, "page_token": body["next_page_token"]}
            deep_token = params["page_token"]
            last = _get(c, params)
            if len(last["tasks"]) != PAGE_SIZE or "next_page_token" in last or not first_ids:
                raise RuntimeError("page walk did not end on a full last page")
            for view in ("MINIMAL", "BASIC"):
                log(f"paging: page 1 and page {deep_page}, view {view}, {repeats} requests each, alternating")
                p1 = {"page_size": PAGE_SIZE, "view": view}
                pn = {**p1, "page_token": deep_token}
                for _ in range(20):
                    _get(c, p1)
                    _get(c, pn)
                a: list[float] = []
                b: list[float] = []
                t_start = time.perf_counter()
                for _ in range(repeats):
                    for params_, into in ((p1, a), (pn, b)):
                        t0 = time.perf_counter()
                        _get(c, params_)
                        into.append(time.perf_counter() - t0)
                wall = (time.perf_counter() - t_start) / 2
                http[view] = {"page1": Sample(a, wall), "deep": Sample(b, wall)}

        log("paging: in-process TaskService.list and raw SQL keyset vs OFFSET")
        from gateway.bootstrap import build
        from gateway.config import Settings

        components = build(Settings(data_dir=data_dir))
        principal = Principal(user=USER, roles=frozenset({Role.RESEARCHER}), projects=frozenset({PROJECT}))
        service = components.tasks
        deep_seq = count - (deep_page - 1) * PAGE_SIZE + 1  # the cursor page 999 hands out
        deep_token_local = encode_token(deep_seq)
        if service.list(principal, size=PAGE_SIZE, token=deep_token_local).tasks[0].id != last["tasks"][0]["id"]:
            raise RuntimeError("in-process page 1000 differs from the HTTP one")
        inproc = {
            "page1": time_calls(lambda: service.list(principal, size=PAGE_SIZE), repeats),
            "deep": time_calls(lambda: service.list(principal, size=PAGE_SIZE, token=deep_token_local), repeats),
        }
        repo_q = {
            "page1": time_calls(lambda: service.repo.query(TaskQuery(projects=frozenset({PROJECT}),
                                                                      limit=PAGE_SIZE)), repeats),
            "deep": time_calls(lambda: service.repo.query(TaskQuery(projects=frozenset({PROJECT}),
                                                                     before_seq=deep_seq, limit=PAGE_SIZE)), repeats),
        }
        offset = (deep_page - 1) * PAGE_SIZE
        keyset_sql = text("SELECT * FROM tasks WHERE project = :p AND seq < :s ORDER BY seq DESC LIMIT :n")
        offset_sql = text("SELECT * FROM tasks WHERE project = :p ORDER BY seq DESC LIMIT :n OFFSET :o")
        raw: dict[str, Sample] = {}
        with components.engine.connect() as conn:
            def fetch(stmt: Any, **kw: Any) -> None:
                rows = conn.execute(stmt, {"p": PROJECT, "n": PAGE_SIZE + 1, **kw}).all()
                assert rows, "no rows"

            for name, stmt, kw in (
                ("keyset_page1", keyset_sql, {"s": count + 1}),
                ("keyset_deep", keyset_sql, {"s": deep_seq}),
                ("offset_page1", offset_sql, {"o": 0}),
                ("offset_deep", offset_sql, {"o": offset}),
            ):
                fetch(stmt, **kw)
                raw[name] = time_calls(lambda stmt=stmt, kw=kw: fetch(stmt, **kw), max(20, repeats // 4))
            plans = {
                name: " / ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + str(stmt)),
                                                                   {"p": PROJECT, "n": 101, "s": 1, "o": 1}))
                for name, stmt in (("keyset", keyset_sql), ("offset", offset_sql))
            }
        components.engine.dispose()
        engine.dispose()
        db_bytes = (data_dir / "gateway.db").stat().st_size
    return {
        "count": count, "deep_page": deep_page, "page_size": PAGE_SIZE, "repeats": repeats,
        "insert_seconds": insert_seconds, "db_bytes": db_bytes, "walk": walk, "http": http,
        "inproc": inproc, "repo": repo_q, "raw": raw, "offset_rows": offset, "plans": plans,
    }
