"""Benchmark 7: WES POST -> COMPLETE of a one-step workflow, against plain cwltool and two peer WES servers.

The workflow is `tests/e2e/workflows/echo.cwl` (one CommandLineTool, `echo` of a string into
`message.txt`) with `{"message": ...}`. Seven series, measured in one run, round-robin (each round runs
one sample of every series, in an order rotated from round to round, so machine noise hits all alike):

  * plain cwltool, `--no-container`: the step as a host process (the wall time of the whole command);
  * plain cwltool, `--podman --default-container localhost/tre-base:latest` with the gateway's
    containers.conf: the step in a podman container, as the gateway runs steps;
  * the gateway (`tre-gateway serve`, podman backend, automatic egress review, `make run`'s dispatcher
    settings): POST /runs (multipart) -> GetRunStatus every 50 ms -> COMPLETE, i.e. through the
    engine, one TES task for the step, and the release task that carries the output through the airlock;
  * wes-service's `wes-server` (cwl_runner backend) and Sapporo, each with its own cwltool, polled the same
    way, each twice: with `--no-container` (the step on the host, their default for this workflow) and
    with the same podman options as plain cwltool (see benchmarks/wes_peers.py).

Then 500 sequential GetRunStatus calls on a finished run, per server (the gateway's with a bearer token).

For the gateway, each sample is also split by the times the gateway itself records (run start = engine
process started; each TES task's creation, executor StartedAt/FinishedAt from podman, end), so the
overhead can be placed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

from benchmarks import wes_peers
from benchmarks.common import REPO, Sample, dev_token, free_ports, gateway_env, log, ms, percentile, serve
from benchmarks.start_latency import IMAGE, _podman_env

WORKFLOW = REPO / "tests" / "e2e" / "workflows" / "echo.cwl"
MESSAGE = "hello from the benchmark"
WES = "/ga4gh/wes/v1"
POLL = 0.05
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}
RUN_TIMEOUT = 180.0

OVERHEAD_AIM = 1.25  # gateway POST -> COMPLETE <= 1.25 x plain cwltool with podman (medians)
STATUS_AIM = 0.010  # GetRunStatus p50 < 10 ms

SERIES = ("cwltool_host", "cwltool_podman", "gateway", "wes_service_host", "wes_service_podman", "sapporo_host",
          "sapporo_podman")
LABELS = {
    "cwltool_host": "plain `cwltool --no-container`",
    "cwltool_podman": "plain `cwltool --podman`",
    "gateway": "**TRE Gateway**",
    "wes_service_host": "wes-service `wes-server`, `--no-container`",
    "wes_service_podman": "wes-service `wes-server`, `--podman`",
    "sapporo_host": "Sapporo, `--no-container`",
    "sapporo_podman": "Sapporo, `--podman`",
}
WHERE = {"cwltool_host": "host", "wes_service_host": "host", "sapporo_host": "host", "cwltool_podman": "podman",
         "wes_service_podman": "podman", "sapporo_podman": "podman", "gateway": "podman (step and release task)"}
HOST_OPTIONS = ["--no-container"]
PODMAN_OPTIONS = ["--podman", "--default-container", IMAGE]

# cwltool --podman always adds --userns=keep-id, which podman refuses to a root user ("keep-id is only
# supported in rootless mode"); the gateway's podman runs as whatever user runs the gateway.
PODMAN_SHIM = """#!/bin/sh
# cwltool --podman adds --userns=keep-id, which rootful podman refuses: drop it, pass everything else.
if [ "$(id -u)" = 0 ]; then
  for a in "$@"; do shift; [ "$a" = "--userns=keep-id" ] || set -- "$@" "$a"; done
