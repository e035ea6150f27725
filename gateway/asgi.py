"""Production entry point for ASGI servers. Nothing is built at import time: the server calls the factory.

    gunicorn 'gateway.asgi:app_from_env()' -k uvicorn.workers.UvicornWorker --bind 0.0.0.0:8080
    uvicorn --factory gateway.asgi:app_from_env --host 0.0.0.0 --port 8080

gunicorn (20.1 and later, including 22-27) parses `module:name()` and calls `name` with the literal arguments,
in each worker process after the fork, so every worker builds its own database engine.

This serves the API only, like `tre-gateway serve --no-dispatcher`: no dispatcher runs in these processes.
Tasks are executed by `tre-gateway worker` processes, which coordinate through leases in the database.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import connexion

from gateway.config import Settings, SettingsError


def app_from_env(environ: Mapping[str, str] | None = None) -> connexion.FlaskApp:
    """Settings from `TRE_GATEWAY_*` variables (and `TRE_GATEWAY_CONFIG`), then the app. Bad settings stop it."""
    from gateway.api.app import create_app
    from gateway.logs import configure_logging

    env = os.environ if environ is None else environ
    try:
        settings = Settings.load(env)
    except SettingsError as exc:
        # gunicorn reports only "Worker failed to boot"; say why on standard error first.
        print(f"configuration error: {exc}", file=sys.stderr, flush=True)
        raise
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
