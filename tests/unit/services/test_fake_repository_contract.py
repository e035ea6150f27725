import pytest

from tests.contracts.task_repository import TaskRepositoryContract
from tests.fakes import InMemoryTaskRepository


@pytest.fixture
def repo():
    return InMemoryTaskRepository()


class TestInMemoryTaskRepository(TaskRepositoryContract):
    pass