fi
exec {podman} "$@"
"""


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- servers


def _peer_env(root: Path, podman_env: dict[str, str]) -> dict[str, str]:
    """The peers' environment: their virtualenv first on PATH (Sapporo's run.sh calls sapporo-cli), then the
    podman shim, the gateway's containers.conf; temporary files in the benchmark's directory."""
    env = {k: v for k, v in podman_env.items() if not k.startswith(("TRE_GATEWAY_", "SAPPORO_", "WES_"))}
    env["PATH"] = f"{wes_peers.BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["TMPDIR"] = str(root)
    env.pop("VIRTUAL_ENV", None)
    return env


# ---------------------------------------------------------------- one sample of each series


def _plain(cmd: list[str], env: dict[str, str], root: Path, index: int) -> float:
    work = root / f"plain-{index}"
    work.mkdir()
    params = work / "params.json"
    params.write_text(json.dumps({"message": MESSAGE}))
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, "--outdir", str(work / "out"), str(WORKFLOW), str(params)],
                          cwd=work, env={**env, "TMPDIR": str(work)}, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or (work / "out" / "message.txt").read_text().strip() != MESSAGE:
        raise RuntimeError(f"plain cwltool failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed


def _submit(client: httpx.Client, runs_url: str, extra: dict[str, str]) -> tuple[str, float, float]:
    """POST the echo workflow as multipart; poll its status every 50 ms; return (run id, t0 epoch, seconds)."""
    form = {"workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_url": "echo.cwl",
            "workflow_params": json.dumps({"message": MESSAGE}), **extra}
    files = [("workflow_attachment", ("echo.cwl", WORKFLOW.read_bytes(), "application/octet-stream"))]
    wall = time.time()
    t0 = time.perf_counter()
    response = client.post(runs_url, data=form, files=files)
    if response.status_code != 200:
        raise RuntimeError(f"POST {runs_url} -> {response.status_code}: {response.text[:500]}")
    run_id = response.json()["run_id"]
    deadline = t0 + RUN_TIMEOUT
    while True:
        time.sleep(POLL)
        state = client.get(f"{runs_url}/{run_id}/status").json()["state"]
        if state in TERMINAL:
            elapsed = time.perf_counter() - t0
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"run {run_id} at {runs_url} still {state} after {RUN_TIMEOUT} s")
    if state != "COMPLETE":
        detail = client.get(f"{runs_url}/{run_id}").text[:3000]
        raise RuntimeError(f"run {run_id} at {runs_url} ended {state}: {detail}")
    return run_id, wall, elapsed


def _gateway_phases(client: httpx.Client, runs_url: str, run_id: str, posted: float, seen: float) -> dict[str, float]:
    """Split one gateway run by the times the gateway recorded (seconds, host clock)."""
    run = client.get(f"{runs_url}/{run_id}").json()
    outputs = run["outputs"]["out"]
    if not outputs or "/released/" not in outputs["location"]:
        raise RuntimeError(f"run {run_id}: output not released: {outputs}")
    tasks = client.get(f"{runs_url}/{run_id}/tasks").json()["task_logs"]
    docs = [client.get(t["tes_uri"], params={"view": "FULL"}).json() for t in tasks]
    if len(docs) != 2:
        raise RuntimeError(f"run {run_id}: expected a step and a release task, got {len(docs)}")
    step = next(d for d in docs if d["executors"][0]["command"][0] != "true")
    release = next(d for d in docs if d["executors"][0]["command"][0] == "true")

    def times(doc: dict[str, Any]) -> tuple[float, float, float, float]:
        log_ = doc["logs"][-1]
        executor = log_["logs"][-1]
        return (_epoch(doc["creation_time"]), _epoch(executor["start_time"]), _epoch(executor["end_time"]),
                _epoch(log_["end_time"]))

    engine = _epoch(run["run_log"]["start_time"])
    end = _epoch(run["run_log"]["end_time"])
    s_created, s_started, s_finished, s_end = times(step)
    # The release starts no container: it is created already released (or paused for review).
    r_created, r_end = _epoch(release["creation_time"]), _epoch(release["logs"][-1]["end_time"])
    return {
        "post_to_engine": engine - posted,
        "engine_to_step_task": s_created - engine,
        "step_task_to_container": s_started - s_created,
        "step_container": s_finished - s_started,
        "step_container_to_task_end": s_end - s_finished,
        "step_end_to_release_task": r_created - s_end,
        "release": r_end - r_created,
        "release_end_to_run_complete": end - r_end,
        "run_complete_to_client": posted + seen - end,
    }


PHASES = [
    ("post_to_engine", "POST sent -> engine process started (request and attachment checked and stored, the "
                       "dispatcher woken, run leased, engine credential minted, cwltool spawned)"),
    ("engine_to_step_task", "engine started -> step's TES task created (cwltool starts, loads and validates the "
                            "workflow; the step command starts and submits the task)"),
    ("step_task_to_container", "step task created -> its container started (dispatcher woken, workspace staged, "
                               "`podman run`)"),
    ("step_container", "step container runs (`echo`)"),
    ("step_container_to_task_end", "step container exited -> step task COMPLETE (*poll*: the dispatcher's next pass; "
                                   "then `podman inspect`, outputs to the work area, checks)"),
    ("step_end_to_release_task", "step task COMPLETE -> release task created (*poll*: the step command's next task "
                                 "poll, backing off from 50 to 250 ms; cwltool collects the output and exits; the "
                                 "dispatcher's next pass sees the exit and creates the release task)"),
    ("release", "the release: outputs copied into quarantine, automated checks, released (no container)"),
    ("release_end_to_run_complete", "release task COMPLETE -> run COMPLETE (the run's next turn: the run log's "
                                    "outputs rewritten to the released locations)"),
    ("run_complete_to_client", "run COMPLETE -> the client's status poll sees it (*poll*: every 50 ms)"),
]


def _status_latency(client: httpx.Client, url: str, count: int) -> Sample:
    for _ in range(20):
        client.get(url).raise_for_status()
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        response = client.get(url)
        response.raise_for_status()
        if response.json()["state"] != "COMPLETE":
            raise RuntimeError(f"{url}: {response.text}")
        latencies.append(time.perf_counter() - t0)
    return Sample(latencies, time.perf_counter() - started)


# ---------------------------------------------------------------- run


def run(quick: bool = False) -> dict[str, Any]:
    from gateway.config import Settings

    rounds, warmup, status_calls = (3, 1, 100) if quick else (10, 1, 500)
    wes_peers.ensure_installed()
    peer_versions = wes_peers.versions()
    settings = Settings()
    samples: dict[str, list[float]] = {name: [] for name in SERIES}
    phases: list[dict[str, float]] = []
    status: dict[str, Sample] = {}
    last_run: dict[str, tuple[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="tre-bench-wes-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        # Every cwltool --podman (plain and the peers') uses the gateway's containers.conf and the shim.
        podman_env = _podman_env()
        shim = root / "shim"
        shim.mkdir()
        podman = subprocess.run(["sh", "-c", "command -v podman"], capture_output=True, text=True,
                                check=True).stdout.strip()
        (shim / "podman").write_text(PODMAN_SHIM.format(podman=podman))
        (shim / "podman").chmod(0o755)
        podman_env["PATH"] = f"{shim}{os.pathsep}{podman_env.get('PATH', '')}"
        cwltool = [sys.executable, "-m", "cwltool", "--quiet"]

        data_dir = root / "gateway-data"
        data_dir.mkdir()
        token = dev_token(data_dir)
        for name in ("wes-service-host", "wes-service-podman", "sapporo", "sapporo/runs"):
            (root / name).mkdir()
        run_sh = wes_peers.sapporo_run_sh(root / "sapporo" / "run.sh")
        peer_env = _peer_env(root, podman_env)
        ports = dict(zip(("gateway", "wes_host", "wes_podman", "sapporo"), free_ports(4), strict=True))
        log(f"wes: starting the gateway, two wes-servers and Sapporo on 127.0.0.1 ({ports})")
        with serve(["-m", "gateway.cli", "serve", "--port", str(ports["gateway"])],
                   env=gateway_env(data_dir, egress_review="automatic"), port=ports["gateway"],
                   ready_path="/healthz", log_file=root / "gateway.log") as gw, \
                serve(wes_peers.wes_server_command(ports["wes_host"], HOST_OPTIONS), program=None,
                            cwd=root / "wes-service-host", env={**peer_env, "TMPDIR": str(root / "wes-service-host")},
                            port=ports["wes_host"], ready_path=f"{WES}/service-info",
                            log_file=root / "wes-service-host.log") as wes_host, \
                serve(wes_peers.wes_server_command(ports["wes_podman"], PODMAN_OPTIONS), program=None,
                            cwd=root / "wes-service-podman",
                            env={**peer_env, "TMPDIR": str(root / "wes-service-podman")},
                            port=ports["wes_podman"], ready_path=f"{WES}/service-info",
                            log_file=root / "wes-service-podman.log") as wes_podman, \
                serve(wes_peers.sapporo_command(ports["sapporo"], root / "sapporo" / "runs", run_sh), program=None,
                            cwd=root / "sapporo", env=peer_env, port=ports["sapporo"], ready_path="/service-info",
                            log_file=root / "sapporo.log") as sapporo, \
                httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as gc, \
                httpx.Client(timeout=60) as pc:
            gw_runs = f"{gw.base_url}{WES}/runs"
            measuring = False

            def gateway() -> float:
                run_id, posted, elapsed = _submit(gc, gw_runs, {})
                last_run["gateway"] = (gw_runs, run_id)
                if measuring:
                    phases.append(_gateway_phases(gc, gw_runs, run_id, posted, elapsed))
                return elapsed

            def peer(name: str, runs_url: str, extra: dict[str, str]) -> Callable[[], float]:
                def sample() -> float:
                    run_id, _, elapsed = _submit(pc, runs_url, extra)
                    last_run[name] = (runs_url, run_id)
                    return elapsed
                return sample

            def sapporo_options(pairs: dict[str, str]) -> dict[str, str]:
                # run.sh appends them to the cwltool command as "KEY VALUE ...", empty values dropped.
                return {"workflow_engine": "cwltool", "workflow_engine_parameters": json.dumps(pairs)}

            counter = iter(range(100_000))
            series: dict[str, Callable[[], float]] = {
                "cwltool_host": lambda: _plain([*cwltool, *HOST_OPTIONS], dict(os.environ), root, next(counter)),
                "cwltool_podman": lambda: _plain([*cwltool, *PODMAN_OPTIONS], podman_env, root, next(counter)),
                "gateway": gateway,
                "wes_service_host": peer("wes_service_host", f"{wes_host.base_url}{WES}/runs", {}),
                "wes_service_podman": peer("wes_service_podman", f"{wes_podman.base_url}{WES}/runs", {}),
                "sapporo_host": peer("sapporo_host", f"{sapporo.base_url}/runs",
                                     sapporo_options({"--no-container": ""})),
                "sapporo_podman": peer("sapporo_podman", f"{sapporo.base_url}/runs",
                                       sapporo_options({"--podman": "", "--default-container": IMAGE})),
            }
            log(f"wes: {warmup} warm-up + {rounds} rounds of {len(series)} series, round-robin")
            for r in range(warmup + rounds):
                measuring = r >= warmup
                order = SERIES[r % len(SERIES):] + SERIES[:r % len(SERIES)]
                for name in order:
                    elapsed = series[name]()
                    if measuring:
                        samples[name].append(elapsed)
                    time.sleep(0.3)  # let the previous run's leftovers (container removal, reaping) settle
                if measuring:
                    log(f"wes: round {r + 1 - warmup}/{rounds}: "
                        + ", ".join(f"{n} {samples[n][-1]:.2f} s" for n in SERIES))

            log(f"wes: GetRunStatus, {status_calls} sequential calls per server on a finished run")
            for name in ("gateway", "wes_service_host", "sapporo_host"):
                base, run_id = last_run[name]
                status[name] = _status_latency(gc if name == "gateway" else pc, f"{base}/{run_id}/status",
                                               status_calls)
    return {
        "rounds": rounds,
        "samples": samples,
        "phases": phases,
        "status": status,
        "status_calls": status_calls,
        "versions": {"cwltool": version("cwltool"), **{f"peer {k}": v for k, v in peer_versions.items()}},
        "dispatcher_poll": settings.dispatcher_poll_seconds,
        "dispatcher_threads": settings.dispatcher_threads,
    }


# ---------------------------------------------------------------- docs/PERFORMANCE.md


def _s(seconds: float) -> str:
    return f"{seconds:.2f}"


def section(r: dict[str, Any], summary: list[list[str]]) -> list[str]:
    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return out + ["| " + " | ".join(row) + " |" for row in rows] + [""]

    def met(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    s = r["samples"]
    med = {name: statistics.median(values) for name, values in s.items()}
    gw, podman, host = med["gateway"], med["cwltool_podman"], med["cwltool_host"]
    st = r["status"]
    peers_host = (med["wes_service_host"], med["sapporo_host"])
    peers_podman = (med["wes_service_podman"], med["sapporo_podman"])
    summary.append([f"WES: POST -> COMPLETE <= {OVERHEAD_AIM}x plain `cwltool --podman` (one-step echo workflow, "
                    "medians)", f"{gw / podman:.2f}x ({_s(gw)} s vs {_s(podman)} s; {gw / host:.2f}x "
                    f"`cwltool --no-container`, {_s(host)} s)", met(gw <= OVERHEAD_AIM * podman)])
    summary.append(["WES: ... and faster than wes-service and Sapporo running the step on the host "
                    "(`--no-container`, their default for this workflow; medians)",
                    f"{_s(gw)} s vs {_s(peers_host[0])} s and {_s(peers_host[1])} s", met(gw < min(peers_host))])
    summary.append(["WES: ... and faster than wes-service and Sapporo running the step in podman like the gateway "
                    "(`--podman`; medians)", f"{_s(gw)} s vs {_s(peers_podman[0])} s and {_s(peers_podman[1])} s",
                    met(gw < min(peers_podman))])
    summary.append([f"WES: GetRunStatus p50 < {STATUS_AIM * 1e3:.0f} ms ({r['status_calls']} sequential calls)",
                    f"p50 {ms(st['gateway'].p50)} ms, p95 {ms(st['gateway'].p95)} ms",
                    met(st["gateway"].p50 < STATUS_AIM)])
    v = r["versions"]
    lines = [
        "## 7. WES: POST -> COMPLETE of a one-step workflow, against plain cwltool and two peer WES servers",
        "",
        "The workflow is `tests/e2e/workflows/echo.cwl`: one CommandLineTool, `echo` of the input string into "
        "`message.txt`, no DockerRequirement. Seven series are measured in one run, round-robin: each round runs "
        "one sample of every series, in an order rotated from round to round, so that machine noise reaches all "
        f"of them alike; one warm-up round is discarded, then {r['rounds']} rounds are measured. All servers run "
        "side by side for the whole run, on 127.0.0.1, each with a temporary directory of its own; nothing is "
        "pulled or fetched.",
        "",
        f"- **plain cwltool** {v['cwltool']} (the gateway's virtualenv), run as a command and timed from its start "
        "to its exit, in two ways: `--no-container` (the step as a host process) and `--podman --default-container "
        "localhost/tre-base:latest` with the gateway's containers.conf (the step in a podman container of the local "
        "base image the gateway's image policy maps `alpine` to; cwltool finds the image and pulls nothing). "
        "Under `--podman` cwltool always adds `--userns=keep-id`, which podman refuses to root; a shim in front of "
        "`podman` drops that one flag when run as root and passes everything else (`--read-only`, `--net=none`, "
        "`--rm`, the mounts).",
        "- **TRE Gateway**: `tre-gateway serve` with its in-process dispatcher and `make run`'s settings "
        f"(podman backend, SQLite, dispatcher poll {r['dispatcher_poll']} s when idle and 0.2 s while anything "
        f"is active, {r['dispatcher_threads']} threads), `TRE_GATEWAY_EGRESS_REVIEW=automatic` so the output is "
        "released without a human. The client POSTs `/ga4gh/wes/v1/runs` (multipart: the workflow as "
        "`workflow_attachment`, the parameters, a dev bearer token) and calls GetRunStatus every 50 ms until "
        "COMPLETE. In between, cwltool runs as the engine, its step runs as a TES task in a sandboxed podman "
        "container, and the final output goes through the airlock in a second TES task and container "
        "(quarantine, automated checks, release); the run's output is checked to be the released file.",
        f"- **wes-service** {v['peer wes-service']} (`wes-server`, backend `wes_service.cwl_runner`) and "
        f"**Sapporo** {v['peer sapporo']}, from a virtualenv of their own (`.tools/bench-peers`, "
        f"`scripts/setup-bench-peers.sh`) with cwltool {v['peer cwltool']}, no authentication (as each ships), "
        "submitted and polled exactly like the gateway, each in two configurations that differ only in cwltool's "
        "options: `--no-container` (the step as a host process: what both do by default with a workflow that has "
        "no DockerRequirement; compare with plain `cwltool --no-container`) and `--podman --default-container "
        "localhost/tre-base:latest` through the same shim (the step in a podman container like the gateway's; "
        "compare with plain `cwltool --podman`). wes-server takes cwltool options server-wide, so there is one "
        "wes-server per configuration; Sapporo takes them per run (`workflow_engine_parameters`). Sapporo's "
        "packaged run.sh runs cwltool inside the `quay.io/commonwl/cwltool` image through a docker socket and, "
        "after COMPLETE, builds an RO-Crate that runs MultiQC in another pulled image; the benchmark's run.sh "
        "(`benchmarks/wes_peers.py`) runs the same cwltool command on the host and skips the RO-Crate, which "
        "only ever ran after COMPLETE was written.",
        "",
    ]
    rows = []
    for name in SERIES:
        values = s[name]
        base = podman if name == "gateway" or name.endswith("podman") else host
        rows.append([LABELS[name], WHERE[name], str(len(values)), _s(min(values)), _s(med[name]),
                     _s(percentile(values, 90)), _s(max(values)), f"{med[name] / host:.2f}x",
                     f"{med[name] / podman:.2f}x", f"{med[name] - base:+.2f}" if "cwltool" not in name else ""])
    lines += table(["series", "step runs", "n", "min s", "median s", "p90 s", "max s", "vs cwltool --no-container",
                    "vs cwltool --podman", "s over its plain cwltool"], rows)
    lines += [
        "The last column is each server's overhead over plain cwltool running the step the same way (medians): "
        "what the WES layer adds. For the gateway that includes the release of the output through the airlock, "
        "which neither plain cwltool nor the peers do.",
        "",
        "### Where the gateway's time goes",
        "",
        "Each gateway sample split by the times the gateway records on the same host clock: the run's start "
        "(the engine process spawned), each TES task's `creation_time` and end (the moment it was saved COMPLETE), "
        "and the step executor's `start_time`/`end_time` (podman's StartedAt/FinishedAt). Medians and p90 over the "
        "samples (medians of parts need not add up to the median total).",
        "",
    ]
    ph = r["phases"]
    total = statistics.median([sum(p.values()) for p in ph])
    def msec(seconds: float) -> str:
        return str(round(seconds * 1e3))  # "0", not "-0", for a container that exits at once

    rows = [[text, msec(statistics.median([p[key] for p in ph])), msec(percentile([p[key] for p in ph], 90))]
            for key, text in PHASES]
    rows.append(["**total**", msec(total), ""])
    lines += table(["phase", "median ms", "p90 ms"], rows)

    def part(keys: list[str]) -> float:
        return float(statistics.median([sum(p[k] for k in keys) for p in ph]))

    engine = part(["engine_to_step_task", "step_task_to_container", "step_container", "step_container_to_task_end",
                   "step_end_to_release_task"])
    release = part(["release", "release_end_to_run_complete"])
    polling = part(["step_container_to_task_end", "step_end_to_release_task", "release_end_to_run_complete",
                    "run_complete_to_client"])
    lines += [
        f"From the engine's start to the release task's creation (cwltool's whole run with its step as a TES task, "
        f"and the dispatcher noticing cwltool's exit) takes {_s(engine)} s at the median, against {_s(podman)} s "
        f"for all of plain `cwltool --podman`: cwltool's own start (Python, loading and validating the workflow) is "
        f"the largest single part. Releasing the output through the airlock (a release task the gateway carries "
        f"itself without a container: quarantine, the checks, delivery, then the run's next turn) adds "
        f"{_s(release)} s, which plain cwltool and the "
        f"peers do not do at all. The rows marked *poll* start with waiting for someone's next poll (the "
        "dispatcher's passes, 0.2 s apart while anything is active; the step command's task polls, backing off "
        f"from 50 to 250 ms; the client's 50 ms) and add up to {_s(polling)} s at the median.",
        "",
        "### GetRunStatus",
        "",
        f"{r['status_calls']} sequential calls on a finished run (COMPLETE) over one keep-alive connection, after "
        "20 warm-up calls; latency is client-side. The gateway's calls carry a dev bearer token (verified on "
        "every call, then the caller's access to the run is checked); the peers' have no authentication.",
        "",
    ]
    rows = []
    for name in ("gateway", "wes_service_host", "sapporo_host"):
        x = st[name]
        rows.append([LABELS[name].replace(", `--no-container`", ""), str(x.n), ms(x.p50), ms(x.p95), ms(x.p99),
                     f"{x.rps:.0f}"])
    lines += table(["server", "n", "p50 ms", "p95 ms", "p99 ms", "req/s"], rows)
    return lines
