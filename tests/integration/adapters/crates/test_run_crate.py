"""Workflow Run RO-Crates of WES runs: a 2-step CWL run written as a zip, read back as JSON-LD and by `rocrate`.

The crate must follow the Provenance Run Crate 0.5 profile (and so Workflow Run Crate, Process Run Crate and
Workflow RO-Crate 1.0), embed the attachments and the released outputs that have a local copy, reference
released outputs that only have a URL, never mention unreleased outputs, and never touch the network.
"""

from __future__ import annotations

import hashlib
import json
import socket
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rocrate.rocrate import ROCrate

from gateway.adapters.crates.run_crate import (
    PROCESS_RUN_CRATE,
    PROVENANCE_RUN_CRATE,
    WORKFLOW_RO_CRATE,
    WORKFLOW_RUN_CONTEXT,
    WORKFLOW_RUN_CRATE,
    RunCrate,
    RunCrateError,
    RunCrateFile,
    RunCrateInput,
    RunCrateStep,
    build_run_crate_metadata,
    write_run_crate,
)

MAIN_CWL = """\
cwlVersion: v1.2
class: Workflow
inputs:
  table: File
  threshold: int
  labels: string[]
outputs:
  counts:
    type: File
    outputSource: count/counts
  summary:
    type: File
    outputSource: summarise/summary
  rows:
    type: int
    outputSource: count/rows
  draft:
    type: File
    outputSource: summarise/draft
steps:
  count:
    run: tools/count.cwl
    in: {table: table, threshold: threshold}
    out: [counts, rows]
  summarise:
    run: tools/summarise.cwl
    in: {counts: count/counts, labels: labels}
    out: [summary, draft]
"""

RELEASED = "file:///tre/released/p1/run-7"
COUNTS = b"label,count\na,12\nb,40\n"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to resolve a name or open a connection fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


def attachments(tmp_path: Path) -> Path:
    folder = tmp_path / "attachments"
    (folder / "tools").mkdir(parents=True)
    (folder / "main.cwl").write_text(MAIN_CWL)
    (folder / "tools" / "count.cwl").write_text("cwlVersion: v1.2\nclass: CommandLineTool\n")
    (folder / "tools" / "summarise.cwl").write_text("cwlVersion: v1.2\nclass: CommandLineTool\n")
    (folder / "defaults.csv").write_text("x\n")
    return folder


def two_step_run(tmp_path: Path, **overrides: Any) -> RunCrate:
    folder = attachments(tmp_path)
    counts = tmp_path / "released" / "counts.csv"
    counts.parent.mkdir()
    counts.write_bytes(COUNTS)
    t0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    fields: dict[str, Any] = dict(
        run_id="run-7",
        name="count and summarise",
        workflow_path=Path("main.cwl"),
        workflow_dir=folder,
        workflow_language="CWL",
        workflow_language_version="v1.2",
        params={
            "table": {"class": "File", "location": "file:///tre/inputs/p1/table.csv", "size": 2048},
            "threshold": 5,
            "labels": ["a", "b"],
            "defaults": {"class": "File", "location": "defaults.csv"},
        },
        outputs={
            "counts": {"class": "File", "location": f"{RELEASED}/counts.csv", "size": len(COUNTS)},
            "summary": {"class": "File", "location": f"{RELEASED}/summary.pdf"},
            "rows": 2,
            "draft": {"class": "File", "location": "file:///tre/quarantine/p1/run-7/draft.txt"},
        },
        output_files=[
            RunCrateFile(
                local_path=counts,
                crate_path="outputs/counts.csv",
                sha256=hashlib.sha256(COUNTS).hexdigest(),
                size=len(COUNTS),
                url=f"{RELEASED}/counts.csv",
                media_type="text/csv",
            ),
            RunCrateFile(
                local_path=None,
                crate_path="outputs/summary.pdf",
                sha256="ab" * 32,
                size=9000,
                url=f"{RELEASED}/summary.pdf",
            ),
        ],
        steps=[
            RunCrateStep(
                name="count",
                tes_task_id="t-1",
                tes_uri="https://tre.example.org/ga4gh/tes/v1/tasks/t-1",
                image="registry.tre.example.org/tools/python:3.12@sha256:" + "1" * 64,
                command=["python", "count.py", "--threshold", "5"],
                state="COMPLETE",
                start_time=t0.replace(minute=1),
                end_time=t0.replace(minute=2),
                exit_code=0,
                tool_path="tools/count.cwl",
            ),
            RunCrateStep(
                name="summarise",
                tes_task_id="t-2",
                tes_uri="https://tre.example.org/ga4gh/tes/v1/tasks/t-2",
                image="alpine:3.20",
                command=["sh", "-c", "summarise > summary.pdf"],
                state="COMPLETE",
                start_time="2024-05-01T12:03:00Z",
                end_time="2024-05-01T12:04:00Z",
                exit_code=0,
            ),
        ],
        state="COMPLETE",
        start_time=t0,
        end_time=t0.replace(minute=5),
        agent="alice",
        project="p1",
        gateway_url="https://tre.example.org",
        engine_name="cwltool",
        engine_version="3.1.20240508115724",
    )
    fields.update(overrides)
    return RunCrate(**fields)


