"""The Five Safes submission API (/five-safes/v1) through the real app: SQLite, the local store, a workflow
mirror in tmp_path. No dispatcher runs, so an accepted crate's WES run stays QUEUED.

Connexion validates every response against openapi/five-safes.yaml already; each body is also checked
here against the document's schema (with date-time formats), and its key fields asserted.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT4

from tests.integration.api.conftest import Gateway, bearer
from tests.unit.services.test_submissions import WORKFLOW_ID, make_mirror, request_bag
from tests.upstream_schema import format_checker

API = "/five-safes/v1"
SPEC = Path(__file__).resolve().parents[3] / "openapi" / "five-safes.yaml"
SPEC_URI = "urn:tre-gateway-tests:five-safes"
_REGISTRY = Registry().with_resource(SPEC_URI, DRAFT4.create_resource(yaml.safe_load(SPEC.read_text())))
_FORMATS = format_checker()
LIST_SCHEMA = "#/paths/~1submissions/get/responses/200/content/application~1json/schema"


def conforms(pointer: str, body: Any) -> Any:
    """Validate `body` against the document's schema at `pointer` (a component name or a JSON pointer)."""
    ref = pointer if pointer.startswith("#") else f"#/components/schemas/{pointer}"
    jsonschema.Draft4Validator({"$ref": SPEC_URI + ref}, registry=_REGISTRY, format_checker=_FORMATS).validate(body)
    return body


@pytest.fixture
def mirror(tmp_path: Path) -> tuple[Path, str]:
    """The TRE's workflow mirror and the "sha256:..." of the workflow crate it holds."""
    folder = tmp_path / "mirror"
    return folder, make_mirror(folder)


@pytest.fixture
def checksum(mirror: tuple[Path, str]) -> str:
    return mirror[1]


@pytest.fixture
def fs(gateway_factory: Callable[..., Gateway], mirror: tuple[Path, str]) -> Gateway:
    """A gateway with a workflow mirror; p1 approves the mirrored workflow and signs off automatically."""
    folder, checksum = mirror
    gw = gateway_factory(five_safes_workflow_mirror=str(folder))
    r = gw.client.put(f"{API}/projects/p1/crate-policy", headers=gw.headers("admin"), json=policy(checksum))
    assert r.status_code == 200, r.text
    return gw


def policy(checksum: str, automatic: bool = True) -> dict[str, Any]:
    return {"automatic_sign_off": automatic, "approved_workflows": [
        {"workflow_id": "https://workflowhub.eu/workflows/289", "version": "1", "checksum": checksum}]}


def submit(gw: Gateway, data: bytes, who: str = "alice", project: str | None = "p1") -> Any:
    form = {"project": project} if project else {}
    return gw.client.post(f"{API}/submissions", headers=gw.headers(who), data=form,
                          files=[("crate", ("request.zip", data, "application/zip"))])


def get(gw: Gateway, path: str, who: str = "alice", **params: Any) -> Any:
    return gw.client.get(f"{API}{path}", headers=gw.headers(who), params=params)


def error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = conforms("ErrorResponse", r.json())
    assert body["status_code"] == status and body["msg"]
    return body


def test_an_accepted_crate_is_answered_with_its_submission(fs: Gateway, tmp_path: Path) -> None:
    r = submit(fs, request_bag(tmp_path))
    assert r.status_code == 202, r.text
    doc = conforms("Submission", r.json())
    assert doc["state"] == "EXECUTING" and (doc["owner"], doc["project"], doc["profile"]) == ("alice", "p1", "0.4")
    assert doc["workflow"] == {"id": WORKFLOW_ID, "version": "1"}
    assert doc["repairs"] == [] and "reason" not in doc and "result_crate_url" not in doc
    assert doc["run_url"].endswith(f"/ga4gh/wes/v1/runs/{doc['run_id']}")
    assert {p["phase"]: p["status"] for p in doc["phases"]} == {
        "check": "CompletedActionStatus", "validation": "CompletedActionStatus",
        "workflow_retrieval": "CompletedActionStatus", "sign_off": "CompletedActionStatus",
        "execution": "ActiveActionStatus"}
    check = next(p for p in doc["phases"] if p["phase"] == "check")
    assert check["type"] == "AssessAction" and check["agents"] == ["#tre-gateway"] and "sha512" in check["message"]

    got = get(fs, f"/submissions/{doc['id']}")
    assert got.status_code == 200 and conforms("Submission", got.json()) == doc
    run = fs.client.get(f"/ga4gh/wes/v1/runs/{doc['run_id']}", headers=fs.headers("alice"))
    assert run.status_code == 200 and run.json()["state"] == "QUEUED"
    assert run.json()["request"]["tags"]["five_safes_submission"] == doc["id"]
    listed = conforms(LIST_SCHEMA, get(fs, "/submissions").json())
    assert listed == {"submissions": [{k: doc[k] for k in ("id", "state", "project", "owner", "created_at",
                                                           "updated_at")}], "next_page_token": ""}
    # There is no result crate before the submission has finished.
    error(get(fs, f"/submissions/{doc['id']}/crate"), 409)


