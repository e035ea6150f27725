"""What every TaskRepository must do. Subclasses provide a `repo` fixture (an empty repository)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from gateway.domain.states import TaskState
from gateway.domain.task import Task, TaskSpec
from gateway.services.ports import StaleTask, TaskQuery

_ids = itertools.count()


def make_task(project: str = "p1", name: str | None = None, tags: dict[str, str] | None = None,
              state: TaskState = TaskState.QUEUED) -> Task:
    body = {"executors": [{"image": "alpine", "command": ["true"]}], "tags": tags or {}}
    if name:
        body["name"] = name
    return Task(
        id=f"t{next(_ids):08d}",
        owner="alice",
        project=project,
        spec=TaskSpec.from_dict(body),
        state=state,
        creation_time=datetime(2026, 1, 1, tzinfo=UTC),
    )


class TaskRepositoryContract:
    def audit_actions(self, repo) -> list[tuple[str, str]]:
        """(action, object_id) of every audit entry the repository wrote; each subclass knows where to look."""
        raise NotImplementedError

    def test_events_are_saved_with_the_task_or_not_at_all(self, repo):
        from gateway.domain.audit import AuditEvent

        task = make_task()
        repo.add(task)
        moved = task.moved_to(TaskState.INITIALIZING, at=datetime.now(UTC))
        event = AuditEvent("gateway", "task.state_changed", "task", task.id, "p1", {"state": "INITIALIZING"})
        repo.save(moved, (event,))
        with pytest.raises(StaleTask):
            repo.save(moved, (AuditEvent("gateway", "stale", "task", task.id, "p1", {}),))
        assert self.audit_actions(repo) == [("task.state_changed", task.id)]

    def test_add_then_get_round_trips(self, repo):
        task = make_task(name="x", tags={"k": "v"})
        repo.add(task)
        got = repo.get(task.id)
        assert got is not None
        assert got.spec == task.spec
        assert (got.owner, got.project, got.state) == ("alice", "p1", TaskState.QUEUED)
        assert repo.get("nope") is None

    def test_save_bumps_version_and_refuses_stale_copies(self, repo):
        task = make_task()
        repo.add(task)
        moved = repo.save(task.moved_to(TaskState.INITIALIZING, at=datetime.now(UTC)))
        assert moved.version == task.version + 1
        assert repo.get(task.id).state is TaskState.INITIALIZING
        with pytest.raises(StaleTask):
            repo.save(task.moved_to(TaskState.CANCELING, at=datetime.now(UTC)))
        assert repo.get(task.id).state is TaskState.INITIALIZING

    def test_query_is_newest_first_with_keyset_pages(self, repo):
        tasks = [make_task() for _ in range(7)]
        for t in tasks:
            repo.add(t)
        seen, before = [], None
        while True:
            page = repo.query(TaskQuery(limit=3, before_seq=before))
            seen += [t.id for t in page.tasks]
            if not page.has_more:
                break
            before = page.last_seq
        assert seen == [t.id for t in reversed(tasks)]

    def test_query_filters(self, repo):
        a = make_task(project="p1", name="align-1", tags={"run": "r1", "kind": "x"})
        b = make_task(project="p2", name="align-2", tags={"run": "r2"})
        c = make_task(project="p1", name="call-1", tags={"run": "r1"}, state=TaskState.COMPLETE)
        for t in (a, b, c):
            repo.add(t)

        def ids(**kw):
            return {t.id for t in repo.query(TaskQuery(**kw)).tasks}

        assert ids(projects=frozenset({"p1"})) == {a.id, c.id}
        assert ids(projects=frozenset()) == set()
        assert ids(name_prefix="align") == {a.id, b.id}
        assert ids(name_prefix="al%") == set()  # LIKE wildcards are literal
        assert ids(state=TaskState.COMPLETE) == {c.id}
        assert ids(tags=(("run", "r1"),)) == {a.id, c.id}
        assert ids(tags=(("run", ""),)) == {a.id, b.id, c.id}
        assert ids(tags=(("run", "r1"), ("kind", "x"))) == {a.id}
        assert ids(tags=(("missing", ""),)) == set()

    def test_claims_are_exclusive_between_workers(self, repo):
        tasks = [make_task() for _ in range(3)]
        done = make_task(state=TaskState.COMPLETE)
        for t in (*tasks, done):
            repo.add(t)
        first = {t.id for t in repo.claim_active("w1", 30, 10)}
        assert first == {t.id for t in tasks}
        assert repo.claim_active("w2", 30, 10) == []
        repo.release_lease(tasks[0].id, "w1")
        assert [t.id for t in repo.claim_active("w2", 30, 10)] == [tasks[0].id]

    def test_expired_leases_can_be_taken_over(self, repo):
        task = make_task()
        repo.add(task)
        assert repo.claim_active("w1", -1, 10)
        assert [t.id for t in repo.claim_active("w2", 30, 10)] == [task.id]

    def test_count_by_state(self, repo):
        for state in (TaskState.QUEUED, TaskState.QUEUED, TaskState.COMPLETE):
            repo.add(make_task(state=state))
        counts = repo.count_by_state()
        assert counts[TaskState.QUEUED] == 2
        assert counts[TaskState.COMPLETE] == 1
