"""Shared fixtures: the PostgreSQL server (one per session), settings and dev tokens."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from gateway.config import Settings
from tests.pg import PostgresServer

# podman invoked by tests directly (not through the gateway) needs the project's quirks file too.
os.environ.setdefault("CONTAINERS_CONF", str(Settings().resolved_containers_conf))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database per test: DB tests are isolated from each other."""
    return postgres_server.create_database("t_" + uuid.uuid4().hex[:12])
