"""Airlock use cases on fakes: opening requests, reviewing, releasing, downloads and every refusal audited."""

from datetime import UTC, datetime

import pytest

from gateway.domain.airlock import ProjectPolicy, RequestState
from gateway.domain.egress import EgressPolicy
from gateway.domain.errors import Forbidden, InvalidRequest, NotFound
from gateway.domain.identity import Principal, Role
from gateway.domain.images import ImagePolicy
from gateway.domain.states import TaskState
from gateway.services.airlock import AirlockService
from gateway.services.audit import verify
from gateway.services.dispatcher import Dispatcher
from gateway.services.egress import EgressService
from gateway.services.ports import Area
from gateway.services.runner import TaskRunner
from gateway.services.tasks import TaskService
from tests.fakes import (
    FakeBackend,
    FakeObjectStore,
    InMemoryAuditLog,
    InMemoryEgressRequests,
    InMemoryPolicies,
    InMemoryTaskRepository,
)

ALICE = Principal("alice", frozenset({Role.RESEARCHER}), frozenset({"p1"}))
BOB = Principal("bob", frozenset({Role.RESEARCHER}), frozenset({"p2"}))
CAROL = Principal("carol", frozenset({Role.OUTPUT_CHECKER}), frozenset({"p1"}))
DAVE = Principal("dave", frozenset({Role.OUTPUT_CHECKER}), frozenset({"p1"}))


def now():
    return datetime.now(UTC)


class World:
    def __init__(self, policy=ProjectPolicy()):
        self.store = FakeObjectStore()
        self.audit = InMemoryAuditLog()
        self.repo = InMemoryTaskRepository(self.audit)
        self.backend = FakeBackend(self.store)
        self.airlock = AirlockService(InMemoryEgressRequests(), self.repo, self.store, self.audit,
                                      InMemoryPolicies(), policy, now)
        images = ImagePolicy({"alpine": "alpine"})
        self.tasks = TaskService(self.repo, self.store, images, iter(f"t{i}" for i in range(99)).__next__, now,
                                 audit=self.audit)
        egress = EgressService(self.store, EgressPolicy(), now, self.airlock.requests, self.airlock.policy_for,
                               self.audit)
        runner = TaskRunner(self.repo, self.backend, self.store, images, egress, now, self.audit,
                            on_cancel=self.airlock.withdraw)
        self.dispatcher = Dispatcher(self.repo, runner, self.backend, "w1")

    def run_task(self, files):
        body = {
            "executors": [{"image": "alpine", "command": ["write", path, text]} for path, text in files.items()],
            "outputs": [{"path": p, "url": f"mem://released/p1/{p.rsplit('/', 1)[-1]}"} for p in files],
        }
        task = self.tasks.create(ALICE, body)
        self.dispatcher.drain(5)
        return self.repo.get(task.id)

    def request_of(self, task):
        return self.airlock.requests.for_task(task.id)


def test_outputs_wait_for_review_and_nothing_is_released_meanwhile():
    w = World()
    task = w.run_task({"/out/a.txt": "hello", "/out/b.csv": "x,n\na,12\n"})
    assert task.state is TaskState.PAUSED
    request = w.request_of(task)
    assert request.state is RequestState.AWAITING_REVIEW
    assert task.metadata["egress_request"] == request.id
    assert [o.key for o in w.store.list(Area.RELEASED)] == []
    assert len(list(w.store.list(Area.QUARANTINE))) == 2


def test_partial_release_delivers_only_approved_files_and_lists_the_withheld():
    w = World()
    task = w.run_task({"/out/a.txt": "hello", "/out/b.csv": "x,n\na,3\n"})
    rid = w.request_of(task).id
    w.airlock.decide(CAROL, rid, "1", "reject", "small cell")
    w.airlock.decide(CAROL, rid, "0", "approve", "")
    task = w.repo.get(task.id)
    assert task.state is TaskState.COMPLETE
    assert [o.url for o in task.output_logs] == ["mem://released/p1/a.txt"]
    assert "egress_partially_released" in task.system_logs[-1] and "/out/b.csv" in task.system_logs[-1]
    assert [o.key for o in w.store.list(Area.RELEASED)] == ["p1/a.txt"]
    name, stream = w.airlock.open_released(ALICE, rid, "0")
    assert (name, stream.read()) == ("a.txt", b"hello")
    with pytest.raises(NotFound):
        w.airlock.open_released(ALICE, rid, "1")


