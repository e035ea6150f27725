"""`tre-gateway` command line: serve, worker, token, migrate, member."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from gateway.config import Settings, SettingsError

log = logging.getLogger("gateway.cli")


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    return Settings.load(os.environ, config_file=getattr(args, "config", None), **overrides)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.api.app import create_app
    from gateway.bootstrap import build
    from gateway.logs import configure_logging

    settings = _settings(args, host=args.host, port=args.port)
    configure_logging(settings.log_level, settings.log_json)
    components = build(settings)
    app = create_app(settings, components)
    stop = threading.Event()
    if not args.no_dispatcher:
        dispatcher = components.dispatcher
        threading.Thread(target=dispatcher.run_forever, args=(stop,), name="dispatcher", daemon=True).start()
    base = f"http://{settings.host}:{settings.port}"
    print(f"TES API:     {base}/ga4gh/tes/v1/service-info", flush=True)
    print(f"Swagger UI:  {base}/ga4gh/tes/v1/ui/", flush=True)
    print(f"Metrics:     {base}/metrics", flush=True)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    finally:
        stop.set()
    return 0


def _worker(args: argparse.Namespace) -> int:
    from gateway.bootstrap import build
    from gateway.logs import configure_logging

    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_json)
    components = build(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    components.dispatcher.run_forever(stop)
    return 0


def _token(args: argparse.Namespace) -> int:
    from gateway.adapters.auth.jwt_tokens import load_or_create_dev_secret, mint_dev_token

    settings = _settings(args)
    roles = args.role or ["researcher"]
    projects = args.project or []
    if args.basic:
        from gateway.bootstrap import build
        from gateway.domain.identity import Principal, parse_roles

        components = build(settings)
        principal = Principal(user=args.user, roles=parse_roles(roles), projects=frozenset(projects))
        text, record = components.access_tokens.mint(principal, args.lifetime, args.description or "")
        print(f"{args.user}:{text}" if args.with_user else text)
        return 0
    if settings.auth != "dev":
        print("token: bearer tokens are minted only in dev mode; with OIDC ask your identity provider", file=sys.stderr)
        return 2
    secret = load_or_create_dev_secret(settings.dev_secret_file)
    print(mint_dev_token(secret, args.user, projects, roles, args.lifetime))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from gateway.adapters.db.engine import make_engine, migrate

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(make_engine(settings.resolved_database_url))
    print("database schema is up to date")
    return 0


def _member(args: argparse.Namespace) -> int:
    from gateway.adapters.db.engine import make_engine, migrate
    from gateway.adapters.db.repository import SqlMembershipRepository

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    SqlMembershipRepository(engine).add_member(args.project, args.user)
    print(f"{args.user} is a member of {args.project}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    import json

    from gateway.adapters.db.airlock_repository import SqlAuditLog
    from gateway.adapters.db.engine import make_engine, migrate
    from gateway.services.audit import verify

    settings = _settings(args)
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    log = SqlAuditLog(engine)
    if args.action == "verify":
        problems = verify(log)
        for problem in problems:
            print(f"TAMPERED: {problem}")
        seq, _ = log.head()
        print(f"audit log intact: {seq} entries" if not problems else f"audit log FAILED verification ({seq} entries)")
        return 0 if not problems else 1
    out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115 - closed below
    try:
        for entry in log.entries():
            out.write(json.dumps(entry.to_json(), sort_keys=True) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tre-gateway",
        description="GA4GH TES gateway for Trusted Research Environments. Settings come from a TOML file "
        "(--config or TRE_GATEWAY_CONFIG) and TRE_GATEWAY_* environment variables; see README.",
    )
    p.add_argument("--config", type=Path, help="TOML settings file (environment variables override it)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve the API (with an in-process dispatcher)")
    s.add_argument("--host", help="address to bind (default 127.0.0.1, or TRE_GATEWAY_HOST)")
    s.add_argument("--port", type=int, help="port to bind (default 8080, or TRE_GATEWAY_PORT)")
    s.add_argument("--no-dispatcher", action="store_true",
                   help="serve the API only; run `tre-gateway worker` processes to execute tasks")
    s.set_defaults(func=_serve)

    w = sub.add_parser("worker", help="run a dispatcher/reconciler process (scale-out, no HTTP)")
    w.set_defaults(func=_worker)

    t = sub.add_parser("token", help="print a dev bearer token, or mint a personal access token (--basic)")
    t.add_argument("--user", required=True, help="user name (the preferred_username claim)")
    t.add_argument("--project", action="append", help="project membership (repeatable)")
    t.add_argument("--role", action="append", choices=["researcher", "output_checker", "admin"],
                   help="role (repeatable; default researcher)")
    t.add_argument("--lifetime", type=int, default=12 * 3600, help="seconds until expiry (default 12 h)")
    t.add_argument("--basic", action="store_true",
                   help="mint a revocable personal access token for HTTP Basic clients instead")
    t.add_argument("--with-user", action="store_true", help="with --basic: print user:token")
    t.add_argument("--description", help="with --basic: a note stored with the token")
    t.set_defaults(func=_token)

    m = sub.add_parser("migrate", help="create or upgrade the database schema")
    m.set_defaults(func=_migrate)

    mb = sub.add_parser("member", help="add a user to a project in the gateway's membership table")
    mb.add_argument("--project", required=True)
    mb.add_argument("--user", required=True)
    mb.set_defaults(func=_member)
    a = sub.add_parser("audit", help="verify the audit log's hash chain, or export it as JSON lines")
    a.add_argument("action", choices=["verify", "export"])
    a.add_argument("--output", type=Path, help="with export: write to this file instead of standard output")
    a.set_defaults(func=_audit)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
