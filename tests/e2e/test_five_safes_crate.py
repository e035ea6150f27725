"""Five Safes RO-Crate end to end on podman: the profile's 0.4 example request crate goes through intake,
sign-off, execution and disclosure (one output rejected, one approved); the result crate validates against
the Five Safes shapes, holds only the approved file and records every phase with its status and agents.
Malformed crates are refused with a Failed action in the returned crate, and nothing of them runs."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from gateway.adapters.crates.bagit import verify_bag, write_bag_zip
from gateway.adapters.crates.shacl import validate_metadata
from tests.e2e.conftest import GatewayProcess

pytestmark = pytest.mark.podman

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "five-safes-crate"
EXAMPLE = SHARED / "0.4" / "example-request"
WORKFLOW_ID = "https://workflowhub.eu/workflows/289?version=1"
API = "/five-safes/v1"

# The TRE's mirrored copy of the requested workflow: a small stand-in with the same parameters.
MAIN_CWL = """cwlVersion: v1.2
class: CommandLineTool
doc: Mirror copy for tests. Counts the requested mutations and summarises them.
baseCommand: [sh, -c]
arguments:
  - valueFrom: >-
      n=`grep -c . $(inputs['input-sequence'].path)`;
      printf 'chain,n\\nA,%s\\n' "$n" > counts.csv;
      echo "mutations requested: $n (fast mode $(inputs['fast-mode']))" > summary.txt
inputs:
  input-sequence: File
  fast-mode: string
outputs:
  counts:
    type: File
    outputBinding: {glob: counts.csv}
  summary:
    type: File
    outputBinding: {glob: summary.txt}