def unzip(path: Path, into: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as zf:
        zf.extractall(into)
    return json.loads((into / "ro-crate-metadata.json").read_text())


def graph(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["@id"]: e for e in metadata["@graph"]}


def ids(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [item["@id"] for item in items]


def types(entity: dict[str, Any]) -> set[str]:
    kind = entity["@type"]
    return set(kind if isinstance(kind, list) else [kind])


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, dict[str, dict[str, Any]], Path]:
    zip_path = write_run_crate(two_step_run(tmp_path), tmp_path / "out" / "crate.zip")
    unpacked = tmp_path / "unpacked"
    metadata = unzip(zip_path, unpacked)
    assert metadata["@context"] == ["https://w3id.org/ro/crate/1.1/context", WORKFLOW_RUN_CONTEXT]
    return zip_path, graph(metadata), unpacked


def test_zip_holds_metadata_attachments_and_embedded_outputs_only(
    written: tuple[Path, dict[str, dict[str, Any]], Path],
) -> None:
    zip_path, _, unpacked = written
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(zf.namelist())
    assert names == [
        "outputs/counts.csv",
        "ro-crate-metadata.json",
        "workflow/defaults.csv",
        "workflow/main.cwl",
        "workflow/tools/count.cwl",
        "workflow/tools/summarise.cwl",
    ]
    assert (unpacked / "workflow" / "main.cwl").read_text() == MAIN_CWL
    assert (unpacked / "outputs" / "counts.csv").read_bytes() == COUNTS
    assert not list(zip_path.parent.glob("*.part"))


def test_root_dataset_conforms_to_the_run_crate_profiles(written: tuple[Path, dict[str, dict[str, Any]], Path]) -> None:
    _, g, _ = written
    root = g["./"]
    assert "Dataset" in types(root)
    profiles = {PROCESS_RUN_CRATE, WORKFLOW_RUN_CRATE, PROVENANCE_RUN_CRATE, WORKFLOW_RO_CRATE}
    assert profiles <= set(ids(root["conformsTo"]))
    for profile in profiles:
        assert g[profile]["@type"] == "CreativeWork" and g[profile]["version"]
    descriptor = g["ro-crate-metadata.json"]
    assert set(ids(descriptor["conformsTo"])) == {"https://w3id.org/ro/crate/1.1", WORKFLOW_RO_CRATE}
    assert root["datePublished"] == "2024-05-01T12:05:00Z"
    assert root["identifier"] == "https://tre.example.org/ga4gh/wes/v1/runs/run-7"
    assert root["mainEntity"] == {"@id": "workflow/main.cwl"}
    # Every data entity is reachable from the root.
    assert {
        "workflow/main.cwl",
        "workflow/tools/count.cwl",
        "outputs/counts.csv",
        f"{RELEASED}/summary.pdf",
        "file:///tre/inputs/p1/table.csv",
    } <= set(ids(root["hasPart"]))


def test_main_entity_is_the_cwl_workflow(written: tuple[Path, dict[str, dict[str, Any]], Path]) -> None:
    _, g, _ = written
    wf = g["workflow/main.cwl"]
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"} <= types(wf)
    lang = g[wf["programmingLanguage"]["@id"]]
    assert lang["@type"] == "ComputerLanguage"
    assert lang["alternateName"] == "CWL" and lang["version"] == "v1.2"
    inputs = {g[i]["name"]: g[i] for i in ids(wf["input"])}
    outputs = {g[i]["name"]: g[i] for i in ids(wf["output"])}
    assert set(inputs) == {"table", "threshold", "labels", "defaults"}
    assert set(outputs) == {"counts", "summary", "rows", "draft"}
    assert inputs["table"]["additionalType"] == "File"
    assert inputs["threshold"]["additionalType"] == "Integer"
    assert inputs["labels"]["additionalType"] == "Text"
    assert all(p["@type"] == "FormalParameter" for p in [*inputs.values(), *outputs.values()])
    # Provenance Run Crate: steps (HowToStep -> tool), tools as parts of the workflow.
    steps = [g[s] for s in ids(wf["step"])]
    assert [(s["@type"], s["name"], s["position"]) for s in steps] == [
        ("HowToStep", "count", "0"),
        ("HowToStep", "summarise", "1"),
    ]
    assert steps[0]["workExample"] == {"@id": "workflow/tools/count.cwl"}
    assert "SoftwareApplication" in types(g["workflow/tools/count.cwl"])
    assert g[steps[1]["workExample"]["@id"]]["@type"] == "SoftwareApplication"
    assert {s["workExample"]["@id"] for s in steps} == set(ids(wf["hasPart"]))


def test_workflow_run_action(written: tuple[Path, dict[str, dict[str, Any]], Path]) -> None:
    _, g, _ = written
    runs = [e for e in g.values() if e["@type"] == "CreateAction" and e["instrument"] == {"@id": "workflow/main.cwl"}]
    assert len(runs) == 1
    run = runs[0]
    assert run["@id"] in ids(g["./"]["mentions"])
    assert run["actionStatus"] == {"@id": "http://schema.org/CompletedActionStatus"}
    assert (run["startTime"], run["endTime"]) == ("2024-05-01T12:00:00Z", "2024-05-01T12:05:00Z")
    assert run["identifier"] == "https://tre.example.org/ga4gh/wes/v1/runs/run-7"
    person = g[run["agent"]["@id"]]
    assert person["@type"] == "Person" and person["name"] == "alice"
    assert g[person["memberOf"]["@id"]]["@type"] == "Organization"

    objects = {i: g[i] for i in ids(run["object"])}
    table = objects["file:///tre/inputs/p1/table.csv"]
    assert table["@type"] == "File" and table["contentSize"] == "2048"
    assert g[table["exampleOfWork"]["@id"]]["name"] == "table"
    assert "workflow/defaults.csv" in objects  # a relative input location is the attached file
    values = {e["name"]: e["value"] for e in objects.values() if e["@type"] == "PropertyValue"}
    assert values == {"threshold": 5, "labels": '["a", "b"]'}

    results = {i: g[i] for i in ids(run["result"])}
    assert set(results) == {"outputs/counts.csv", f"{RELEASED}/summary.pdf", "#pv-output/rows"}
    counts = results["outputs/counts.csv"]
    assert counts["sha256"] == hashlib.sha256(COUNTS).hexdigest()
    assert counts["contentSize"] == str(len(COUNTS)) and counts["encodingFormat"] == "text/csv"
    assert counts["contentUrl"] == f"{RELEASED}/counts.csv"
    assert g[counts["exampleOfWork"]["@id"]]["name"] == "counts"
    assert results["#pv-output/rows"]["value"] == 2


def test_unreleased_output_is_never_mentioned_and_url_only_output_is_referenced(
    written: tuple[Path, dict[str, dict[str, Any]], Path],
) -> None:
    zip_path, g, _ = written
    text = json.dumps(g)
    assert "quarantine" not in text and "draft.txt" not in text
    summary = g[f"{RELEASED}/summary.pdf"]
    assert summary["@type"] == "File" and summary["sha256"] == "ab" * 32 and summary["contentSize"] == "9000"
    assert g[summary["exampleOfWork"]["@id"]]["name"] == "summary"
    with zipfile.ZipFile(zip_path) as zf:
        assert not [n for n in zf.namelist() if "summary" in n]


def test_one_create_action_per_step_with_image_and_tes_task(
    written: tuple[Path, dict[str, dict[str, Any]], Path],
) -> None:
    _, g, _ = written
    steps = sorted(
        (e for e in g.values() if e["@type"] == "CreateAction" and "containerImage" in e), key=lambda e: e["identifier"]
    )
    assert [s["identifier"] for s in steps] == [
        "https://tre.example.org/ga4gh/tes/v1/tasks/t-1",
        "https://tre.example.org/ga4gh/tes/v1/tasks/t-2",
    ]
    count, summarise = steps
    assert count["instrument"] == {"@id": "workflow/tools/count.cwl"}
    assert "count" in count["name"] and "t-1" in count["name"]
    assert count["description"] == "command: python count.py --threshold 5; exit code: 0"
    assert count["actionStatus"] == {"@id": "http://schema.org/CompletedActionStatus"}
    assert (count["startTime"], count["endTime"]) == ("2024-05-01T12:01:00Z", "2024-05-01T12:02:00Z")
    image = g[count["containerImage"]["@id"]]
    assert image["@type"] == "ContainerImage"
    assert image["additionalType"] == {"@id": "https://w3id.org/ro/terms/workflow-run#DockerImage"}
    assert (image["registry"], image["name"], image["tag"], image["sha256"]) == (
        "registry.tre.example.org",
        "tools/python",
        "3.12",
        "1" * 64,
    )
    alpine = g[summarise["containerImage"]["@id"]]
    assert (alpine["registry"], alpine["name"], alpine["tag"]) == ("docker.io", "alpine", "3.20")
    assert g[summarise["instrument"]["@id"]]["@type"] == "SoftwareApplication"
    mentions = set(ids(g["./"]["mentions"]))
    assert {count["@id"], summarise["@id"]} <= mentions

    # ControlActions link each HowToStep to its tool run; the OrganizeAction ties the engine to them.
    controls = [e for e in g.values() if e["@type"] == "ControlAction"]
    assert {(c["instrument"]["@id"], c["object"]["@id"]) for c in controls} == {
        ("#step/count", count["@id"]),
        ("#step/summarise", summarise["@id"]),
    }
    (organize,) = [e for e in g.values() if e["@type"] == "OrganizeAction"]
    engine = g[organize["instrument"]["@id"]]
    assert engine["@type"] == "SoftwareApplication" and engine["softwareVersion"] == "3.1.20240508115724"
    assert "cwltool" in engine["name"]
    assert set(ids(organize["object"])) == {c["@id"] for c in controls}
    assert g[organize["result"]["@id"]]["instrument"] == {"@id": "workflow/main.cwl"}
    assert organize["@id"] in mentions


def test_rocrate_library_reads_the_zip_back(written: tuple[Path, dict[str, dict[str, Any]], Path]) -> None:
    zip_path, _, _ = written
    crate = ROCrate(zip_path)
    assert crate.mainEntity is not None and crate.mainEntity.id == "workflow/main.cwl"
    assert "ComputationalWorkflow" in crate.mainEntity.type
    assert crate.mainEntity["programmingLanguage"]["alternateName"] == "CWL"
    actions = crate.get_by_type("CreateAction")
    assert len(actions) == 3
    data_ids = {e.id for e in crate.data_entities}
    assert {"outputs/counts.csv", f"{RELEASED}/summary.pdf", "workflow/tools/count.cwl"} <= data_ids
    run = next(a for a in actions if a["instrument"] is crate.mainEntity)
    assert {e.id for e in run["result"]} >= {"outputs/counts.csv", f"{RELEASED}/summary.pdf"}


def test_failed_run_and_step_are_failed_actions(tmp_path: Path) -> None:
    base = two_step_run(tmp_path)
    steps = [
        base.steps[0],
        RunCrateStep(
            name="summarise",
            tes_task_id="t-2",
            tes_uri="https://tre.example.org/ga4gh/tes/v1/tasks/t-2",
            image="alpine",
            command=["false"],
            state="EXECUTOR_ERROR",
            exit_code=1,
        ),
    ]
    run = RunCrate(
        **{**base.__dict__, "state": "EXECUTOR_ERROR", "steps": steps, "outputs": {}, "output_files": [], "agent": None}
    )
    g = graph(build_run_crate_metadata(run))
    (wf_run,) = [
        e for e in g.values() if e["@type"] == "CreateAction" and e["instrument"]["@id"] == "workflow/main.cwl"
    ]
    assert wf_run["actionStatus"] == {"@id": "http://schema.org/FailedActionStatus"}
    assert "EXECUTOR_ERROR" in wf_run["error"] and "result" not in wf_run
    # Without a user, the project is the agent.
    assert g[wf_run["agent"]["@id"]]["@type"] == "Organization"
    failed = next(e for e in g.values() if e.get("identifier") == "https://tre.example.org/ga4gh/tes/v1/tasks/t-2")
    assert failed["actionStatus"] == {"@id": "http://schema.org/FailedActionStatus"}
    assert "exit code 1" in failed["error"]
    assert g[failed["containerImage"]["@id"]]["name"] == "alpine"


def test_scattered_step_runs_share_one_step(tmp_path: Path) -> None:
    base = two_step_run(tmp_path)
    shard = RunCrateStep(
        name="count",
        tes_task_id="t-3",
        tes_uri="https://tre.example.org/ga4gh/tes/v1/tasks/t-3",
        image=base.steps[0].image,
        tool_path="tools/count.cwl",
    )
    g = graph(build_run_crate_metadata(RunCrate(**{**base.__dict__, "steps": [*base.steps, shard]})))
    assert len([e for e in g.values() if e["@type"] == "HowToStep"]) == 2
    assert len([e for e in g.values() if e["@type"] == "ControlAction"]) == 3
    assert len([e for e in g.values() if e["@type"] == "ContainerImage"]) == 2


def test_destination_folder_and_inputs_view(tmp_path: Path) -> None:
    run = two_step_run(tmp_path)
    out = tmp_path / "crates"
    out.mkdir()
    assert write_run_crate(run, out) == out / "run-run-7-ro-crate.zip"
    assert RunCrateInput("threshold", 5) in run.inputs
    assert run.run_url == "https://tre.example.org/ga4gh/wes/v1/runs/run-7"
    wes_base = RunCrate(**{**run.__dict__, "gateway_url": "https://tre.example.org/ga4gh/wes/v1/"})
    assert wes_base.run_url == run.run_url


@pytest.mark.parametrize(
    "overrides",
    [
        {"workflow_path": Path("../elsewhere.cwl")},
        {"workflow_path": Path("missing.cwl")},
        {"output_files": [RunCrateFile(local_path=None, crate_path="outputs/x.csv")]},
        {"output_files": [RunCrateFile(local_path=Path("/etc/hostname"), crate_path="../x.csv")]},
        {"output_files": [RunCrateFile(local_path=Path("/etc/hostname"), crate_path="workflow/main.cwl")]},
    ],
    ids=["workflow-outside", "workflow-missing", "no-copy-no-url", "crate-path-escapes", "crate-path-taken"],
)
def test_refuses_bad_descriptions(tmp_path: Path, overrides: dict[str, Any]) -> None:
    with pytest.raises(RunCrateError):
        write_run_crate(two_step_run(tmp_path, **overrides), tmp_path / "crate.zip")
    assert not (tmp_path / "crate.zip").exists()


def test_symlinks_in_attachments_are_not_followed(tmp_path: Path) -> None:
    run = two_step_run(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("host file")
    (run.workflow_dir / "leak.txt").symlink_to(secret)
    zip_path = write_run_crate(run, tmp_path / "crate.zip")
    with zipfile.ZipFile(zip_path) as zf:
        assert "workflow/leak.txt" not in zf.namelist()
