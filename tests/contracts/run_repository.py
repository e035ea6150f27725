"""What every RunRepository must do. Subclasses provide a `repo` fixture (an empty repository) and
`audit_actions(repo)`: (action, object_id) of every audit entry the repository wrote."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.domain.audit import AuditEvent
from gateway.domain.runs import Run, RunRequest, RunState
from gateway.services.ports import Area, RunQuery, StaleRun
from tests.fakes import mem_url

_ids = itertools.count()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

TERMINAL = (RunState.COMPLETE, RunState.EXECUTOR_ERROR, RunState.SYSTEM_ERROR, RunState.CANCELED,
            RunState.PREEMPTED)
DRIVEN = (RunState.QUEUED, RunState.INITIALIZING, RunState.RUNNING, RunState.PAUSED, RunState.CANCELING)


def make_run(project: str = "p1", state: RunState = RunState.QUEUED, **changes) -> Run:
    request = RunRequest(
        workflow_type="CWL",
        workflow_type_version="v1.2",
        workflow_url="main.cwl#main",
        workflow_params={"reads": {"class": "File", "location": mem_url(Area.WORK, "p1/runs/x/workflow/r.fq")}, "n": 3},
        tags={"project": project, "study": "s-1"},
        workflow_engine="cwltool",
        workflow_engine_version="3.1",
        workflow_engine_parameters={"--parallel": "true", "--on-error": "continue"},
    )
    run = Run(
        id=f"run{next(_ids):08d}",
        owner="alice",
        project=project,
        request=request,
        state=state,
        created_at=T0,
        attachments=("main.cwl", "sub/tool.cwl"),
        engine={"workflow": "main.cwl#main"},
    )
    return run.updated(**changes) if changes else run


def _event(run: Run, action: str = "run.state_changed") -> AuditEvent:
    return AuditEvent("gateway", action, "run", run.id, run.project, {"state": run.state.value})


class RunRepositoryContract:
    def audit_actions(self, repo) -> list[tuple[str, str]]:
        raise NotImplementedError

    # ------------------------------------------------------------ add / get / save

    def test_add_then_get_round_trips_every_field(self, repo):
        plus_two = timezone(timedelta(hours=2))
        run = make_run(
            state=RunState.RUNNING,
            start_time=datetime(2026, 3, 1, 14, 1, 2, 345678, tzinfo=plus_two),
            end_time=datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
            exit_code=0,
            outputs={"out": {"class": "File", "location": mem_url(Area.WORK, "p1/o.txt"), "size": 4},
                     "list": [1, None]},
            system_logs=('{"reason": "x"}',),
            engine={"workflow": "main.cwl#main", "worker": "w1", "pid": 4321, "credential_sha256": "ab" * 32},
            release_task_id="task-0009",
        )
        repo.add(run)
        got = repo.get(run.id)
        assert got is not None
        assert got.request == run.request
        assert (got.owner, got.project, got.state, got.version) == ("alice", "p1", RunState.RUNNING, 0)
        assert got.attachments == ("main.cwl", "sub/tool.cwl")
        assert got.outputs == run.outputs
        assert got.engine == run.engine
        assert got.system_logs == run.system_logs
        assert (got.exit_code, got.release_task_id) == (0, "task-0009")
        for name in ("created_at", "start_time", "end_time"):
            value = getattr(got, name)
            assert value.tzinfo is not None, name
            assert value == getattr(run, name), name
        assert isinstance(got.seq, int)
        assert repo.get("no-such-run") is None

    def test_created_at_keeps_its_instant_whatever_the_time_zone(self, repo):
        created = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))  # 12:00 UTC
        run = make_run(created_at=created)
        repo.add(run)
        got = repo.get(run.id)
        assert got.created_at.tzinfo is not None
        assert got.created_at == created

    def test_a_new_run_has_no_times_outputs_or_release_task(self, repo):
        run = make_run()
        repo.add(run)
        got = repo.get(run.id)
        assert (got.start_time, got.end_time, got.exit_code, got.release_task_id) == (None, None, None, None)
        assert (got.outputs, got.system_logs) == ({}, ())

    def test_save_bumps_the_version_and_refuses_stale_copies(self, repo):
        run = make_run()
        repo.add(run)
        moved = repo.save(run.moved_to(RunState.INITIALIZING, at=T0))
        assert moved.version == 1
        assert repo.get(run.id).version == 1
        with pytest.raises(StaleRun):
            repo.save(run.moved_to(RunState.CANCELING, at=T0))
        assert repo.get(run.id).state is RunState.INITIALIZING
        again = repo.save(moved.moved_to(RunState.RUNNING, at=T0 + timedelta(seconds=5)))
        assert again.version == 2
        got = repo.get(run.id)
        assert got.state is RunState.RUNNING and got.start_time == T0 + timedelta(seconds=5)

    def test_save_persists_the_run_record(self, repo):
        run = make_run(state=RunState.RUNNING)
        repo.add(run)
        finished = run.updated(exit_code=3, outputs={"o": [{"class": "File", "location": "x"}]},
                               release_task_id="t-1", engine={**run.engine, "pid": 7})
        repo.save(finished.moved_to(RunState.EXECUTOR_ERROR, at=T0 + timedelta(minutes=1), reason="failed"))
        got = repo.get(run.id)
        assert got.state is RunState.EXECUTOR_ERROR
        assert (got.exit_code, got.release_task_id, got.engine["pid"]) == (3, "t-1", 7)
        assert got.outputs == {"o": [{"class": "File", "location": "x"}]}
        assert got.system_logs == ("failed",)
        assert got.end_time == T0 + timedelta(minutes=1)
        assert got.request == run.request and got.attachments == run.attachments

    def test_events_are_saved_with_the_run_or_not_at_all(self, repo):
        run = make_run()
        repo.add(run)
        moved = run.moved_to(RunState.INITIALIZING, at=T0)
        repo.save(moved, (_event(moved), _event(moved, "run.extra")))
        with pytest.raises(StaleRun):
            repo.save(moved.moved_to(RunState.RUNNING, at=T0), (_event(moved, "run.stale"),))
        assert self.audit_actions(repo) == [("run.state_changed", run.id), ("run.extra", run.id)]

    # ------------------------------------------------------------ query

    def test_query_is_newest_first_with_keyset_pages(self, repo):
        runs = [make_run() for _ in range(7)]
        for run in runs:
            repo.add(run)
        seen, before, pages = [], None, 0
        while True:
            page = repo.query(RunQuery(limit=3, before_seq=before))
            pages += 1
            assert len(page.runs) <= 3
            seen += [r.id for r in page.runs]
            if not page.has_more:
                break
            before = page.last_seq
        assert seen == [r.id for r in reversed(runs)]
        assert pages == 3

    def test_a_page_that_ends_exactly_at_the_last_run_has_no_more(self, repo):
        for _ in range(4):
            repo.add(make_run())
        first = repo.query(RunQuery(limit=2))
        second = repo.query(RunQuery(limit=2, before_seq=first.last_seq))
        assert first.has_more and not second.has_more
        assert len(second.runs) == 2
        assert repo.query(RunQuery(limit=2, before_seq=second.last_seq)).runs == []

    def test_pages_stay_stable_while_runs_are_added(self, repo):
        old = [make_run() for _ in range(4)]
        for run in old:
            repo.add(run)
        first = repo.query(RunQuery(limit=2))
        repo.add(make_run())
        second = repo.query(RunQuery(limit=2, before_seq=first.last_seq))
        assert [r.id for r in first.runs + second.runs] == [r.id for r in reversed(old)]

    def test_query_filters_by_project(self, repo):
        a, b, c = make_run("p1"), make_run("p2"), make_run("p3")
        for run in (a, b, c):
            repo.add(run)

        def ids(projects):
            return [r.id for r in repo.query(RunQuery(projects=projects)).runs]

        assert ids(frozenset({"p1"})) == [a.id]
        assert ids(frozenset({"p1", "p3"})) == [c.id, a.id]
        assert ids(frozenset()) == []
        assert ids(None) == [c.id, b.id, a.id]
        page = repo.query(RunQuery(projects=frozenset({"p2", "p3"}), limit=1))
        assert [r.id for r in page.runs] == [c.id] and page.has_more
        rest = repo.query(RunQuery(projects=frozenset({"p2", "p3"}), limit=1, before_seq=page.last_seq))
        assert [r.id for r in rest.runs] == [b.id] and not rest.has_more

    # ------------------------------------------------------------ leases

    def test_every_active_state_is_claimed_and_no_terminal_one(self, repo):
        driven = [make_run(state=s) for s in DRIVEN]
        for run in [*driven, *(make_run(state=s) for s in TERMINAL)]:
            repo.add(run)
        claimed = repo.claim_active("w1", 30, 100)
        assert [r.id for r in claimed] == [r.id for r in driven]  # oldest first
        assert {r.state for r in claimed} == set(DRIVEN)  # PAUSED included: it follows its review

    def test_a_worker_never_takes_a_run_another_worker_holds(self, repo):
        runs = [make_run() for _ in range(3)]
        for run in runs:
            repo.add(run)
        assert [r.id for r in repo.claim_active("w1", 30, 10)] == [r.id for r in runs]
        assert repo.claim_active("w2", 30, 10) == []
        # The holder gets its own runs again (and its lease renewed).
        assert [r.id for r in repo.claim_active("w1", 30, 10)] == [r.id for r in runs]
        assert repo.claim_active("w2", 30, 10) == []

    def test_the_limit_leaves_the_rest_for_others(self, repo):
        runs = [make_run() for _ in range(5)]
        for run in runs:
            repo.add(run)
        assert [r.id for r in repo.claim_active("w1", 30, 2)] == [r.id for r in runs[:2]]
        assert [r.id for r in repo.claim_active("w2", 30, 10)] == [r.id for r in runs[2:]]

    def test_expired_leases_can_be_taken_over(self, repo):
        run = make_run()
        repo.add(run)
        assert [r.id for r in repo.claim_active("w1", -1, 10)] == [run.id]
        assert [r.id for r in repo.claim_active("w2", 30, 10)] == [run.id]
        assert repo.claim_active("w1", 30, 10) == []

    def test_renewing_an_expired_lease_protects_it_again(self, repo):
        run = make_run()
        repo.add(run)
        repo.claim_active("w1", -1, 10)
        assert [r.id for r in repo.claim_active("w1", 30, 10)] == [run.id]
        assert repo.claim_active("w2", 30, 10) == []

    def test_claimed_runs_are_current(self, repo):
        run = make_run()
        repo.add(run)
        repo.save(run.moved_to(RunState.INITIALIZING, at=T0))
        (claimed,) = repo.claim_active("w1", 30, 10)
        assert (claimed.state, claimed.version) == (RunState.INITIALIZING, 1)
        repo.save(claimed.moved_to(RunState.RUNNING, at=T0))  # a claimed copy can be saved

    def test_a_run_that_ends_is_no_longer_claimed(self, repo):
        run = make_run(state=RunState.RUNNING)
        repo.add(run)
        (claimed,) = repo.claim_active("w1", 30, 10)
        repo.save(claimed.moved_to(RunState.COMPLETE, at=T0))
        assert repo.claim_active("w1", 30, 10) == []
        assert repo.claim_active("w2", -1, 10) == []

    def test_racing_workers_never_both_win_a_run(self, repo):
        runs = [make_run() for _ in range(12)]
        for run in runs:
            repo.add(run)
        workers = [f"w{i}" for i in range(4)]
        barrier = threading.Barrier(len(workers))
        won: dict[str, list[str]] = {}
        errors: list[BaseException] = []

        def claim(worker: str) -> None:
            try:
                barrier.wait(timeout=10)
                won[worker] = [r.id for r in repo.claim_active(worker, 30, 100)]
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=claim, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        everything = [rid for ids in won.values() for rid in ids]
        assert len(everything) == len(set(everything)), "a run was leased to two workers"
        assert set(everything) == {r.id for r in runs}

    # ------------------------------------------------------------ counts

    def test_count_by_state(self, repo):
        assert repo.count_by_state() == {}
        for state in (RunState.QUEUED, RunState.QUEUED, RunState.PAUSED, RunState.COMPLETE):
            repo.add(make_run(state=state))
        run = make_run()
        repo.add(run)
        repo.save(run.moved_to(RunState.CANCELING, at=T0))
        assert repo.count_by_state() == {
            RunState.QUEUED: 2, RunState.PAUSED: 1, RunState.COMPLETE: 1, RunState.CANCELING: 1,
        }
