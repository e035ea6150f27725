"""Shared pieces of the benchmarks: servers in subprocesses, dev tokens, timing and statistics."""

from __future__ import annotations

import math
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
PROJECT = "bench"
USER = "bench-user"


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that are free right now (the kernel picks them)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def dev_token(data_dir: Path, user: str = USER, projects: tuple[str, ...] = (PROJECT,)) -> str:
    """A dev-mode bearer token signed with the data directory's secret (created if missing)."""
    from gateway.adapters.auth.jwt_tokens import load_or_create_dev_secret, mint_dev_token

    secret = load_or_create_dev_secret(data_dir / "dev-jwt-secret")
    return mint_dev_token(secret, user, list(projects), ["researcher"], lifetime_seconds=6 * 3600)


def gateway_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a gateway subprocess: only benchmark-controlled TRE_GATEWAY_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRE_GATEWAY_")}
    env.update(
        TRE_GATEWAY_DATA_DIR=str(data_dir),
        TRE_GATEWAY_LOG_JSON="true",
        TRE_GATEWAY_LOG_LEVEL="INFO",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update({f"TRE_GATEWAY_{k.upper()}": v for k, v in extra.items()})
    return env


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_file: Path


@contextmanager
def serve(
    args: list[str], *, env: Mapping[str, str], port: int, ready_path: str, log_file: Path, timeout: float = 60.0,
    program: str | None = sys.executable, cwd: Path = REPO,
) -> Iterator[Server]:
    """Run `PROGRAM ARGS` (python by default; None: ARGS is the whole command) on 127.0.0.1:`port` until the
    block ends; wait until `ready_path` answers 200."""
    base = f"http://127.0.0.1:{port}"
    command = [program, *args] if program else list(args)
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log_file)}")
            try:
                if httpx.get(base + ready_path, timeout=10.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not become ready in {timeout} s:\n{_tail(log_file)}")
            time.sleep(0.1)
        yield Server(base, proc, log_file)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100.0 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Sample:
    """Latencies (seconds) of one measured series and the wall time it took."""

    latencies: list[float]
    wall: float

    @property
    def n(self) -> int:
        return len(self.latencies)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 95)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    @property
    def rps(self) -> float:
        return self.n / self.wall if self.wall > 0 else float("nan")

    @staticmethod
    def merge(samples: list[Sample]) -> Sample:
        return Sample([x for s in samples for x in s.latencies], sum(s.wall for s in samples))

    def summary(self) -> dict[str, Any]:
        return {"n": self.n, "p50_ms": self.p50 * 1e3, "p95_ms": self.p95 * 1e3, "rps": self.rps}


def time_calls(fn: Callable[[], Any], count: int) -> Sample:
    """Call `fn` `count` times in a row, timing each call."""
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        fn()
        latencies.append(time.perf_counter() - t0)
    return Sample(latencies, time.perf_counter() - started)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)
