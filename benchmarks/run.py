"""`make bench`: run every benchmark side by side with its baseline and write docs/PERFORMANCE.md.

    .venv/bin/python -m benchmarks.run                 # everything (about 5-10 minutes on 2 cores)
    .venv/bin/python -m benchmarks.run --quick         # smaller counts, for trying the harness out
    .venv/bin/python -m benchmarks.run --only api,drain --output /tmp/perf.md

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import api_latency, disclosure_checks, drain, k8s_backend, machine, paging, start_latency, wes
from benchmarks.common import REPO, Sample, log, ms, percentile

API_AIM = 1.5  # gateway latency <= 1.5 x the bare connexion app's
START_AIM = 0.3  # create -> executor start <= plain container start + 0.3 s
PAGE_AIM = 0.050  # ListTasks p95 < 50 ms at page 1 and page 1000
FLAT_AIM = 1.25  # "flat with depth": page-1000 median within 1.25 x page-1 median
DRAIN_AIM = 50.0  # tasks/s
K8S_LAUNCH_AIM = DRAIN_AIM  # tasks/s through KubernetesBackend.start() on the emulated API
K8S_CPU_AIM = 0.002  # s of client-side CPU per start(): >= 500 tasks/s (10x the dispatcher's aim) if the API were free
K8S_WATCH_AIM = 1.0  # s, p95 from a pod status write being committed to poll() reporting it
K8S_MEMORY_AIM = 10 * 1024  # bytes retained per tracked task

BENCHES: dict[str, Callable[[bool], dict[str, Any]]] = {
    "api": api_latency.run,
    "start": start_latency.run,
    "paging": paging.run,
    "drain": drain.run,
    "disclosure": lambda quick: {"markdown": disclosure_checks.main(quick)},
    "k8s": k8s_backend.run,
    "wes": wes.run,
}


def met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def s_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f}"


# ---------------------------------------------------------------- sections


def api_section(r: dict[str, Any], summary: list[list[str]]) -> list[str]:
    st = r["settings"]
    lines = [
        "## 1. API latency: gateway against a bare connexion app",
        "",
        "Both serve `openapi/tes.yaml` under uvicorn on 127.0.0.1, each in its own process, with the same "
        "connexion settings (strict request validation, response validation). The **gateway** is "
        "`tre-gateway serve --no-dispatcher`: the real `create_app`, SQLite in a temporary data directory, "
        "dev-mode bearer authentication (every request carries a JWT that is verified, and the caller's "
        "project memberships are read). The **bare** app has no authentication and returns, as constants, "
        "the very documents the gateway returned for the same requests, so both sides validate and "
        f"serialise identical responses (GetTask BASIC: {r['sizes']['GetTask']['gateway']} bytes, ListTasks "
        f"BASIC page_size 50: {r['sizes']['ListTasks']['gateway']} bytes). The store holds ~60 queued tasks "
        "with an inline input, an output, resources and tags.",
        "",
        f"Sequential: one keep-alive httpx client, {st['warmup']} warm-up requests per side, then "
        f"{st['rounds']} alternating blocks of {st['block']} requests per side ({st['rounds'] * st['block']} "
        "measured requests per side and operation). Latency is client-side (request sent to body read). "
        "The client runs on the same 2 cores as the server.",
        "",
    ]
    rows = []
    for op in ("GetTask", "ListTasks", "CreateTask"):
        d: dict[str, Sample] = r["sequential"][op]
        g, b = d["gateway"], d["bare"]
        label = {"GetTask": "GetTask (BASIC)", "ListTasks": "ListTasks (BASIC, page_size 50)",
                 "CreateTask": "CreateTask"}[op]
        for side, s in (("gateway", g), ("bare", b), ("bare, response validation off", d.get("bare_novalid"))):
            if s is None:
                continue
            rows.append([label, side, str(s.n), ms(s.p50), ms(s.p95), ms(s.p99), f"{s.rps:.0f}",
                         f"{g.p50 / b.p50:.2f}x" if side == "gateway" else "",
                         f"{g.p95 / b.p95:.2f}x" if side == "gateway" else ""])
        if op != "CreateTask":
            ok = g.p50 / b.p50 <= API_AIM and g.p95 / b.p95 <= API_AIM
            summary.append([f"{label}: gateway latency <= {API_AIM}x bare app (p50 and p95)",
                            f"p50 {g.p50 / b.p50:.2f}x ({ms(g.p50)} vs {ms(b.p50)} ms), "
                            f"p95 {g.p95 / b.p95:.2f}x ({ms(g.p95)} vs {ms(b.p95)} ms)", met(ok)])
    lines += table(["operation", "app", "n", "p50 ms", "p95 ms", "p99 ms", "req/s", "p50 ratio", "p95 ratio"], rows)
    lines += [
        "The third row of each read operation is a reference point, not the baseline: the same bare app with "
        "response validation turned off, which shows how much of the absolute latency is connexion validating "
        "the response (the gateway validates its responses, so the baseline does too).",
        "",
        "CreateTask is shown for information (not part of the aim): the gateway validates the task "
        "semantically, checks images and locations and inserts it with its tags; the bare app only "
        "validates the body against the schema.",
        "",
        f"Concurrent: {st['clients']} client threads, each with its own keep-alive connection, "
        f"{st['each']} requests each (after one warm-up request each).",
        "",
    ]
    rows = []
    for op in ("GetTask", "ListTasks"):
        d = r["concurrent"][op]
        g, b = d["gateway"], d["bare"]
        for side, s in (("gateway", g), ("bare", b)):
            rows.append([op, side, str(s.n), ms(s.p50), ms(s.p95), f"{s.rps:.0f}",
                         f"{g.p50 / b.p50:.2f}x" if side == "gateway" else "",
                         f"{b.rps / g.rps:.2f}x" if side == "gateway" else ""])
    lines += table(["operation", "app", "n", "p50 ms", "p95 ms", "req/s", "p50 ratio", "throughput ratio (bare/gw)"],
                   rows)
    return lines


def start_section(r: dict[str, Any], summary: list[list[str]]) -> list[str]:
    def row(name: str, values: list[float]) -> list[str]:
        return [name, str(len(values)), s_ms(min(values)), s_ms(statistics.median(values)),
                s_ms(percentile(values, 90)), s_ms(max(values))]

    plain = statistics.median(r["plain_start"])
    gw = statistics.median(r["gateway_start"])
    summary.append([f"create -> executor start <= plain container start + {START_AIM} s (medians)",
                    f"{s_ms(gw)} ms vs {s_ms(plain)} ms: +{s_ms(gw - plain)} ms", met(gw <= plain + START_AIM)])
    lines = [
        "## 2. Create -> executor start on podman",
        "",
        "A one-executor task (`alpine`, mapped by the image policy to the local base image, command `true`) "
        "is submitted to `tre-gateway serve` (in-process dispatcher, `TRE_GATEWAY_EGRESS_REVIEW=automatic`, "
        "temporary data directory). The client notes the wall clock just before sending CreateTask, waits for "
        "COMPLETE, then reads the executor's start time from the FULL view (`logs[0].logs[0].start_time`, "
        "podman's `StartedAt`, millisecond precision). Tasks run one after another. podman uses a private "
        "storage (graph root in the temporary directory, holding a copy of the base image) for every series, "
        "so that other gateways on the host, whose orphan reconcilers remove unknown task containers, cannot "
        "interfere.",
        "",
        "Baseline, measured in the same run and interleaved with the gateway's samples: "
        "`podman run --network=none localhost/tre-base:latest true`, from the moment `podman` is invoked to "
        "the container's `StartedAt`; and the wall time of the whole `podman run --rm ... true`. "
        "Before the gateway starts, `PodmanBackend.start()` called directly (workspace staging, the sandbox's flags: "
        "read-only root, no capabilities, non-root user, pids limit, mounts, helper entrypoint) "
        "separates the sandbox's cost from the API/database/dispatcher's.",
        "",
    ]
    lines += table(["series", "n", "min ms", "median ms", "p90 ms", "max ms"], [
        row("plain `podman run` -> StartedAt (baseline)", r["plain_start"]),
        row("plain `podman run --rm ... true`, wall time", r["plain_rm_wall"]),
        row("`PodmanBackend.start()` -> StartedAt (no API, no DB)", r["backend_start"]),
        row("**gateway: CreateTask sent -> StartedAt**", r["gateway_start"]),
        row("  of which CreateTask sent -> task stored (creation_time)", r["gateway_accepted"]),
        row("  of which creation_time -> StartedAt (dispatcher + backend)", r["gateway_queue_to_start"]),
    ])
    lines += [f"Gateway overhead over the plain container start (medians): **{s_ms(gw - plain)} ms** "
              f"({gw / plain:.2f}x); over the backend alone: "
              f"{s_ms(gw - statistics.median(r['backend_start']))} ms.", ""]
    return lines


def paging_section(r: dict[str, Any], summary: list[list[str]]) -> list[str]:
    deep = r["deep_page"]
    http = r["http"]
    m1, md = http["MINIMAL"]["page1"], http["MINIMAL"]["deep"]
    ok_p95 = m1.p95 < PAGE_AIM and md.p95 < PAGE_AIM
    flat = md.p50 / m1.p50
    summary.append([f"ListTasks p95 < {PAGE_AIM * 1e3:.0f} ms at page 1 and page {deep} (page_size 100, "
                    f"{r['count']:,} tasks, default view)",
                    f"page 1: {ms(m1.p95)} ms, page {deep}: {ms(md.p95)} ms", met(ok_p95)])
    summary.append([f"... and flat with depth (page-{deep} p50 <= {FLAT_AIM}x page-1 p50)",
                    f"{flat:.2f}x", met(flat <= FLAT_AIM)])
    lines = [
        f"## 3. ListTasks deep in {r['count']:,} tasks (keyset paging)",
        "",
        f"{r['count']:,} finished tasks of one project (two tags each) are bulk-inserted straight into a fresh "
        f"SQLite database created by the gateway's migrations (took {r['insert_seconds']:.1f} s; database "
        f"{r['db_bytes'] / 2**20:.0f} MiB). The real gateway serves it; the caller is a researcher of that "
        f"project (so the project filter applies). The token for page {deep} is obtained once by following "
        f"`next_page_token` from page 1; then page 1 and page {deep} (page_size {r['page_size']}) are requested "
        f"alternately, {r['repeats']} times each, over one keep-alive connection.",
        "",
    ]
    rows = []
    for view, d in (("MINIMAL (default)", http["MINIMAL"]), ("BASIC", http["BASIC"])):
        p1, pd = d["page1"], d["deep"]
        rows.append([f"HTTP, view {view}", ms(p1.p50), ms(p1.p95), ms(pd.p50), ms(pd.p95), f"{pd.p50 / p1.p50:.2f}x"])
    for name, key in (("in-process `TaskService.list`", "inproc"), ("in-process `SqlTaskRepository.query`", "repo")):
        p1, pd = r[key]["page1"], r[key]["deep"]
        rows.append([name, ms(p1.p50), ms(p1.p95), ms(pd.p50), ms(pd.p95), f"{pd.p50 / p1.p50:.2f}x"])
    lines += table(["path", "page 1 p50 ms", "page 1 p95 ms", f"page {deep} p50 ms", f"page {deep} p95 ms",
                    "deep/page-1 p50"], rows)
    raw = r["raw"]
    lines += [
        f"Baseline: what OFFSET paging would cost at the same depth. Raw SQL on the same database, "
        f"{r['page_size'] + 1} rows per query, all columns, rows fetched but not decoded:",
        "",
    ]
    lines += table(["query", "page 1 p50 ms", f"page {deep} p50 ms", f"page {deep} p95 ms", "plan"], [
        ["keyset: `WHERE project = ? AND seq < ? ORDER BY seq DESC LIMIT 101`",
         ms(raw["keyset_page1"].p50), ms(raw["keyset_deep"].p50), ms(raw["keyset_deep"].p95), r["plans"]["keyset"]],
        [f"offset: `WHERE project = ? ORDER BY seq DESC LIMIT 101 OFFSET {r['offset_rows']}`",
         ms(raw["offset_page1"].p50), ms(raw["offset_deep"].p50), ms(raw["offset_deep"].p95), r["plans"]["offset"]],
    ])
    lines += [f"At page {deep} OFFSET costs {raw['offset_deep'].p50 / raw['keyset_deep'].p50:.0f}x the keyset "
              f"query (+{ms(raw['offset_deep'].p50 - raw['keyset_deep'].p50)} ms per request), and grows "
              "linearly with depth; keyset stays constant.", ""]
    walk = r["walk"]
    buckets = [(1, 100), (len(walk) // 2 - 49, len(walk) // 2 + 50), (len(walk) - 99, len(walk))]
    rows = [[f"{a}-{b}", ms(statistics.median(walk[a - 1:b])), ms(percentile(walk[a - 1:b], 95))] for a, b in buckets]
    lines += [f"The walk itself (pages 1-{len(walk)}, default view, one request each):", ""]
    lines += table(["pages", "p50 ms", "p95 ms"], rows)
    return lines


def drain_section(r: dict[str, Any], summary: list[list[str]]) -> list[str]:
    runs = r["runs"]
    rates = [x["tasks_per_second"] for x in runs]
    median = statistics.median(rates)
    summary.append([f"Dispatcher drain >= {DRAIN_AIM:.0f} tasks/s ({r['count']} tasks, fake instant backend)",
                    f"{median:.0f} tasks/s (median of {len(runs)} runs)", met(median >= DRAIN_AIM)])
    lines = [
        "## 4. Dispatcher drain rate",
        "",
        f"{r['count']} tasks are created through `TaskService.create` into the real SQLite repository (fresh "
        "data directory each run); then `Dispatcher.drain()` runs them to COMPLETE on `tests.fakes.FakeBackend`, "
        "which starts and finishes a job instantly. Each task writes one output file, so automated egress "
        "(quarantine, checks, release into the in-memory store) runs as well. Dispatcher defaults: "
        f"{runs[0]['threads']} threads, leases claimed in batches of {runs[0]['batch_size']}.",
        "",
    ]
    lines += table(["run", "tasks", "create s", "drain s", "tasks/s"], [
        [str(i + 1), str(x["count"]), f"{x['create_seconds']:.2f}", f"{x['drain_seconds']:.2f}",
         f"{x['tasks_per_second']:.0f}"] for i, x in enumerate(runs)
    ])
    return lines


def k8s_section(r: dict[str, Any], summary: list[list[str]]) -> list[str]:
    def kib(n: float) -> str:
        return f"{n / 1024:.1f}"

    def mib(n: float) -> str:
        return f"{n / 2**20:.0f}"

    def lat(values: list[float]) -> list[str]:
        return [s_ms(statistics.median(values)), s_ms(percentile(values, 95)), s_ms(max(values))]

    n = r["count"]
    be, raw = r["launch"]["backend"], r["launch"]["raw"]
    w, m = r["watch"], r["memory"]
    tr, rs = m["trace"], m["rss"]
    count = m["count"]
    polled = w["poll"]["running"] + w["poll"]["succeeded"]
    cached = w["cache"]["running"] + w["cache"]["succeeded"]
    steady = tr["watched"]["traced"] / count
    summary.append([f"Kubernetes: launch >= {K8S_LAUNCH_AIM:.0f} tasks/s through `start()` ({n:,} tasks, emulated API)",
                    f"{be['sample'].rps:.0f} tasks/s (raw pod creates on the same emulator: "
                    f"{raw['sample'].rps:.0f}/s)", met(be["sample"].rps >= K8S_LAUNCH_AIM)])
    summary.append([f"... and the backend's own CPU per `start()` <= {K8S_CPU_AIM * 1e3:.0f} ms (>= "
                    f"{1 / K8S_CPU_AIM:.0f} tasks/s if the API cost nothing)",
                    f"{be['cpu'] * 1e3:.2f} ms ({1 / be['cpu']:.0f} tasks/s)", met(be["cpu"] <= K8S_CPU_AIM)])
    summary.append([f"Kubernetes: status write committed -> `poll()` reports it, p95 < {K8S_WATCH_AIM:.0f} s "
                    f"({n:,} tasks tracked)", f"p95 {s_ms(percentile(polled, 95))} ms, max {s_ms(max(polled))} ms",
                    met(percentile(polled, 95) < K8S_WATCH_AIM and not sum(w["missed"].values()))])
    summary.append([f"Kubernetes: worker memory < {K8S_MEMORY_AIM // 1024} KiB per tracked task ({count:,} tasks)",
                    f"{kib(steady)} KiB retained (tracemalloc, steady state); RSS growth "
                    f"{kib((rs['watched']['rss'] - rs['rss_before']) / count)} KiB", met(steady < K8S_MEMORY_AIM)])
    lines = [
        "## 6. Kubernetes backend on the emulated API",
        "",
        "No real cluster can run here, so this measures `KubernetesBackend` against the test suite's emulated API "
        "server (`tests/integration/adapters/compute/k8s_support/emulator.py`: kmock plus resourceVersions, label "
        "selectors and watch-from-resourceVersion) on 127.0.0.1. The emulator runs in a thread of the benchmark "
        "process; the backend talks to it over HTTP through the official client, with its watch cache "
        "(`k8s/cache.py`) on its own stream, exactly as in the integration tests. Each task has one executor and "
        "no inputs or outputs (one pod, no volume claim), its stdout and stderr redirected to files (so a finished "
        "executor's log is never read through `pods/log`). **Read the emulator caveats at the end of this "
        "section before comparing any absolute number with a real cluster.**",
        "",
        "### Launch rate",
        "",
        f"{n:,} tasks go through `start()` one after another, in blocks of {k8s_backend.BLOCK} alternating with "
        "blocks of the baseline: the same official client posting the very same pod manifests (built beforehand) "
        "with `create_namespaced_pod`, reading the raw response and nothing else. CPU is the calling thread's "
        "(`time.thread_time`): what the backend and the client library cost, without the emulator.",
        "",
    ]
    rows = []
    for label, d in (("raw `create_namespaced_pod` (baseline)", raw), ("**`KubernetesBackend.start()`**", be)):
        s = d["sample"]
        rows.append([label, str(s.n), f"{s.rps:.0f}", ms(s.p50), ms(s.p95), f"{d['cpu'] * 1e3:.2f}"])
    lines += table(["series", "n", "per s", "p50 ms", "p95 ms", "client CPU ms per call"], rows)
    lines += [
        f"The backend launches at {be['sample'].rps / raw['sample'].rps:.2f}x the rate of raw creates; its own "
        f"work (network-policy check, manifest, JSON decoding of the answer, cache insert) adds "
        f"{(be['cpu'] - raw['cpu']) * 1e3:.2f} ms of CPU per task. The emulator, not the backend, sets the rate "
        f"here (a raw create takes {ms(raw['sample'].p50)} ms at the median, of which the client's CPU is "
        f"{raw['cpu'] * 1e3:.2f} ms; see the caveats).",
        "",
        "### Watch -> state latency",
        "",
        f"With all {w['tasks']:,} launched tasks tracked at once, a thread playing the kubelet patches every pod's "
        "status through `pods/status` twice, as fast as the API accepts (first executor 0 running: the pod stays "
        "Pending while init containers run; then every container terminated and the pod Succeeded), at "
        f"{w['patch_rate']['running']:.0f} and {w['patch_rate']['succeeded']:.0f} writes/s. The emulator "
        "timestamps each write as it commits it (when its resourceVersion is assigned, before the HTTP answer); "
        "the watch cache timestamps the moment it applies the event of that resourceVersion; a sweeper thread "
        f"calls `poll()` on every tracked task in turn, pausing {k8s_backend.SWEEP_PAUSE * 1e3:.0f} ms between "
        "sweeps, and timestamps the first answer showing the new phase.",
        "",
    ]
    rows = []
    for label, key in (("executor running -> RUNNING", "running"), ("executor terminated -> SUCCEEDED", "succeeded")):
        rows.append([label, str(len(w["poll"][key])), *lat(w["cache"][key]), *lat(w["poll"][key]),
                     str(w["missed"][key])])
    rows.append(["**all**", str(len(polled)), *lat(cached), *lat(polled), str(sum(w["missed"].values()))])
    lines += table(["transition", "writes", "commit -> cache p50 ms", "cache p95 ms", "cache max ms",
                    "commit -> `poll()` p50 ms", "`poll()` p95 ms", "`poll()` max ms", "never seen"], rows)
    lines += [
        f"One sweep of `poll()` over the {w['tasks']:,} tasks took {s_ms(w['sweep']['median'])} ms (median, "
        f"{w['poll_us']:.0f} us per task, answered from the cache without API calls); the dispatcher polls every "
        "0.2-0.5 s, which adds to what a task's state in the database shows, not to what `poll()` knows. "
        f"Watch events applied: {w['cache_stats'].get('events', 0):,}; re-lists: {w['cache_stats'].get('lists', 0)}; "
        f"watch errors: {w['cache_stats'].get('errors', 0)}.",
        "",
        "### Memory of the worker",
        "",
        f"{count:,} executor pods (the backend's own manifests, a kubelet-shaped status with executor 0 running, "
        f"the emulator's metadata; {m['pod_json_bytes']:,} bytes of JSON each) are put straight into a fresh "
        "emulator's store (creating them over HTTP would take minutes here). A separate worker process then "
        "builds a backend on another namespace first (imports, threads, connection pools: the baseline), then the "
        f"measured backend: its watch LISTs the {count:,} pods (took {rs['sync_seconds']:.1f} s) and every task "
        f"is polled once ({rs['poll_seconds']:.2f} s for all). The steady state of a running worker differs: each "
        "pod's latest copy arrived in its own watch event, decoded on its own, so it shares no dict keys with the "
        "other pods as a LIST's items do; the worker reproduces that by feeding every pod once through the cache's "
        "event handler. RSS comes from one run, tracemalloc (retained and peak) from a second, since tracing "
        "inflates RSS.",
        "",
    ]
    rows = []
    for label, key in (("after the initial LIST", "listed"), ("steady state (every pod from its own watch event)",
                                                               "watched")):
        grown = rs[key]["rss"] - rs["rss_before"]
        rows.append([label, mib(grown), kib(grown / count), mib(tr[key]["traced"]), kib(tr[key]["traced"] / count)])
    lines += table(["state", "RSS growth MiB", "KiB per task", "retained MiB (tracemalloc)", "KiB per task"], rows)
    top = "; ".join(f"`{site}` {mib(size)} MiB" for site, size in tr["top"] if size >= 2**19)
    lines += [
        f"tracemalloc's peak during the initial LIST: {mib(tr['listed']['peak'])} MiB "
        f"({kib(tr['listed']['peak'] / count)} KiB per task): the response body and its decoded items in memory at "
        "once, on top of nothing else yet; a re-list every `kubernetes_resync_seconds` (300 s) repeats it while the "
        "old copies are still cached. The steady-state RSS includes memory the allocator kept from the LIST's "
        "copies after they were replaced.",
        "",
        f"Top allocation sites in steady state (tracemalloc): {top}. `PodCache` keeps a projection of each pod "
        "(`k8s.cache.slim`: the metadata, phase, reason, message, conditions and container states that `poll()` "
        "and `k8s/status.py` read), not the whole object, so spec, annotations and the `managedFields` a real API "
        "server adds are not retained. Streaming the LIST in pages (`limit`/`continue`) would also bound the "
        "re-list peak; not done yet.",
        "",
        "### What the emulator exaggerates and what it hides",
        "",
        "- **Exaggerates request cost.** kmock matches every request against its registered reactions and scans "
        f"every stored object to find the one addressed: {ms(raw['sample'].p50)} ms per create here (p50), most "
        "of it in kmock's routing (py-spy), in one asyncio thread of this very process, sharing the GIL and the 2 "
        "cores with the backend, its watch thread and the poll sweeper. A real API server answers a pod create in "
        "a few ms and serves requests in parallel, so the launch rate above is the emulator's ceiling, not the "
        "backend's; the backend's ceiling is better read from its CPU per call.",
        "- **Exaggerates latency under load.** Watch events are produced, streamed and consumed by threads of one "
        "process; the latencies include their contention for the interpreter lock.",
        "- **Hides server-side costs.** No TLS, authentication, authorisation, admission, validation, defaulting "
        "or etcd write, and no API Priority and Fairness throttling (clusters may cap a client's request rate "
        "well below what is measured here); no network between the gateway and the API server.",
        "- **Hides object size.** Its pods carry no `managedFields`, no defaulted spec fields and no status the "
        "kubelet did not write here; a real API server's pods are larger, which matters for the LIST peak; the "
        "projection the cache retains hardly grows with them.",
        "- The kubelet is a thread of the benchmark (not `k8s_support/kubelet.py`, which runs a thread per pod "
        "and executes containers): only its status writes are measured.",
        "",
    ]
    return lines


# ---------------------------------------------------------------- main


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "n/a"


def render(results: dict[str, dict[str, Any]], elapsed: float, quick: bool, load: tuple[str, str]) -> str:
    summary: list[list[str]] = []
    sections: list[str] = []
    builders = {
        "api": api_section,
        "start": start_section,
        "paging": paging_section,
        "drain": drain_section,
        "disclosure": lambda r, _summary: r["markdown"].replace("## Disclosure", "## 5. Disclosure", 1).split("\n"),
        "k8s": k8s_section,
        "wes": wes.section,
    }
    for name, build_section in builders.items():
        if name in results:
            sections += build_section(results[name], summary)
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`benchmarks/run.py`); re-run it rather than editing this file. Every "
        "number below was measured in one run on the machine described here; each aim is marked met or "
        "not met by the numbers of that run.",
        "",
    ]
    if quick:
        lines += ["**Quick run (`--quick`): reduced counts, not the reference numbers.**", ""]
    lines += ["## Machine", ""]
    lines += table(["", ""], [[k, v] for k, v in machine.describe(start_latency.podman_version())])
    lines += [f"Whole benchmark run: {elapsed / 60:.1f} min. Load average (1 min) before the run: {load[0]}, "
              f"after it: {load[1]} (anything above the benchmark's own load means other work shared the cores).",
              "", "## Aims", ""]
    lines += table(["aim", "measured", "verdict"], summary)
    lines += sections
    lines += [
        "## Caveats",
        "",
        "- Client and server share the same 2 cores, so absolute latencies include the client's own cost and "
        "scheduling noise; the ratios against the baselines, measured in the same run, are the meaningful part.",
        "- SQLite only (the embedded default). PostgreSQL changes the database costs, not the framework's.",
        "- Percentiles are nearest-rank over the measured requests (p99 of 1,500 requests is the 15th slowest).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="reduced counts, to try the harness out")
    p.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated subset of {', '.join(BENCHES)}")
    p.add_argument("--output", type=Path, default=REPO / "docs" / "PERFORMANCE.md")
    args = p.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")
    started = time.monotonic()
    load_before = loadavg()
    results = {}
    for name in chosen:
        t0 = time.monotonic()
        results[name] = BENCHES[name](args.quick)
        log(f"{name} done in {time.monotonic() - t0:.0f} s")
    text = render(results, time.monotonic() - started, args.quick, (load_before, loadavg()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    log(f"wrote {args.output}")
    aims = [line for line in text.splitlines() if line.endswith("**not met** |") or line.endswith("**met** |")]
    print("\n".join(aims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
