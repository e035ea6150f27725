"""CWL features through the gateway on podman: a packed workflow named with `#main`, a subworkflow, a File
with a secondary file, a Directory input from the attachments and a Directory output. The released
outputs match what plain cwltool produces for the same workflow."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import pytest

from tests.e2e.conftest import GatewayProcess
from tests.wes_schema import validate_wes_upstream

pytestmark = pytest.mark.podman

FEATURES = Path(__file__).parent / "workflows" / "features"
ATTACHMENTS = ["packed.cwl", "reads.txt", "reads.txt.idx", "ref/a.txt", "ref/b.txt"]


def _files(output: dict) -> dict[str, str]:
    """basename -> checksum of every file an output object holds (Directory listings included)."""
    found: dict[str, str] = {}
    if output.get("class") == "File":
        found[output["basename"]] = output["checksum"]
    for entry in output.get("listing", []):
        found.update({f"{output['basename']}/{k}": v for k, v in _files(entry).items()})
    return found


def test_packed_workflow_with_subworkflow_secondary_files_and_directories(gateway: GatewayProcess,
                                                                          tmp_path: Path) -> None:
    plain = subprocess.run(
        [sys.executable, "-m", "cwltool", "--no-container", "--quiet", "--outdir", str(tmp_path / "plain"),
         str(FEATURES / "packed.cwl") + "#main", str(FEATURES / "packed.json")],
        check=True, capture_output=True, text=True,
    )
    reference = json.loads(plain.stdout)

    client = httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {gateway.token()}"})
    files = [("workflow_attachment", (name, (FEATURES / name).read_bytes())) for name in ATTACHMENTS]
    created = client.post("/ga4gh/wes/v1/runs", data={
        "workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_url": "packed.cwl#main",
        "workflow_params": (FEATURES / "packed.json").read_text()}, files=files)
    assert created.status_code == 200, created.text
    run_id = created.json()["run_id"]
    deadline = time.monotonic() + 120
    while (log := client.get(f"/ga4gh/wes/v1/runs/{run_id}").json())["state"] != "COMPLETE":
        assert log["state"] in ("QUEUED", "INITIALIZING", "RUNNING"), client.get(log["run_log"]["stderr"]).text
        assert time.monotonic() < deadline
        time.sleep(0.25)
    validate_wes_upstream("RunLog", log)

    outputs = log["outputs"]
    for name in ("counted", "bundle"):
        assert _files(outputs[name]) == _files(reference[name]), name
    bundle = Path(unquote(urlparse(outputs["bundle"]["location"]).path))
    assert f"/released/p1/runs/{run_id}/" in str(bundle)
    assert (bundle / "names.txt").read_text() == "a.txt\nb.txt\n"
    assert (bundle / "counted.txt").read_text() == "3\nindex of reads\n"
    # Two tool steps ran as TES tasks (inside the subworkflow), plus the release.
    tasks = client.get(f"/ga4gh/wes/v1/runs/{run_id}/tasks").json()["task_logs"]
    assert sorted(t["name"] for t in tasks) == ["count", "pack", "release outputs"]
