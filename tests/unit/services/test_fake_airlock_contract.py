import pytest

from tests.contracts.airlock_store import AirlockStoreContract
from tests.fakes import InMemoryAuditLog, InMemoryEgressRequests, InMemoryPolicies


@pytest.fixture
def requests():
    return InMemoryEgressRequests()


@pytest.fixture
def policies():
    return InMemoryPolicies()


@pytest.fixture
def audit():
    return InMemoryAuditLog()


class TestInMemoryAirlockStores(AirlockStoreContract):
    pass
