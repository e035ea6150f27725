"""The Five Safes RO-Crate submission API document (openapi/five-safes.yaml) is valid and loads in connexion."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "five-safes.yaml"

OPERATIONS = {
    "SubmitCrate", "ListSubmissions", "GetSubmission", "DecideSignOff", "GetResultCrate",
    "GetCratePolicy", "PutCratePolicy",
}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
SCHEMES = [{"bearerAuth": []}, {"basicAuth": []}]


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC.read_text())
    return loaded


def _operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        op["operationId"]: (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    from openapi_spec_validator import validate

    validate(doc)
    assert doc["openapi"] == "3.0.3"
    assert doc["servers"] == [{"url": "/five-safes/v1"}]


def test_every_operation_is_present_and_secured(doc: dict[str, Any]) -> None:
    operations = _operations(doc)
    assert set(operations) == OPERATIONS
    assert doc["security"] == SCHEMES
    assert set(doc["components"]["securitySchemes"]) == {"bearerAuth", "basicAuth"}
    for name, (_, _, op) in operations.items():
        assert op.get("security") == SCHEMES, name
        assert "401" in op["responses"], name


def test_no_remote_refs(doc: dict[str, Any]) -> None:
    refs = list(_refs(doc))
    assert refs
    assert all(ref.startswith("#/") for ref in refs), [ref for ref in refs if not ref.startswith("#/")]


def test_schemas_match_the_contract(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["SubmissionState"]["enum"] == [
        "RECEIVED", "AWAITING_SIGN_OFF", "EXECUTING", "AWAITING_DISCLOSURE", "PUBLISHED", "REJECTED", "FAILED",
    ]
    assert set(schemas["CrateRejection"]["required"]) == {"msg", "status_code", "submission_id", "result_crate_url"}
    assert set(schemas["ErrorResponse"]["required"]) == {"msg", "status_code"}
    assert set(schemas["Submission"]["required"]) == {
        "id", "state", "project", "owner", "created_at", "updated_at", "phases",
    }
    policy = schemas["CratePolicy"]
    assert policy["additionalProperties"] is False
    assert set(policy["required"]) == {"automatic_sign_off", "approved_workflows"}
    assert policy["properties"]["approved_workflows"]["maxItems"] == 1000
    operations = _operations(doc)
    _, _, submit = operations["SubmitCrate"]
    assert set(submit["responses"]) == {"202", "400", "401", "403", "413", "415", "422"}
    _, _, crate = operations["GetResultCrate"]
    assert set(crate["responses"]["200"]["content"]) == {"application/zip"}
    assert "internet" in doc["info"]["description"]
    assert "-F crate=@request.zip -F project=p1" in doc["info"]["description"]


@pytest.fixture(scope="module")
def client() -> Any:
    """A throwaway app serving the document with dummy handlers and a bearer token `good`."""
    import connexion
    from connexion.exceptions import OAuthProblem
    from connexion.resolver import Resolver
    from connexion.security import BasicSecurityHandler, BearerSecurityHandler

    def bearer(token: str) -> dict[str, Any]:
        if token != "good":
            raise OAuthProblem(detail="bad token")
        return {"sub": "alice"}

    def basic(username: str, password: str) -> dict[str, Any]:
        raise OAuthProblem(detail="no basic users here")

    class Bearer(BearerSecurityHandler):
        def _resolve_func(self, security_scheme):  # type: ignore[no-untyped-def]
            return bearer

    class Basic(BasicSecurityHandler):
        def _resolve_func(self, security_scheme):  # type: ignore[no-untyped-def]
            return basic

    submission = {
        "id": "s1", "state": "RECEIVED", "project": "p1", "owner": "alice",
        "created_at": "2024-05-01T12:00:00Z", "updated_at": "2024-05-01T12:00:00Z",
        "profile": "0.4", "workflow": {"id": "https://workflowhub.eu/workflows/289", "version": "1"},
        "phases": [{
            "phase": "check", "action": "#check-1", "type": "AssessAction",
            "status": "CompletedActionStatus", "start_time": "2024-05-01T12:00:00Z",
            "end_time": "2024-05-01T12:00:01Z", "agents": ["tre-gateway"],
        }],
        "repairs": ["`type` written for `@type`"],
    }
    policy = {"automatic_sign_off": False, "approved_workflows": []}
    handlers: dict[str, Any] = {
        "SubmitCrate": lambda **kwargs: (submission, 202),
        "ListSubmissions": lambda **kwargs: {"submissions": [], "next_page_token": ""},
        "GetSubmission": lambda **kwargs: submission,
        "DecideSignOff": lambda **kwargs: submission,
        "GetResultCrate": lambda **kwargs: (b"PK\x05\x06" + bytes(18), 200, {"Content-Type": "application/zip"}),
        "GetCratePolicy": lambda **kwargs: policy,
        "PutCratePolicy": lambda **kwargs: kwargs["body"],
    }
    resolved: list[str] = []

    def resolve(operation_id: str) -> Any:
        resolved.append(operation_id)
        return handlers[operation_id]

    app = connexion.FlaskApp(__name__, specification_dir=str(SPEC.parent),
                             security_map={"bearer": Bearer, "basic": Basic})
    app.add_api(SPEC.name, resolver=Resolver(resolve), validate_responses=True, strict_validation=True)
    test_client = app.test_client()
    # connexion builds its routes (resolving every operation) when the app serves its first request.
    assert test_client.get("/five-safes/v1/submissions").status_code == 401
    assert set(resolved) == OPERATIONS
    return test_client


AUTH = {"Authorization": "Bearer good"}


def test_loads_in_connexion_and_refuses_anonymous_callers(client: Any) -> None:
    for method, path in [
        ("post", "/five-safes/v1/submissions"),
        ("get", "/five-safes/v1/submissions/s1"),
        ("post", "/five-safes/v1/submissions/s1/sign-off"),
        ("get", "/five-safes/v1/submissions/s1/crate"),
        ("get", "/five-safes/v1/projects/p1/crate-policy"),
        ("put", "/five-safes/v1/projects/p1/crate-policy"),
    ]:
        assert getattr(client, method)(path).status_code == 401, (method, path)


def test_a_crate_upload_passes_validation(client: Any) -> None:
    files = {"crate": ("request.zip", io.BytesIO(b"PK\x05\x06" + bytes(18)), "application/zip")}
    response = client.post("/five-safes/v1/submissions", headers=AUTH, files=files, data={"project": "p1"})
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "RECEIVED"
    # The crate part is required, and unknown parts are refused.
    response = client.post("/five-safes/v1/submissions", headers=AUTH, files={"project": (None, "p1")})
    assert response.status_code == 400, response.text
    crate = ("request.zip", io.BytesIO(b"PK\x05\x06" + bytes(18)), "application/zip")
    response = client.post("/five-safes/v1/submissions", headers=AUTH, files={"crate": crate, "extra": (None, "x")})
    assert response.status_code == 400, response.text
    assert "extra" in response.text
    # A body that is not a multipart form at all.
    response = client.post("/five-safes/v1/submissions", headers=AUTH, data={"project": "p1"})
    assert response.status_code == 415


def test_good_and_bad_bodies(client: Any) -> None:
    ok = client.post("/five-safes/v1/submissions/s1/sign-off", headers=AUTH,
                     json={"decision": "approve", "reason": "fine"})
    assert ok.status_code == 200, ok.text
    for body in ({"decision": "maybe", "reason": "x"}, {"decision": "approve", "reason": ""},
                 {"decision": "approve", "reason": "x", "extra": 1}, {"decision": "approve"}):
        assert client.post("/five-safes/v1/submissions/s1/sign-off", headers=AUTH, json=body).status_code == 400

    good = {"automatic_sign_off": True, "approved_workflows": [{
        "workflow_id": "https://workflowhub.eu/workflows/289?version=1", "version": "1",
        "checksum": "sha256:" + "ab" * 32,
    }]}
    response = client.put("/five-safes/v1/projects/p1/crate-policy", headers=AUTH, json=good)
    assert response.status_code == 200, response.text
    assert response.json() == good
    bad_checksum = {**good, "approved_workflows": [{**good["approved_workflows"][0], "checksum": "md5:abc"}]}
    too_many = {**good, "approved_workflows": good["approved_workflows"] * 1001}
    for body in (bad_checksum, too_many, {"automatic_sign_off": True}, {**good, "extra": 1}):
        assert client.put("/five-safes/v1/projects/p1/crate-policy", headers=AUTH, json=body).status_code == 400

    assert client.get("/five-safes/v1/submissions?page_size=0", headers=AUTH).status_code == 400
    assert client.get("/five-safes/v1/submissions?page_size=5", headers=AUTH).status_code == 200
    crate = client.get("/five-safes/v1/submissions/s1/crate", headers=AUTH)
    assert crate.status_code == 200
    assert crate.headers["content-type"] == "application/zip"
