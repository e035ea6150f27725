"""Structural checks: each malformed request is refused with a message naming what is wrong."""

import pytest

from gateway.domain.crates import Crate, require_processable, structural_problems
from gateway.domain.errors import InvalidRequest
from tests.unit.domain.crates.examples import WORKFLOW, entity, load, request_04, without


def codes(document):
    return [p.code for p in structural_problems(Crate(document))]


def test_the_official_requests_and_the_validators_valid_crates_have_no_problems():
    for relative in (
        "0.4/example-request/data/ro-crate-metadata.json",
        "0.5-DRAFT/example-request/data/ro-crate-metadata.json",
        "validator-testcrates/valid/five-safes-crate-request/ro-crate-metadata.json",
        "validator-testcrates/valid/five-safes-crate-multiple-context/ro-crate-metadata.json",
    ):
        assert codes(load(relative)) == [], relative


@pytest.mark.parametrize(
    "relative",
    [
        "validator-testcrates/invalid/five_safes_crate/context_single_wrong_version/ro-crate-metadata.json",
        "validator-testcrates/invalid/five_safes_crate/context_multiple_wrong_version/ro-crate-metadata.json",
    ],
)
def test_the_validators_invalid_crates_fail_on_the_context_version(relative):
    # The shapes cannot see @context; this rule is the profile's Python check, done here.
    assert codes(load(relative)) == ["context_version"]


def test_missing_main_entity():
    document = request_04()
    del entity(document, "./")["mainEntity"]
    assert codes(document) == ["no_main_entity"]
    with pytest.raises(InvalidRequest, match="the root data entity has no mainEntity"):
        require_processable(Crate(document))


def test_main_entity_that_is_not_described():
    assert "missing_workflow" in codes(without(request_04(), WORKFLOW))


def test_main_entity_must_be_a_workflow_crate_dataset():
    document = request_04()
    workflow = entity(document, WORKFLOW)
    workflow["@type"] = "File"
    workflow["conformsTo"] = {"@id": "https://example.org/some-profile"}
    assert codes(document) == ["workflow_not_dataset", "workflow_profile"]


def test_missing_workflow_run():
    document = request_04()
    del entity(document, "./")["mentions"]
    assert codes(document) == ["no_workflow_run"]


def test_the_run_must_use_the_requested_workflow_and_existing_inputs():
    document = without(request_04(), "input1.txt")
    entity(document, "#query-37252371-c937-43bd-a0a7-3680b48c0538")["instrument"] = {"@id": "https://other/wf"}
    assert codes(document) == ["run_instrument", "missing_input"]


def test_unknown_and_missing_profile():
    document = request_04()
    entity(document, "./")["conformsTo"] = {"@id": "https://w3id.org/5s-crate/9.9"}
    assert codes(document) == ["unknown_profile"]
    del entity(document, "./")["conformsTo"]
    assert codes(document) == ["no_profile"]


def test_missing_descriptor_stops_the_checks_early():
    assert codes(without(request_04(), "ro-crate-metadata.json")) == ["no_descriptor"]


def test_an_ro_crate_11_context_is_refused():
    document = request_04()
    document["@context"] = "https://w3id.org/ro/crate/1.1/context"
    assert codes(document) == ["context_version"]
