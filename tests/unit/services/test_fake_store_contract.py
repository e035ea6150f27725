import pytest

from tests.contracts.object_store import ObjectStoreContract
from tests.fakes import FakeObjectStore


@pytest.fixture
def store():
    return FakeObjectStore()


class TestFakeObjectStore(ObjectStoreContract):
    pass