def test_a_refused_crate_is_answered_422_and_its_crate_can_be_downloaded(fs: Gateway) -> None:
    r = submit(fs, b"not a zip at all")
    assert r.status_code == 422, r.text
    body = conforms("CrateRejection", r.json())
    assert body["status_code"] == 422 and body["msg"].startswith("the archive was refused")
    assert body["result_crate_url"].endswith(f"{API}/submissions/{body['submission_id']}/crate")
    assert body["result_crate_url"].startswith("http")

    doc = conforms("Submission", get(fs, f"/submissions/{body['submission_id']}").json())
    assert doc["state"] == "REJECTED" and doc["reason"] == body["msg"]
    assert doc["result_crate_url"] == body["result_crate_url"]
    assert "run_id" not in doc and "run_url" not in doc
    statuses = {p["phase"]: p["status"] for p in doc["phases"]}
    assert statuses["check"] == "FailedActionStatus" and statuses["publishing"] == "CompletedActionStatus"

    download = get(fs, f"/submissions/{doc['id']}/crate")
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    assert f"result-{doc['id']}.zip" in download.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    assert f"result-{doc['id']}/data/ro-crate-metadata.json" in names
    assert f"result-{doc['id']}/bagit.txt" in names
    runs = fs.client.get("/ga4gh/wes/v1/runs", headers=fs.headers("admin")).json()
    assert runs["runs"] == []


