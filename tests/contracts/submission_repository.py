"""What every SubmissionRepository and CratePolicyRepository must do.

Subclasses of SubmissionRepositoryContract provide a `repo` fixture (an empty repository) and
`audit_actions(repo)`: (action, object_id) of every audit entry the repository wrote. Subclasses of
CratePolicyRepositoryContract provide a `policies` fixture.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.domain.audit import AuditEvent
from gateway.domain.crates import ApprovedWorkflow
from gateway.domain.submissions import CratePolicy, Submission, SubmissionState
from gateway.services.ports import StaleSubmission

_ids = itertools.count()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

ACTIVE = (SubmissionState.EXECUTING, SubmissionState.AWAITING_DISCLOSURE)
INACTIVE = (SubmissionState.RECEIVED, SubmissionState.AWAITING_SIGN_OFF, SubmissionState.PUBLISHED,
            SubmissionState.REJECTED, SubmissionState.FAILED)


def make_submission(project: str = "p1", owner: str = "alice",
                    state: SubmissionState = SubmissionState.RECEIVED, **changes) -> Submission:
    s = Submission(id=f"fs-{next(_ids):08d}", owner=owner, project=project, state=state,
                   created_at=T0, updated_at=T0)
    return s.updated(**changes) if changes else s


def _event(s: Submission, action: str = "crate.submitted") -> AuditEvent:
    return AuditEvent("gateway", action, "submission", s.id, s.project, {"state": s.state.value})


class SubmissionRepositoryContract:
    def audit_actions(self, repo) -> list[tuple[str, str]]:
        raise NotImplementedError

    # ------------------------------------------------------------ add / get

    def test_add_then_get_round_trips_every_field(self, repo):
        plus_two = timezone(timedelta(hours=2))
        s = make_submission(
            state=SubmissionState.EXECUTING,
            created_at=datetime(2026, 3, 1, 14, 1, 2, 345678, tzinfo=plus_two),
            updated_at=datetime(2026, 3, 1, 12, 30, 5, 1, tzinfo=UTC),
            profile="0.4",
            workflow_id="https://workflowhub.eu/workflows/289?version=1",
            workflow_version="1",
            run_id="run-0042",
            repairs=("`type` written for `@type` on input1.txt", "`type` written for `@type` on #fast"),
            reason="still going",
        )
        repo.add(s)
        got = repo.get(s.id)
        assert got is not None
        assert (got.id, got.owner, got.project, got.state, got.version) == (s.id, "alice", "p1",
                                                                            SubmissionState.EXECUTING, 0)
        assert (got.profile, got.workflow_id, got.workflow_version) == (s.profile, s.workflow_id, "1")
        assert got.run_id == "run-0042"
        assert got.repairs == s.repairs and isinstance(got.repairs, tuple)
        assert got.reason == "still going"
        for name in ("created_at", "updated_at"):
            value = getattr(got, name)
            assert value.tzinfo is not None, name
            assert value == getattr(s, name), name
        assert isinstance(got.seq, int)
        assert repo.get("fs-no-such-submission") is None

    def test_a_new_submission_has_empty_defaults(self, repo):
        s = make_submission()
        repo.add(s)
        got = repo.get(s.id)
        assert (got.profile, got.workflow_id, got.workflow_version) == ("", "", "")
        assert (got.run_id, got.reason, got.repairs) == (None, None, ())

    def test_add_writes_its_events(self, repo):
        s = make_submission()
        repo.add(s, (_event(s),))
        assert self.audit_actions(repo) == [("crate.submitted", s.id)]

    # ------------------------------------------------------------ save

    def test_save_bumps_the_version_and_refuses_stale_copies(self, repo):
        s = make_submission()
        repo.add(s)
        moved = repo.save(s.moved_to(SubmissionState.AWAITING_SIGN_OFF, T0 + timedelta(seconds=1)))
        assert moved.version == 1 and moved.state is SubmissionState.AWAITING_SIGN_OFF
        assert repo.get(s.id).version == 1
        with pytest.raises(StaleSubmission):
            repo.save(s.moved_to(SubmissionState.REJECTED, T0, reason="stale copy"))
        got = repo.get(s.id)
        assert got.state is SubmissionState.AWAITING_SIGN_OFF and got.reason is None
        again = repo.save(moved.moved_to(SubmissionState.EXECUTING, T0 + timedelta(seconds=2), run_id="run-1"))
        assert again.version == 2
        got = repo.get(s.id)
        assert (got.state, got.run_id, got.version) == (SubmissionState.EXECUTING, "run-1", 2)
        assert got.updated_at == T0 + timedelta(seconds=2) and got.created_at == T0

    def test_save_persists_the_record(self, repo):
        s = make_submission()
        repo.add(s)
        later = datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5)))  # 14:00 UTC
        changed = s.updated(profile="0.5-DRAFT", workflow_id="wf", workflow_version="2", repairs=("r1",))
        repo.save(changed.moved_to(SubmissionState.FAILED, later, reason="the workflow run ended EXECUTOR_ERROR",
                                   run_id="run-7"))
        got = repo.get(s.id)
        assert got.state is SubmissionState.FAILED
        assert (got.profile, got.workflow_id, got.workflow_version, got.repairs) == ("0.5-DRAFT", "wf", "2", ("r1",))
        assert (got.run_id, got.reason) == ("run-7", "the workflow run ended EXECUTOR_ERROR")
        assert got.updated_at == later and got.updated_at.tzinfo is not None

    def test_saving_an_unknown_submission_is_stale(self, repo):
        with pytest.raises(StaleSubmission):
            repo.save(make_submission())

    def test_events_are_saved_with_the_submission_or_not_at_all(self, repo):
        s = make_submission()
        repo.add(s, (_event(s),))
        moved = s.moved_to(SubmissionState.EXECUTING, T0)
        repo.save(moved, (_event(moved, "crate.executing"), _event(moved, "crate.extra")))
        with pytest.raises(StaleSubmission):
            repo.save(moved.moved_to(SubmissionState.FAILED, T0), (_event(moved, "crate.stale"),))
        assert self.audit_actions(repo) == [
            ("crate.submitted", s.id), ("crate.executing", s.id), ("crate.extra", s.id)]

    # ------------------------------------------------------------ query

    def test_query_is_newest_first_with_keyset_pages(self, repo):
        made = [make_submission() for _ in range(7)]
        for s in made:
            repo.add(s)
        seen, before, pages = [], None, 0
        while True:
            page = repo.query(None, None, 3, before)
            pages += 1
            assert len(page.submissions) <= 3
            seen += [s.id for s in page.submissions]
            if not page.has_more:
                break
            before = page.last_seq
        assert seen == [s.id for s in reversed(made)]
        assert pages == 3

    def test_a_page_that_ends_exactly_at_the_last_submission_has_no_more(self, repo):
        for _ in range(4):
            repo.add(make_submission())
        first = repo.query(None, None, 2)
        second = repo.query(None, None, 2, first.last_seq)
        assert first.has_more and not second.has_more
        assert len(second.submissions) == 2
        empty = repo.query(None, None, 2, second.last_seq)
        assert empty.submissions == [] and not empty.has_more

    def test_pages_stay_stable_while_submissions_are_added(self, repo):
        old = [make_submission() for _ in range(4)]
        for s in old:
            repo.add(s)
        first = repo.query(None, None, 2)
        repo.add(make_submission())
        second = repo.query(None, None, 2, first.last_seq)
        assert [s.id for s in first.submissions + second.submissions] == [s.id for s in reversed(old)]

    def test_query_filters_by_project_or_owner(self, repo):
        a = make_submission("p1", "alice")
        b = make_submission("p2", "bob")
        c = make_submission("p3", "carol")
        # Bob asked to run something under p1, which he is not a member of: it was refused.
        refused = make_submission("p1", "bob", SubmissionState.REJECTED, reason="not a member")
        for s in (a, b, c, refused):
            repo.add(s)

        def ids(projects, owner=None):
            return [s.id for s in repo.query(projects, owner, 100).submissions]

        assert ids(frozenset({"p1"})) == [refused.id, a.id]
        assert ids(frozenset({"p1", "p3"})) == [refused.id, c.id, a.id]
        assert ids(frozenset()) == []
        assert ids(frozenset(), "bob") == [refused.id, b.id]
        assert ids(frozenset({"p2"}), "bob") == [refused.id, b.id]  # his own, in and out of his projects
        assert ids(frozenset({"p3"}), "alice") == [c.id, a.id]
        assert ids(frozenset({"p2"}), "nobody") == [b.id]
        assert ids(None) == [refused.id, c.id, b.id, a.id]  # an admin sees everything
        assert ids(None, "alice") == [refused.id, c.id, b.id, a.id]

    def test_filtered_pages_count_only_matching_submissions(self, repo):
        mine = []
        for i in range(5):
            repo.add(make_submission("p9", "zed"))  # not visible below
            s = make_submission("p2" if i % 2 else "p1", "alice" if i % 2 else "amir")
            repo.add(s)
            mine.append(s)
        page = repo.query(frozenset({"p1"}), "alice", 2)
        assert [s.id for s in page.submissions] == [mine[4].id, mine[3].id] and page.has_more
        page = repo.query(frozenset({"p1"}), "alice", 2, page.last_seq)
        assert [s.id for s in page.submissions] == [mine[2].id, mine[1].id] and page.has_more
        page = repo.query(frozenset({"p1"}), "alice", 2, page.last_seq)
        assert [s.id for s in page.submissions] == [mine[0].id] and not page.has_more

    def test_query_returns_current_copies(self, repo):
        s = make_submission()
        repo.add(s)
        repo.save(s.moved_to(SubmissionState.EXECUTING, T0, run_id="run-9"))
        (got,) = repo.query(None, None, 10).submissions
        assert (got.state, got.version, got.run_id) == (SubmissionState.EXECUTING, 1, "run-9")
        assert isinstance(got.seq, int)

    # ------------------------------------------------------------ active

    def test_active_lists_only_followed_submissions_oldest_first(self, repo):
        everything = [make_submission(state=state) for state in (*INACTIVE, *ACTIVE, *INACTIVE, *ACTIVE)]
        for s in everything:
            repo.add(s)
        active = repo.active()
        assert [s.id for s in active] == [s.id for s in everything if s.state in ACTIVE]
        assert {s.state for s in active} == set(ACTIVE)
        assert [s.id for s in repo.active(limit=3)] == [s.id for s in everything if s.state in ACTIVE][:3]

    def test_a_submission_leaves_active_when_it_finishes(self, repo):
        s = make_submission()
        repo.add(s)
        assert repo.active() == []
        executing = repo.save(s.moved_to(SubmissionState.EXECUTING, T0, run_id="run-1"))
        (got,) = repo.active()
        assert (got.id, got.version, got.run_id) == (s.id, 1, "run-1")
        waiting = repo.save(executing.moved_to(SubmissionState.AWAITING_DISCLOSURE, T0))
        assert [x.state for x in repo.active()] == [SubmissionState.AWAITING_DISCLOSURE]
        repo.save(waiting.moved_to(SubmissionState.PUBLISHED, T0))
        assert repo.active() == []


POLICY = CratePolicy(False, (
    ApprovedWorkflow("https://workflowhub.eu/workflows/289", "1", "sha256:" + "ab" * 32),
    ApprovedWorkflow("https://workflowhub.eu/workflows/289", "2", "sha512:" + "cd" * 64),
))


class CratePolicyRepositoryContract:
    def test_an_unknown_project_has_no_policy(self, policies):
        assert policies.get("p1") is None

    def test_put_then_get_round_trips(self, policies):
        policies.put("p1", POLICY)
        assert policies.get("p1") == POLICY
        assert policies.get("p2") is None

    def test_put_replaces_the_whole_policy(self, policies):
        policies.put("p1", POLICY)
        policies.put("p2", CratePolicy())
        replacement = CratePolicy(True, (ApprovedWorkflow("wf", "3", "sha256:" + "00" * 32),))
        policies.put("p1", replacement)
        assert policies.get("p1") == replacement
        assert policies.get("p2") == CratePolicy()
        policies.put("p1", CratePolicy(True, ()))
        assert policies.get("p1") == CratePolicy(True, ())