"""
WORKFLOW_CRATE = {
    "@context": "https://w3id.org/ro/crate/1.1/context",
    "@graph": [
        {"@id": "ro-crate-metadata.json", "@type": "CreativeWork", "about": {"@id": "./"},
         "conformsTo": {"@id": "https://w3id.org/ro/crate/1.1"}},
        {"@id": "./", "@type": "Dataset", "name": "Mutation summary", "mainEntity": {"@id": "main.cwl"},
         "hasPart": [{"@id": "main.cwl"}]},
        {"@id": "main.cwl", "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow"], "name": "main"},
    ],
}


@pytest.fixture
def mirror(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "mirror"
    folder.mkdir()
    archive = folder / "workflow-289-v1.crate.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("main.cwl", MAIN_CWL)
        z.writestr("ro-crate-metadata.json", json.dumps(WORKFLOW_CRATE))
    (folder / "index.json").write_text(json.dumps({WORKFLOW_ID: archive.name}))
    return folder, "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()


def request_bag(tmp_path: Path, *, edit=None, name: str = "request") -> bytes:
    """The example request as a valid bag: its metadata and input, re-bagged with fresh manifests.

    (The shared example folder's own manifests list files the folder lacks, so it is not a valid bag as
    it stands; that case is tested below.)"""
    payload = tmp_path / f"{name}-payload"
    payload.mkdir()
    shutil.copy(EXAMPLE / "data" / "input1.txt", payload / "input1.txt")
    metadata = json.loads((EXAMPLE / "data" / "ro-crate-metadata.json").read_text())
    if edit is not None:
        edit(metadata)
    (payload / "ro-crate-metadata.json").write_text(json.dumps(metadata))
    target = tmp_path / f"{name}.zip"
    write_bag_zip(payload, target, bag_name=name)
    return target.read_bytes()


def _graph(metadata: dict) -> dict[str, dict]:
    return {e["@id"]: e for e in metadata["@graph"]}


def _by_additional_type(graph: dict[str, dict], kind: str) -> dict:
    found = [e for e in graph.values() if str(e.get("additionalType", {}).get("@id", "")).endswith("#" + kind)]
    assert len(found) == 1, (kind, found)
    return found[0]


def _submit(client: httpx.Client, data: bytes, project: str = "p1") -> httpx.Response:
    return client.post(f"{API}/submissions", data={"project": project},
                       files=[("crate", ("request.zip", data, "application/zip"))])


def _wait(client: httpx.Client, submission_id: str, states: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while (doc := client.get(f"{API}/submissions/{submission_id}").json())["state"] not in states:
        assert doc["state"] not in ("REJECTED", "FAILED"), doc
        assert time.monotonic() < deadline, doc
        time.sleep(0.25)
    return doc


def _returned_crate(client: httpx.Client, submission_id: str, tmp_path: Path) -> dict:
    download = client.get(f"{API}/submissions/{submission_id}/crate")
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    target = tmp_path / f"returned-{submission_id}"
    with zipfile.ZipFile(io.BytesIO(download.content)) as z:
        z.extractall(target)
    (bag,) = list(target.iterdir())
    assert "sha512" in verify_bag(bag)  # the manifests were regenerated and hold
    return json.loads((bag / "data" / "ro-crate-metadata.json").read_text()) | {"_bag": str(bag)}


def test_example_request_runs_through_every_phase(gateway_factory, mirror, tmp_path: Path) -> None:
    folder, checksum = mirror
    gw: GatewayProcess = gateway_factory(egress_review="human", five_safes_workflow_mirror=str(folder))
    gw.start()
    admin = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token('root', 'p1', 'admin')}"})
    alice = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token('alice', 'p1')}"})
    carol = httpx.Client(base_url=gw.base_url,
                         headers={"Authorization": f"Bearer {gw.token('carol', 'p1', 'output_checker')}"})
    policy = {"automatic_sign_off": True, "approved_workflows": [
        {"workflow_id": "https://workflowhub.eu/workflows/289", "version": "1", "checksum": checksum}]}
    assert admin.put(f"{API}/projects/p1/crate-policy", json=policy).json() == policy

    accepted = _submit(alice, request_bag(tmp_path))
    assert accepted.status_code == 202, accepted.text
    submission = accepted.json()
    assert submission["state"] == "EXECUTING" and submission["profile"] == "0.4"
    assert submission["workflow"] == {"id": WORKFLOW_ID, "version": "1"}
    statuses = {p["phase"]: p["status"] for p in submission["phases"]}
    assert statuses == {"check": "CompletedActionStatus", "validation": "CompletedActionStatus",
                        "workflow_retrieval": "CompletedActionStatus", "sign_off": "CompletedActionStatus",
                        "execution": "ActiveActionStatus"}

    waiting = _wait(alice, submission["id"], {"AWAITING_DISCLOSURE"})
    run = alice.get(f"/ga4gh/wes/v1/runs/{waiting['run_id']}").json()
    assert run["state"] == "PAUSED" and run["request"]["workflow_params"]["fast-mode"] == "True"
    request_id = json.loads(run["run_log"]["system_logs"][-1])["egress_request"]
    files = {f["path"].rsplit("/", 1)[-1]: f for f in carol.get(f"/airlock/v1/requests/{request_id}").json()["files"]}
    for name, f in files.items():
        verdict = "reject" if name == "counts.csv" else "approve"
        r = carol.post(f"/airlock/v1/requests/{request_id}/files/{f['file_id']}/decision",
                       json={"verdict": verdict, "reason": f"{verdict}: {name}"})
        assert r.status_code == 200, r.text

    published = _wait(alice, submission["id"], {"PUBLISHED"})
    statuses = {p["phase"]: p["status"] for p in published["phases"]}
    assert set(statuses.values()) == {"CompletedActionStatus"} and len(statuses) == 7
    disclosure = next(p for p in published["phases"] if p["phase"] == "disclosure")
    assert disclosure["agents"] == ["#person-carol"]

    crate = _returned_crate(alice, submission["id"], tmp_path)
    bag = Path(crate.pop("_bag"))
    report = validate_metadata(crate)
    assert report.violations == (), report.summary()
    payload = sorted(p.relative_to(bag / "data").as_posix() for p in (bag / "data").rglob("*") if p.is_file())
    assert payload == ["input1.txt", "outputs/summary.txt", "ro-crate-metadata.json"]
    assert (bag / "data" / "outputs" / "summary.txt").read_text() == "mutations requested: 3 (fast mode True)\n"
    graph = _graph(crate)
    create = next(e for e in graph.values() if e.get("@type") == "CreateAction")
    assert create["actionStatus"] == "http://schema.org/CompletedActionStatus"
    assert [r["@id"] for r in (create["result"] if isinstance(create["result"], list) else [create["result"]])] \
        == ["outputs/summary.txt"]
    output = graph["outputs/summary.txt"]
    assert output["sha256"] == hashlib.sha256((bag / "data" / "outputs" / "summary.txt").read_bytes()).hexdigest()
    # The requester is the authenticated caller, not the person the client wrote into the crate.
    assert create["agent"]["@id"] == "#person-alice"
    assert "https://orcid.org/0000-0001-9842-9718" not in graph
    check = _by_additional_type(graph, "CheckValue")
    signoff = _by_additional_type(graph, "SignOff")
    review = _by_additional_type(graph, "DisclosureCheck")
    for action in (check, _by_additional_type(graph, "ValidationCheck"), signoff, review):
        assert action["actionStatus"] == "http://schema.org/CompletedActionStatus", action
        assert action["startTime"] <= action["endTime"]
    assert check["agent"]["@id"] == signoff["agent"]["@id"] == "#tre-gateway"
    assert review["agent"]["@id"] == "#person-carol" and "partially approved" in review["name"]


# ---------------------------------------------------------------- refusals


def _zip(entries: dict[str, bytes], tmp_path: Path, name: str, *, symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for path, content in entries.items():
            z.writestr(path, content)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            z.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def _with_bad_checksum(tmp_path: Path) -> bytes:
    data = request_bag(tmp_path, name="tampered")
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for info in source.infolist():
            content = source.read(info)
            if info.filename.endswith("data/input1.txt"):
                content = content.replace(b"Gly", b"Ala")
            z.writestr(info, content)
    return buffer.getvalue()


def _example_folder_as_zip(tmp_path: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for path in EXAMPLE.rglob("*"):
            if path.is_file():
                z.write(path, "example-request/" + path.relative_to(EXAMPLE).as_posix())
    return buffer.getvalue()


def _drop_main_entity(metadata: dict) -> None:
    root = next(e for e in metadata["@graph"] if e["@id"] == "./")
    del root["mainEntity"]


def _other_workflow(metadata: dict) -> None:
    text = json.dumps(metadata).replace("workflows/289", "workflows/9999")
    metadata.clear()
    metadata.update(json.loads(text))


REFUSALS = {
    "bad checksum": ("CheckValue", lambda t: _with_bad_checksum(t), "p1"),
    "manifest lists missing files": ("CheckValue", _example_folder_as_zip, "p1"),
    "traversal path": ("CheckValue", lambda t: _zip({"../evil.txt": b"x", "ro-crate-metadata.json": b"{}"}, t, "a"),
                       "p1"),
    "symlink entry": ("CheckValue", lambda t: _zip({"ro-crate-metadata.json": b"{}"}, t, "b", symlink="link"), "p1"),
    "zip bomb": ("CheckValue", lambda t: _zip({"ro-crate-metadata.json": b"{}", "zeros.bin": b"\0" * (200 << 20)},
                                             t, "c"), "p1"),
    "missing mainEntity": ("ValidationCheck", lambda t: request_bag(t, edit=_drop_main_entity, name="nomain"), "p1"),
    "unknown workflow": (None, lambda t: request_bag(t, edit=_other_workflow, name="other"), "p1"),
    "non-member requester": ("SignOff", lambda t: request_bag(t, name="stranger"), "p2"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_malformed_crates_are_refused_with_a_failed_action(gateway_factory, mirror, tmp_path: Path, case: str) -> None:
    folder, checksum = mirror
    gw: GatewayProcess = gateway_factory(egress_review="human", five_safes_workflow_mirror=str(folder))
    gw.start()
    admin = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token('root', 'p1', 'admin')}"})
    admin.put(f"{API}/projects/p1/crate-policy", json={"automatic_sign_off": True, "approved_workflows": [
        {"workflow_id": "https://workflowhub.eu/workflows/289", "version": "1", "checksum": checksum}]})
    failed_kind, make, project = REFUSALS[case]
    # bob belongs to p2 only; he asks to run the request under p1.
    user, member_of = ("bob", "p2") if project == "p2" else ("alice", "p1")
    client = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token(user, member_of)}"})

    refused = _submit(client, make(tmp_path), project="p1")
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["msg"] and body["submission_id"] and body["result_crate_url"].endswith("/crate")
    got = client.get(f"{API}/submissions/{body['submission_id']}")
    assert got.status_code == 200, got.text
    doc = got.json()
    assert doc["state"] == "REJECTED" and doc["reason"] == body["msg"]
    assert "run_id" not in doc  # nothing was executed
    assert admin.get("/ga4gh/wes/v1/runs").json()["runs"] == []

    crate = _returned_crate(client, body["submission_id"], tmp_path)
    graph = _graph(crate)
    failed = [e for e in graph.values() if e.get("actionStatus") == "http://schema.org/FailedActionStatus"]
    assert len(failed) == 1, failed
    if failed_kind is None:  # not in the mirror: the retrieval fails
        assert failed[0]["@type"] == "DownloadAction"
    else:
        assert failed[0]["additionalType"]["@id"].endswith("#" + failed_kind)
    assert failed[0]["description"]
    assert not any(p.name == "input1.txt" and "outputs" in p.parts for p in Path(crate["_bag"]).rglob("*"))


# ---------------------------------------------------------------- the 0.5 draft, manual sign-off, repairs


def _type_for_at_type(metadata: dict) -> None:
    """Write `type` for `@type` on the input entities, as the profile's own example results do."""
    for entity in metadata["@graph"]:
        if entity["@id"] in ("input1.txt", "#enableFastMode"):
            entity["type"] = entity.pop("@type")


