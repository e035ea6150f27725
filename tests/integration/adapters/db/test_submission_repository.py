"""The submission and crate-policy repository contracts against real databases: SQLite and PostgreSQL."""

import pytest

from gateway.adapters.db.airlock_repository import SqlAuditLog
from gateway.adapters.db.engine import make_engine, migrate
from gateway.adapters.db.submission_repository import SqlCratePolicyRepository, SqlSubmissionRepository
from tests.contracts.submission_repository import CratePolicyRepositoryContract, SubmissionRepositoryContract


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def repo(engine):
    return SqlSubmissionRepository(engine)


@pytest.fixture
def policies(engine):
    return SqlCratePolicyRepository(engine)


class TestSqlSubmissionRepository(SubmissionRepositoryContract):
    def audit_actions(self, repo):
        return [(e.event.action, e.event.object_id) for e in SqlAuditLog(repo.engine).entries()]


class TestSqlCratePolicyRepository(CratePolicyRepositoryContract):
    pass
