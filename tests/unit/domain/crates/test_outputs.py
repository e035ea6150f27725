"""Released outputs and the disclosure decision."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from gateway.domain.crates import (
    ActionStatus,
    Agent,
    DisclosureDecision,
    OutputFile,
    Phase,
    RequestingAgent,
    admit_request,
    phase_action,
    record_disclosure,
    set_run_outputs,
)
from gateway.domain.crates.model import reference_ids
from gateway.domain.errors import Conflict, InvalidRequest
from tests.unit.domain.crates.examples import request_04

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
CAROL, DAVE = Agent.person("carol"), Agent.person("dave")


def output(path, content=b"a,b\n1,2\n"):
    return OutputFile(
        path,
        len(content),
        hashlib.sha256(content).hexdigest(),
        hashlib.sha512(content).hexdigest(),
        encoding_format="text/csv",
    )


@pytest.fixture
def crate():
    return admit_request(request_04(), RequestingAgent.member("alice", "p81")).crate


def test_outputs_are_files_with_size_and_checksums_listed_as_run_results_and_parts(crate):
    table = output("outputs/table.csv")
    set_run_outputs(crate, [table])
    assert crate.get("outputs/table.csv") == {
        "@id": "outputs/table.csv",
        "@type": "File",
        "name": "table.csv",
        "contentSize": str(table.size),
        "sha256": table.sha256,
        "sha512": table.sha512,
        "encodingFormat": "text/csv",
    }
    assert crate.workflow_run()["result"] == {"@id": "outputs/table.csv"}
    assert "outputs/table.csv" in reference_ids(crate.root()["hasPart"])
    # No RO-Crate context defines sha512: it is declared inline so JSON-LD keeps it.
    assert crate.context[-1]["sha512"] == "https://w3id.org/ro/terms/workflow-run#sha512"


def test_setting_outputs_again_replaces_earlier_results(crate):
    set_run_outputs(crate, [output("outputs/a.csv"), output("outputs/b.csv")])
    set_run_outputs(crate, [output("outputs/b.csv")])
    assert crate.get("outputs/a.csv") is None
    assert crate.workflow_run()["result"] == {"@id": "outputs/b.csv"}
    assert "outputs/a.csv" not in reference_ids(crate.root()["hasPart"])


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../x", r"must not contain empty, '\.' or '\.\.' parts"),
        ("outputs/../../x", r"'\.\.'"),
        ("/etc/passwd", "relative POSIX path"),
        ("outputs\\x.csv", "relative POSIX path"),
        ("ro-crate-metadata.json", "reserved"),
    ],
)
def test_output_paths_that_could_escape_the_crate_are_refused(crate, path, message):
    with pytest.raises(InvalidRequest, match=message):
        set_run_outputs(crate, [output(path)])
    assert "result" not in crate.workflow_run()


def test_checksums_must_be_lower_case_hex_of_the_right_length(crate):
    good = output("outputs/t.csv")
    with pytest.raises(InvalidRequest, match="sha512 must be lower-case hex"):
        set_run_outputs(crate, [OutputFile(good.path, good.size, good.sha256, good.sha512[:-1])])
    with pytest.raises(InvalidRequest, match="sha256 must be lower-case hex"):
        set_run_outputs(crate, [OutputFile(good.path, good.size, good.sha256.upper(), good.sha512)])


def test_an_approved_disclosure_names_reviewers_and_released_outputs(crate):
    set_run_outputs(crate, [output("outputs/t.csv")])
    record_disclosure(crate, DisclosureDecision((CAROL, DAVE), ("outputs/t.csv",), 0, T0, T0 + timedelta(hours=1)))
    action = phase_action(crate, Phase.DISCLOSURE_CHECK)
    assert action["actionStatus"] == ActionStatus.COMPLETED.value
    assert reference_ids(action["agent"]) == ["#person-carol", "#person-dave"]
    assert action["result"] == {"@id": "outputs/t.csv"}
    assert action["name"].endswith(": approved")
    assert action["startTime"] == "2026-03-02T14:00:00+00:00" and action["endTime"] == "2026-03-02T15:00:00+00:00"


def test_a_partial_release_says_so_and_withholding_everything_fails_the_check(crate):
    set_run_outputs(crate, [output("outputs/t.csv")])
    record_disclosure(crate, DisclosureDecision((CAROL,), ("outputs/t.csv",), 2, T0, T0))
    assert phase_action(crate, Phase.DISCLOSURE_CHECK)["name"].endswith(": partially approved")
    assert "1 output(s) released, 2 withheld" == phase_action(crate, Phase.DISCLOSURE_CHECK)["description"]

    other = admit_request(request_04(), RequestingAgent.member("alice", "p81")).crate
    record_disclosure(other, DisclosureDecision((CAROL,), (), 3, T0, T0))
    action = phase_action(other, Phase.DISCLOSURE_CHECK)
    assert action["actionStatus"] == ActionStatus.FAILED.value
    assert action["name"].endswith(": rejected")


def test_only_described_outputs_can_be_released_and_a_decision_is_final(crate):
    with pytest.raises(InvalidRequest, match="not results of the workflow run: outputs/t.csv"):
        record_disclosure(crate, DisclosureDecision((CAROL,), ("outputs/t.csv",), 0, T0, T0))
    set_run_outputs(crate, [output("outputs/t.csv")])
    decision = DisclosureDecision((CAROL,), ("outputs/t.csv",), 0, T0, T0)
    record_disclosure(crate, decision)
    with pytest.raises(Conflict, match="already been decided"):
        record_disclosure(crate, DisclosureDecision((DAVE,), (), 1, T0, T0))
    assert phase_action(crate, Phase.DISCLOSURE_CHECK)["agent"] == {"@id": "#person-carol"}
