"""kill -9 of the worker that runs a workflow engine: after a restart the run ends in SYSTEM_ERROR
(`engine_lost`), its step is cancelled, and no container or engine process is left behind."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.e2e.conftest import GatewayProcess, containers_of

pytestmark = pytest.mark.podman

SLEEP = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [sleep, '300']\ninputs: []\noutputs: []\n"


def test_lost_engine_ends_the_run_and_stops_its_steps(gateway_factory) -> None:
    gw: GatewayProcess = gateway_factory(egress_review="human", dispatcher_lease_seconds="2")
    gw.start(dispatcher=False)
    gw.start_worker()
    client = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token()}"})
    created = client.post("/ga4gh/wes/v1/runs", data={
        "workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_url": "sleep.cwl", "workflow_params": "{}",
    }, files=[("workflow_attachment", ("sleep.cwl", SLEEP.encode()))])
    run_id = created.json()["run_id"]
    deadline = time.monotonic() + 60
    step = None
    while step is None:
        assert time.monotonic() < deadline, "the step never started"
        tasks = client.get(f"/ga4gh/wes/v1/runs/{run_id}/tasks").json()["task_logs"]
        running = [t for t in tasks if client.get(t["tes_uri"]).json()["state"] == "RUNNING"]
        step = running[0] if running else None
        time.sleep(0.2)

    gw.kill9("worker")
    gw.start_worker()
    deadline = time.monotonic() + 60
    while (log := client.get(f"/ga4gh/wes/v1/runs/{run_id}").json())["state"] != "SYSTEM_ERROR":
        assert time.monotonic() < deadline, log["state"]
        time.sleep(0.2)
    assert json.loads(log["run_log"]["system_logs"][-1])["reason"] == "engine_lost"
    deadline = time.monotonic() + 60
    while client.get(step["tes_uri"]).json()["state"] != "CANCELED":
        assert time.monotonic() < deadline, client.get(step["tes_uri"]).json()
        time.sleep(0.2)
    while containers_of(step["id"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert containers_of(step["id"]) == []
    engine = subprocess.run(["pgrep", "-f", f"runs/{run_id}/"], capture_output=True, text=True)
    assert engine.stdout.strip() == "", "no engine or step command of the lost run should be left"
