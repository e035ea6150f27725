"""Fixtures for the API tests: the real app (SQLite, local object store), dev tokens, upstream validation.

Every app here is built the production way: `create_app(settings, components=build(settings))` on a
fresh data directory, so the database is migrated and the store is the default `local` one. No
dispatcher is started: tasks stay where the API leaves them, and tests that need a finished task move
it through its lifecycle with the task repository.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import jwt
import pytest
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT4

from gateway.adapters.auth.jwt_tokens import load_or_create_dev_secret, mint_dev_token
from gateway.api.app import create_app
from gateway.bootstrap import Components, build
from gateway.config import Settings
from gateway.services.ports import Area
from tests.upstream_schema import (
    SERVICE_INFO_URL,
    SPECS_DIR,
    UPSTREAM_SERVICE_INFO,
    format_checker,
    refuse_remote,
)

UPSTREAM_TES = SPECS_DIR / "tes-1.1.0.openapi.yaml"
TES_URI = "urn:tre-gateway-tests:tes-1.1.0"
TES_MINIMAL_URI = "urn:tre-gateway-tests:tes-1.1.0-minimal"

BASE = "/ga4gh/tes/v1"
ACCOUNTS = "/gateway/v1"


# --------------------------------------------------------------------------- upstream schema validation


def _load_registry() -> Registry:
    tes = yaml.safe_load(UPSTREAM_TES.read_text())
    service_info = yaml.safe_load(UPSTREAM_SERVICE_INFO.read_text())
    # Upstream tesTask lists `executors` as required, yet TES 1.1 says the MINIMAL view returns only `id`
    # and `state` (the same schema also serves ListTasks items). MINIMAL documents are therefore validated
    # against a copy of the upstream document whose tesTask has no `required` list; everything else about
    # them (types, the state enum) is still checked against upstream.
    minimal = copy.deepcopy(tes)
    del minimal["components"]["schemas"]["tesTask"]["required"]
    return Registry(retrieve=refuse_remote).with_resources(  # type: ignore[call-arg]
        [
            (TES_URI, DRAFT4.create_resource(tes)),
            (TES_MINIMAL_URI, DRAFT4.create_resource(minimal)),
            (SERVICE_INFO_URL, DRAFT4.create_resource(service_info)),
        ]
    )


_REGISTRY = _load_registry()
_FORMATS = format_checker()


def validate_upstream(schema_name: str, body: Any, *, minimal: bool = False) -> None:
    """Validate `body` against components/schemas/<schema_name> of the upstream TES 1.1.0 document.

    `minimal=True` relaxes tesTask's `required` list (see `_load_registry`) for MINIMAL-view documents.
    Raises jsonschema.ValidationError with the failing path when the body does not conform.
    """
    uri = TES_MINIMAL_URI if minimal else TES_URI
    schema = {"$ref": f"{uri}#/components/schemas/{schema_name}"}
    validator = jsonschema.Draft4Validator(schema, registry=_REGISTRY, format_checker=_FORMATS)
    validator.validate(body)


@pytest.fixture(name="validate_upstream")
def validate_upstream_fixture() -> Callable[..., None]:
    return validate_upstream


# --------------------------------------------------------------------------- tokens


@dataclass
class Tokens:
    """Dev-mode bearer tokens, signed with the app's own dev secret unless said otherwise."""

    secret: str

    def mint(self, user: str, projects: list[str], roles: list[str], lifetime: int = 3600) -> str:
        return mint_dev_token(self.secret, user, projects, roles, lifetime_seconds=lifetime)

    def raw(self, claims: dict[str, Any], secret: str | None = None) -> str:
        """A token with exactly these claims (plus `exp`/`iat` unless given)."""
        now = int(time.time())
        body = {"iat": now, "exp": now + 3600, "iss": "tre-gateway-dev", **claims}
        return jwt.encode(body, secret or self.secret, algorithm="HS256")

    @property
    def alice(self) -> str:
        """Researcher in project p1."""
        return self.mint("alice", ["p1"], ["researcher"])

    @property
    def bob(self) -> str:
        """Researcher in project p2 only."""
        return self.mint("bob", ["p2"], ["researcher"])

    @property
    def admin(self) -> str:
        """Administrator, member of no project."""
        return self.mint("root", [], ["admin"])

    @property
    def expired(self) -> str:
        # Well past the verifier's 30 s leeway.
        return self.mint("alice", ["p1"], ["researcher"], lifetime=-3600)

    @property
    def wrong_secret(self) -> str:
        return mint_dev_token("not-the-gateway-secret-" + "x" * 32, "alice", ["p1"], ["researcher"])

    @property
    def no_username(self) -> str:
        return self.raw({"sub": "dev-123456", "roles": ["researcher"], "projects": ["p1"]})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- the gateway under test


