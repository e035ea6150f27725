"""The airlock's web pages under /airlock/: output checkers review egress requests, researchers collect releases.

Server-rendered HTML (Jinja, autoescaped), no JavaScript. The caller signs in once by pasting a bearer
token or a personal access token written `user:token`; the credential is kept in an HttpOnly,
SameSite=Strict cookie scoped to /airlock and verified by the gateway's Authenticator on every request,
exactly as the API verifies an Authorization header, so an expired or revoked token ends the session.
Every change is a POST carrying a CSRF token: an HMAC keyed by the session cookie (the login form uses a
double-submitted random nonce instead). All reads and decisions go through the AirlockService, so the
same rules and the same audit trail apply as for the API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import NotFound as NotFoundPage

from gateway.api.airlock import stream_file
from gateway.api.errors import error_body, status_for
from gateway.bootstrap import Components
from gateway.domain.airlock import EgressFile, EgressRequest, FileState, RequestState, Verdict
from gateway.domain.errors import DomainError, Forbidden, InvalidRequest, NotFound, Unauthenticated
from gateway.domain.identity import Principal
from gateway.domain.views import rfc3339
from gateway.services.airlock import Preview
from gateway.services.authentication import ANONYMOUS_ADMIN

log = logging.getLogger(__name__)

PREFIX = "/airlock"
SESSION_COOKIE = "airlock_session"
LOGIN_COOKIE = "airlock_login"
CSRF_FIELD = "csrf_token"
CSRF_CONTEXT = b"tre-gateway airlock pages: csrf v1"
MAX_CREDENTIAL_CHARS = 8192
MAX_REASON_CHARS = 4000
MAX_ID_CHARS = 64
PREVIEW_ROWS = 50
ANY_STATE = "ANY"

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


# --------------------------------------------------------------------------- credentials and CSRF


def parse_credential(text: str) -> str:
    """The cookie value for a pasted credential: `b.<jwt>` or `p.<base64url(user:token)>`.

    Raises InvalidRequest for input that cannot be a credential at all (the Authenticator judges the rest).
    """
    text = text.strip()
    if text[:7].lower() == "bearer ":
        text = text[7:].strip()
    if not text:
        raise InvalidRequest("token: paste a bearer token, or a personal access token written user:token")
    if len(text) > MAX_CREDENTIAL_CHARS:
        raise InvalidRequest(f"token: longer than {MAX_CREDENTIAL_CHARS} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise InvalidRequest("token: must not contain spaces or line breaks")
    if ":" in text:
        user, _, secret = text.partition(":")
        if not user or not secret:
            raise InvalidRequest("token: a personal access token is written user:token")
        return "p." + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    return "b." + text


def _decode_cookie(value: str) -> tuple[str, str]:
    kind, _, body = value.partition(".")
    if kind == "b" and body:
        return "bearer", body
    if kind == "p" and body:
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Unauthenticated("the session cookie is damaged; log in again") from None
        return "basic", raw
    raise Unauthenticated("the session cookie is damaged; log in again")


def csrf_token_for(session_value: str) -> str:
    return hmac.new(session_value.encode(), CSRF_CONTEXT, hashlib.sha256).hexdigest()


def _safe_next(target: str | None) -> str:
    """Only paths of these pages are followed after login (never another site)."""
    default = PREFIX + "/"
    if not target or not target.startswith(PREFIX + "/") or "\\" in target or any(ord(c) < 33 for c in target):
        return default
    return target


def _checked_id(value: str, what: str) -> str:
    """Ids come from the URL: anything no id can look like is simply not found."""
    if len(value) > MAX_ID_CHARS or not value.isprintable():
        raise NotFound(f"{what} not found")
    return value


def _checked_reason(reason: str) -> str:
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidRequest(f"reason: at most {MAX_REASON_CHARS} characters")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\r\n\t" for ch in reason):
        raise InvalidRequest("reason: must not contain control characters")
    return reason


# --------------------------------------------------------------------------- view models


@dataclass
class Cell:
    text: str
    flags: tuple[str, ...] = ()


@dataclass
class FileView:
    f: EgressFile
    name: str
    state: FileState
    checks_failed: tuple[str, ...]
    downloadable: bool
    # Where the file goes, as the TRE names it (area/key), rather than a host path.
    destination: str = ""
    preview: Preview | None = None
    preview_rows: list[list[Cell]] = field(default_factory=list)
    preview_flags: int = 0
    preview_error: str | None = None
    can_decide: bool = False
    decided_by_me: bool = False


def _destination(c: Components, f: EgressFile) -> str:
    where = c.store.locate(f.file.destination)
    return f"{where.area.value}/{where.key}" if where else f.file.destination


def _file_name(f: EgressFile) -> str:
    return f.file.container_path.rsplit("/", 1)[-1] or f.file.container_path


def _table_cells(f: EgressFile, preview: Preview) -> tuple[list[list[Cell]], int]:
    rules: dict[tuple[int, int], list[str]] = {}
    for flag in f.flagged_cells:
        if (flag.row, flag.column) in preview.flagged:
            rules.setdefault((flag.row, flag.column), []).append(flag.rule_id)
    rows = [
        [Cell(text, tuple(sorted(set(rules.get((r, c), []))))) for c, text in enumerate(row)]
        for r, row in enumerate(preview.rows)
    ]
    return rows, sum(1 for row in rows for cell in row if cell.flags)


def _is_reviewer(principal: Principal, r: EgressRequest) -> bool:
    try:
        r.check_reviewer(principal)
    except (Forbidden, NotFound):
        return False
    return True


def _size_text(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit} ({size:,} bytes)"


def _when(value: Any) -> dict[str, str]:
    stamp = rfc3339(value) or ""
    return {"iso": stamp, "text": stamp[:16].replace("T", " ") + " UTC" if stamp else ""}


# --------------------------------------------------------------------------- the blueprint


def make_blueprint(c: Components) -> Blueprint:
    bp = Blueprint(
        "airlock_pages",
        __name__,
        url_prefix=PREFIX,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    auth_off = c.authenticator is None

    # ---------------------------------------------------------------- per-request identity

    def authenticate(cookie: str) -> Principal:
        assert c.authenticator is not None
        kind, value = _decode_cookie(cookie)
        if kind == "bearer":
            return c.authenticator.from_bearer(value)
        user, _, secret = value.partition(":")
        return c.authenticator.from_basic(user, secret)

    @bp.before_request
    def identify() -> Any:
        g.principal = None
        g.set_session = None
        g.clear_session = False
        g.session_value = request.cookies.get(SESSION_COOKIE, "")
        if request.endpoint in ("airlock_pages.static", "airlock_pages.login", "airlock_pages.login_submit",
                                "airlock_pages.not_found"):
            return None
        if auth_off:
            g.principal = ANONYMOUS_ADMIN
            if not g.session_value:
                # No credential to key the CSRF token with: a random per-browser value stands in for it.
                g.session_value = g.set_session = "a." + secrets.token_urlsafe(32)
            return None
        if not g.session_value:
            return redirect(url_for("airlock_pages.login", next=request.full_path.rstrip("?")), 303)
        try:
            g.principal = authenticate(g.session_value)
        except Unauthenticated as exc:
            g.clear_session = True
            return login_page(error=f"Your session ended: {exc.msg}", status=401,
                              next_path=request.full_path.rstrip("?") if request.method == "GET" else None)
        return None

    @bp.before_request
    def check_csrf() -> None:
        if request.method != "POST" or request.endpoint in ("airlock_pages.login_submit", "airlock_pages.not_found"):
            return
        sent = request.form.get(CSRF_FIELD, "")
        expected = csrf_token_for(g.session_value) if g.session_value else ""
        if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise Forbidden("the form's security token is missing or stale; reload the page and try again")

    @bp.after_request
    def headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.endpoint != "airlock_pages.static":
            response.headers["Cache-Control"] = "no-store"
        secure = request.is_secure
        if getattr(g, "set_session", None):
            response.set_cookie(SESSION_COOKIE, g.set_session, path=PREFIX, httponly=True, samesite="Strict",
                                secure=secure)
        elif getattr(g, "clear_session", False):
            response.delete_cookie(SESSION_COOKIE, path=PREFIX, httponly=True, samesite="Strict", secure=secure)
        return response

    @bp.context_processor
    def common() -> dict[str, Any]:
        value = getattr(g, "session_value", "")
        return {
            "principal": getattr(g, "principal", None),
            "auth_off": auth_off,
            "csrf_field": CSRF_FIELD,
            "csrf_token": csrf_token_for(value) if value else "",
            "when": _when,
            "size_text": _size_text,
        }

    # ---------------------------------------------------------------- errors

    def error_page(message: str, status: int) -> tuple[str, int]:
        return render_template("airlock/error.html", message=message, status=status), status

    @bp.errorhandler(DomainError)
    def domain_error(exc: DomainError) -> Any:
        status = status_for(exc)
        if status == 401 and not auth_off:
            g.clear_session = True
            return login_page(error=exc.msg, status=401)
        return error_page(exc.msg, status)

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return error_page(exc.description or exc.name, exc.code or 500)

    @bp.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        log.exception("review page failed", exc_info=exc)
        return error_page("internal error; the incident was logged", 500)

    # ---------------------------------------------------------------- login and logout

    def login_page(error: str | None = None, status: int = 200, next_path: str | None = None) -> Any:
        nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        body = render_template("airlock/login.html", error=error, login_nonce=nonce,
                               next_path=_safe_next(next_path or request.values.get("next")))
        response = Response(body, status, mimetype="text/html")
        response.set_cookie(LOGIN_COOKIE, nonce, path=PREFIX, httponly=True, samesite="Strict",
                            secure=request.is_secure)
        return response

    @bp.get("/login")
    def login() -> Any:
        if auth_off:
            return redirect(url_for("airlock_pages.queue"), 303)
        return login_page()

    @bp.post("/login")
    def login_submit() -> Any:
        if auth_off:
            return redirect(url_for("airlock_pages.queue"), 303)
        assert c.authenticator is not None
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        sent = request.form.get(CSRF_FIELD, "")
        if not nonce or not sent or not hmac.compare_digest(nonce.encode(), sent.encode()):
            return login_page(error="The login form expired (or cookies are blocked); please try again.", status=403)
        try:
            value = parse_credential(request.form.get("token", ""))
            principal = authenticate(value)
        except (InvalidRequest, Unauthenticated) as exc:
            return login_page(error=f"Login failed: {exc.msg}", status=status_for(exc))
        log.info("airlock pages login", extra={"user": principal.user})
        response = redirect(_safe_next(request.form.get("next")), 303)
        g.set_session = value
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX, httponly=True, samesite="Strict", secure=request.is_secure)
        return response

    @bp.get("/logout")
    def logout_page() -> Any:
        return render_template("airlock/logout.html")

    @bp.post("/logout")
    def logout() -> Any:
        g.clear_session = not auth_off
        return redirect(url_for("airlock_pages.login"), 303)

    # ---------------------------------------------------------------- the queue

    @bp.get("")
    def bare_prefix() -> Any:
        return redirect(url_for("airlock_pages.queue"), 308)

    @bp.get("/")
    def queue() -> Any:
        chosen = request.args.get("state", RequestState.AWAITING_REVIEW.value)
        states = [s.value for s in RequestState]
        if chosen not in states and chosen != ANY_STATE:
            raise InvalidRequest(f"state: must be one of {', '.join(states)} or {ANY_STATE}")
        page_token = request.args.get("page_token") or None
        if page_token is not None and len(page_token) > 256:
            raise InvalidRequest("page_token: not a token issued by this server")
        requests, next_token = c.airlock.list_requests(
            g.principal, state=None if chosen == ANY_STATE else chosen, token=page_token
        )
        rows = [
            {
                "r": r,
                "pending": sum(1 for f in r.files if f.state(r.required_approvals) is FileState.PENDING),
                "failed": sum(1 for f in r.files if not f.checks_passed),
                "reviewer": _is_reviewer(g.principal, r),
            }
            for r in requests
        ]
        return render_template("airlock/queue.html", rows=rows, states=states, chosen=chosen, any_state=ANY_STATE,
                               next_token=next_token, first_page=page_token is None)

    # ---------------------------------------------------------------- one request

    def render_detail(request_id: str, *, error: str | None = None, status: int = 200,
                      draft: dict[str, str] | None = None) -> Any:
        principal: Principal = g.principal
        r = c.airlock.get(principal, _checked_id(request_id, f"egress request {request_id!r}"))
        reviewer = _is_reviewer(principal, r)
        files = []
        for f in r.files:
            state = f.state(r.required_approvals)
            view = FileView(
                f=f,
                name=_file_name(f),
                state=state,
                checks_failed=f.failed_rule_ids,
                downloadable=not r.state.is_open and state is FileState.APPROVED,
                decided_by_me=any(d.reviewer == principal.user for d in f.decisions),
                destination=_destination(c, f),
            )
            view.can_decide = reviewer and r.state.is_open and state is FileState.PENDING and not view.decided_by_me
            if reviewer and f.file.media_type.startswith("text/"):
                try:
                    view.preview = c.airlock.preview(principal, r.id, f.file_id, PREVIEW_ROWS)
                except DomainError as exc:
                    view.preview_error = exc.msg
                if view.preview is not None and view.preview.kind == "table":
                    view.preview_rows, view.preview_flags = _table_cells(f, view.preview)
            files.append(view)
        notice = None
        decided = request.args.get("decided")
        if decided and status == 200:
            for view in files:
                mine = [d for d in view.f.decisions if d.reviewer == principal.user]
                if view.f.file_id == decided and mine:
                    verb = "approved" if mine[-1].verdict is Verdict.APPROVE else "rejected"
                    notice = f"Recorded: you {verb} {view.name}."
        body = render_template("airlock/request.html", r=r, files=files, reviewer=reviewer, error=error,
                               notice=notice, draft=draft or {}, closed=not r.state.is_open)
        return Response(body, status, mimetype="text/html")

    @bp.get("/requests/<request_id>")
    def detail(request_id: str) -> Any:
        return render_detail(request_id)

    @bp.get("/requests/<request_id>/files/<file_id>/decision")
    def decision_page(request_id: str, file_id: str) -> Any:
        return redirect(url_for("airlock_pages.detail", request_id=request_id), 303)

    @bp.post("/requests/<request_id>/files/<file_id>/decision")
    def decide(request_id: str, file_id: str) -> Any:
        _checked_id(request_id, f"egress request {request_id!r}")
        _checked_id(file_id, f"file {file_id!r}")
        verdict = request.form.get("verdict", "")
        reason = request.form.get("reason", "")
        override = request.form.get("override") in ("1", "on", "true")
        draft = {"file_id": file_id, "verdict": verdict, "reason": reason, "override": "1" if override else ""}
        try:
            if verdict not in (Verdict.APPROVE.value, Verdict.REJECT.value):
                raise InvalidRequest("verdict: must be approve or reject")
            c.airlock.decide(g.principal, request_id, file_id, verdict, _checked_reason(reason), override)
        except DomainError as exc:
            # Show the request again with the message, keeping what the reviewer wrote (a missing or
            # invisible request raises again while rendering, and gets the plain error page).
            return render_detail(request_id, error=exc.msg, status=status_for(exc), draft=draft)
        return redirect(url_for("airlock_pages.detail", request_id=request_id, decided=file_id,
                                _anchor=f"file-{file_id}"), 303)

    # ---------------------------------------------------------------- files

    @bp.get("/requests/<request_id>/files/<file_id>/download")
    def download(request_id: str, file_id: str) -> Any:
        """A released file, for members of the project (the page links it once the file is released)."""
        return stream_file(*c.airlock.open_released(g.principal, _checked_id(request_id, "egress request"),
                                                    _checked_id(file_id, "file")))

    @bp.get("/requests/<request_id>/files/<file_id>/quarantined")
    def quarantined(request_id: str, file_id: str) -> Any:
        """The quarantined bytes, for the project's output checkers (as the API's content operation)."""
        return stream_file(*c.airlock.open_quarantined(g.principal, _checked_id(request_id, "egress request"),
                                                       _checked_id(file_id, "file")))

    @bp.route("/<path:rest>", methods=["GET", "POST"])
    def not_found(rest: str) -> Any:
        if rest == "v1" or rest.startswith("v1/"):
            # An unknown path of the API keeps the API's JSON error format.
            body = error_body(str(NotFoundPage.description), 404)
            return Response(json.dumps(body), 404, mimetype="application/json")
        return error_page("There is no such page.", 404)

    return bp


def register_review_pages(flask_app: Flask, components: Components) -> None:
    """Serve the review pages at /airlock/ on the gateway's Flask app."""
    flask_app.register_blueprint(make_blueprint(components))
