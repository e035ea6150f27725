"""Several gateway processes starting together must not trip over each other's schema migration."""

import multiprocessing

import pytest
from sqlalchemy import inspect

from gateway.adapters.db.engine import make_engine, migrate


def _migrate(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_migrations_all_succeed(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_migrate, args=(url,)) for _ in range(4)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    engine = make_engine(url)
    assert {"tasks", "egress_requests", "audit_events", "audit_head"} <= set(inspect(engine).get_table_names())
    engine.dispose()