@dataclass
class Gateway:
    settings: Settings
    components: Components
    app: Any
    client: Any
    tokens: Tokens
    _counter: list[int] = field(default_factory=lambda: [0])

    # ---- URLs of the project areas (the local store's file:// URLs)

    def released(self, project: str, key: str) -> str:
        return self.components.store.url_for(Area.RELEASED, f"{project}/{key}")

    def inputs(self, project: str, key: str) -> str:
        return self.components.store.url_for(Area.INPUTS, f"{project}/{key}")

    # ---- requests

    def headers(self, who: str) -> dict[str, str]:
        """Bearer headers for 'alice', 'bob' or 'admin'."""
        return bearer(getattr(self.tokens, who))

    def task_body(self, project: str = "p1", **fields: Any) -> dict[str, Any]:
        """A valid task for `project`: allowed image, absolute paths, output in the project's released area."""
        self._counter[0] += 1
        body: dict[str, Any] = {
            "name": f"task-{self._counter[0]}",
            "executors": [{"image": "alpine", "command": ["sh", "-c", "echo hi > /out/result.txt"]}],
            "outputs": [{"path": "/out/result.txt", "url": self.released(project, f"run{self._counter[0]}/r.txt")}],
        }
        if project != "p1":
            body["tags"] = {"project": project}
        body.update(fields)
        return body

    def create(self, who: str = "alice", **fields: Any) -> str:
        project = fields.pop("project", "p1")
        resp = self.client.post(f"{BASE}/tasks", json=self.task_body(project, **fields), headers=self.headers(who))
        assert resp.status_code == 200, resp.text
        return str(resp.json()["id"])

    def all_task_ids(self) -> list[str]:
        """Every stored task, seen through an admin's ListTasks (all pages)."""
        ids: list[str] = []
        params: dict[str, Any] = {"page_size": 2047}
        while True:
            resp = self.client.get(f"{BASE}/tasks", params=params, headers=self.headers("admin"))
            assert resp.status_code == 200, resp.text
            body = resp.json()
            ids += [t["id"] for t in body["tasks"]]
            if not body.get("next_page_token"):
                return ids
            params["page_token"] = body["next_page_token"]

    def count_tasks(self) -> int:
        return len(self.all_task_ids())


def make_gateway(data_dir: Path, **overrides: Any) -> Gateway:
    settings = Settings.load({}, data_dir=data_dir, egress_review="automatic", **overrides)
    components = build(settings)
    app = create_app(settings, components=components)
    # 5xx must show up as responses the tests can assert on, not as exceptions re-raised by the client.
    client = app.test_client(raise_server_exceptions=False)
    tokens = Tokens(load_or_create_dev_secret(settings.dev_secret_file))
    return Gateway(settings, components, app, client, tokens)


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    """A fresh gateway (empty database and store) per test."""
    gateway = make_gateway(tmp_path / "gw")
    yield gateway
    gateway.components.engine.dispose()


@pytest.fixture(scope="module")
def module_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway shared by a module's tests (for large, read-mostly parametrized tables)."""
    gateway = make_gateway(tmp_path_factory.mktemp("gw"))
    yield gateway
    gateway.components.engine.dispose()


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Build gateways with setting overrides (e.g. small page sizes)."""
    built: list[Gateway] = []

    def factory(**overrides: Any) -> Gateway:
        gateway = make_gateway(tmp_path / f"gw{len(built)}", **overrides)
        built.append(gateway)
        return gateway

    yield factory
    for gateway in built:
        gateway.components.engine.dispose()
