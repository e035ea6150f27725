"""The run repository contract against real databases: SQLite (embedded default) and PostgreSQL."""

import pytest

from gateway.adapters.db.airlock_repository import SqlAuditLog
from gateway.adapters.db.engine import make_engine, migrate
from gateway.adapters.db.run_repository import SqlRunRepository
from tests.contracts.run_repository import RunRepositoryContract


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate(engine)
    yield SqlRunRepository(engine)
    engine.dispose()


class TestSqlRunRepository(RunRepositoryContract):
    def audit_actions(self, repo):
        return [(e.event.action, e.event.object_id) for e in SqlAuditLog(repo.engine).entries()]
