"""The workflow engine reads only what its run may read: `$include` of another project's data or of the
gateway's own secrets fails, while the project's own inputs are readable (so the refusal is not vacuous)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import GatewayProcess

pytestmark = pytest.mark.podman

WES = "/ga4gh/wes/v1"
TOOL = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
arguments:
  - $include: {path}
inputs: []
outputs: []
"""


def _run(client: httpx.Client, include: str) -> dict:
    created = client.post(f"{WES}/runs", data={
        "workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_url": "leak.cwl", "workflow_params": "{}",
    }, files=[("workflow_attachment", ("leak.cwl", TOOL.format(path=include).encode()))])
    assert created.status_code == 200, created.text
    run_id = created.json()["run_id"]
    deadline = time.monotonic() + 90
    while (log := client.get(f"{WES}/runs/{run_id}").json())["state"] not in (
            "COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"):
        assert time.monotonic() < deadline, log["state"]
        time.sleep(0.2)
    return log


def _everything_the_researcher_sees(client: httpx.Client, log: dict) -> str:
    seen = [str(log), client.get(log["run_log"]["stderr"]).text, client.get(log["run_log"]["stdout"]).text]
    for task in client.get(log["task_logs_url"]).json()["task_logs"]:
        seen += [str(task), client.get(task["tes_uri"], params={"view": "FULL"}).text]
    return "\n".join(seen)


def test_engine_cannot_read_other_projects_or_gateway_secrets(gateway_factory) -> None:
    gw: GatewayProcess = gateway_factory(egress_review="automatic")
    gw.start()
    store = gw.data_dir / "store"
    own = store / "inputs" / "p1" / "note.txt"
    other = store / "inputs" / "p2" / "cohort.csv"
    for path, text in ((own, "OWN-PROJECT-NOTE"), (other, "OTHER-PROJECT-SECRET-ROW")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    secret = (gw.data_dir / "dev-jwt-secret").read_text().strip()
    assert len(secret) >= 16
    client = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token('alice', 'p1')}"})

    allowed = _run(client, str(own))
    assert allowed["state"] == "COMPLETE", allowed
    assert "OWN-PROJECT-NOTE" in _everything_the_researcher_sees(client, allowed)

    for target, text in ((other, "OTHER-PROJECT-SECRET-ROW"), (gw.data_dir / "dev-jwt-secret", secret),
                         (gw.data_dir / "gateway.db", "CREATE TABLE")):
        refused = _run(client, str(target))
        assert refused["state"] in ("EXECUTOR_ERROR", "SYSTEM_ERROR"), refused
        assert text not in _everything_the_researcher_sees(client, refused)
        assert client.get(refused["task_logs_url"]).json()["task_logs"] == []  # no step ever ran
