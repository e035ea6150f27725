"""What every egress-request repository, policy repository and audit log must do.

Subclasses provide `requests`, `policies` and `audit` fixtures (empty stores).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from gateway.domain.airlock import EgressFile, EgressRequest, ProjectPolicy, RequestState, Verdict
from gateway.domain.audit import AuditEvent
from gateway.domain.egress import CheckResult, QuarantinedFile
from gateway.domain.identity import Principal, Role
from gateway.services.audit import verify
from gateway.services.ports import StaleRequest

_ids = itertools.count()
AT = datetime(2026, 1, 1, tzinfo=UTC)


def make_request(project: str = "p1", files: int = 2) -> EgressRequest:
    n = next(_ids)
    return EgressRequest(
        id=f"er-{n}",
        task_id=f"task-{n}",
        project=project,
        requester="alice",
        created_at=AT,
        files=tuple(
            EgressFile(
                str(i),
                QuarantinedFile(f"file:///r/{project}/f{i}.txt", f"/out/f{i}.txt", f"task-{n}/{i}/f{i}.txt",
                                10, "ab" * 32, "text/plain"),
                (CheckResult("size.file_cap", True, "10 bytes"),),
            )
            for i in range(files)
        ),
    )


CAROL = Principal("carol", frozenset({Role.OUTPUT_CHECKER}), frozenset({"p1"}))


class AirlockStoreContract:
    def test_add_get_and_find_by_task(self, requests):
        request = make_request()
        requests.add(request)
        assert requests.get(request.id) == request
        assert requests.for_task(request.task_id) == request
        assert requests.get("missing") is None

    def test_decisions_survive_a_round_trip(self, requests):
        request = make_request()
        requests.add(request)
        decided = request.decide(CAROL, "0", Verdict.REJECT, "small cells", override=False, at=AT)
        saved = requests.save(decided)
        loaded = requests.get(request.id)
        assert loaded.files[0].decisions == decided.files[0].decisions
        assert loaded.version == saved.version == request.version + 1

    def test_stale_saves_are_refused(self, requests):
        request = make_request()
        requests.add(request)
        requests.save(request.decide(CAROL, "0", Verdict.REJECT, "no", override=False, at=AT))
        with pytest.raises(StaleRequest):
            requests.save(request.decide(CAROL, "1", Verdict.REJECT, "no", override=False, at=AT))

    def test_query_by_state_and_project_newest_first(self, requests):
        a, b, c = make_request("p1"), make_request("p2"), make_request("p1")
        for r in (a, b, c):
            requests.add(r)
        requests.save(replace(a, state=RequestState.REJECTED))

        def ids(**kw):
            return [r.id for r in requests.query(limit=10, **kw).requests]

        assert ids(states=None, projects=None) == [c.id, b.id, a.id]
        assert ids(states=frozenset({RequestState.AWAITING_REVIEW}), projects=frozenset({"p1"})) == [c.id]
        assert ids(states=None, projects=frozenset()) == []
        first = requests.query(states=None, projects=None, limit=2)
        assert first.has_more
        rest = requests.query(states=None, projects=None, limit=2, before_seq=first.last_seq)
        assert [r.id for r in rest.requests] == [a.id]

    def test_policies_default_to_none_and_round_trip(self, policies):
        assert policies.get("p1") is None
        policies.put("p1", ProjectPolicy(required_approvals=2))
        policies.put("p1", ProjectPolicy(required_approvals=3, small_cell_threshold=5))
        assert policies.get("p1") == ProjectPolicy(required_approvals=3, small_cell_threshold=5)

    def test_audit_entries_chain_and_verify(self, audit):
        for i in range(5):
            audit.record(AuditEvent("alice", "task.submitted", "task", f"t{i}", "p1", {"n": i}))
        entries = list(audit.entries())
        assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
        assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
        assert audit.head() == (5, entries[-1].hash)
        assert verify(audit) == []
