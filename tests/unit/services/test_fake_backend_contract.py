import pytest

from tests.contracts.compute_backend import Commands, ComputeBackendContract
from tests.fakes import FakeBackend, FakeObjectStore


class FakeCommands(Commands):
    def write(self, path, text):
        return ("write", path, text)

    def copy(self, source, target):
        return ("copy", source, target)

    def exit(self, code):
        return ("exit", str(code))

    def sleep(self, seconds):
        return ("sleep", str(seconds))


@pytest.fixture
def store():
    return FakeObjectStore()


@pytest.fixture
def backend(store):
    return FakeBackend(store)


@pytest.fixture
def image():
    return "fake"


@pytest.fixture
def commands():
    return FakeCommands()


class TestFakeBackend(ComputeBackendContract):
    pass
