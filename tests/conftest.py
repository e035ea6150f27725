"""Shared fixtures: the PostgreSQL server (one per session), settings and dev tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.pg import PostgresServer


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
