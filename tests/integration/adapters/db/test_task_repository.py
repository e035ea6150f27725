"""The repository contract against real databases: SQLite (embedded default) and PostgreSQL."""

import pytest

from gateway.adapters.db.engine import make_engine, migrate
from gateway.adapters.db.repository import SqlTaskRepository
from tests.contracts.task_repository import TaskRepositoryContract


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate(engine)
    yield SqlTaskRepository(engine)
    engine.dispose()


class TestSqlTaskRepository(TaskRepositoryContract):
    def audit_actions(self, repo):
        from gateway.adapters.db.airlock_repository import SqlAuditLog

        return [(e.event.action, e.event.object_id) for e in SqlAuditLog(repo.engine).entries()]


def test_migrations_are_idempotent(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    migrate(engine)
    from sqlalchemy import inspect

    assert {"tasks", "task_tags", "access_tokens", "project_members", "alembic_version"} <= set(
        inspect(engine).get_table_names()
    )
