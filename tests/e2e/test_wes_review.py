"""A workflow run's final outputs wait in PAUSED for an output checker; only approved ones come out,
in the run's outputs and in its Workflow Run RO-Crate."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import pytest

from tests.e2e.conftest import GatewayProcess
from tests.wes_schema import validate_wes_upstream

pytestmark = pytest.mark.podman

WORKFLOWS = Path(__file__).parent / "workflows"
WES = "/ga4gh/wes/v1"


def _wait(client: httpx.Client, run_id: str, state: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while (log := client.get(f"{WES}/runs/{run_id}").json())["state"] != state:
        assert log["state"] not in ("EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"), log
        assert time.monotonic() < deadline, log["state"]
        time.sleep(0.2)
    return log


def _submit(client: httpx.Client, name: str) -> str:
    with open(WORKFLOWS / name, "rb") as wf:
        created = client.post(f"{WES}/runs", data={
            "workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_url": name, "workflow_params": "{}",
        }, files=[("workflow_attachment", (name, wf))])
    assert created.status_code == 200, created.text
    return str(created.json()["run_id"])


def test_run_paused_for_review_releases_only_approved_outputs(gateway_factory) -> None:
    gw: GatewayProcess = gateway_factory(egress_review="human")
    gw.start()
    alice = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token('alice', 'p1')}"})
    carol = httpx.Client(base_url=gw.base_url,
                         headers={"Authorization": f"Bearer {gw.token('carol', 'p1', 'output_checker')}"})
    run_id = _submit(alice, "summarise.cwl")

    paused = _wait(alice, run_id, "PAUSED")
    validate_wes_upstream("RunLog", paused)
    assert paused["outputs"] == {}  # nothing is shown before review
    waiting = json.loads(paused["run_log"]["system_logs"][-1])
    assert waiting["reason"] == "awaiting_output_review"
    request = carol.get(f"/airlock/v1/requests/{waiting['egress_request']}").json()
    files = {f["path"].rsplit("/", 1)[-1]: f for f in request["files"]}
    # The output object travels as a file of its own, so plain values are reviewed too.
    object_file = f"wes-run-{run_id}-outputs.json"
    assert sorted(files) == ["counts.csv", "summary.txt", object_file]
    assert [c["rule_id"] for c in files["counts.csv"]["checks"] if not c["passed"]] == ["table.small_cells"]
    # The submitter cannot review her own run's outputs.
    own = alice.post(f"/airlock/v1/requests/{request['id']}/files/{files['summary.txt']['file_id']}/decision",
                     json={"verdict": "approve", "reason": "mine"})
    assert own.status_code == 403

    for name, verdict in (("counts.csv", "reject"), ("summary.txt", "approve"), (object_file, "approve")):
        decided = carol.post(f"/airlock/v1/requests/{request['id']}/files/{files[name]['file_id']}/decision",
                             json={"verdict": verdict, "reason": f"{verdict} {name}"})
        assert decided.status_code == 200, decided.text

    done = _wait(alice, run_id, "COMPLETE")
    validate_wes_upstream("RunLog", done)
    assert done["outputs"]["counts"] is None
    summary = Path(unquote(urlparse(done["outputs"]["summary"]["location"]).path))
    assert summary.read_text() == "mean age 51.2\n"
    assert f"/released/p1/runs/{run_id}/" in str(summary)
    assert not (summary.parent / "counts.csv").exists()
    assert "egress_partially_released" in done["run_log"]["system_logs"][-1]

    crate = alice.get(f"{WES}/runs/{run_id}/ro-crate")
    assert crate.status_code == 200 and crate.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(crate.content)) as archive:
        names = set(archive.namelist())
        metadata = json.loads(archive.read("ro-crate-metadata.json"))
        assert archive.read("outputs/summary.txt") == b"mean age 51.2\n"
    assert "workflow/summarise.cwl" in names
    assert not any(n.endswith("counts.csv") for n in names)
    graph = {e["@id"]: e for e in metadata["@graph"]}
    actions = [e for e in graph.values() if "CreateAction" in _types(e)]
    # One for the run, one for the step that ran (the release task is the airlock's, not the workflow's).
    assert len(actions) == 2
    step_actions = [a for a in actions if "tes/v1/tasks/" in str(a.get("identifier", ""))]
    assert len(step_actions) == 1
    assert graph["./"]["mainEntity"]["@id"] == "workflow/summarise.cwl"

    # Another project's researcher cannot see the run, its crate or its logs.
    bob = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token('bob', 'p2')}"})
    for path in ("", "/ro-crate", "/logs/stderr", "/tasks"):
        assert bob.get(f"{WES}/runs/{run_id}{path}").status_code == 404


def test_rejected_outputs_end_the_run_in_system_error(gateway_factory) -> None:
    gw: GatewayProcess = gateway_factory(egress_review="human")
    gw.start()
    alice = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token('alice', 'p1')}"})
    carol = httpx.Client(base_url=gw.base_url,
                         headers={"Authorization": f"Bearer {gw.token('carol', 'p1', 'output_checker')}"})
    run_id = _submit(alice, "summarise.cwl")
    paused = _wait(alice, run_id, "PAUSED")
    request_id = json.loads(paused["run_log"]["system_logs"][-1])["egress_request"]
    for f in carol.get(f"/airlock/v1/requests/{request_id}").json()["files"]:
        carol.post(f"/airlock/v1/requests/{request_id}/files/{f['file_id']}/decision",
                   json={"verdict": "reject", "reason": "not for release"})
    failed = _wait(alice, run_id, "SYSTEM_ERROR")
    assert failed["outputs"] == {}
    assert json.loads(failed["run_log"]["system_logs"][-1])["reason"] == "egress_rejected"
    assert not (gw.data_dir / "store" / "released" / "p1" / "runs" / run_id).exists()


def _types(entity: dict) -> list[str]:
    value = entity.get("@type", [])
    return [value] if isinstance(value, str) else list(value)
