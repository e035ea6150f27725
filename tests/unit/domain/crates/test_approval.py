"""The sign-off rule: approved workflow (id, version, checksum) and project membership."""

import re
from datetime import UTC, datetime

import pytest

from gateway.domain.crates import (
    GATEWAY,
    ActionStatus,
    ApprovedWorkflow,
    Crate,
    Phase,
    Policy,
    RequestedWorkflow,
    RequestingAgent,
    admit_request,
    check_sign_off,
    check_workflow_approved,
    phase_action,
    plan_phase,
    record_sign_off,
    start_phase,
)
from tests.unit.domain.crates.examples import WORKFLOW, entity, request_04

SHA = "ab" * 32
APPROVED = [
    ApprovedWorkflow("https://workflowhub.eu/workflows/289", "1", f"sha256:{SHA}"),
    ApprovedWorkflow("https://workflowhub.eu/workflows/289", "2", "sha256:" + "cd" * 32),
]
REQUESTED = RequestedWorkflow.from_crate(Crate(request_04()))
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_the_version_is_read_from_the_workflow_id_when_not_stated_as_a_property():
    assert REQUESTED == RequestedWorkflow(WORKFLOW, "1")


def test_a_version_property_wins_over_the_id():
    document = request_04()
    entity(document, WORKFLOW)["version"] = 2
    assert RequestedWorkflow.from_crate(Crate(document)).version == "2"


def test_an_approved_workflow_with_the_approved_checksum_passes():
    outcome = check_workflow_approved(REQUESTED, APPROVED, f"sha256:{SHA.upper()}")
    assert outcome.passed, outcome.reason
    assert check_workflow_approved(REQUESTED, APPROVED, SHA).passed  # bare hex: algorithm from its length


@pytest.mark.parametrize(
    ("requested", "checksum", "reason"),
    [
        (RequestedWorkflow("https://workflowhub.eu/workflows/7?version=1", "1"), SHA, "not on the project's approved"),
        (RequestedWorkflow(WORKFLOW, "3"), SHA, r"version '3' of the workflow is not approved \(approved: 1, 2\)"),
        (RequestedWorkflow(WORKFLOW, None), SHA, "does not state a version"),
        (REQUESTED, "ef" * 32, "checksum differs"),
        (REQUESTED, "sha512:" + "ab" * 64, "hashed with sha512, the approval uses sha256"),
        (REQUESTED, "sha256:xyz", "unreadable"),
    ],
)
def test_the_rule_fails_with_a_reason(requested, checksum, reason):
    outcome = check_workflow_approved(requested, APPROVED, checksum)
    assert not outcome.passed
    assert re.search(reason, outcome.reason), outcome.reason


def test_the_requester_must_be_a_project_member():
    outcome = check_sign_off(REQUESTED, APPROVED, SHA, "mallory", {"alice", "bob"})
    assert not outcome.passed and "'mallory' is not a member" in outcome.reason
    assert check_sign_off(REQUESTED, APPROVED, SHA, "alice", {"alice", "bob"}).passed


def test_the_outcome_is_recorded_as_the_sign_off_phase():
    cases = ((SHA, ActionStatus.COMPLETED, "approved"), ("00" * 32, ActionStatus.FAILED, "rejected"))
    for checksum, status, suffix in cases:
        crate = admit_request(request_04(), RequestingAgent.member("alice", "p81")).crate
        plan_phase(crate, Phase.SIGN_OFF, policy=Policy("#policy", "Project p81 agreement"))
        start_phase(crate, Phase.SIGN_OFF, at=T0)
        outcome = check_sign_off(RequestedWorkflow.from_crate(crate), APPROVED, checksum, "alice", {"alice"})
        record_sign_off(crate, outcome, agent=GATEWAY, at=T0)
        action = phase_action(crate, Phase.SIGN_OFF)
        assert action["actionStatus"] == status.value
        assert action["name"].endswith(suffix)
        assert action["agent"] == {"@id": "#tre-gateway"}