def test_all_rejected_is_a_system_error_and_nothing_leaves():
    w = World()
    task = w.run_task({"/out/a.txt": "secret"})
    rid = w.request_of(task).id
    w.airlock.decide(CAROL, rid, "0", "reject", "identifiable")
    task = w.repo.get(task.id)
    assert task.state is TaskState.SYSTEM_ERROR
    assert '"egress_rejected"' in task.system_logs[-1] and "identifiable" in task.system_logs[-1]
    assert list(w.store.list(Area.RELEASED)) == []


def test_quarantine_is_for_output_checkers_only_and_refusals_are_audited():
    w = World()
    rid = w.request_of(w.run_task({"/out/a.txt": "secret"})).id
    for who, error in ((ALICE, Forbidden), (BOB, NotFound)):
        with pytest.raises(error):
            w.airlock.open_quarantined(who, rid, "0")
        with pytest.raises(error):
            w.airlock.preview(who, rid, "0")
    with pytest.raises(NotFound):  # not released yet: not even the requester may download
        w.airlock.open_released(ALICE, rid, "0")
    assert w.airlock.open_quarantined(CAROL, rid, "0")[1].read() == b"secret"
    denied = [e.event for e in w.audit.rows if e.event.action == "access.denied"]
    assert {(e.actor, e.details["attempted"]) for e in denied} == {
        ("alice", "read_quarantined"), ("bob", "read_quarantined"), ("alice", "download"),
    }
    assert verify(w.audit) == []


def test_two_person_rule_from_project_policy():
    w = World(policy=ProjectPolicy(required_approvals=2))
    task = w.run_task({"/out/a.txt": "ok"})
    rid = w.request_of(task).id
    w.airlock.decide(CAROL, rid, "0", "approve", "")
    assert w.repo.get(task.id).state is TaskState.PAUSED
    with pytest.raises(Exception, match="another output checker"):
        w.airlock.decide(CAROL, rid, "0", "approve", "")
    w.airlock.decide(DAVE, rid, "0", "approve", "")
    assert w.repo.get(task.id).state is TaskState.COMPLETE


def test_clean_outputs_auto_release_only_when_the_policy_allows():
    w = World(policy=ProjectPolicy(auto_release_clean=True))
    task = w.run_task({"/out/a.txt": "ok"})
    assert task.state is TaskState.COMPLETE
    assert [o.key for o in w.store.list(Area.RELEASED)] == ["p1/a.txt"]
    assert w.request_of(task) is None
    flagged = w.run_task({"/out/tool.exe": "MZ binary"})
    assert flagged.state is TaskState.PAUSED  # a failed check always needs a human


def test_cancelling_a_paused_task_withdraws_its_request():
    w = World()
    task = w.run_task({"/out/a.txt": "ok"})
    w.tasks.cancel(ALICE, task.id)
    w.dispatcher.drain(5)
    assert w.repo.get(task.id).state is TaskState.CANCELED
    assert w.request_of(task).state is RequestState.WITHDRAWN
    with pytest.raises(Exception, match="WITHDRAWN"):
        w.airlock.decide(CAROL, w.request_of(task).id, "0", "approve", "")


def test_every_step_is_in_the_audit_log_in_order():
    w = World()
    task = w.run_task({"/out/a.txt": "ok"})
    w.airlock.decide(CAROL, w.request_of(task).id, "0", "approve", "")
    w.airlock.open_released(ALICE, w.request_of(task).id, "0")
    assert w.audit.actions() == [
        "task.submitted", "task.state_changed", "task.state_changed", "egress.checked", "egress.requested",
        "task.state_changed", "egress.decision", "egress.released", "task.state_changed", "egress.downloaded",
    ]
    assert verify(w.audit) == []


def test_only_admins_set_policies_and_bad_values_are_refused():
    w = World()
    with pytest.raises(Forbidden):
        w.airlock.set_policy(CAROL, "p1", ProjectPolicy(required_approvals=2))
    admin = Principal("root", frozenset({Role.ADMIN}), frozenset())
    with pytest.raises(InvalidRequest):
        w.airlock.set_policy(admin, "p1", ProjectPolicy(required_approvals=9))
    w.airlock.set_policy(admin, "p1", ProjectPolicy(required_approvals=2))
    assert w.airlock.policy_for("p1").required_approvals == 2
    assert w.airlock.policy_for("p2").required_approvals == 1
