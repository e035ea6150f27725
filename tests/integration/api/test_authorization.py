"""Who may call what: an endpoint x caller matrix, personal access tokens over HTTP Basic, claim formats."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from gateway.services.authentication import Authenticator
from tests.integration.api.conftest import ACCOUNTS, BASE, Gateway, bearer

KINDS = ["no_token", "bad_signature", "expired", "no_username", "other_project", "member", "admin"]
UNAUTHENTICATED = {"no_token", "bad_signature", "expired", "no_username"}


def headers_for(gw: Gateway, kind: str) -> dict[str, str]:
    return {
        "no_token": lambda: {},
        "bad_signature": lambda: bearer(gw.tokens.wrong_secret),
        "expired": lambda: bearer(gw.tokens.expired),
        "no_username": lambda: bearer(gw.tokens.no_username),
        "other_project": lambda: gw.headers("bob"),
        "member": lambda: gw.headers("alice"),
        "admin": lambda: gw.headers("admin"),
    }[kind]()


def assert_401(resp: Any) -> None:
    assert resp.status_code == 401, (resp.status_code, resp.text)
    challenge = resp.headers.get("WWW-Authenticate", "")
    assert "Bearer" in challenge and "Basic" in challenge, resp.headers
    assert resp.json()["msg"].strip()


def task_state(gw: Gateway, task_id: str) -> str:
    return str(gw.client.get(f"{BASE}/tasks/{task_id}", headers=gw.headers("admin")).json()["state"])


def mint_pat(gw: Gateway, who: str = "alice", **body: Any) -> dict[str, Any]:
    resp = gw.client.post(f"{ACCOUNTS}/tokens", json=body, headers=gw.headers(who))
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


# --------------------------------------------------------------------------- the matrix


@dataclass
class Endpoint:
    """How to call one operation on fresh p1 resources, what each caller kind gets, and what to check after."""

    call: Callable[[Gateway, dict[str, str]], tuple[Any, Callable[[], None]]]
    expected: dict[str, int]


def _authenticated(other: int, member: int, admin: int) -> dict[str, int]:
    return {**dict.fromkeys(UNAUTHENTICATED, 401), "other_project": other, "member": member, "admin": admin}


def _service_info(gw: Gateway, h: dict[str, str]) -> tuple[Any, Callable[[], None]]:
    return gw.client.get(f"{BASE}/service-info", headers=h), lambda: None


def _create_task(gw: Gateway, h: dict[str, str]) -> tuple[Any, Callable[[], None]]:
    before = gw.count_tasks()
    resp = gw.client.post(f"{BASE}/tasks", json=gw.task_body("p1"), headers=h)

    def after() -> None:
        assert gw.count_tasks() == before + (1 if resp.status_code == 200 else 0)

    return resp, after


def _list_tasks(gw: Gateway, h: dict[str, str]) -> tuple[Any, Callable[[], None]]:
    p1_task = gw.create("alice")
    p2_task = gw.create("bob", project="p2")
    resp = gw.client.get(f"{BASE}/tasks", params={"page_size": 2047}, headers=h)

    def after() -> None:
        if resp.status_code != 200:
            return
        seen = {t["id"] for t in resp.json()["tasks"]}
        user = gw.client.get(f"{ACCOUNTS}/whoami", headers=h).json()["user"]
        # alice sees p1 only, bob p2 only, the admin every task there is.
        assert (p1_task in seen) == (user in ("alice", "root"))
        assert (p2_task in seen) == (user in ("bob", "root"))
        if user == "root":
            assert seen == set(gw.all_task_ids())

    return resp, after


def _get_task(gw: Gateway, h: dict[str, str]) -> tuple[Any, Callable[[], None]]:
    task_id = gw.create("alice")
    resp = gw.client.get(f"{BASE}/tasks/{task_id}", headers=h)

    def after() -> None:
        if resp.status_code == 200:
            assert resp.json() == {"id": task_id, "state": "QUEUED"}
        if resp.status_code == 404:  # indistinguishable from a task that does not exist
            unknown = gw.client.get(f"{BASE}/tasks/{'f' * len(task_id)}", headers=h)
            assert unknown.status_code == 404
            assert resp.json()["msg"].replace(task_id, "X") == unknown.json()["msg"].replace("f" * len(task_id), "X")

    return resp, after


def _cancel_task(gw: Gateway, h: dict[str, str]) -> tuple[Any, Callable[[], None]]:
    task_id = gw.create("alice")
    resp = gw.client.post(f"{BASE}/tasks/{task_id}:cancel", headers=h)

    def after() -> None:
        assert task_state(gw, task_id) == ("CANCELING" if resp.status_code == 200 else "QUEUED")

    return resp, after


def _whoami(gw: Gateway, h: dict[str, str]) -> tuple[Any, Callable[[], None]]:
    resp = gw.client.get(f"{ACCOUNTS}/whoami", headers=h)

    def after() -> None:
        if resp.status_code == 200:
            assert resp.json()["user"] in {"alice", "bob", "root"}

    return resp, after


def _list_pats(gw: Gateway, h: dict[str, str]) -> tuple[Any, Callable[[], None]]:
    alices = mint_pat(gw, "alice")
    resp = gw.client.get(f"{ACCOUNTS}/tokens", headers=h)

    def after() -> None:
        if resp.status_code == 200:
            listed = resp.json()["tokens"]
            user = gw.client.get(f"{ACCOUNTS}/whoami", headers=h).json()["user"]
            assert all(t["user"] == user for t in listed)
            assert (alices["token_id"] in {t["token_id"] for t in listed}) == (user == "alice")
            assert alices["token"] not in resp.text

    return resp, after


def _create_pat(gw: Gateway, h: dict[str, str]) -> tuple[Any, Callable[[], None]]:
    resp = gw.client.post(f"{ACCOUNTS}/tokens", json={"description": "matrix"}, headers=h)

    def after() -> None:
        if resp.status_code == 200:
            assert resp.json()["token"].startswith("trepat_")

    return resp, after


def _revoke_pat(gw: Gateway, h: dict[str, str]) -> tuple[Any, Callable[[], None]]:
    alices = mint_pat(gw, "alice")
    resp = gw.client.delete(f"{ACCOUNTS}/tokens/{alices['token_id']}", headers=h)

    def after() -> None:
        works = gw.client.get(f"{ACCOUNTS}/whoami", auth=("alice", alices["token"]))
        assert works.status_code == (401 if resp.status_code == 200 else 200)

    return resp, after


ENDPOINTS: dict[str, Endpoint] = {
    "GetServiceInfo": Endpoint(_service_info, dict.fromkeys(KINDS, 200)),
    # Every task belongs to a project its submitter is a member of: admins are no exception.
    "CreateTask": Endpoint(_create_task, _authenticated(other=400, member=200, admin=400)),
    "ListTasks": Endpoint(_list_tasks, _authenticated(other=200, member=200, admin=200)),
    "GetTask": Endpoint(_get_task, _authenticated(other=404, member=200, admin=200)),
    "CancelTask": Endpoint(_cancel_task, _authenticated(other=404, member=200, admin=200)),
    "WhoAmI": Endpoint(_whoami, _authenticated(other=200, member=200, admin=200)),
    "ListAccessTokens": Endpoint(_list_pats, _authenticated(other=200, member=200, admin=200)),
    "CreateAccessToken": Endpoint(_create_pat, _authenticated(other=200, member=200, admin=200)),
    "RevokeAccessToken": Endpoint(_revoke_pat, _authenticated(other=404, member=200, admin=200)),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_authorization_matrix(module_gw: Gateway, endpoint: str, kind: str) -> None:
    spec = ENDPOINTS[endpoint]
    resp, after = spec.call(module_gw, headers_for(module_gw, kind))
    expected = spec.expected[kind]
    assert resp.status_code == expected, (endpoint, kind, resp.status_code, resp.text)
    if expected == 401:
        assert_401(resp)
    elif expected >= 400:
        assert resp.json()["msg"].strip()
    after()


# --------------------------------------------------------------------------- personal access tokens over Basic


def test_pat_lifecycle_over_basic(gw: Gateway) -> None:
    minted = mint_pat(gw, "alice", description="laptop", lifetime_seconds=3600)
    secret = minted["token"]
    assert minted["user"] == "alice" and minted["roles"] == ["researcher"] and minted["projects"] == ["p1"]
    assert minted["revoked"] is False and minted["description"] == "laptop"

    who = gw.client.get(f"{ACCOUNTS}/whoami", auth=("alice", secret))
    assert who.status_code == 200
    assert who.json() == {"user": "alice", "roles": ["researcher"], "projects": ["p1"]}

    created = gw.client.post(f"{BASE}/tasks", json=gw.task_body(), auth=("alice", secret))
    assert created.status_code == 200, created.text
    listed = gw.client.get(f"{BASE}/tasks", auth=("alice", secret)).json()["tasks"]
    assert [t["id"] for t in listed] == [created.json()["id"]]

    # The secret is shown once: listing shows the record, never the secret.
    tokens = gw.client.get(f"{ACCOUNTS}/tokens", headers=gw.headers("alice"))
    assert [t["token_id"] for t in tokens.json()["tokens"]] == [minted["token_id"]]
    assert secret not in tokens.text and secret.rsplit("_", 1)[-1] not in tokens.text

    # Right token, wrong user name.
    assert_401(gw.client.get(f"{ACCOUNTS}/whoami", auth=("bob", secret)))

    # Revoked: refused, and revoking twice is harmless.
    for _ in range(2):
        revoked = gw.client.delete(f"{ACCOUNTS}/tokens/{minted['token_id']}", headers=gw.headers("alice"))
        assert revoked.status_code == 200
    resp = gw.client.get(f"{ACCOUNTS}/whoami", auth=("alice", secret))
    assert_401(resp)
    assert "revoked" in resp.json()["msg"]
    listed_tokens = gw.client.get(f"{ACCOUNTS}/tokens", headers=gw.headers("alice")).json()["tokens"]
    assert listed_tokens[0]["revoked"] is True


def test_pat_expires(gw: Gateway) -> None:
    minted = mint_pat(gw, "alice", lifetime_seconds=60)
    auth = ("alice", minted["token"])
    assert gw.client.get(f"{ACCOUNTS}/whoami", auth=auth).status_code == 200
    service = gw.components.access_tokens
    real_clock = service.clock
    service.clock = lambda: real_clock() + 61
    try:
        resp = gw.client.get(f"{ACCOUNTS}/whoami", auth=auth)
        assert_401(resp)
        assert "expired" in resp.json()["msg"]
        assert_401(gw.client.get(f"{BASE}/tasks", auth=auth))
    finally:
        service.clock = real_clock
    assert gw.client.get(f"{ACCOUNTS}/whoami", auth=auth).status_code == 200


def test_pat_minted_in_the_past_is_expired(gw: Gateway) -> None:
    authenticator = gw.components.authenticator
    assert isinstance(authenticator, Authenticator)
    alice = authenticator.from_bearer(gw.tokens.alice)
    service = gw.components.access_tokens
    real_clock = service.clock
    service.clock = lambda: real_clock() - 120
    try:
        text, _record = service.mint(alice, 60)
    finally:
        service.clock = real_clock
    assert_401(gw.client.get(f"{ACCOUNTS}/whoami", auth=("alice", text)))


def test_pat_expiry_time_is_reported(gw: Gateway) -> None:
    before = time.time()
    minted = mint_pat(gw, "alice", lifetime_seconds=7200)
    from datetime import datetime

    expires = datetime.fromisoformat(minted["expires_at"].replace("Z", "+00:00")).timestamp()
    created = datetime.fromisoformat(minted["created_at"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - created - 7200) <= 1
    assert before - 2 <= created <= time.time() + 1


@pytest.mark.parametrize(
    "password",
    ["", "hunter2", "trepat_", "trepat_0000000000000000_secret", "Bearer-looking.jwt.value"],
    ids=["empty", "plain-password", "prefix-only", "unknown-id", "jwt-like"],
)
def test_basic_with_a_wrong_password_is_401(gw: Gateway, password: str) -> None:
    assert_401(gw.client.get(f"{ACCOUNTS}/whoami", auth=("alice", password)))


def test_basic_with_a_tampered_secret_is_401(gw: Gateway) -> None:
    minted = mint_pat(gw, "alice")
    prefix, token_id, secret = minted["token"].split("_", 2)
    tampered = f"{prefix}_{token_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    assert_401(gw.client.get(f"{ACCOUNTS}/whoami", auth=("alice", tampered)))


def test_basic_with_a_jwt_as_password_is_401(gw: Gateway) -> None:
    assert_401(gw.client.get(f"{ACCOUNTS}/whoami", auth=("alice", gw.tokens.alice)))


def test_pat_carries_the_minters_projects(gw: Gateway) -> None:
    task_id = gw.create("alice")
    bobs = mint_pat(gw, "bob")
    auth = ("bob", bobs["token"])
    assert gw.client.get(f"{BASE}/tasks/{task_id}", auth=auth).status_code == 404
    assert gw.client.post(f"{BASE}/tasks/{task_id}:cancel", auth=auth).status_code == 404
    assert gw.client.get(f"{BASE}/tasks", auth=auth).json()["tasks"] == []
    assert task_state(gw, task_id) == "QUEUED"


def test_revoking_another_users_pat(gw: Gateway) -> None:
    alices = mint_pat(gw, "alice")
    auth = ("alice", alices["token"])
    resp = gw.client.delete(f"{ACCOUNTS}/tokens/{alices['token_id']}", headers=gw.headers("bob"))
    assert resp.status_code == 404 and resp.json()["msg"]
    assert gw.client.get(f"{ACCOUNTS}/whoami", auth=auth).status_code == 200
    assert gw.client.delete(f"{ACCOUNTS}/tokens/{alices['token_id']}", headers=gw.headers("admin")).status_code == 200
    assert_401(gw.client.get(f"{ACCOUNTS}/whoami", auth=auth))


def test_revoking_an_unknown_pat_is_404(gw: Gateway) -> None:
    resp = gw.client.delete(f"{ACCOUNTS}/tokens/0000000000000000", headers=gw.headers("admin"))
    assert resp.status_code == 404 and resp.json()["msg"]


@pytest.mark.parametrize(
    "body",
    [{"lifetime_seconds": 59}, {"lifetime_seconds": 31536001}, {"lifetime_seconds": "long"}, {"scope": "all"},
     {"description": "x" * 201}],
    ids=["too-short", "too-long", "not-a-number", "unknown-field", "long-description"],
)
def test_pat_creation_is_validated(gw: Gateway, body: dict[str, Any]) -> None:
    resp = gw.client.post(f"{ACCOUNTS}/tokens", json=body, headers=gw.headers("alice"))
    assert resp.status_code == 400, resp.text
    assert resp.json()["msg"].strip()
    assert gw.client.get(f"{ACCOUNTS}/tokens", headers=gw.headers("alice")).json()["tokens"] == []


# --------------------------------------------------------------------------- bearer tokens and their claims


def whoami(gw: Gateway, token: str) -> dict[str, Any]:
    resp = gw.client.get(f"{ACCOUNTS}/whoami", headers=bearer(token))
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


@pytest.mark.parametrize(
    ("roles", "projects"),
    [("researcher,admin", "p1,p2"), ("researcher admin", "p1 p2"), (" researcher , admin ", "p1, p2")],
    ids=["comma", "space", "comma-with-blanks"],
)
def test_string_claims_work_like_lists(gw: Gateway, roles: str, projects: str) -> None:
    as_list = gw.tokens.raw({"preferred_username": "carol", "roles": ["researcher", "admin"], "projects": ["p1", "p2"]})
    as_string = gw.tokens.raw({"preferred_username": "carol", "roles": roles, "projects": projects})
    assert whoami(gw, as_string) == whoami(gw, as_list) == {
        "user": "carol", "roles": ["admin", "researcher"], "projects": ["p1", "p2"],
    }
    # Both projects count for submission, the admin role for visibility.
    in_p2 = gw.client.post(f"{BASE}/tasks", json=gw.task_body("p2"), headers=bearer(as_string))
    assert in_p2.status_code == 200, in_p2.text
    alices = gw.create("alice")
    seen = {t["id"] for t in gw.client.get(f"{BASE}/tasks", headers=bearer(as_string)).json()["tasks"]}
    assert seen == {in_p2.json()["id"], alices}


def test_single_string_claims(gw: Gateway) -> None:
    token = gw.tokens.raw({"preferred_username": "dave", "roles": "researcher", "projects": "p1"})
    assert whoami(gw, token) == {"user": "dave", "roles": ["researcher"], "projects": ["p1"]}
    # One project: it is used without a project tag.
    resp = gw.client.post(f"{BASE}/tasks", json=gw.task_body(), headers=bearer(token))
    assert resp.status_code == 200, resp.text
    task = gw.client.get(f"{BASE}/tasks/{resp.json()['id']}", params={"view": "BASIC"}, headers=bearer(token))
    assert task.json()["tags"]["project"] == "p1"


def test_unknown_roles_are_ignored(gw: Gateway) -> None:
    token = gw.tokens.raw({"preferred_username": "erin", "roles": ["superuser", "researcher"], "projects": ["p1"]})
    assert whoami(gw, token)["roles"] == ["researcher"]


def test_submission_needs_the_researcher_role(gw: Gateway) -> None:
    token = gw.tokens.mint("olga", ["p1"], ["output_checker"])
    before = gw.count_tasks()
    resp = gw.client.post(f"{BASE}/tasks", json=gw.task_body(), headers=bearer(token))
    assert resp.status_code == 403, resp.text
    assert "researcher" in resp.json()["msg"]
    assert gw.count_tasks() == before


@pytest.mark.parametrize(
    ("projects", "word"), [([], "not a member of any project"), (["p1", "p2"], "several projects")]
)
def test_submission_needs_one_clear_project(gw: Gateway, projects: list[str], word: str) -> None:
    token = gw.tokens.mint("frank", projects, ["researcher"])
    body = gw.task_body()
    body.pop("tags", None)
    resp = gw.client.post(f"{BASE}/tasks", json=body, headers=bearer(token))
    assert resp.status_code == 400
    assert word in resp.json()["msg"]


def _no_exp(gw: Gateway) -> str:
    return jwt.encode({"preferred_username": "alice", "roles": ["researcher"], "projects": ["p1"]}, gw.tokens.secret)


def _alg_none(gw: Gateway) -> str:
    claims = {"preferred_username": "alice", "roles": ["admin"], "projects": ["p1"], "exp": int(time.time()) + 600}
    return jwt.encode(claims, None, algorithm="none")


BAD_BEARERS: dict[str, Callable[[Gateway], dict[str, str]]] = {
    "no-exp": lambda gw: bearer(_no_exp(gw)),
    "alg-none": lambda gw: bearer(_alg_none(gw)),
    "not-a-jwt": lambda gw: bearer("not-a-jwt"),
    "blank-username": lambda gw: bearer(gw.tokens.raw({"preferred_username": "  ", "roles": ["researcher"]})),
    "username-not-a-string": lambda gw: bearer(gw.tokens.raw({"preferred_username": ["alice"]})),
    "not-yet-valid": lambda gw: bearer(gw.tokens.raw({"preferred_username": "alice", "nbf": int(time.time()) + 600})),
    "unknown-scheme": lambda gw: {"Authorization": f"Token {gw.tokens.alice}"},
    "empty-bearer": lambda gw: {"Authorization": "Bearer "},
}


@pytest.mark.parametrize("name", sorted(BAD_BEARERS))
def test_unusable_bearer_tokens_are_401(gw: Gateway, name: str) -> None:
    headers = BAD_BEARERS[name](gw)
    assert_401(gw.client.get(f"{ACCOUNTS}/whoami", headers=headers))
    before = gw.count_tasks()
    assert_401(gw.client.post(f"{BASE}/tasks", json=gw.task_body(), headers=headers))
    assert gw.count_tasks() == before
