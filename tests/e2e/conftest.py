"""A real `tre-gateway` server (and worker) as subprocesses, on podman, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config import Settings
from tests.pg import free_port

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/tre-base:latest"
BIN = Path(sys.executable).parent / "tre-gateway"


class GatewayProcess:
    def __init__(self, data_dir: Path, **settings: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "TRE_GATEWAY_DATA_DIR": str(data_dir),
            "TRE_GATEWAY_PORT": str(self.port),
            "TRE_GATEWAY_DISPATCHER_POLL_SECONDS": "0.2",
            **{f"TRE_GATEWAY_{k.upper()}": v for k, v in settings.items()},
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, *, dispatcher: bool = True) -> None:
        args = [str(BIN), "serve"] + ([] if dispatcher else ["--no-dispatcher"])
        log = open(self.data_dir / "serve.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs["serve"] = subprocess.Popen(args, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.procs["serve"].poll() is not None:
                raise RuntimeError((self.data_dir / "serve.log").read_text()[-3000:])
            time.sleep(0.1)
        raise RuntimeError("gateway did not start")

    def start_worker(self) -> None:
        log = open(self.data_dir / "worker.log", "ab")  # noqa: SIM115
        self.procs["worker"] = subprocess.Popen([str(BIN), "worker"], env=self.env, stdout=log, stderr=log)

    def kill9(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for name in list(self.procs):
            proc = self.procs.pop(name)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def token(self, user: str = "alice", project: str = "p1", *roles: str) -> str:
        args = [str(BIN), "token", "--user", user, "--project", project]
        for role in roles or ("researcher",):
            args += ["--role", role]
        return subprocess.run(args, env=self.env, check=True, capture_output=True, text=True).stdout.strip()

    @property
    def instance(self) -> str:
        """The label this gateway puts on its containers (see Settings.resolved_instance_id)."""
        return Settings.load({}, data_dir=str(self.data_dir)).resolved_instance_id

    def released_url(self, project: str, name: str) -> str:
        return f"file://{(self.data_dir / 'store' / 'released' / project / name).resolve()}"


def containers_of(task_id: str | None = None, instance: str | None = None) -> list[dict]:
    selector = f"label=tre.task={task_id}" if task_id else "label=tre.task"
    filters = ["--filter", selector] + (["--filter", f"label=tre.instance={instance}"] if instance else [])
    out = subprocess.run(
        ["podman", "ps", "-a", *filters, "--format", "json"], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out or "[]")


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator:
    started: list[GatewayProcess] = []

    def make(**settings: str) -> GatewayProcess:
        gw = GatewayProcess(tmp_path / f"gw{len(started)}", **settings)
        gw.data_dir.mkdir()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()
        for c in containers_of():
            if str(gw.data_dir) in json.dumps(c.get("Mounts", [])):
                subprocess.run(["podman", "rm", "-f", "-t", "0", c["Id"]], capture_output=True)


@pytest.fixture
def gateway(gateway_factory) -> GatewayProcess:
    gw = gateway_factory(egress_review="automatic")
    gw.start()
    return gw
