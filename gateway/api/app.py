"""The app factory: `create_app(settings)` builds a connexion (Flask) ASGI app serving our OpenAPI documents."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import connexion
from connexion.exceptions import ProblemException
from connexion.middleware import MiddlewarePosition
from connexion.resolver import Resolver
from flask import Response, redirect
from starlette.exceptions import HTTPException

from gateway.api import accounts, airlock, five_safes, tes, wes
from gateway.api.errors import error_body, problem_handler, status_for, unexpected_handler
from gateway.api.limits import BodySizeLimit, RejectControlCharacters
from gateway.api.security import security_map
from gateway.api.validation import validator_map
from gateway.api.web import register_review_pages
from gateway.bootstrap import Components, build
from gateway.config import Settings
from gateway.domain.errors import DomainError

log = logging.getLogger(__name__)

# The package's openapi/ (in the repository a link to the top-level documents; in a wheel, copies).
SPEC_DIR = Path(__file__).resolve().parents[1] / "openapi"


def _instrumented(operation: str, fn: Callable[..., Any], c: Components) -> Callable[..., Any]:
    """Time the operation and turn domain errors into the error table's responses."""

    @functools.wraps(fn)
    def handler(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        status = 200
        principal = (kwargs.get("token_info") or {}).get("principal")
        fields: dict[str, Any] = {"operation": operation, "user": getattr(principal, "user", None)}
        if "id" in kwargs:
            fields["task_id"] = kwargs["id"]
        try:
            result = fn(*args, **kwargs)
            if operation == "CreateTask":
                fields["task_id"] = result.get("id")
            return result
        except DomainError as exc:
            status = status_for(exc)
            fields["error"] = exc.msg
            # An explicit JSON response: operations that stream files declare two content types.
            return Response(json.dumps(error_body(exc.msg, status)), status, mimetype="application/json")
        finally:
            elapsed = time.perf_counter() - started
            c.metrics.observe_request(operation, status, elapsed)
            log.info("request", extra={**fields, "status": status, "ms": round(elapsed * 1000, 2)})

    return handler


def create_app(settings: Settings, components: Components | None = None) -> connexion.FlaskApp:
    """Build the web app. Nothing is fetched from the network; the database schema is migrated."""
    c = components or build(settings)
    table: dict[str, Callable[..., Any]] = {}
    for group in (tes.handlers(c), accounts.handlers(c), airlock.handlers(c), five_safes.handlers(c)):
        table.update({name: _instrumented(name, fn, c) for name, fn in group.items()})

    # WES reuses operationIds of TES (GetServiceInfo, ListTasks, GetTask): it gets its own table.
    wes_table = {name: _instrumented(name, fn, c) for name, fn in wes.handlers(c).items()}

    def resolve(operation_id: str) -> Callable[..., Any]:
        return table[operation_id]

    if settings.auth == "none":
        log.warning("AUTHENTICATION IS OFF (TRE_GATEWAY_AUTH=none): every caller is an admin. Never use this in a TRE.")
    app = connexion.FlaskApp(
        __name__,
        specification_dir=str(SPEC_DIR),
        security_map=security_map(c.authenticator),
        validator_map=validator_map(),
    )
    common = dict(
        resolver=Resolver(resolve),
        validate_responses=True,
        strict_validation=True,
    )
    # A workflow engine's run credential is good for the TES API only (its steps), nowhere else.
    app.add_api("tes.yaml", base_path="/ga4gh/tes/v1",
                security_map=security_map(c.authenticator, c.runs.engine_principal), **common)
    app.add_api("gateway.yaml", base_path="/gateway/v1", **common)
    app.add_api("airlock.yaml", base_path="/airlock/v1", **common)
    app.add_api("five-safes.yaml", base_path="/five-safes/v1", **common)
    app.add_api("wes.yaml", base_path="/ga4gh/wes/v1",
                **{**common, "resolver": Resolver(lambda operation_id: wes_table[operation_id])})
    app.add_middleware(RejectControlCharacters, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(BodySizeLimit, position=MiddlewarePosition.BEFORE_EXCEPTION,
                       max_bytes=settings.max_request_bytes)
    app.add_error_handler(ProblemException, problem_handler)
    app.add_error_handler(HTTPException, problem_handler)
    app.add_error_handler(Exception, unexpected_handler)

    flask_app = app.app
    flask_app.config["GATEWAY"] = c
    register_review_pages(flask_app, c)

    @flask_app.get("/metrics")
    def metrics() -> Response:
        return Response(c.metrics.exposition(), mimetype="text/plain; version=0.0.4")

    @flask_app.get("/")
    def index() -> Any:
        return redirect("/ga4gh/tes/v1/ui/")

    @flask_app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    return app
