"""Offline SHACL validation with the bundled Five Safes shapes and JSON-LD contexts."""

import socket

import pytest

from gateway.adapters.crates.contexts import bundled_context, inline_contexts
from gateway.adapters.crates.shacl import Severity, validate_metadata
from gateway.domain.crates import repair_type_keys
from gateway.domain.errors import InvalidRequest
from tests.unit.domain.crates.examples import entity, load, request_04

UNDEFINED_MEMBER = (
    "#project-be6ffb55-4f5a-4c14-b60e-47e0951090c70",
    "schema:member",
    "The property 'member' of the Responsible Project MUST be of type schema:Organization or Person.",
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: contexts and shapes must come from the package."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access during crate validation")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def violations(document):
    return [(v.focus_node, v.path, v.message) for v in validate_metadata(document).violations]


@pytest.mark.parametrize(
    "name", ["five-safes-crate-request", "five-safes-crate-result", "five-safes-crate-multiple-context"]
)
def test_the_validators_valid_crates_have_no_violation(name):
    # (valid/five-safes-profile-crate describes the profile itself, not a request; the shapes do not apply.)
    assert violations(load(f"validator-testcrates/valid/{name}/ro-crate-metadata.json")) == []


def test_the_valid_result_crate_has_no_finding_at_all():
    report = validate_metadata(load("validator-testcrates/valid/five-safes-crate-result/ro-crate-metadata.json"))
    assert (report.violations, report.warnings, report.infos) == ((), (), ())


def test_an_invalid_crate_naming_an_unbundled_context_is_refused_without_fetching_it():
    document = load(
        "validator-testcrates/invalid/five_safes_crate/context_multiple_wrong_version/ro-crate-metadata.json"
    )
    with pytest.raises(InvalidRequest, match="'http://schema.org' is not one this gateway knows"):
        validate_metadata(document)
    # Its other invalid sibling (RO-Crate 1.1 context) is caught by the domain check; see test_checks.py.


def test_the_official_04_request_breaks_one_must_an_undefined_project_member():
    assert violations(load("0.4/example-request/data/ro-crate-metadata.json")) == [UNDEFINED_MEMBER]


@pytest.mark.parametrize("version", ["0.4", "0.5-DRAFT"])
def test_the_official_result_needs_the_type_repair_to_be_read_as_intended(version):
    document = load(f"{version}/example-result/data/ro-crate-metadata.json")
    before = violations(document)
    assert len(before) == 5
    assert {m for _, _, m in before} >= {
        "CheckValue MUST be a `AssessAction`.",
        "Sign Off phase MUST be a `AssessAction`.",
    }
    repaired, repairs = repair_type_keys(document)
    assert len(repairs) == 6
    assert violations(repaired) == [UNDEFINED_MEMBER]


def test_breaking_a_must_is_reported_with_focus_node_path_and_message():
    document = request_04()
    entity(document, "#query-37252371-c937-43bd-a0a7-3680b48c0538")["actionStatus"] = "done"
    found = [(v.focus_node, v.path) for v in validate_metadata(document).violations]
    assert ("#query-37252371-c937-43bd-a0a7-3680b48c0538", "schema:actionStatus") in found


def test_should_level_shapes_are_warnings_even_when_pyshacl_calls_them_violations():
    # "SHOULD mention a check value object" is a SPARQL constraint whose own sh:severity SHACL ignores.
    report = validate_metadata(request_04())
    warnings = {w.message for w in report.warnings}
    assert "RootDataEntity SHOULD mention a check value object." in warnings
    assert all(w.severity is Severity.WARNING for w in report.warnings)
    assert "RootDataEntity SHOULD mention a check value object." not in {v.message for v in report.violations}


def test_the_bundled_12_context_defines_every_term_the_official_examples_use():
    # The 1.2-DRAFT context the examples name is served from the 1.2 file; this shows nothing is lost.
    terms = bundled_context("https://w3id.org/ro/crate/1.2-DRAFT/context")
    for version in ("0.4", "0.5-DRAFT"):
        for kind in ("request", "result"):
            repaired, _ = repair_type_keys(load(f"{version}/example-{kind}/data/ro-crate-metadata.json"))
            used = {k for e in repaired["@graph"] for k in e if not k.startswith("@")}
            used |= {
                t for e in repaired["@graph"] for t in ([e["@type"]] if isinstance(e["@type"], str) else e["@type"])
            }
            # "licence" is a misspelling in the examples: no context defines it, so JSON-LD drops it.
            assert used - set(terms) <= {"licence"}, (version, kind)


def test_nested_and_imported_contexts_are_inlined_and_unknown_ones_refused():
    document = {
        "@context": [{"@import": "https://w3id.org/ro/crate/1.2/context", "extra": "https://example.org/extra"}],
        "@graph": [{"@id": "x", "@context": "https://w3id.org/ro/terms/workflow-run/context"}],
    }
    inlined = inline_contexts(document)
    assert inlined["@context"][0]["Dataset"] == "http://schema.org/Dataset"
    assert inlined["@context"][0]["extra"] == "https://example.org/extra"
    assert inlined["@graph"][0]["@context"]["sha512"] == "https://w3id.org/ro/terms/workflow-run#sha512"
    with pytest.raises(InvalidRequest, match="never fetches contexts"):
        inline_contexts({"@context": {"@import": "https://evil.example/context"}, "@graph": []})


def test_malformed_json_ld_is_an_invalid_request():
    with pytest.raises(InvalidRequest, match="not valid JSON-LD"):
        validate_metadata({"@context": [{"broken": {"@id": 5}}], "@graph": [{"@id": "./"}]})
