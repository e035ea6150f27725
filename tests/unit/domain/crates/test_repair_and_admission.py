"""Admitting a client's crate: the `type` repair, structural checks, client actions, the requester."""

import pytest

from gateway.domain.crates import (
    ActionStatus,
    Crate,
    ProfileVersion,
    RequestingAgent,
    admit_request,
    repair_type_keys,
)
from gateway.domain.crates.model import reference_ids
from gateway.domain.errors import InvalidRequest
from tests.unit.domain.crates.examples import entity, request_04, result_04

ALICE = RequestingAgent.member("alice", "p81", project_name="Cancer study 81")
CLIENT_ACTIONS = {
    "#check-f33fe90c-0c22-4c72-b299-de509028410e",
    "#validate-1146f640-819e-4c86-b029-b763a0040896",
    "#download-8b51bf57-6b29-44da-b24b-638c8df91639",
    "#signoff-3b741265-cfef-49ea-8138-a2fa149bf2f0",
    "#disclosure-b16c1f0a-ae7f-4582-9b28-7d9df3313e27",
    "#bagit-ce785c0b-c988-4043-8cbd-1489dcebc14f",
}


def test_the_profiles_example_writes_type_for_at_type_and_each_repair_is_reported():
    repaired, repairs = repair_type_keys(result_04())
    assert {r.entity_id for r in repairs} == CLIENT_ACTIONS
    signoff = entity(repaired, "#signoff-3b741265-cfef-49ea-8138-a2fa149bf2f0")
    assert signoff["@type"] == "AssessAction" and "type" not in signoff
    assert "renamed 'type' to '@type'" in repairs[0].description


def test_the_repair_leaves_the_input_alone_and_ambiguous_entities_untouched():
    document = result_04()
    both = entity(document, "#check-f33fe90c-0c22-4c72-b299-de509028410e")
    both["@type"] = "AssessAction"
    structured = entity(document, "#bagit-ce785c0b-c988-4043-8cbd-1489dcebc14f")
    structured["type"] = {"kind": "custom"}
    repaired, repairs = repair_type_keys(document)
    assert len(repairs) == 4
    assert entity(repaired, both["@id"])["type"] == "AssessAction"  # both keys: not guessed
    assert entity(repaired, structured["@id"])["type"] == {"kind": "custom"}
    assert "@type" not in entity(document, "#signoff-3b741265-cfef-49ea-8138-a2fa149bf2f0")  # input not mutated


def test_the_04_example_request_is_admitted_without_repairs():
    admitted = admit_request(request_04(), ALICE)
    assert admitted.profile is ProfileVersion.V0_4
    assert admitted.repairs == ()
    assert admitted.removed_actions == ()


def test_a_crate_needing_the_type_repair_is_admitted_with_the_repairs_recorded_and_client_actions_removed():
    admitted = admit_request(result_04(), ALICE)
    assert {r.entity_id for r in admitted.repairs} == CLIENT_ACTIONS
    assert set(admitted.removed_actions) == CLIENT_ACTIONS
    crate = admitted.crate
    assert not crate.of_type("AssessAction") and not crate.of_type("DownloadAction")
    assert reference_ids(crate.root()["mentions"]) == ["#query-37252371-c937-43bd-a0a7-3680b48c0538"]
    run = crate.workflow_run()
    assert run["actionStatus"] == ActionStatus.POTENTIAL.value
    assert "result" not in run and "endTime" not in run


def test_the_requester_and_project_come_from_the_identity_not_the_crate():
    crate = admit_request(request_04(), ALICE).crate
    run, root = crate.workflow_run(), crate.root()
    assert run["agent"] == {"@id": "#person-alice"}
    assert root["sourceOrganization"] == {"@id": "#project-p81"}
    assert crate.get("#person-alice") == {
        "@id": "#person-alice",
        "@type": "Person",
        "name": "alice",
        "memberOf": {"@id": "#project-p81"},
    }
    assert crate.get("#project-p81")["identifier"] == "p81"
    # The client's own claims are gone, not merely unlinked.
    assert crate.get("https://orcid.org/0000-0001-9842-9718") is None
    assert crate.get("#project-be6ffb55-4f5a-4c14-b60e-47e0951090c70") is None


def test_an_orcid_is_used_as_the_requesters_id_when_known():
    orcid = "https://orcid.org/0000-0002-1825-0097"
    crate = admit_request(request_04(), RequestingAgent.member("bob", "p81", person_iri=orcid)).crate
    assert crate.workflow_run()["agent"] == {"@id": orcid}


def test_an_unprocessable_crate_is_refused_with_every_problem_listed():
    document = request_04()
    del entity(document, "./")["mainEntity"]
    entity(document, "ro-crate-metadata.json")["conformsTo"] = {"@id": "https://w3id.org/ro/crate/1.1"}
    with pytest.raises(InvalidRequest) as refused:
        admit_request(document, ALICE)
    assert "RO-Crate 1.2 or later" in refused.value.msg
    assert "has no mainEntity" in refused.value.msg


def test_admission_does_not_change_the_callers_document():
    document = request_04()
    admit_request(document, ALICE)
    assert document == request_04()
    assert Crate(document).workflow_run()["agent"] == {"@id": "https://orcid.org/0000-0001-9842-9718"}
