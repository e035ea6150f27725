"""The review rules of an egress request (pure domain)."""

from datetime import UTC, datetime

import pytest

from gateway.domain.airlock import (
    EgressFile,
    EgressRequest,
    FileState,
    ProjectPolicy,
    RequestState,
    Verdict,
)
from gateway.domain.egress import CheckResult, QuarantinedFile
from gateway.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound
from gateway.domain.identity import Principal, Role

AT = datetime(2026, 1, 1, tzinfo=UTC)


def checker(name, projects=("p1",), *extra):
    return Principal(name, frozenset({Role.OUTPUT_CHECKER, *extra}), frozenset(projects))


def request(required=1, failed_first=False):
    def f(i, passed=True):
        return EgressFile(
            str(i),
            QuarantinedFile(f"file:///r/p1/f{i}", f"/out/f{i}", f"t/{i}/f{i}", 5, "0" * 64, "text/plain"),
            (CheckResult("table.small_cells", passed, "cell (0, 1) = 3"),),
        )

    return EgressRequest("er-1", "t", "p1", "alice", AT, (f(0, not failed_first), f(1)), required_approvals=required)


def test_requester_cannot_review_own_outputs_even_as_output_checker():
    alice = Principal("alice", frozenset({Role.OUTPUT_CHECKER, Role.RESEARCHER}), frozenset({"p1"}))
    with pytest.raises(Forbidden, match="own task"):
        request().decide(alice, "1", Verdict.APPROVE, "", override=False, at=AT)


def test_researchers_and_admins_without_the_role_cannot_review():
    for roles in ({Role.RESEARCHER}, {Role.ADMIN}):
        with pytest.raises(Forbidden, match="output_checker"):
            request().decide(Principal("dan", frozenset(roles), frozenset({"p1"})), "1", Verdict.APPROVE, "",
                             override=False, at=AT)


def test_checkers_of_other_projects_do_not_see_the_request():
    with pytest.raises(NotFound):
        request().decide(checker("erin", ("p2",)), "1", Verdict.APPROVE, "", override=False, at=AT)


def test_two_person_rule_needs_two_distinct_checkers():
    r = request(required=2).decide(checker("carol"), "1", Verdict.APPROVE, "", override=False, at=AT)
    assert r.file_state("1") is FileState.PENDING
    with pytest.raises(Conflict, match="another output checker"):
        r.decide(checker("carol"), "1", Verdict.APPROVE, "", override=False, at=AT)
    r = r.decide(checker("dave"), "1", Verdict.APPROVE, "", override=False, at=AT)
    assert r.file_state("1") is FileState.APPROVED
    assert r.state is RequestState.AWAITING_REVIEW  # file 0 still pending


def test_one_rejection_rejects_and_needs_a_reason():
    with pytest.raises(InvalidRequest, match="reason"):
        request().decide(checker("carol"), "0", Verdict.REJECT, "  ", override=False, at=AT)
    r = request(required=2).decide(checker("carol"), "0", Verdict.REJECT, "cell of 3", override=False, at=AT)
    assert r.file_state("0") is FileState.REJECTED


def test_flagged_file_needs_an_explicit_override_with_reason():
    r = request(failed_first=True)
    with pytest.raises(InvalidRequest, match="override"):
        r.decide(checker("carol"), "0", Verdict.APPROVE, "looks fine", override=False, at=AT)
    with pytest.raises(InvalidRequest, match="override"):
        r.decide(checker("carol"), "0", Verdict.APPROVE, "", override=True, at=AT)
    r = r.decide(checker("carol"), "0", Verdict.APPROVE, "3 is a structural zero count", override=True, at=AT)
    assert r.file_state("0") is FileState.APPROVED
    assert r.file("0").decisions[0].override is True


@pytest.mark.parametrize(
    ("verdicts", "state"),
    [
        ((Verdict.APPROVE, Verdict.APPROVE), RequestState.RELEASED),
        ((Verdict.REJECT, Verdict.APPROVE), RequestState.PARTIALLY_RELEASED),
        ((Verdict.REJECT, Verdict.REJECT), RequestState.REJECTED),
    ],
)
def test_request_closes_when_every_file_is_decided(verdicts, state):
    r = request()
    for file_id, verdict in zip(("0", "1"), verdicts, strict=True):
        r = r.decide(checker("carol"), file_id, verdict, "reason", override=False, at=AT)
    assert r.state is state
    assert r.decided_at == AT
    with pytest.raises(Conflict):
        r.decide(checker("dave"), "0", Verdict.APPROVE, "late", override=False, at=AT)


def test_unknown_file_and_decided_file():
    r = request().decide(checker("carol"), "1", Verdict.APPROVE, "", override=False, at=AT)
    with pytest.raises(NotFound):
        r.decide(checker("dave"), "9", Verdict.APPROVE, "", override=False, at=AT)
    with pytest.raises(Conflict, match="already APPROVED"):
        r.decide(checker("dave"), "1", Verdict.REJECT, "no", override=False, at=AT)


def test_withdrawn_only_while_open():
    assert request().withdrawn(AT).state is RequestState.WITHDRAWN
    closed = request()
    for file_id in ("0", "1"):
        closed = closed.decide(checker("carol"), file_id, Verdict.APPROVE, "", override=False, at=AT)
    assert closed.withdrawn(AT).state is RequestState.RELEASED


@pytest.mark.parametrize("field,value", [("required_approvals", 0), ("required_approvals", 6),
                                         ("small_cell_threshold", 0), ("max_rows", 0)])
def test_policy_bounds(field, value):
    with pytest.raises(InvalidRequest, match=field):
        ProjectPolicy(**{field: value}).validated()
