import pytest

from tests.contracts.task_repository import TaskRepositoryContract
from tests.fakes import InMemoryTaskRepository


@pytest.fixture
def repo():
    return InMemoryTaskRepository()


class TestInMemoryTaskRepository(TaskRepositoryContract):
    def audit_actions(self, repo):
        return [(e.event.action, e.event.object_id) for e in repo.audit.rows]
