"""The in-memory run repository passes the same contract as SqlRunRepository."""

import pytest

from tests.contracts.run_repository import RunRepositoryContract
from tests.fakes import FakeRunRepository


@pytest.fixture
def repo():
    return FakeRunRepository()


class TestFakeRunRepository(RunRepositoryContract):
    def audit_actions(self, repo):
        return [(e.event.action, e.event.object_id) for e in repo.audit.rows]
