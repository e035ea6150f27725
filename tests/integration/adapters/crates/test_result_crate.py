"""End to end: the 0.4 example request goes through every phase and leaves as a valid result BagIt zip."""

import json
import zipfile
from datetime import UTC, datetime, timedelta

import pytest

from gateway.adapters.crates.bagit import intake_crate, write_bag_zip
from gateway.adapters.crates.checksums import file_digests
from gateway.adapters.crates.shacl import validate_metadata
from gateway.domain.crates import (
    GATEWAY,
    ActionStatus,
    Agent,
    ApprovedWorkflow,
    DisclosureDecision,
    Organization,
    OutputFile,
    Phase,
    Policy,
    RequestedWorkflow,
    RequestingAgent,
    admit_request,
    check_sign_off,
    complete_phase,
    complete_workflow_retrieval,
    phase_status,
    plan_phase,
    record_disclosure,
    record_sign_off,
    set_run_outputs,
    start_phase,
    structural_problems,
)
from tests.integration.adapters.crates.archives import request_bag_zip

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
WORKFLOW_SHA256 = "ab" * 32
REVIEWER = Agent.person("carol", name="Carol Checker")
MANCHESTER = Organization("https://ror.org/027m9bs27", "The University of Manchester")


def at(minutes):
    return T0 + timedelta(minutes=minutes)


def process(document, payload):
    """Run every phase on an admitted request; one of two outputs is approved. Returns the crate."""
    requester = RequestingAgent.member("alice", "p81", project_name="Project 81", affiliation=MANCHESTER)
    crate = admit_request(document, requester).crate
    for minute, phase in enumerate((Phase.CHECK_VALUE, Phase.VALIDATION_CHECK)):
        plan_phase(crate, phase, agent=GATEWAY)
        start_phase(crate, phase, at=at(minute))
        complete_phase(crate, phase, at=at(minute), outcome="OK")

    plan_phase(crate, Phase.WORKFLOW_RETRIEVAL, agent=GATEWAY)
    start_phase(crate, Phase.WORKFLOW_RETRIEVAL, at=at(2))
    complete_workflow_retrieval(crate, local_id="workflow/", at=at(3))

    plan_phase(crate, Phase.SIGN_OFF, policy=Policy("https://tre.example/policy/p81", "Project 81 agreement policy"))
    start_phase(crate, Phase.SIGN_OFF, at=at(4))
    approved = [ApprovedWorkflow("https://workflowhub.eu/workflows/289", "1", f"sha256:{WORKFLOW_SHA256}")]
    verdict = check_sign_off(RequestedWorkflow.from_crate(crate), approved, WORKFLOW_SHA256, "alice", {"alice"})
    record_sign_off(crate, verdict, agent=REVIEWER, at=at(5))

    start_phase(crate, Phase.EXECUTION, at=at(6))
    (payload / "outputs").mkdir(parents=True)
    (payload / "outputs" / "summary.csv").write_text("group,count\nA,120\nB,340\n", "utf-8")
    digests = file_digests(payload / "outputs" / "summary.csv")
    released = OutputFile("outputs/summary.csv", digests.size, digests.sha256, digests.sha512, "text/csv")
    set_run_outputs(crate, [released])  # the withheld output never enters the result crate
    complete_phase(crate, Phase.EXECUTION, at=at(30))

    record_disclosure(crate, DisclosureDecision((REVIEWER,), (released.path,), 1, at(31), at(40)))

    plan_phase(crate, Phase.PUBLISHING, agent=GATEWAY)
    start_phase(crate, Phase.PUBLISHING, at=at(41))
    complete_phase(crate, Phase.PUBLISHING, at=at(41))
    return crate


@pytest.fixture
def result(tmp_path):
    request = intake_crate(request_bag_zip(tmp_path), tmp_path / "request")
    payload = tmp_path / "result-payload"
    payload.mkdir()
    crate = process(request.metadata, payload)
    (payload / "input1.txt").write_bytes((request.crate_root / "input1.txt").read_bytes())
    (payload / "ro-crate-metadata.json").write_text(json.dumps(crate.to_json(), indent=2), "utf-8")
    return crate, payload


def test_every_phase_is_completed(result):
    crate, _ = result
    for phase in Phase:
        assert phase_status(crate, phase) is ActionStatus.COMPLETED, phase


def test_the_result_crate_passes_the_five_safes_shapes_with_no_violation(result):
    crate, _ = result
    report = validate_metadata(crate.to_json())
    assert report.violations == ()
    assert report.conforms
    # Not even a SHOULD is missed; the two MAY notes are about funding and member lists we do not know.
    assert report.warnings == ()
    assert {(i.focus_node, i.path) for i in report.infos} == {("#project-p81", "schema:funding")}
    assert structural_problems(crate) == ()


def test_the_result_is_a_bagit_zip_with_regenerated_manifests_that_intake_verifies(result, tmp_path):
    crate, payload = result
    bag = write_bag_zip(payload, tmp_path / "result.zip", bag_name="result-1", bagged_at=at(41))
    with zipfile.ZipFile(bag.path) as archive:
        names = sorted(archive.namelist())
        manifest = archive.read("result-1/manifest-sha512.txt").decode()
        tag_manifest = archive.read("result-1/tagmanifest-sha512.txt").decode()
    assert names == [
        "result-1/bag-info.txt",
        "result-1/bagit.txt",
        "result-1/data/input1.txt",
        "result-1/data/outputs/summary.csv",
        "result-1/data/ro-crate-metadata.json",
        "result-1/manifest-sha512.txt",
        "result-1/tagmanifest-sha512.txt",
    ]
    summary = crate.get("outputs/summary.csv")
    assert f"{summary['sha512']}  data/outputs/summary.csv\n" in manifest
    assert sorted(line.split()[1] for line in tag_manifest.splitlines()) == [
        "bag-info.txt",
        "bagit.txt",
        "manifest-sha512.txt",
    ]

    received = intake_crate(bag.path, tmp_path / "check")
    assert received.verified_manifests == ("sha512",)
    assert received.metadata == crate.to_json()
