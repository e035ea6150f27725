"""TaskSpec parsing: the semantic checks a schema cannot express, and the TES JSON round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.domain.errors import InvalidRequest
from gateway.domain.task import FileType, Input, Output, TaskSpec, container_path, system_log


def body(**fields: Any) -> dict[str, Any]:
    """A minimal valid task body, with `fields` merged in."""
    return {"executors": [{"image": "alpine", "command": ["true"]}], **fields}


def executor(**fields: Any) -> dict[str, Any]:
    return {"image": "alpine", "command": ["true"], **fields}


def refused(task_body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        TaskSpec.from_dict(task_body)
    assert fragment in info.value.msg


# ---------------------------------------------------------------- container paths


@pytest.mark.parametrize(
    "value, normal",
    [
        ("/data/in.txt", "/data/in.txt"),
        ("/data//in.txt", "/data/in.txt"),
        ("/data/./in.txt", "/data/in.txt"),
        ("/data/", "/data"),
        ("/procfs/x", "/procfs/x"),  # only the reserved directory itself, not every name starting with it
        ("/devices", "/devices"),
        ("/tre/x", "/tre/x"),
    ],
)
def test_clean_absolute_paths_are_accepted_and_normalised(value: str, normal: str) -> None:
    assert container_path(value, "x") == normal


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("data/in.txt", "absolute"),
        ("", "absolute"),
        (None, "absolute"),
        (42, "absolute"),
        ("/data/../etc/passwd", "'..'"),
        ("/..", "'..'"),
        ("/data/..", "'..'"),
        ("/data/a\x00b", "NUL"),
        ("/", "root"),
        ("/.", "root"),
        ("/proc", "reserved"),
        ("/proc/self/environ", "reserved"),
        ("/sys/fs", "reserved"),
        ("/dev/shm", "reserved"),
        ("/.tre", "reserved"),
        ("/.tre/busybox", "reserved"),
        ("/./proc/x", "reserved"),
    ],
)
def test_unsafe_paths_are_refused(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        container_path(value, "inputs[0].path")
    assert info.value.msg.startswith("inputs[0].path:")
    assert fragment in info.value.msg


@pytest.mark.parametrize("value", ["//", "//proc/self", "//.tre/busybox", "//dev/shm"])
def test_double_leading_slash_does_not_bypass_the_reserved_and_root_checks(value: str) -> None:
    with pytest.raises(InvalidRequest):
        container_path(value, "volumes[0]")


@pytest.mark.parametrize(
    "field, where",
    [
        ("workdir", "executors[0].workdir"),
        ("stdin", "executors[0].stdin"),
        ("stdout", "executors[0].stdout"),
        ("stderr", "executors[0].stderr"),
    ],
)
def test_executor_paths_are_checked(field: str, where: str) -> None:
    refused(body(executors=[executor(**{field: "/proc/1/fd/1"})]), where)
    refused(body(executors=[executor(**{field: "relative/out"})]), where)
    spec = TaskSpec.from_dict(body(executors=[executor(**{field: "/scratch//log.txt"})]))
    assert getattr(spec.executors[0], field) == "/scratch/log.txt"


def test_the_failing_executor_is_named_by_its_index() -> None:
    refused(body(executors=[executor(), executor(workdir="/sys")]), "executors[1].workdir")


def test_volumes_are_checked_and_normalised() -> None:
    assert TaskSpec.from_dict(body(volumes=["/data/", "/scratch"])).volumes == ("/data", "/scratch")
    refused(body(volumes=["/scratch", "/dev"]), "volumes[1]")


def test_output_paths_are_checked() -> None:
    refused(body(outputs=[{"path": "/../etc/shadow", "url": "mem://released/p1/x"}]), "outputs[0].path")


# ---------------------------------------------------------------- executors


def test_a_task_needs_an_executor() -> None:
    refused({"executors": []}, "at least one executor")
    refused({}, "at least one executor")


@pytest.mark.parametrize("command", [[], None, ["echo", 1]])
def test_commands_must_be_non_empty_lists_of_strings(command: Any) -> None:
    refused(body(executors=[executor(command=command)]), "executors[0].command")


@pytest.mark.parametrize("image", ["", "   ", None])
def test_image_must_not_be_empty(image: Any) -> None:
    refused(body(executors=[executor(image=image)]), "executors[0].image")


def test_image_is_stripped() -> None:
    assert TaskSpec.from_dict(body(executors=[executor(image="  alpine:3.19 ")])).executors[0].image == "alpine:3.19"


@pytest.mark.parametrize("name", ["", "A=B", "X\x00Y"])
def test_invalid_env_names_are_refused(name: str) -> None:
    refused(body(executors=[executor(env={"OK": "1", name: "v"})]), "invalid variable name")


def test_env_values_may_contain_anything_printable() -> None:
    spec = TaskSpec.from_dict(body(executors=[executor(env={"QUERY": "a=b&c=d", "EMPTY": ""})]))
    assert spec.executors[0].env == {"QUERY": "a=b&c=d", "EMPTY": ""}


# ---------------------------------------------------------------- inputs


def test_input_needs_exactly_one_of_url_or_content() -> None:
    refused(body(inputs=[{"path": "/in/a"}]), "exactly one of 'url' or 'content'")
    refused(body(inputs=[{"path": "/in/a", "url": "", "content": None}]), "exactly one")
    refused(body(inputs=[{"path": "/in/a", "url": "mem://inputs/p1/a", "content": "x"}]), "exactly one")


def test_empty_content_is_still_content() -> None:
    (inp,) = TaskSpec.from_dict(body(inputs=[{"path": "/in/empty", "content": ""}])).inputs
    assert inp == Input(path="/in/empty", content="", type=FileType.FILE)


def test_content_cannot_make_a_directory() -> None:
    refused(body(inputs=[{"path": "/in/dir", "content": "x", "type": "DIRECTORY"}]), "only provide a FILE")
    directory = {"path": "/in/dir", "url": "mem://inputs/p1/d", "type": "DIRECTORY"}
    (inp,) = TaskSpec.from_dict(body(inputs=[directory])).inputs
    assert inp.type is FileType.DIRECTORY


def test_duplicate_input_paths_are_refused_even_when_spelled_differently() -> None:
    refused(
        body(inputs=[{"path": "/in/a.txt", "content": "1"}, {"path": "/in//./a.txt", "content": "2"}]),
        "inputs[1].path: /in/a.txt is already used by inputs[0]",
    )
    two = [{"path": "/in/a.txt", "content": "1"}, {"path": "/in/b.txt", "content": "2"}]
    spec = TaskSpec.from_dict(body(inputs=two))
    assert [i.path for i in spec.inputs] == ["/in/a.txt", "/in/b.txt"]


# ---------------------------------------------------------------- outputs


def test_output_needs_a_url() -> None:
    refused(body(outputs=[{"path": "/out/a"}]), "outputs[0].url")


@pytest.mark.parametrize("path", ["/out/*.csv", "/out/file?.txt", "/out/[ab].txt"])
def test_wildcard_outputs_need_a_path_prefix(path: str) -> None:
    refused(body(outputs=[{"path": path, "url": "mem://released/p1/"}]), "path_prefix: required")


@pytest.mark.parametrize("prefix", ["/o", "/outside", "/out/sub", "/other"])
def test_path_prefix_must_be_a_leading_directory(prefix: str) -> None:
    refused(
        body(outputs=[{"path": "/out/*.csv", "url": "mem://released/p1/", "path_prefix": prefix}]),
        "leading directory",
    )


@pytest.mark.parametrize("prefix", ["/out", "/out/"])
def test_wildcard_output_with_a_leading_directory_is_accepted(prefix: str) -> None:
    (out,) = TaskSpec.from_dict(
        body(outputs=[{"path": "/out/sub/*.csv", "url": "mem://released/p1/", "path_prefix": prefix}])
    ).outputs
    assert out.is_wildcard
    assert out.path_prefix == "/out"


def test_plain_outputs_are_not_wildcards() -> None:
    assert not Output(path="/out/a.csv", url="u").is_wildcard
    assert Output(path="/out/a?.csv", url="u").is_wildcard


# ---------------------------------------------------------------- resources and tags


@pytest.mark.parametrize("key", ["cpu_cores", "ram_gb", "disk_gb"])
@pytest.mark.parametrize("value", [0, -1, 0.0, -0.5])
def test_resources_must_be_positive(key: str, value: float) -> None:
    refused(body(resources={key: value}), f"resources.{key}: must be positive")


def test_resources_are_kept() -> None:
    spec = TaskSpec.from_dict(
        body(resources={"cpu_cores": 2, "ram_gb": 0.5, "zones": ["a"], "backend_parameters": {"k": "v"}})
    )
    assert spec.resources is not None
    assert (spec.resources.cpu_cores, spec.resources.ram_gb, spec.resources.disk_gb) == (2, 0.5, None)
    assert spec.resources.zones == ("a",)
    assert spec.resources.backend_parameters == {"k": "v"}


def test_tags_become_strings() -> None:
    assert TaskSpec.from_dict(body(tags={"run": 7, "ok": True})).tags == {"run": "7", "ok": "True"}


# ---------------------------------------------------------------- round trip


FULL_BODY: dict[str, Any] = {
    "name": "align",
    "description": "align reads",
    "inputs": [
        {"name": "ref", "description": "the reference", "url": "mem://inputs/p1/ref.fa", "path": "/in/ref.fa",
         "type": "FILE", "streamable": False},
        {"url": "mem://inputs/p1/reads/", "path": "/in/reads", "type": "DIRECTORY"},
        {"path": "/in/config.json", "type": "FILE", "content": '{"k": 1}'},
        {"path": "/in/empty.txt", "type": "FILE", "content": ""},
    ],
    "outputs": [
        {"name": "bam", "url": "mem://released/p1/out.bam", "path": "/out/out.bam", "type": "FILE"},
        {"url": "mem://released/p1/logs/", "path": "/out/logs/*.log", "path_prefix": "/out/logs", "type": "FILE"},
    ],
    "resources": {"cpu_cores": 4, "ram_gb": 7.5, "disk_gb": 20.0, "preemptible": True, "zones": ["z1", "z2"],
                  "backend_parameters": {"queue": "short"}, "backend_parameters_strict": False},
    "executors": [
        {"image": "alpine:3.19", "command": ["sh", "-c", "echo hi"], "workdir": "/scratch", "stdin": "/in/config.json",
         "stdout": "/out/stdout.txt", "stderr": "/out/stderr.txt", "env": {"A": "1"}, "ignore_error": True},
        {"image": "alpine", "command": ["true"]},
    ],
    "volumes": ["/scratch"],
    "tags": {"project": "p1", "run": "r1"},
}


@pytest.mark.parametrize(
    "task_body",
    [
        FULL_BODY,
        body(),
        body(resources={}),
        body(inputs=[{"path": "/in/a", "content": "x", "streamable": True}]),
    ],
    ids=["full", "minimal", "empty-resources", "streamable"],
)
def test_to_dict_round_trips(task_body: dict[str, Any]) -> None:
    spec = TaskSpec.from_dict(task_body)
    again = TaskSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


def test_to_dict_of_a_clean_body_is_that_body() -> None:
    assert TaskSpec.from_dict(FULL_BODY).to_dict() == FULL_BODY


def test_to_dict_omits_unset_fields() -> None:
    assert TaskSpec.from_dict(body()).to_dict() == {"executors": [{"image": "alpine", "command": ["true"]}]}


def test_to_dict_without_content_hides_only_content() -> None:
    out = TaskSpec.from_dict(FULL_BODY).to_dict(with_content=False)
    assert all("content" not in i for i in out["inputs"])
    assert [i["path"] for i in out["inputs"]] == [i["path"] for i in FULL_BODY["inputs"]]
    assert out["inputs"][0]["url"] == "mem://inputs/p1/ref.fa"


# ---------------------------------------------------------------- system log


def test_system_log_is_one_json_object_with_reason_and_detail() -> None:
    line = system_log("egress_rejected", "checks failed", failures=[{"rule_id": "size.file_cap"}])
    assert "\n" not in line
    assert json.loads(line) == {
        "reason": "egress_rejected",
        "detail": "checks failed",
        "failures": [{"rule_id": "size.file_cap"}],
    }


def test_system_log_escapes_detail_text() -> None:
    line = system_log("x", 'quote " and newline\n')
    assert json.loads(line)["detail"] == 'quote " and newline\n'
