"""The /airlock/ review pages in-process: the real app on SQLite and the local store, no browser.

Requests are seeded straight into the repository and the quarantine area, so every path of the pages
(flagged cells, overrides, refusals, bad input, auth off) is exercised without running a task.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.auth.jwt_tokens import load_or_create_dev_secret, mint_dev_token
from gateway.api.app import create_app
from gateway.api.web import CSRF_FIELD, LOGIN_COOKIE, SESSION_COOKIE, csrf_token_for, parse_credential
from gateway.bootstrap import Components, build
from gateway.config import Settings
from gateway.domain.airlock import EgressFile, EgressRequest
from gateway.domain.disclosure import CellFlag
from gateway.domain.egress import CheckResult, QuarantinedFile
from gateway.domain.errors import InvalidRequest
from gateway.domain.identity import Principal, Role
from gateway.services.ports import Area

COUNTS = b"region,sex,n\nNorth,F,12\nNorth,M,3\n<script>alert(1)</script>,F,25\n"
NOTES = b"Totals by region.\n<b>not bold</b>\n"
ALERT = re.compile(r'role="alert">\s*<p>(.*?)</p>', re.S)
STATUS = re.compile(r'role="status"><p>(.*?)</p>', re.S)


@dataclass
class Site:
    components: Components
    client: Any
    secret: str

    def token(self, user: str, *roles: str, project: str = "p1") -> str:
        return mint_dev_token(self.secret, user, [project], list(roles or ("researcher",)))

    def seed(self, request_id: str = "er-1", *, flag: bool = True) -> EgressRequest:
        store = self.components.store

        def quarantined(name: str, data: bytes) -> QuarantinedFile:
            key = f"{request_id}/{name}"
            store.put_bytes(Area.QUARANTINE, key, data)
            return QuarantinedFile(store.url_for(Area.RELEASED, f"p1/{request_id}/{name}"), f"/out/{name}", key,
                                   len(data), hashlib.sha256(data).hexdigest(), "text/plain")

        small = CheckResult("table.small_cells", not flag, "1 cell below 10" if flag else "no small cells")
        request = EgressRequest(
            id=request_id, task_id="t-" + request_id, project="p1", requester="alice",
            created_at=datetime.now(UTC),
            files=(
                EgressFile("0", quarantined("counts.csv", COUNTS), (small,),
                           (CellFlag(1, 2, "table.small_cells"),) if flag else ()),
                EgressFile("1", quarantined("notes.txt", NOTES), (CheckResult("size.file_cap", True, "ok"),)),
            ),
        )
        self.components.airlock.requests.add(request)
        return request

    def login(self, credential: str) -> Any:
        page = self.client.get("/airlock/login")
        nonce = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        return self.client.post("/airlock/login", data={CSRF_FIELD: nonce, "token": credential},
                                follow_redirects=False)

    def csrf(self) -> str:
        return csrf_token_for(self.client.cookies.get(SESSION_COOKIE, path="/airlock"))

    def decide(self, file_id: str, verdict: str, reason: str = "", override: bool = False,
               csrf: str | None = None) -> Any:
        data = {CSRF_FIELD: self.csrf() if csrf is None else csrf, "verdict": verdict, "reason": reason}
        if override:
            data["override"] = "1"
        return self.client.post(f"/airlock/requests/er-1/files/{file_id}/decision", data=data,
                                follow_redirects=False)


def make_site(data_dir: Path, **overrides: Any) -> Site:
    settings = Settings.load({}, data_dir=data_dir, **overrides)
    components = build(settings)
    client = create_app(settings, components=components).test_client(raise_server_exceptions=False,
                                                                      follow_redirects=False)
    return Site(components, client, load_or_create_dev_secret(settings.dev_secret_file))


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = make_site(tmp_path / "gw")
    yield s
    s.components.engine.dispose()


# --------------------------------------------------------------------------- login, cookies, headers


def test_pages_need_a_login_and_keep_the_credential_in_a_strict_http_only_cookie(site):
    first = site.client.get("/airlock/requests/er-1")
    assert first.status_code == 303
    assert first.headers["location"] == "/airlock/login?next=/airlock/requests/er-1"
    response = site.login(site.token("carol", "output_checker"))
    assert response.status_code == 303 and response.headers["location"] == "/airlock/"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite"} <= attributes and "secure" not in attributes
    assert "Path=/airlock" in cookie and "SameSite=Strict" in cookie
    queue = site.client.get("/airlock/")
    assert queue.status_code == 200
    assert "Signed in as <strong>carol</strong>" in queue.text


def test_the_cookie_is_secure_over_https(tmp_path):
    s = make_site(tmp_path / "gw")
    s.client.base_url = "https://testserver"
    response = s.login(s.token("carol", "output_checker"))
    assert response.status_code == 303
    assert all("Secure" in c for c in response.headers.get_list("set-cookie"))


def test_a_personal_access_token_logs_in_too(site):
    alice = Principal("alice", frozenset({Role.RESEARCHER}), frozenset({"p1"}))
    text, _ = site.components.access_tokens.mint(alice, 3600)
    assert site.login(f"alice:{text}").status_code == 303
    assert "Signed in as <strong>alice</strong>" in site.client.get("/airlock/").text


@pytest.mark.parametrize("credential, message", [
    ("", "paste a bearer token"),
    ("not-a-jwt", "the token is not valid"),
    ("alice:trepat_0_nope", "unknown access token or wrong user name"),
    ("alice:", "a personal access token is written user:token"),
    ("two words", "must not contain spaces"),
])
def test_bad_credentials_show_the_reason_on_the_login_page(site, credential, message):
    response = site.login(credential)
    assert response.status_code in (400, 401)
    assert message in ALERT.search(response.text).group(1)
    assert not any(c.startswith(SESSION_COOKIE + "=") for c in response.headers.get_list("set-cookie"))


def test_the_login_form_needs_its_nonce(site):
    site.client.get("/airlock/login")
    response = site.client.post("/airlock/login", data={CSRF_FIELD: "forged", "token": site.token("carol")})
    assert response.status_code == 403
    assert LOGIN_COOKIE in response.headers["set-cookie"]
    assert site.client.cookies.get(SESSION_COOKIE) is None


def test_an_invalid_session_cookie_ends_the_session(site):
    site.client.cookies.set(SESSION_COOKIE, "b.forged.token.value", domain="testserver.local", path="/airlock")
    response = site.client.get("/airlock/")
    assert response.status_code == 401
    assert "Your session ended" in ALERT.search(response.text).group(1)
    assert any(c.startswith(SESSION_COOKIE + '=""') or c.startswith(SESSION_COOKIE + "=;")
               for c in response.headers.get_list("set-cookie"))


def test_logout_clears_the_cookie(site):
    site.login(site.token("carol", "output_checker"))
    response = site.client.post("/airlock/logout", data={CSRF_FIELD: site.csrf()})
    assert response.status_code == 303 and response.headers["location"] == "/airlock/login"
    assert site.client.get("/airlock/").status_code == 303


def test_security_headers_on_pages_and_files(site):
    site.seed()
    site.login(site.token("carol", "output_checker"))
    for url in ("/airlock/", "/airlock/requests/er-1", "/airlock/requests/er-1/files/0/quarantined",
                "/airlock/requests/nope", "/airlock/login"):
        response = site.client.get(url)
        assert response.headers["content-security-policy"].startswith("default-src 'self'"), url
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store", url
    css = site.client.get("/airlock/static/airlock.css")
    assert css.status_code == 200 and css.headers["cache-control"] != "no-store"


def test_parse_credential():
    assert parse_credential("  Bearer abc.def.ghi ") == "b.abc.def.ghi"
    assert parse_credential("alice:trepat_1_x").startswith("p.")
    with pytest.raises(InvalidRequest):
        parse_credential("x" * 9000)


# --------------------------------------------------------------------------- reviewing


def test_flagged_cells_are_marked_and_labelled_and_task_data_is_escaped(site):
    site.seed()
    site.login(site.token("carol", "output_checker"))
    page = site.client.get("/airlock/requests/er-1").text
    assert '<td class="flagged"><mark>3</mark> <span class="flag-label">flagged: table.small_cells</span></td>' in page
    assert page.count('class="flagged"') == 1
    assert '<th scope="col">region</th>' in page and '<th scope="row">2</th>' in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page
    assert 'id="override-0"' in page and 'id="override-1"' not in page  # only the flagged file needs it


def test_decisions_need_the_csrf_token(site):
    site.seed()
    site.login(site.token("carol", "output_checker"))
    for token in ("", "0" * 64):
        response = site.decide("1", "approve", csrf=token)
        assert response.status_code == 403
        assert "security token" in ALERT.search(response.text).group(1)
    assert site.components.airlock.requests.get("er-1").files[1].decisions == ()


def test_a_flagged_file_is_approved_only_with_an_override_and_a_reason(site):
    site.seed()
    site.login(site.token("carol", "output_checker"))
    refused = site.decide("0", "approve", reason="aggregated enough", override=False)
    assert refused.status_code == 400
    assert "failed automated checks (table.small_cells)" in ALERT.search(refused.text).group(1)
    assert ">aggregated enough</textarea>" in refused.text  # what the reviewer wrote is kept
    ok = site.decide("0", "approve", reason="aggregated enough", override=True)
    assert ok.status_code == 303 and ok.headers["location"] == "/airlock/requests/er-1?decided=0#file-0"
    page = site.client.get(ok.headers["location"]).text
    assert STATUS.search(page).group(1) == "Recorded: you approved counts.csv."
    assert "approve (overriding failed checks)" in page


def test_a_rejection_needs_a_reason_and_the_request_closes_when_all_files_are_decided(site):
    site.seed()
    site.login(site.token("carol", "output_checker"))
    empty = site.decide("0", "reject", reason="   ")
    assert empty.status_code == 400 and "a rejection needs a reason" in ALERT.search(empty.text).group(1)
    assert site.decide("0", "reject", reason="cell of 3").status_code == 303
    assert site.decide("1", "approve").status_code == 303
    again = site.decide("1", "approve")
    assert again.status_code == 409 and "already" in ALERT.search(again.text).group(1)
    page = site.client.get("/airlock/requests/er-1").text
    assert "This request is closed (PARTIALLY_RELEASED)" in page
    assert 'name="verdict"' not in page


def test_the_requester_sees_states_and_downloads_only_released_files(site):
    site.seed()
    site.login(site.token("carol", "output_checker"))
    site.decide("0", "reject", reason="cell of 3")
    site.decide("1", "approve")
    site.client.cookies.clear()
    site.login(site.token("alice"))
    queue = site.client.get("/airlock/?state=ANY").text
    assert 'href="/airlock/requests/er-1">View er-1</a>' in queue
    page = site.client.get("/airlock/requests/er-1").text
    assert 'class="data preview"' not in page and "text-preview" not in page and "<textarea" not in page
    assert "cell of 3" in page and "counts.csv was not released." in page
    assert 'href="/airlock/requests/er-1/files/1/download"' in page
    assert 'href="/airlock/requests/er-1/files/0/download"' not in page
    download = site.client.get("/airlock/requests/er-1/files/1/download")
    assert download.status_code == 200 and download.content == NOTES
    assert 'filename="notes.txt"' in download.headers["content-disposition"]
    refused = site.client.get("/airlock/requests/er-1/files/0/download")
    assert refused.status_code == 404 and "has not been released" in ALERT.search(refused.text).group(1)
    assert site.client.get("/airlock/requests/er-1/files/0/quarantined").status_code == 403


def test_other_projects_requests_are_not_found(site):
    site.seed()
    site.login(site.token("bob", "output_checker", project="p2"))
    assert "er-1" not in site.client.get("/airlock/?state=ANY").text
    response = site.client.get("/airlock/requests/er-1")
    assert response.status_code == 404
    assert "egress request &#39;er-1&#39; not found" in ALERT.search(response.text).group(1)


@pytest.mark.parametrize("method, url, form, status", [
    ("GET", "/airlock/?state=OPEN", None, 400),
    ("GET", "/airlock/?page_token=bogus", None, 400),
    ("GET", "/airlock/requests/" + "x" * 300, None, 404),
    ("GET", "/airlock/requests/er-1/files/9/download", None, 404),
    ("GET", "/airlock/no/such/page", None, 404),
    ("POST", "/airlock/requests/er-1/files/0/decision", {}, 400),
    ("POST", "/airlock/requests/er-1/files/0/decision", {"verdict": "maybe"}, 400),
    ("POST", "/airlock/requests/er-1/files/1/decision", {"verdict": "approve", "reason": "x" * 5000}, 400),
    ("POST", "/airlock/requests/er-1/files/1/decision", {"verdict": "approve", "reason": "a\x00b"}, 400),
    ("POST", "/airlock/requests/er-1/files/9/decision", {"verdict": "approve"}, 404),
    ("POST", "/airlock/requests/nope/files/0/decision", {"verdict": "reject", "reason": "r"}, 404),
])
def test_bad_input_gets_a_readable_page_never_a_500(site, method, url, form, status):
    site.seed()
    site.login(site.token("carol", "output_checker"))
    data = {CSRF_FIELD: site.csrf(), **form} if form is not None else None
    response = site.client.request(method, url, data=data)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert ALERT.search(response.text)


@pytest.mark.parametrize("url", ["/airlock/requests/er%00-1", "/airlock/requests/er-1%0A/files/0/download"])
def test_control_characters_in_page_urls_are_refused(site, url):
    site.seed()
    site.login(site.token("carol", "output_checker"))
    assert site.client.get(url).status_code in (400, 404)


def test_unknown_api_paths_keep_the_json_errors(site):
    response = site.client.get("/airlock/v1/no-such-operation")
    assert response.status_code == 404 and response.json()["status_code"] == 404


# --------------------------------------------------------------------------- auth off


def test_with_auth_off_the_pages_act_as_the_anonymous_admin(tmp_path):
    s = make_site(tmp_path / "gw", auth="none")
    s.seed()
    assert s.client.get("/airlock/login").headers["location"] == "/airlock/"
    page = s.client.get("/airlock/requests/er-1")
    assert page.status_code == 200 and "Signed in as <strong>anonymous</strong>" in page.text
    assert "Authentication is off" in page.text
    # No credential: the CSRF token is keyed by a random per-browser cookie instead.
    assert s.client.cookies.get(SESSION_COOKIE, path="/airlock").startswith("a.")
    assert s.decide("1", "approve", csrf="x").status_code == 403
    # As in the API, the anonymous admin is no output checker.
    refused = s.decide("1", "approve")
    assert refused.status_code == 403 and "output_checker" in ALERT.search(refused.text).group(1)
