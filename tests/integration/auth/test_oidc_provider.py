"""Bearer tokens from a real OpenID Connect provider: the gateway finds the provider's keys through
discovery and JWKS, checks signature, issuer and audience, and reads the user from the claims.
"""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from gateway.api.app import create_app
from gateway.config import Settings
from tests.integration.auth.conftest import OTHER_CLIENT, OidcProvider

AUDIENCE = "tre-gateway"
TASK = {"executors": [{"image": "alpine", "command": ["true"]}]}


def gateway_client(provider: OidcProvider, data_dir, audience: str = AUDIENCE):
    # No JWKS URL and no key file: the verifier must discover the keys from the issuer.
    settings = Settings.load({}, data_dir=data_dir, auth="oidc", oidc_issuer=provider.issuer, oidc_audience=audience)
    assert not settings.oidc_jwks_url and settings.oidc_public_key_file is None
    return create_app(settings).test_client()


@pytest.fixture(autouse=True)
def _loopback_without_proxy(monkeypatch):
    # The gateway fetches discovery and JWKS with urllib, which would honour a proxy from the environment.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def client(oidc_provider, tmp_path_factory):
    # One gateway for the module: the tests only read identities and create tasks, and building is slow.
    return gateway_client(oidc_provider, tmp_path_factory.mktemp("gateway"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_provider_issues_rs256_tokens_whose_subject_is_not_the_user_name(oidc_provider):
    token = oidc_provider.token("dwho")
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == oidc_provider.issuer
    assert AUDIENCE in claims["aud"]
    assert claims["preferred_username"] == "dwho"
    assert claims["sub"] and claims["sub"] != "dwho"
    assert claims["roles"] == ["researcher"] and claims["projects"] == ["p1"]


def test_whoami_reads_user_roles_and_projects_from_a_real_token(oidc_provider, client):
    resp = client.get("/gateway/v1/whoami", headers=bearer(oidc_provider.token("dwho")))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["user"] == "dwho"
    assert body["roles"] == ["researcher"]
    assert body["projects"] == ["p1"]


def test_multi_valued_claims_arrive_as_lists(oidc_provider, client):
    resp = client.get("/gateway/v1/whoami", headers=bearer(oidc_provider.token("rtyler")))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["user"], body["roles"], body["projects"]) == ("rtyler", ["output_checker", "researcher"], ["p2", "p3"])


def test_create_task_in_the_users_project(oidc_provider, client):
    headers = bearer(oidc_provider.token("dwho"))
    resp = client.post("/ga4gh/tes/v1/tasks", json=TASK, headers=headers)
    assert resp.status_code == 200, resp.text
    task_id = resp.json()["id"]
    task = client.get(f"/ga4gh/tes/v1/tasks/{task_id}", params={"view": "BASIC"}, headers=headers)
    assert task.status_code == 200, task.text
    assert task.json()["tags"]["project"] == "p1"


def test_a_user_without_roles_cannot_create_tasks(oidc_provider, client):
    resp = client.post("/ga4gh/tes/v1/tasks", json=TASK, headers=bearer(oidc_provider.token("msmith")))
    assert resp.status_code == 403, resp.text


def test_a_tampered_signature_is_rejected(oidc_provider, client):
    header, payload, signature = oidc_provider.token("dwho").split(".")
    raw = bytearray(b64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    resp = client.get("/gateway/v1/whoami", headers=bearer(f"{header}.{payload}.{b64url_encode(bytes(raw))}"))
    assert resp.status_code == 401, resp.text
    assert "signature" in resp.json()["msg"].lower()


def test_tampered_claims_are_rejected(oidc_provider, client):
    header, payload, signature = oidc_provider.token("dwho").split(".")
    claims = json.loads(b64url_decode(payload))
    claims["roles"] = ["admin"]
    forged = f"{header}.{b64url_encode(json.dumps(claims).encode())}.{signature}"
    resp = client.get("/gateway/v1/whoami", headers=bearer(forged))
    assert resp.status_code == 401, resp.text
    assert "signature" in resp.json()["msg"].lower()


def test_a_token_for_another_audience_is_rejected(oidc_provider, client, tmp_path):
    other = oidc_provider.token("dwho", client=OTHER_CLIENT)
    assert AUDIENCE not in jwt.decode(other, options={"verify_signature": False})["aud"]
    refused = client.get("/gateway/v1/whoami", headers=bearer(other))
    assert refused.status_code == 401, refused.text
    assert "audience" in refused.json()["msg"].lower()
    # The same token is good for a gateway that is its audience: the refusal above was the audience check.
    other_gateway = gateway_client(oidc_provider, tmp_path / "other", audience=OTHER_CLIENT[0])
    resp = other_gateway.get("/gateway/v1/whoami", headers=bearer(other))
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"] == "dwho"


def test_no_token_is_rejected(client):
    assert client.get("/gateway/v1/whoami").status_code == 401
