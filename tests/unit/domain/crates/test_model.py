"""Reading a crate's @graph: entities by id, root, mainEntity, profile version."""

import pytest

from gateway.domain.crates import Crate, ProfileVersion
from gateway.domain.errors import InvalidRequest
from tests.unit.domain.crates.examples import WORKFLOW, entity, load, request_04


def test_the_04_example_request_exposes_root_workflow_and_profile():
    crate = Crate(request_04())
    assert crate.root()["@id"] == "./"
    assert crate.main_entity()["@id"] == WORKFLOW
    assert crate.profile_version() is ProfileVersion.V0_4
    assert crate.workflow_run()["@id"] == "#query-37252371-c937-43bd-a0a7-3680b48c0538"


def test_the_05_draft_example_is_recognised():
    crate = Crate(load("0.5-DRAFT/example-request/data/ro-crate-metadata.json"))
    assert crate.profile_version() is ProfileVersion.V0_5_DRAFT


def test_an_unknown_profile_version_is_named_in_the_error():
    document = request_04()
    entity(document, "./")["conformsTo"] = {"@id": "https://w3id.org/5s-crate/0.3"}
    with pytest.raises(InvalidRequest, match=r"unknown Five Safes profile version '0.3'; supported: 0.4, 0.5-DRAFT"):
        Crate(document).profile_version()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must be a JSON object"),
        ({"@graph": []}, "no @context"),
        ({"@context": "x", "@graph": {}}, "@graph list"),
        ({"@context": "x", "@graph": [{"name": "no id"}]}, "item 0 has no @id"),
        ({"@context": "x", "@graph": [{"@id": "a"}, {"@id": "a"}]}, "'a' is used by more than one entity"),
    ],
)
def test_documents_that_are_not_flat_graphs_are_refused(document, message):
    with pytest.raises(InvalidRequest, match=message):
        Crate(document)


def test_the_crate_keeps_its_own_copy_of_the_document():
    document = request_04()
    crate = Crate(document)
    entity(document, "./")["name"] = "changed outside"
    exported = crate.to_json()
    exported["@graph"].clear()
    assert "name" not in crate.root()
    assert crate.get("./") is not None


def test_removing_an_entity_also_removes_references_to_it():
    crate = Crate(request_04())
    crate.remove(["input1.txt"])
    assert "input1.txt" not in crate
    assert crate.workflow_run()["object"] == {"@id": "#enableFastMode"}  # the list collapsed to one value
    assert crate.root()["hasPart"] == {"@id": WORKFLOW}


def test_context_terms_are_added_inline_once():
    crate = Crate(request_04())
    crate.define_context_terms({"sha512": "https://w3id.org/ro/terms/workflow-run#sha512"})
    crate.define_context_terms({"sha512": "https://w3id.org/ro/terms/workflow-run#sha512"})
    assert crate.context == [
        "https://w3id.org/ro/crate/1.2-DRAFT/context",
        {"sha512": "https://w3id.org/ro/terms/workflow-run#sha512"},
    ]
