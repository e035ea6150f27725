"""WES runs in the domain: decoding a RunWorkflow request, the names and references it may use, the lifecycle."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gateway.domain.errors import Conflict, InvalidRequest
from gateway.domain.runs import (
    MAX_ATTACHMENT_NAME,
    Run,
    RunRequest,
    RunState,
    attachment_name,
    check_engine_parameters,
    file_references,
    is_relative_reference,
    parse_run_request,
    resolve_relative,
    split_fragment,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def form(**fields: str | None) -> dict[str, str | None]:
    base: dict[str, str | None] = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "main.cwl",
    }
    base.update(fields)
    return base


def refused(fields: dict[str, str | None]) -> str:
    with pytest.raises(InvalidRequest) as info:
        parse_run_request(fields)
    return info.value.msg


# ---------------------------------------------------------------- parse_run_request


def test_a_minimal_request_gets_the_defaults() -> None:
    request = parse_run_request(form())
    assert request == RunRequest(workflow_type="CWL", workflow_type_version="v1.2", workflow_url="main.cwl")
    assert request.workflow_engine == "cwltool"
    assert (request.workflow_params, request.tags, request.workflow_engine_parameters) == ({}, {}, {})


def test_a_full_request_is_decoded() -> None:
    request = parse_run_request(
        form(
            workflow_type=" cwl ",
            workflow_type_version="v1.0",
            workflow_url=" tools/main.cwl#main ",
            workflow_params=json.dumps({"reads": {"class": "File", "location": "r.fq"}, "n": 2}),
            tags=json.dumps({"project": "p1", "attempt": 2, "final": True}),
            workflow_engine="cwltool",
            workflow_engine_version=" 3.1 ",
            workflow_engine_parameters=json.dumps({"--debug": "TRUE", "--on-error": "continue"}),
        )
    )
    assert request.workflow_type == "CWL"
    assert request.workflow_type_version == "v1.0"
    assert request.workflow_url == "tools/main.cwl#main"
    assert request.workflow_params == {"reads": {"class": "File", "location": "r.fq"}, "n": 2}
    assert request.tags == {"project": "p1", "attempt": "2", "final": "true"}
    assert request.workflow_engine_version == "3.1"
    assert request.workflow_engine_parameters == {"--debug": "true", "--on-error": "continue"}


@pytest.mark.parametrize("version", ["v1.0", "v1.1", "v1.2"])
def test_every_supported_cwl_version_is_accepted(version: str) -> None:
    assert parse_run_request(form(workflow_type_version=version)).workflow_type_version == version


@pytest.mark.parametrize(
    "fields, field_name",
    [
        ({"workflow_type": None}, "workflow_type"),
        ({"workflow_type": "  "}, "workflow_type"),
        ({"workflow_type": "WDL"}, "workflow_type"),
        ({"workflow_type": "Nextflow"}, "workflow_type"),
        ({"workflow_type_version": None}, "workflow_type_version"),
        ({"workflow_type_version": "v2.0"}, "workflow_type_version"),
        ({"workflow_type_version": "1.2"}, "workflow_type_version"),
        ({"workflow_type_version": "draft-3"}, "workflow_type_version"),
        ({"workflow_url": None}, "workflow_url"),
        ({"workflow_url": " "}, "workflow_url"),
        ({"workflow_engine": "toil"}, "workflow_engine"),
        ({"workflow_engine": "cwltool; rm -rf /"}, "workflow_engine"),
    ],
)
def test_missing_or_unsupported_fields_are_refused_by_name(fields: dict[str, str | None], field_name: str) -> None:
    assert refused(form(**fields)).startswith(field_name + ":")


@pytest.mark.parametrize("field_name", ["workflow_params", "tags", "workflow_engine_parameters"])
@pytest.mark.parametrize("raw", ["{", "{'a': 1}", '{"a": 1,}', "not json", '{"a": 1} trailing'])
def test_malformed_json_names_the_field(field_name: str, raw: str) -> None:
    message = refused(form(**{field_name: raw}))
    assert message.startswith(field_name + ": not valid JSON")


@pytest.mark.parametrize("field_name", ["workflow_params", "tags", "workflow_engine_parameters"])
@pytest.mark.parametrize("raw, kind", [("[1, 2]", "list"), ('"text"', "str"), ("3", "int"), ("null", "NoneType")])
def test_json_that_is_not_an_object_is_refused(field_name: str, raw: str, kind: str) -> None:
    message = refused(form(**{field_name: raw}))
    assert message.startswith(field_name + ": must be a JSON object")
    assert kind in message


@pytest.mark.parametrize("field_name", ["workflow_params", "tags", "workflow_engine_parameters"])
def test_empty_json_fields_mean_nothing_given(field_name: str) -> None:
    request = parse_run_request(form(**{field_name: "  "}))
    assert request.to_dict()[field_name] == {}


@pytest.mark.parametrize("value", [{"nested": 1}, [1, 2]])
def test_tag_values_must_be_scalars(value: object) -> None:
    message = refused(form(tags=json.dumps({"k": value})))
    assert message.startswith("tags:") and "'k'" in message


@pytest.mark.parametrize("name", ["--outdir", "--user-space-docker-cmd", "--enable-ext", "parallel", "--PARALLEL"])
def test_engine_parameters_off_the_allow_list_are_refused(name: str) -> None:
    message = refused(form(workflow_engine_parameters=json.dumps({name: "true"})))
    assert message.startswith("workflow_engine_parameters:")
    assert repr(name) in message


@pytest.mark.parametrize(
    "given, expected",
    [
        ({"--parallel": None}, {"--parallel": "true"}),
        ({"--parallel": ""}, {"--parallel": "true"}),
        ({"--parallel": True}, {"--parallel": "true"}),
        ({"--strict": False}, {"--strict": "false"}),
        ({"--timestamps": "False"}, {"--timestamps": "false"}),
        ({"--on-error": "CONTINUE"}, {"--on-error": "continue"}),
        ({"--debug": None, "--on-error": "stop"}, {"--debug": "true", "--on-error": "stop"}),
    ],
)
def test_engine_flags_are_normalised(given: dict[str, object], expected: dict[str, str]) -> None:
    request = parse_run_request(form(workflow_engine_parameters=json.dumps(given)))
    assert request.workflow_engine_parameters == expected


@pytest.mark.parametrize(
    "given",
    [{"--parallel": "yes"}, {"--parallel": 1}, {"--on-error": "ignore"}, {"--on-error": None}, {"--strict": "on"}],
)
def test_engine_flags_with_bad_values_are_refused(given: dict[str, object]) -> None:
    message = refused(form(workflow_engine_parameters=json.dumps(given)))
    assert message.startswith("workflow_engine_parameters:")
    assert next(iter(given)) in message


def test_check_engine_parameters_directly() -> None:
    assert check_engine_parameters({}) == {}
    assert check_engine_parameters({"--parallel": "", "--strict": "TRUE"}) == {"--parallel": "true", "--strict": "true"}
    with pytest.raises(InvalidRequest):
        check_engine_parameters({"--cachedir": "/tmp"})


def test_a_request_round_trips_through_its_dict() -> None:
    request = parse_run_request(
        form(
            workflow_params=json.dumps({"x": [1, {"class": "File", "path": "a"}]}),
            tags=json.dumps({"project": "p1"}),
            workflow_engine="cwltool",
            workflow_engine_version="3.1",
            workflow_engine_parameters=json.dumps({"--parallel": "false"}),
        )
    )
    assert RunRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request
    assert "workflow_engine_version" not in RunRequest("CWL", "v1.2", "main.cwl").to_dict()


# ---------------------------------------------------------------- attachment names


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("main.cwl", "main.cwl"),
        ("tools/align.cwl", "tools/align.cwl"),
        ("tools\\align.cwl", "tools/align.cwl"),
        ("a" * MAX_ATTACHMENT_NAME, "a" * MAX_ATTACHMENT_NAME),
        ("..data", "..data"),
    ],
)
def test_clean_attachment_names_are_kept(raw: str, expected: str) -> None:
    assert attachment_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "../x",
        "tools/../../x",
        "..",
        "/etc/passwd",
        "a//b",
        "./a",
        "a/./b",
        "a/",
        "..\\x",
        "tools\\..\\..\\x",
        "\\\\server\\share\\x",
        "\\x",
        "C:\\x",
        "C:x",
        "c:/windows/x",
        "a\x00b",
        "a" * (MAX_ATTACHMENT_NAME + 1),
        "d/" + "a" * MAX_ATTACHMENT_NAME,
    ],
)
def test_unsafe_attachment_names_are_refused(raw: str | None) -> None:
    with pytest.raises(InvalidRequest) as info:
        attachment_name(raw)
    assert info.value.msg.startswith("workflow_attachment:")


# ---------------------------------------------------------------- references in the parameters


def test_file_references_finds_every_location_and_path_however_deep() -> None:
    params = {
        "reads": {"class": "File", "location": "r1.fq", "secondaryFiles": [{"class": "File", "path": "r1.fq.bai"}]},
        "many": [{"class": "File", "location": "a.txt"}, {"class": "File", "location": "b.txt", "path": "b2.txt"}],
        "dir": {
            "class": "Directory",
            "location": "data",
            "listing": [
                {"class": "File", "location": "data/x.txt"},
                {"class": "Directory", "path": "data/sub", "listing": [{"class": "File", "location": "data/sub/y"}]},
            ],
        },
        "not_a_file": {"location": "ignored.txt", "class": "Other"},
        "plain": "z.txt",
        "n": 3,
    }
    found = {(r.pointer, r.key, r.value) for r in file_references(params)}
    assert found == {
        ("/reads", "location", "r1.fq"),
        ("/reads/secondaryFiles/0", "path", "r1.fq.bai"),
        ("/many/0", "location", "a.txt"),
        ("/many/1", "location", "b.txt"),
        ("/many/1", "path", "b2.txt"),
        ("/dir", "location", "data"),
        ("/dir/listing/0", "location", "data/x.txt"),
        ("/dir/listing/1", "path", "data/sub"),
        ("/dir/listing/1/listing/0", "location", "data/sub/y"),
    }


def test_file_references_of_parameters_without_files() -> None:
    assert list(file_references({"n": 1, "s": "a.txt", "l": [1, "x"]})) == []
    assert list(file_references([])) == []


def test_a_location_that_is_not_a_string_is_refused_with_its_position() -> None:
    with pytest.raises(InvalidRequest) as info:
        list(file_references({"inputs": [{"class": "File", "location": {"evil": 1}}]}))
    assert "workflow_params/inputs/0/location" in info.value.msg


@pytest.mark.parametrize(
    "value, relative",
    [
        ("a.txt", True),
        ("data/a.txt", True),
        ("../a.txt", True),
        ("/etc/passwd", False),
        ("file:///etc/passwd", False),
        ("https://example.org/a", False),
        ("s3://bucket/a", False),
        ("mem://inputs/p1/a", False),
        ("C:/x", False),
    ],
)
def test_is_relative_reference(value: str, relative: bool) -> None:
    assert is_relative_reference(value) is relative


@pytest.mark.parametrize(
    "base, value, expected",
    [
        ("workflow", "a.txt", "workflow/a.txt"),
        ("workflow", "sub/a.txt", "workflow/sub/a.txt"),
        ("workflow", "sub/../a.txt", "workflow/a.txt"),
        ("workflow", ".", "workflow"),
        ("workflow/", "a.txt", "workflow/a.txt"),
        ("p1/runs/r1/workflow", "./d/e", "p1/runs/r1/workflow/d/e"),
    ],
)
def test_resolve_relative_joins_inside_the_base(base: str, value: str, expected: str) -> None:
    assert resolve_relative(base, value) == expected


@pytest.mark.parametrize(
    "base, value",
    [
        ("workflow", "../x"),
        ("workflow", "sub/../../x"),
        ("workflow", "/etc/passwd"),
        ("work", "../workflow/x"),  # a sibling whose name merely starts with the base
        ("p1/runs/r1/workflow", "../../r2/workflow/main.cwl"),
        ("", "../x"),
        ("", "a/../../x"),
        ("", "/etc/passwd"),
    ],
)
def test_resolve_relative_refuses_climbing_out(base: str, value: str) -> None:
    with pytest.raises(InvalidRequest):
        resolve_relative(base, value)


@pytest.mark.parametrize(
    "value, expected", [("a.txt", "a.txt"), ("d/e.txt", "d/e.txt"), ("d/../a", "a"), ("..data", "..data")]
)
def test_resolve_relative_to_the_empty_base_keeps_clean_relative_names(value: str, expected: str) -> None:
    # RunService resolves parameter references this way (base ""), so plain names must pass.
    assert resolve_relative("", value) == expected


def test_split_fragment() -> None:
    assert split_fragment("main.cwl#step") == ("main.cwl", "step")
    assert split_fragment("main.cwl") == ("main.cwl", "")


# ---------------------------------------------------------------- the lifecycle


def make_run(state: RunState = RunState.QUEUED) -> Run:
    return Run(
        id="r1", owner="alice", project="p1", request=RunRequest("CWL", "v1.2", "main.cwl"), state=state,
        created_at=T0,
    )


def test_moving_through_the_lifecycle_records_start_and_end_times() -> None:
    run = make_run()
    initializing = run.moved_to(RunState.INITIALIZING, at=T0 + timedelta(seconds=1))
    assert (initializing.start_time, initializing.end_time) == (None, None)
    running = initializing.moved_to(RunState.RUNNING, at=T0 + timedelta(seconds=2))
    assert (running.start_time, running.end_time) == (T0 + timedelta(seconds=2), None)
    paused = running.moved_to(RunState.PAUSED, at=T0 + timedelta(seconds=3))
    assert (paused.start_time, paused.end_time) == (T0 + timedelta(seconds=2), None)
    done = paused.moved_to(RunState.COMPLETE, at=T0 + timedelta(seconds=4), reason="released")
    assert (done.start_time, done.end_time) == (T0 + timedelta(seconds=2), T0 + timedelta(seconds=4))
    assert done.system_logs == ("released",)
    assert run.state is RunState.QUEUED and run.start_time is None  # runs are immutable


def test_a_cancelled_run_ends_when_it_is_canceled_not_when_asked() -> None:
    canceling = make_run(RunState.RUNNING).moved_to(RunState.CANCELING, at=T0)
    assert canceling.end_time is None
    canceled = canceling.moved_to(RunState.CANCELED, at=T0 + timedelta(minutes=1))
    assert canceled.end_time == T0 + timedelta(minutes=1)


def test_reasons_accumulate_and_an_empty_reason_adds_nothing() -> None:
    run = make_run(RunState.RUNNING).updated(system_logs=("first",))
    assert run.moved_to(RunState.PAUSED, at=T0).system_logs == ("first",)
    assert run.moved_to(RunState.SYSTEM_ERROR, at=T0, reason="second").system_logs == ("first", "second")


@pytest.mark.parametrize(
    "state, target",
    [
        (RunState.QUEUED, RunState.RUNNING),
        (RunState.QUEUED, RunState.COMPLETE),
        (RunState.INITIALIZING, RunState.PAUSED),
        (RunState.PAUSED, RunState.RUNNING),
        (RunState.PAUSED, RunState.EXECUTOR_ERROR),
        (RunState.CANCELING, RunState.COMPLETE),
        (RunState.CANCELING, RunState.RUNNING),
        (RunState.COMPLETE, RunState.CANCELING),
        (RunState.CANCELED, RunState.QUEUED),
        (RunState.SYSTEM_ERROR, RunState.RUNNING),
    ],
)
def test_illegal_moves_are_refused(state: RunState, target: RunState) -> None:
    with pytest.raises(Conflict):
        make_run(state).moved_to(target, at=T0)
