"""Phase actions: the profile's action shapes and the Potential -> Active -> Completed/Failed rule."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.domain.crates import (
    GATEWAY,
    ActionStatus,
    Agent,
    AssessmentType,
    Phase,
    Policy,
    RequestingAgent,
    admit_request,
    complete_phase,
    complete_workflow_retrieval,
    fail_phase,
    phase_action,
    phase_status,
    plan_phase,
    start_phase,
)
from gateway.domain.crates.model import reference_ids
from gateway.domain.errors import Conflict, InvalidRequest
from tests.unit.domain.crates.examples import DISTRIBUTION, WORKFLOW, request_04

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
POLICY = Policy("https://tre.example/policies/p81", "Agreement policy for project p81")
REVIEWER = Agent.person("carol", name="Carol Checker")


@pytest.fixture
def crate():
    return admit_request(request_04(), RequestingAgent.member("alice", "p81")).crate


def test_a_planned_check_value_is_a_potential_assess_action_on_the_root_with_the_sha512_instrument(crate):
    action_id = plan_phase(crate, Phase.CHECK_VALUE, agent=GATEWAY)
    action = crate.get(action_id)
    assert action["@type"] == "AssessAction"
    assert action["additionalType"] == {"@id": AssessmentType.CHECK_VALUE.value}
    assert action["actionStatus"] == "http://schema.org/PotentialActionStatus"
    assert action["object"] == {"@id": "./"}
    assert action["instrument"] == {"@id": "https://www.iana.org/assignments/named-information#sha-512"}
    assert action["agent"] == {"@id": "#tre-gateway"}
    assert crate.get("#tre-gateway")["@type"] == "SoftwareApplication"
    assert action_id in reference_ids(crate.root()["mentions"])
    assert len(action["name"]) >= 10


def test_validation_check_uses_the_crates_own_profile_as_instrument(crate):
    action = crate.get(plan_phase(crate, Phase.VALIDATION_CHECK, agent=GATEWAY))
    assert action["instrument"] == {"@id": "https://w3id.org/5s-crate/0.4"}


def test_sign_off_covers_root_workflow_and_project_against_the_policy(crate):
    action = crate.get(plan_phase(crate, Phase.SIGN_OFF, policy=POLICY))
    assert reference_ids(action["object"]) == ["./", WORKFLOW, "#project-p81"]
    assert action["instrument"] == {"@id": POLICY.id}
    assert crate.get(POLICY.id) == {"@id": POLICY.id, "@type": "CreativeWork", "name": POLICY.name}


def test_sign_off_without_a_policy_is_a_programming_error(crate):
    with pytest.raises(ValueError, match="agreement policy"):
        plan_phase(crate, Phase.SIGN_OFF)


def test_the_full_life_of_a_phase_stamps_start_and_end_times(crate):
    plan_phase(crate, Phase.CHECK_VALUE, agent=GATEWAY)
    start_phase(crate, Phase.CHECK_VALUE, at=T0)
    assert phase_status(crate, Phase.CHECK_VALUE) is ActionStatus.ACTIVE
    complete_phase(crate, Phase.CHECK_VALUE, at=T0 + timedelta(seconds=3), outcome="OK")
    action = phase_action(crate, Phase.CHECK_VALUE)
    assert action["startTime"] == "2026-03-01T09:00:00+00:00"
    assert action["endTime"] == "2026-03-01T09:00:03+00:00"
    assert action["actionStatus"] == "http://schema.org/CompletedActionStatus"
    assert action["name"].endswith(": OK")


def test_times_keep_their_offset():
    crate = admit_request(request_04(), RequestingAgent.member("alice", "p81")).crate
    plan_phase(crate, Phase.CHECK_VALUE, agent=GATEWAY)
    start_phase(crate, Phase.CHECK_VALUE, at=datetime(2026, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=1))))
    assert phase_action(crate, Phase.CHECK_VALUE)["startTime"] == "2026-03-01T10:00:00+01:00"


@pytest.mark.parametrize(
    ("moves", "illegal"),
    [
        ([], "complete"),  # Potential -> Completed skips Active
        (["start"], "start"),  # Active -> Active
        (["start", "complete"], "fail"),  # Completed is final
        (["fail"], "start"),  # Failed is final
    ],
)
def test_illegal_status_transitions_are_refused_and_change_nothing(crate, moves, illegal):
    plan_phase(crate, Phase.DISCLOSURE_CHECK)
    do = {
        "start": lambda: start_phase(crate, Phase.DISCLOSURE_CHECK, at=T0),
        "complete": lambda: complete_phase(crate, Phase.DISCLOSURE_CHECK, at=T0),
        "fail": lambda: fail_phase(crate, Phase.DISCLOSURE_CHECK, at=T0, reason="no"),
    }
    for move in moves:
        do[move]()
    before = crate.to_json()
    with pytest.raises(Conflict, match="disclosure_check phase cannot move from"):
        do[illegal]()
    assert crate.to_json() == before


def test_a_phase_can_fail_before_it_starts_and_keeps_the_reason(crate):
    plan_phase(crate, Phase.SIGN_OFF, policy=POLICY)
    fail_phase(crate, Phase.SIGN_OFF, at=T0, reason="workflow not approved", agent=REVIEWER, outcome="rejected")
    action = phase_action(crate, Phase.SIGN_OFF)
    assert action["actionStatus"] == "http://schema.org/FailedActionStatus"
    assert action["description"] == "workflow not approved"
    assert action["name"].endswith(": rejected")
    assert action["agent"] == {"@id": "#person-carol"}
    assert crate.get("#person-carol") == {"@id": "#person-carol", "@type": "Person", "name": "Carol Checker"}


def test_a_phase_cannot_end_before_it_started(crate):
    plan_phase(crate, Phase.CHECK_VALUE, agent=GATEWAY)
    start_phase(crate, Phase.CHECK_VALUE, at=T0)
    with pytest.raises(InvalidRequest, match="cannot end"):
        complete_phase(crate, Phase.CHECK_VALUE, at=T0 - timedelta(seconds=1))


def test_naive_times_are_refused(crate):
    plan_phase(crate, Phase.CHECK_VALUE, agent=GATEWAY)
    with pytest.raises(ValueError, match="timezone-aware"):
        start_phase(crate, Phase.CHECK_VALUE, at=datetime(2026, 3, 1, 9, 0))  # naive on purpose


def test_each_phase_is_planned_once_and_must_be_planned_before_it_moves(crate):
    with pytest.raises(Conflict, match="has not been planned"):
        start_phase(crate, Phase.CHECK_VALUE, at=T0)
    plan_phase(crate, Phase.CHECK_VALUE, agent=GATEWAY)
    with pytest.raises(Conflict, match="already recorded"):
        plan_phase(crate, Phase.CHECK_VALUE, agent=GATEWAY)


def test_the_workflow_run_is_the_requests_own_action_and_keeps_the_requester_as_agent(crate):
    with pytest.raises(ValueError, match="never added"):
        plan_phase(crate, Phase.EXECUTION)
    start_phase(crate, Phase.EXECUTION, at=T0)
    with pytest.raises(ValueError, match="requester"):
        complete_phase(crate, Phase.EXECUTION, at=T0, agent=GATEWAY)
    assert crate.workflow_run()["agent"] == {"@id": "#person-alice"}
    assert phase_status(crate, Phase.EXECUTION) is ActionStatus.ACTIVE  # the refused call changed nothing


def test_workflow_retrieval_downloads_the_distribution_and_ties_the_copy_to_the_request(crate):
    action = crate.get(plan_phase(crate, Phase.WORKFLOW_RETRIEVAL, agent=GATEWAY))
    assert action["@type"] == "DownloadAction" and action["object"] == {"@id": DISTRIBUTION}
    start_phase(crate, Phase.WORKFLOW_RETRIEVAL, at=T0)
    complete_workflow_retrieval(crate, local_id="workflow/", at=T0 + timedelta(seconds=2))
    assert action["result"] == {"@id": "workflow/"}
    copy = crate.get("workflow/")
    assert copy["sameAs"] == {"@id": WORKFLOW}
    assert copy["distribution"] == {"@id": DISTRIBUTION}
    assert "workflow/" not in reference_ids(crate.root()["hasPart"])  # not shipped unless asked
