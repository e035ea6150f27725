"""The one table from domain errors to HTTP, and connexion's own problems rewritten to `{msg, status_code}`."""

from __future__ import annotations

import json
import logging
from typing import Any

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from gateway.domain import errors as e

log = logging.getLogger(__name__)

STATUS_OF: dict[type[e.DomainError], int] = {
    e.InvalidRequest: 400,
    e.ImageNotAllowed: 400,
    e.DestinationNotAllowed: 400,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.Conflict: 409,
    e.BackendError: 503,
}


def status_for(error: e.DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]  # type: ignore[index]
    return 500


def error_body(msg: str, status: int) -> dict[str, Any]:
    return {"msg": msg, "status_code": status}


def _response(msg: str, status: int, headers: dict[str, str] | None = None) -> ConnexionResponse:
    return ConnexionResponse(
        status_code=status,
        mimetype="application/json",
        content_type="application/json",
        body=json.dumps(error_body(msg, status)),
        headers=headers or {},
    )


def problem_handler(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """Validation and security problems raised by connexion, in the gateway's error format."""
    if isinstance(exc, ProblemException):
        status, detail = exc.status, exc.detail or exc.title or "request rejected"
        headers = dict(exc.headers or {})
    elif isinstance(exc, HTTPException):
        status, detail, headers = exc.status_code, exc.detail, dict(exc.headers or {})
    else:
        status, detail, headers = 500, "internal error", {}
    # jsonschema appends the whole schema and instance after a blank line: keep the sentence.
    detail = str(detail).split("\n\n", 1)[0].strip()
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="tre-gateway", Basic realm="tre-gateway"')
    if status >= 500:
        log.error("request failed: %r", exc)
    return _response(str(detail), status, headers)


def unexpected_handler(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    if isinstance(exc, e.DomainError):
        return _response(exc.msg, status_for(exc))
    log.exception("unhandled error", exc_info=exc)
    return _response("internal error; the incident was logged", 500)
