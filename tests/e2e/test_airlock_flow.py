"""The airlock end to end on podman: a flagged CSV is rejected, a summary approved, only it reaches the researcher,
and the audit log records every step, verifies, and fails verification once one row is edited."""

from __future__ import annotations

import sqlite3
import subprocess
import time

import httpx

from tests.e2e.conftest import BIN

COUNTS = "sex,age_band,n\nF,40-49,3\nM,40-49,27\nF,50-59,14\n"


def test_small_cell_csv_rejected_summary_released_and_audit_verifies(gateway_factory):
    gw = gateway_factory(egress_review="human")
    gw.start()
    alice = {"Authorization": f"Bearer {gw.token('alice', 'p1', 'researcher')}"}
    carol = {"Authorization": f"Bearer {gw.token('carol', 'p1', 'output_checker')}"}
    bob = {"Authorization": f"Bearer {gw.token('bob', 'p2', 'researcher')}"}
    tes, airlock = gw.base_url + "/ga4gh/tes/v1", gw.base_url + "/airlock/v1"
    script = f"printf '{COUNTS}' > /out/counts.csv && echo 'mean age 51.2' > /out/summary.txt"
    body = {
        "name": "airlock-e2e",
        "executors": [{"image": "alpine", "command": ["sh", "-c", script]}],
        "outputs": [
            {"path": "/out/counts.csv", "url": gw.released_url("p1", "counts.csv")},
            {"path": "/out/summary.txt", "url": gw.released_url("p1", "summary.txt")},
        ],
    }
    task_id = httpx.post(tes + "/tasks", json=body, headers=alice).json()["id"]
    deadline = time.monotonic() + 60
    while (task := httpx.get(f"{tes}/tasks/{task_id}", params={"view": "FULL"}, headers=alice).json())["state"] != (
        "PAUSED"
    ):
        assert time.monotonic() < deadline, task["state"]
        time.sleep(0.2)
    request_id = task["logs"][0]["metadata"]["egress_request"]

    request = httpx.get(f"{airlock}/requests/{request_id}", headers=carol).json()
    files = {f["path"]: f for f in request["files"]}
    csv_file, txt_file = files["/out/counts.csv"], files["/out/summary.txt"]
    failed = [c["rule_id"] for c in csv_file["checks"] if not c["passed"]]
    assert failed == ["table.small_cells"], csv_file["checks"]
    assert txt_file["checks_passed"] is True
    preview = httpx.get(f"{airlock}/requests/{request_id}/files/{csv_file['file_id']}/preview", headers=carol).json()
    assert preview["header"] == ["sex", "age_band", "n"]
    assert preview["flagged"] == [[0, 2]]  # the 3 in the first data row

    # Bypass attempts: the researcher cannot read quarantine by any route, nor review her own outputs.
    for route in ("content", "preview"):
        r = httpx.get(f"{airlock}/requests/{request_id}/files/{csv_file['file_id']}/{route}", headers=alice)
        assert r.status_code == 403, r.text
    r = httpx.get(f"{airlock}/requests/{request_id}/files/{csv_file['file_id']}/content", headers=bob)
    assert r.status_code == 404
    for file_id in ("0", "1"):
        assert httpx.get(f"{airlock}/requests/{request_id}/files/{file_id}/released", headers=alice).status_code == 404
    assert not (gw.data_dir / "store" / "released" / "p1").exists()

    r = httpx.post(f"{airlock}/requests/{request_id}/files/{csv_file['file_id']}/decision",
                   json={"verdict": "reject", "reason": "cell of 3 in a frequency table"}, headers=carol)
    assert r.status_code == 200, r.text
    r = httpx.post(f"{airlock}/requests/{request_id}/files/{txt_file['file_id']}/decision",
                   json={"verdict": "approve", "reason": "aggregate only"}, headers=carol)
    assert r.json()["state"] == "PARTIALLY_RELEASED"

    download = httpx.get(f"{airlock}/requests/{request_id}/files/{txt_file['file_id']}/released", headers=alice)
    assert download.status_code == 200 and download.text == "mean age 51.2\n"
    refused = httpx.get(f"{airlock}/requests/{request_id}/files/{csv_file['file_id']}/released", headers=alice)
    assert refused.status_code == 404
    released = sorted(p.name for p in (gw.data_dir / "store" / "released" / "p1").iterdir())
    assert released == ["summary.txt"]
    task = httpx.get(f"{tes}/tasks/{task_id}", params={"view": "FULL"}, headers=alice).json()
    assert task["state"] == "COMPLETE"
    assert [o["path"] for o in task["logs"][0]["outputs"]] == ["/out/summary.txt"]
    assert "egress_partially_released" in task["logs"][0]["system_logs"][-1]

    env = gw.env
    verify = subprocess.run([str(BIN), "audit", "verify"], env=env, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    export = subprocess.run([str(BIN), "audit", "export"], env=env, capture_output=True, text=True, check=True)
    actions = [line for line in export.stdout.splitlines() if task_id in line or request_id in line]
    for step in ("task.submitted", "egress.checked", "egress.requested", "access.denied", "egress.decision",
                 "egress.released", "egress.downloaded"):
        assert any(f'"action": "{step}"' in line for line in actions), step

    with sqlite3.connect(gw.data_dir / "gateway.db") as db:
        db.execute("UPDATE audit_events SET actor = 'mallory' WHERE action = 'egress.decision'")
    tampered = subprocess.run([str(BIN), "audit", "verify"], env=env, capture_output=True, text=True)
    assert tampered.returncode == 1
    assert "altered" in tampered.stdout
