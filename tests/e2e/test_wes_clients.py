"""WES end to end: real clients from PyPI against a running gateway on podman.

The workflow has two steps, a scatter over three names, and a file passed from the first step to the
second; its outputs are compared with what plain cwltool produces for the same workflow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import pytest

from tests.e2e.conftest import REPO, GatewayProcess, containers_of
from tests.wes_schema import validate_wes_upstream

pytestmark = pytest.mark.podman

WORKFLOWS = Path(__file__).parent / "workflows"
CLIENTS = REPO / ".tools" / "wes-clients" / "bin"
WES = "/ga4gh/wes/v1"
ATTACHMENTS = ["header.txt", "tools/greet.cwl", "tools/combine.cwl"]
EXPECTED_REPORT = "# greetings\nhello ada\nhello grace\nhello alan\n"


def _sha1(path: Path) -> str:
    return "sha1$" + hashlib.sha1(path.read_bytes()).hexdigest()  # noqa: S324 - CWL's checksum


def _local(location: str) -> Path:
    return Path(unquote(urlparse(location).path))


@pytest.fixture(scope="module")
def plain_cwltool_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What the reference runner produces for the same workflow (commands run on the host)."""
    out = tmp_path_factory.mktemp("plain")
    result = subprocess.run(
        [sys.executable, "-m", "cwltool", "--no-container", "--quiet", "--outdir", str(out),
         str(WORKFLOWS / "greet-all.cwl"), str(WORKFLOWS / "greet-all.json")],
        check=True, capture_output=True, text=True,
    )
    return json.loads(result.stdout)["report"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of the workflow folder, as a researcher's checkout (clients name files relative to it)."""
    target = tmp_path / "checkout"
    shutil.copytree(WORKFLOWS, target)
    return target


def _basic(gw: GatewayProcess, user: str = "alice") -> tuple[str, str]:
    token = subprocess.run(
        [str(Path(sys.executable).parent / "tre-gateway"), "token", "--basic", "--user", user, "--project", "p1"],
        env=gw.env, check=True, capture_output=True, text=True,
    ).stdout.strip()
    return user, token


def _client_env(tmp_path: Path, gw: GatewayProcess, user: str, password: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {user} password {password}\n")
    netrc.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WES_", "TOIL_"))}
    # The clients' own tools (toil-wes-cwl-runner calls `cwltool` to find a workflow's dependencies).
    path = f"{CLIENTS}{os.pathsep}{env.get('PATH', '')}"
    return {**env, "PATH": path, "HOME": str(home), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}


def _wait_state(client: httpx.Client, run_id: str, states: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"{WES}/runs/{run_id}/status").json()
        if status["state"] in states:
            return status
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {status} after {timeout}s")


def _check_report(outputs: dict, reference: dict) -> Path:
    report = outputs["report"]
    path = _local(report["location"])
    assert path.read_text() == EXPECTED_REPORT
    assert report["checksum"] == reference["checksum"] == _sha1(path)
    assert report["size"] == reference["size"]
    assert report["basename"] == reference["basename"] == "report.txt"
    return path


def test_wes_client_run_wait_log_list_get(gateway: GatewayProcess, workdir: Path, tmp_path: Path,
                                          plain_cwltool_report: dict) -> None:
    user, password = _basic(gateway)
    env = _client_env(tmp_path, gateway, user, password)
    host = ["--host", f"127.0.0.1:{gateway.port}", "--proto", "http"]
    wes_client = str(CLIENTS / "wes-client")

    ran = subprocess.run(
        [wes_client, *host, "--attachments", ",".join(ATTACHMENTS), "greet-all.cwl", "greet-all.json"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    outputs = json.loads(ran.stdout)
    released = _check_report(outputs, plain_cwltool_report)
    assert "/released/p1/runs/" in str(released)
    run_id = released.parent.name
    # The client fetched the engine log through the absolute stderr URL with its .netrc credentials.
    assert "Final process status is success" in ran.stderr

    log = subprocess.run([wes_client, *host, "--log", run_id], env=env, capture_output=True, text=True)
    assert log.returncode == 0 and "[step combine] completed success" in log.stdout

    listed = subprocess.run([wes_client, *host, "--list"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    validate_wes_upstream("RunListResponse", runs)
    assert [r["state"] for r in runs["runs"] if r["run_id"] == run_id] == ["COMPLETE"]

    got = subprocess.run([wes_client, *host, "--get", run_id], env=env, capture_output=True, text=True)
    assert got.returncode == 0, got.stderr
    run_log = json.loads(got.stdout)
    validate_wes_upstream("RunLog", run_log)
    assert run_log["state"] == "COMPLETE" and run_log["run_log"]["exit_code"] == 0
    assert run_log["request"]["workflow_engine"] == "cwltool"  # the client sent none: the default applies

    # One TES task per step executed (three scattered greetings, one combine) plus the release task.
    with httpx.Client(base_url=gateway.base_url, auth=(user, password)) as client:
        tasks = client.get(f"{WES}/runs/{run_id}/tasks").json()
        validate_wes_upstream("TaskListResponse", tasks)
        commands = sorted(t["cmd"][0] for t in tasks["task_logs"])
        assert commands == ["cat", "echo", "echo", "echo", "true"]
        for task_log in tasks["task_logs"]:
            tes = client.get(task_log["tes_uri"], params={"view": "BASIC"})
            assert tes.status_code == 200 and tes.json()["state"] == "COMPLETE"
            assert tes.json()["tags"]["wes_run"] == run_id
            single = client.get(f"{WES}/runs/{run_id}/tasks/{task_log['id']}").json()
            validate_wes_upstream("TaskLog", single)
            assert single["id"] == task_log["id"]
        echo = next(t for t in tasks["task_logs"] if t["cmd"][0] == "echo")
        assert client.get(echo["stdout"]).text.startswith("hello ")


def test_toil_wes_cwl_runner(gateway: GatewayProcess, workdir: Path, tmp_path: Path,
                             plain_cwltool_report: dict) -> None:
    user, password = _basic(gateway)
    env = {**_client_env(tmp_path, gateway, user, password), "TOIL_WES_USER": user, "TOIL_WES_PASSWORD": password}
    ran = subprocess.run(
        [str(CLIENTS / "toil-wes-cwl-runner"), "--wes_endpoint", gateway.base_url,
         "greet-all.cwl", "greet-all.json", "--parallel", "--timestamps"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )
    assert ran.returncode == 0, ran.stderr + ran.stdout
    outputs = json.loads(ran.stdout)
    released = _check_report(outputs, plain_cwltool_report)
    with httpx.Client(base_url=gateway.base_url, auth=(user, password)) as client:
        run_log = client.get(f"{WES}/runs/{released.parent.name}").json()
    validate_wes_upstream("RunLog", run_log)
    # The engine parameters the client passed reached the engine.
    assert run_log["request"]["workflow_engine_parameters"] == {"--parallel": "true", "--timestamps": "true"}
    assert "--timestamps" in run_log["run_log"]["cmd"]


def test_cancel_stops_engine_and_every_step(gateway: GatewayProcess, workdir: Path) -> None:
    token = gateway.token()
    (workdir / "sleep.cwl").write_text(
        "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [sleep, '300']\ninputs: []\noutputs: []\n"
    )
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        with open(workdir / "sleep.cwl", "rb") as wf:
            created = client.post(f"{WES}/runs", data={
                "workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_url": "sleep.cwl",
                "workflow_params": "{}"}, files=[("workflow_attachment", ("sleep.cwl", wf))])
        assert created.status_code == 200, created.text
        run_id = created.json()["run_id"]
        deadline = time.monotonic() + 60
        step = None
        while time.monotonic() < deadline and step is None:
            tasks = client.get(f"{WES}/runs/{run_id}/tasks").json()["task_logs"]
            running = [t for t in tasks if client.get(t["tes_uri"]).json()["state"] == "RUNNING"]
            step = running[0] if running else None
            time.sleep(0.2)
        assert step is not None, "the step never started"
        assert containers_of(step["id"]), "the step's container should be running"
        engine_pid = client.get(f"{WES}/runs/{run_id}").json()
        assert client.post(f"{WES}/runs/{run_id}/cancel").json() == {"run_id": run_id}
        final = _wait_state(client, run_id, {"CANCELED"}, timeout=60)
        validate_wes_upstream("RunStatus", final)
        assert client.get(step["tes_uri"]).json()["state"] == "CANCELED"
        deadline = time.monotonic() + 30
        while containers_of(step["id"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert containers_of(step["id"]) == []
        assert [c for c in containers_of(instance=gateway.instance) if c.get("State") == "running"] == []
        assert engine_pid["state"] in ("RUNNING", "INITIALIZING")
        engine = subprocess.run(["pgrep", "-f", f"runs/{run_id}/engine"], capture_output=True, text=True)
        assert engine.stdout.strip() == "", "the engine process should be gone"
