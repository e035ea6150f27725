"""The in-memory submission and crate-policy repositories pass the same contracts as the SQL ones."""

import pytest

from tests.contracts.submission_repository import CratePolicyRepositoryContract, SubmissionRepositoryContract
from tests.fakes import FakeCratePolicyRepository, FakeSubmissionRepository


@pytest.fixture
def repo():
    return FakeSubmissionRepository()


@pytest.fixture
def policies():
    return FakeCratePolicyRepository()


class TestFakeSubmissionRepository(SubmissionRepositoryContract):
    def audit_actions(self, repo):
        return [(e.event.action, e.event.object_id) for e in repo.audit.rows]


class TestFakeCratePolicyRepository(CratePolicyRepositoryContract):
    pass