def test_draft_crate_waits_for_an_admins_sign_off(gateway_factory, mirror, tmp_path: Path) -> None:
    folder, checksum = mirror
    gw: GatewayProcess = gateway_factory(egress_review="automatic", five_safes_workflow_mirror=str(folder))
    gw.start()
    admin = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token('root', 'p1', 'admin')}"})
    alice = httpx.Client(base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token('alice', 'p1')}"})
    admin.put(f"{API}/projects/p1/crate-policy", json={"automatic_sign_off": False, "approved_workflows": [
        {"workflow_id": "https://workflowhub.eu/workflows/289", "version": "1", "checksum": checksum}]})
    # This project releases outputs that pass the automated checks; a count of 3 is not a small cell here.
    policy = {"required_approvals": 1, "auto_release_clean": True, "small_cell_threshold": 2, "max_rows": 1000}
    assert admin.put("/airlock/v1/projects/p1/policy", json=policy).status_code == 200

    # The profile's 0.5 draft example, exactly as published (a complete bag).
    draft = (SHARED / "0.5-DRAFT" / "example-request.bagit.zip").read_bytes()
    accepted = _submit(alice, draft)
    assert accepted.status_code == 202, accepted.text
    submission = accepted.json()
    assert submission["state"] == "AWAITING_SIGN_OFF" and submission["profile"].startswith("0.5")
    sign_off = next(p for p in submission["phases"] if p["phase"] == "sign_off")
    assert sign_off["status"] == "ActiveActionStatus"
    refused = alice.post(f"{API}/submissions/{submission['id']}/sign-off",
                         json={"decision": "approve", "reason": "my own request"})
    assert refused.status_code == 403
    assert admin.get("/ga4gh/wes/v1/runs").json()["runs"] == []  # nothing runs before sign-off

    approved = admin.post(f"{API}/submissions/{submission['id']}/sign-off",
                          json={"decision": "approve", "reason": "agreed at the data access committee"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "EXECUTING"
    sign_off = next(p for p in approved.json()["phases"] if p["phase"] == "sign_off")
    assert sign_off["status"] == "CompletedActionStatus" and sign_off["agents"] == ["#person-root"]
    published = _wait(alice, submission["id"], {"PUBLISHED"})
    assert {p["status"] for p in published["phases"]} == {"CompletedActionStatus"}
    # With automatic release, the automated checks are the disclosure decision's agent.
    disclosure = next(p for p in published["phases"] if p["phase"] == "disclosure")
    assert disclosure["agents"] == ["#tre-gateway"]
    crate = _returned_crate(alice, submission["id"], tmp_path)
    crate.pop("_bag")
    assert validate_metadata(crate).violations == ()

    # A second request writes `type` for `@type`: it is accepted, and the repair is recorded.
    repaired = _submit(alice, request_bag(tmp_path, edit=_type_for_at_type, name="typed"))
    assert repaired.status_code == 202, repaired.text
    doc = repaired.json()
    assert len(doc["repairs"]) == 2 and all("type" in r for r in doc["repairs"])
    validation = next(p for p in doc["phases"] if p["phase"] == "validation")
    assert validation["status"] == "CompletedActionStatus" and "repairs" in validation["message"]
    rejected = admin.post(f"{API}/submissions/{doc['id']}/sign-off", json={"decision": "reject", "reason": "no"})
    assert rejected.json()["state"] == "REJECTED"
    assert admin.post(f"{API}/submissions/{doc['id']}/sign-off",
                      json={"decision": "approve", "reason": "changed my mind"}).status_code == 409