def test_a_form_without_a_crate_is_a_bad_request(fs: Gateway) -> None:
    boundary = "tre-gateway-test-boundary"
    only_project = (f'--{boundary}\r\nContent-Disposition: form-data; name="project"\r\n\r\np1\r\n'
                    f"--{boundary}--\r\n").encode()
    r = fs.client.post(f"{API}/submissions", content=only_project,
                       headers={**fs.headers("alice"), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert "crate" in error(r, 400)["msg"]
    error(fs.client.post(f"{API}/submissions", headers=fs.headers("alice"), data={"project": "p1"},
                         files=[("other", ("request.zip", b"PK", "application/zip"))]), 400)
    error(fs.client.post(f"{API}/submissions", headers=fs.headers("alice"), json={"project": "p1"}), 415)
    error(fs.client.post(f"{API}/submissions", data={"project": "p1"},
                         files=[("crate", ("request.zip", b"PK", "application/zip"))]), 401)
    assert get(fs, "/submissions", "admin").json()["submissions"] == []


def test_lists_are_newest_first_in_pages_and_stay_within_the_callers_projects(fs: Gateway) -> None:
    ids = [submit(fs, b"not a zip %d" % i).json()["submission_id"] for i in range(3)]
    first = conforms(LIST_SCHEMA, get(fs, "/submissions", page_size=2).json())
    assert [s["id"] for s in first["submissions"]] == [ids[2], ids[1]] and first["next_page_token"]
    assert all(s["state"] == "REJECTED" and s["owner"] == "alice" for s in first["submissions"])
    rest = conforms(LIST_SCHEMA, get(fs, "/submissions", page_size=2, page_token=first["next_page_token"]).json())
    assert [s["id"] for s in rest["submissions"]] == [ids[0]] and not rest.get("next_page_token")
    assert [s["id"] for s in get(fs, "/submissions", "admin").json()["submissions"]] == ids[::-1]
    # Another project's researcher sees none of them, and cannot read or download one.
    assert get(fs, "/submissions", "bob").json()["submissions"] == []
    error(get(fs, f"/submissions/{ids[0]}", "bob"), 404)
    error(get(fs, f"/submissions/{ids[0]}/crate", "bob"), 404)
    error(get(fs, "/submissions/fs-no-such-submission"), 404)
    error(get(fs, "/submissions", page_token="not-a-token"), 400)


def test_sign_off_is_for_admins_and_only_while_a_submission_waits(fs: Gateway, checksum: str, tmp_path: Path) -> None:
    r = fs.client.put(f"{API}/projects/p1/crate-policy", headers=fs.headers("admin"),
                      json=policy(checksum, automatic=False))
    assert r.status_code == 200, r.text
    r = submit(fs, request_bag(tmp_path), project=None)  # alice's only project
    assert r.status_code == 202, r.text
    doc = conforms("Submission", r.json())
    assert doc["state"] == "AWAITING_SIGN_OFF" and doc["project"] == "p1" and "run_id" not in doc
    url = f"{API}/submissions/{doc['id']}/sign-off"

    error(fs.client.post(url, headers=fs.headers("alice"), json={"decision": "approve", "reason": "mine"}), 403)
    error(fs.client.post(url, headers=fs.headers("bob"), json={"decision": "approve", "reason": "x"}), 404)
    error(fs.client.post(url, headers=fs.headers("admin"), json={"decision": "maybe", "reason": "x"}), 400)
    error(fs.client.post(url, headers=fs.headers("admin"), json={"decision": "approve", "reason": ""}), 400)
    error(get(fs, f"/submissions/{doc['id']}/crate"), 409)

    r = fs.client.post(url, headers=fs.headers("admin"), json={"decision": "approve", "reason": "agreed"})
    assert r.status_code == 200, r.text
    approved = conforms("Submission", r.json())
    assert approved["state"] == "EXECUTING" and approved["run_url"].endswith(approved["run_id"])
    sign_off = next(p for p in approved["phases"] if p["phase"] == "sign_off")
    assert sign_off["status"] == "CompletedActionStatus" and sign_off["agents"] == ["#person-root"]
    error(fs.client.post(url, headers=fs.headers("admin"), json={"decision": "reject", "reason": "late"}), 409)
    error(fs.client.post(f"{API}/submissions/fs-nope/sign-off", headers=fs.headers("admin"),
                         json={"decision": "reject", "reason": "x"}), 404)


def test_crate_policies_are_read_by_members_and_set_by_admins(fs: Gateway, checksum: str) -> None:
    url = f"{API}/projects/p2/crate-policy"
    r = fs.client.get(url, headers=fs.headers("bob"))
    assert r.status_code == 200
    assert conforms("CratePolicy", r.json()) == {"automatic_sign_off": True, "approved_workflows": []}
    got = fs.client.get(f"{API}/projects/p1/crate-policy", headers=fs.headers("alice"))
    assert conforms("CratePolicy", got.json()) == policy(checksum)
    error(fs.client.get(f"{API}/projects/p1/crate-policy", headers=fs.headers("bob")), 404)

    body = {"automatic_sign_off": False, "approved_workflows": [
        {"workflow_id": "https://workflowhub.eu/workflows/7", "version": "3", "checksum": "sha512:" + "ab" * 64}]}
    error(fs.client.put(url, headers=fs.headers("bob"), json=body), 403)
    entry = body["approved_workflows"][0]
    for malformed in (
        {"automatic_sign_off": True},
        {"automatic_sign_off": "no", "approved_workflows": []},
        {"automatic_sign_off": True, "approved_workflows": [{**entry, "checksum": "md5:abc"}]},
        {"automatic_sign_off": True, "approved_workflows": [{k: v for k, v in entry.items() if k != "version"}]},
        {"automatic_sign_off": True, "approved_workflows": [{**entry, "note": "extra"}]},
        {**body, "extra": 1},
    ):
        error(fs.client.put(url, headers=fs.headers("admin"), json=malformed), 400)
    assert fs.client.get(url, headers=fs.headers("bob")).json()["approved_workflows"] == []

    r = fs.client.put(url, headers=fs.headers("admin"), json=body)
    assert r.status_code == 200, r.text
    assert conforms("CratePolicy", r.json()) == body
    assert fs.client.get(url, headers=fs.headers("bob")).json() == body
    assert fs.client.get(url, headers=bearer(fs.tokens.mint("carol", ["p2"], ["output_checker"]))).json() == body
