"""Every WES 1.1 operation through the in-process app, with real multipart requests.

Each successful body is checked against the upstream WES 1.1.0 schema (`validate_wes_upstream`). No
dispatcher runs here, so submitted runs stay QUEUED; tests that need a run in another state move it with
the run repository, as the run driver would.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.domain.runs import RunState
from gateway.domain.states import TaskState
from gateway.domain.task import ExecutorLog, system_log
from gateway.services.ports import Area
from gateway.services.runs import LOG_FILES, run_key
from tests.integration.api.conftest import BASE as TES
from tests.integration.api.conftest import Gateway, bearer
from tests.wes_schema import validate_wes_upstream

WES = "/ga4gh/wes/v1"
REPO = Path(__file__).resolve().parents[3]
WORKFLOWS = REPO / "tests" / "e2e" / "workflows"

Files = list[tuple[str, bytes]]
Who = str | dict[str, str]  # 'alice', 'bob', 'admin', or request headers


# --------------------------------------------------------------------------- request helpers


def workflow_file(name: str) -> bytes:
    return (WORKFLOWS / name).read_bytes()


def greet_all() -> tuple[Files, dict[str, str]]:
    """The two-step example: attachments in a sub-folder, and a File input that names an attachment."""
    files = [(n, workflow_file(n)) for n in ("greet-all.cwl", "tools/greet.cwl", "tools/combine.cwl", "header.txt")]
    form = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "greet-all.cwl",
        "workflow_params": (WORKFLOWS / "greet-all.json").read_text(),
    }
    return files, form


def echo_form(**fields: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "echo.cwl",
        "workflow_params": json.dumps({"message": "hi"}),
    }
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


ECHO: Files = [("echo.cwl", workflow_file("echo.cwl"))]


def post_run(gw: Gateway, form: dict[str, str], files: Files, headers: dict[str, str] | None) -> Any:
    """RunWorkflow as multipart/form-data: every file is a `workflow_attachment` part with its file name."""
    parts = [("workflow_attachment", (name, data, "application/octet-stream")) for name, data in files]
    return gw.client.post(f"{WES}/runs", data=form, files=parts, headers=headers or {})


def submit(gw: Gateway, who: str = "alice", form: dict[str, str] | None = None, files: Files | None = None) -> str:
    resp = post_run(gw, form or echo_form(), ECHO if files is None else files, gw.headers(who))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    validate_wes_upstream("RunId", body)
    return str(body["run_id"])


def get_ok(gw: Gateway, path: str, who: Who = "alice", **params: Any) -> Any:
    headers = gw.headers(who) if isinstance(who, str) else who
    resp = gw.client.get(f"{WES}{path}", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp


def run_log(gw: Gateway, run_id: str, who: Who = "alice") -> dict[str, Any]:
    body = get_ok(gw, f"/runs/{run_id}", who).json()
    validate_wes_upstream("RunLog", body)
    return body  # type: ignore[no-any-return]


def list_page(gw: Gateway, who: Who = "alice", **params: Any) -> dict[str, Any]:
    body = get_ok(gw, "/runs", who, **params).json()
    validate_wes_upstream("RunListResponse", body)
    return body  # type: ignore[no-any-return]


def all_run_ids(gw: Gateway, who: Who = "admin") -> list[str]:
    ids: list[str] = []
    params: dict[str, Any] = {"page_size": 2047}
    while True:
        body = list_page(gw, who, **params)
        ids += [r["run_id"] for r in body["runs"]]
        if not body.get("next_page_token"):
            return ids
        params["page_token"] = body["next_page_token"]


def service_info(gw: Gateway, headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = gw.client.get(f"{WES}/service-info", headers=headers or {})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    validate_wes_upstream("ServiceInfo", body)
    return body  # type: ignore[no-any-return]


def assert_error(resp: Any, status: int | None = None, *words: str) -> dict[str, Any]:
    """A refused request: a 4xx (or exactly `status`), JSON `{msg, status_code}`, `msg` naming each word."""
    if status is None:
        assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    else:
        assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert isinstance(body.get("msg"), str) and body["msg"].strip(), body
    assert body.get("status_code") == resp.status_code, body
    for word in words:
        assert word in body["msg"], (word, body["msg"])
    return body


def stored(gw: Gateway) -> set[str]:
    """Every file and folder of the object store (all areas), relative to its root."""
    root: Path = gw.components.store.root  # type: ignore[attr-defined]
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def work_files(gw: Gateway, run_id: str, project: str = "p1") -> set[str]:
    root: Path = gw.components.store.root  # type: ignore[attr-defined]
    base = root / "work" / project / "runs" / run_id
    return {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()}


def wes_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "openapi" / "wes.yaml").read_text())
    return document


def documented_statuses(path: str, method: str) -> set[int]:
    return {int(code) for code in wes_document()["paths"][path][method]["responses"]}


def move_run(gw: Gateway, run_id: str, *states: RunState, **changes: Any) -> None:
    """Drive a stored run through `states`, as the run driver would."""
    repo = gw.components.runs.repo
    run = repo.get(run_id)
    assert run is not None
    if changes:
        run = repo.save(run.updated(**changes))
    for state in states:
        run = repo.save(run.moved_to(state, at=datetime.now(UTC)))


# --------------------------------------------------------------------------- service-info


REQUIRED_SERVICE_INFO = {
    "id", "name", "type", "organization", "version", "workflow_type_versions", "supported_wes_versions",
    "supported_filesystem_protocols", "workflow_engine_versions", "default_workflow_engine_parameters",
    "system_state_counts", "auth_instructions_url", "tags",
}


def test_service_info_without_credentials(gw: Gateway) -> None:
    body = service_info(gw)
    assert REQUIRED_SERVICE_INFO <= set(body), REQUIRED_SERVICE_INFO - set(body)
    assert body["type"] == {"group": "org.ga4gh", "artifact": "wes", "version": "1.1.0"}
    assert body["supported_wes_versions"] == ["1.1.0"]
    assert body["workflow_type_versions"]["CWL"]["workflow_type_version"] == ["v1.0", "v1.1", "v1.2"]
    # WES 1.1: engine versions are objects, not bare strings.
    engines = body["workflow_engine_versions"]
    assert set(engines) == {"cwltool"}
    assert isinstance(engines["cwltool"], dict)
    versions = engines["cwltool"]["workflow_engine_version"]
    assert isinstance(versions, list) and versions and all(isinstance(v, str) and v for v in versions)
    assert "file" in body["supported_filesystem_protocols"]
    params = {p["name"]: p for p in body["default_workflow_engine_parameters"]}
    assert set(params) == {"--debug", "--on-error", "--parallel", "--strict", "--timestamps"}
    assert params["--parallel"]["default_value"] == "true"
    assert params["--on-error"] == {"name": "--on-error", "type": "string", "default_value": "stop"}
    for p in params.values():
        assert all(isinstance(p[k], str) for k in ("name", "type", "default_value")), p
    counts = body["system_state_counts"]
    assert set(counts) == {s.value for s in RunState}
    assert all(v == 0 for v in counts.values()), counts
    assert body["auth_instructions_url"].startswith("http")


def test_service_info_with_credentials(gw: Gateway) -> None:
    # `security: []` in wes.yaml: credentials are neither needed nor checked.
    assert service_info(gw, gw.headers("alice"))["id"] == service_info(gw)["id"]
    service_info(gw, gw.headers("admin"))
    service_info(gw, bearer(gw.tokens.expired))


def test_service_info_counts_follow_the_runs(gw: Gateway) -> None:
    before = service_info(gw)["system_state_counts"]
    first = submit(gw)
    submit(gw, "bob")
    after = service_info(gw)["system_state_counts"]
    assert after["QUEUED"] == before["QUEUED"] + 2
    resp = gw.client.post(f"{WES}/runs/{first}/cancel", headers=gw.headers("alice"))
    assert resp.status_code == 200, resp.text
    counts = service_info(gw)["system_state_counts"]
    assert counts["QUEUED"] == before["QUEUED"] + 1
    assert counts["CANCELING"] == before["CANCELING"] + 1


# --------------------------------------------------------------------------- RunWorkflow, GetRunLog, GetRunStatus


def test_run_workflow_with_sub_folders(gw: Gateway) -> None:
    files, form = greet_all()
    run_id = submit(gw, form=form, files=files)

    assert work_files(gw, run_id) == {
        "workflow/greet-all.cwl", "workflow/tools/greet.cwl", "workflow/tools/combine.cwl", "workflow/header.txt",
        "engine/params.json",
    }
    root: Path = gw.components.store.root  # type: ignore[attr-defined]
    base = root / "work" / "p1" / "runs" / run_id
    for name, data in files:
        assert (base / "workflow" / name).read_bytes() == data
    # The engine's parameters name the attachment by its URL in the run's own folder.
    params = json.loads((base / "engine" / "params.json").read_text())
    assert params["names"] == ["ada", "grace", "alan"]
    assert params["header"]["location"] == gw.components.store.url_for(
        Area.WORK, f"p1/runs/{run_id}/workflow/header.txt")

    log = run_log(gw, run_id)
    assert log["run_id"] == run_id
    assert log["state"] == "QUEUED"
    request = log["request"]
    assert isinstance(request["workflow_params"], dict)
    assert request["workflow_params"] == json.loads(form["workflow_params"])
    assert request["workflow_type"] == "CWL"
    assert request["workflow_type_version"] == "v1.2"
    assert request["workflow_url"] == "greet-all.cwl"
    assert request["workflow_engine"] == "cwltool"  # not sent: the language's default engine
    assert request["tags"] == {"project": "p1"}
    assert request["workflow_engine_parameters"] == {}
    assert log["outputs"] == {}
    for stream in ("stdout", "stderr"):
        url = log["run_log"][stream]
        assert url.startswith("http://") and url.endswith(f"{WES}/runs/{run_id}/logs/{stream}"), url
    assert log["task_logs_url"].startswith("http://")
    assert log["task_logs_url"].endswith(f"{WES}/runs/{run_id}/tasks")

    status = get_ok(gw, f"/runs/{run_id}/status").json()
    validate_wes_upstream("RunStatus", status)
    assert status == {"run_id": run_id, "state": "QUEUED"}


def test_request_is_echoed_with_everything_sent(gw: Gateway) -> None:
    version = service_info(gw)["workflow_engine_versions"]["cwltool"]["workflow_engine_version"][0]
    form = echo_form(
        workflow_type_version="v1.0",
        tags=json.dumps({"study": "s1", "project": "p1"}),
        workflow_engine="cwltool",
        workflow_engine_version=version,
        workflow_engine_parameters=json.dumps({"--parallel": "false", "--on-error": "continue"}),
    )
    run_id = submit(gw, form=form)
    request = run_log(gw, run_id)["request"]
    assert request["tags"] == {"study": "s1", "project": "p1"}
    assert request["workflow_type_version"] == "v1.0"
    assert request["workflow_engine"] == "cwltool"
    assert request["workflow_engine_version"] == version
    assert request["workflow_engine_parameters"] == {"--parallel": "false", "--on-error": "continue"}
    assert request["workflow_params"] == {"message": "hi"}


def test_workflow_params_default_to_an_empty_object(gw: Gateway) -> None:
    run_id = submit(gw, form=echo_form(workflow_params=None))
    assert run_log(gw, run_id)["request"]["workflow_params"] == {}


def test_workflow_url_with_a_fragment(gw: Gateway) -> None:
    run_id = submit(gw, form=echo_form(workflow_url="echo.cwl#main"))
    assert run_log(gw, run_id)["request"]["workflow_url"] == "echo.cwl#main"
    assert work_files(gw, run_id) == {"workflow/echo.cwl", "engine/params.json"}


def test_workflow_url_with_a_leading_dot_slash(gw: Gateway) -> None:
    run_id = submit(gw, form=echo_form(workflow_url="./echo.cwl"))
    assert work_files(gw, run_id) == {"workflow/echo.cwl", "engine/params.json"}


def test_input_in_the_projects_inputs_area(gw: Gateway) -> None:
    url = gw.inputs("p1", "cohort/data.csv")
    run_id = submit(gw, form=echo_form(workflow_params=json.dumps({"f": {"class": "File", "location": url}})))
    assert run_log(gw, run_id)["request"]["workflow_params"] == {"f": {"class": "File", "location": url}}


def test_log_urls_use_the_public_url(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(public_url="https://tre.example.org")
    run_id = submit(gw)
    log = run_log(gw, run_id)
    assert log["run_log"]["stdout"] == f"https://tre.example.org{WES}/runs/{run_id}/logs/stdout"
    assert log["task_logs_url"] == f"https://tre.example.org{WES}/runs/{run_id}/tasks"


def test_unknown_run_is_404(gw: Gateway) -> None:
    for path in ("/runs/nope", "/runs/nope/status", "/runs/nope/tasks", "/runs/nope/logs/stdout",
                 "/runs/nope/ro-crate", "/runs/nope/tasks/t1", "/runs/nope/tasks/t1/logs/stderr"):
        assert_error(gw.client.get(f"{WES}{path}", headers=gw.headers("alice")), 404)
    assert_error(gw.client.post(f"{WES}/runs/nope/cancel", headers=gw.headers("alice")), 404)


# --------------------------------------------------------------------------- ListRuns


def test_list_runs_newest_first_and_keyset_paging(gw: Gateway) -> None:
    submitted = [submit(gw) for _ in range(5)]
    assert [r["run_id"] for r in list_page(gw)["runs"]] == submitted[::-1]
    first = list_page(gw)["runs"][0]
    assert first["state"] == "QUEUED" and first["tags"] == {"project": "p1"}
    assert "start_time" in first

    seen: list[str] = []
    body = list_page(gw, page_size=1)
    while True:
        assert len(body["runs"]) <= 1
        seen += [r["run_id"] for r in body["runs"]]
        if len(seen) == 2:
            submit(gw)  # a run submitted while paging never shows up in later pages
        token = body.get("next_page_token")
        if not token:
            break
        body = list_page(gw, page_size=1, page_token=token)
    assert seen == submitted[::-1]


def test_list_runs_page_size_is_capped(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_page_size=2, max_page_size=3)
    for _ in range(5):
        submit(gw)
    assert len(list_page(gw)["runs"]) == 2
    body = list_page(gw, page_size=1000)
    assert len(body["runs"]) == 3 and body["next_page_token"]
    rest = list_page(gw, page_size=1000, page_token=body["next_page_token"])
    assert len(rest["runs"]) == 2 and not rest.get("next_page_token")


def test_list_runs_empty(gw: Gateway) -> None:
    body = list_page(gw)
    assert body["runs"] == [] and not body.get("next_page_token")


@pytest.mark.parametrize("token", ["garbage", "!!!", "0", "-1", "x" * 200])
def test_list_runs_bad_page_token(gw: Gateway, token: str) -> None:
    submit(gw)
    assert_error(gw.client.get(f"{WES}/runs", params={"page_token": token}, headers=gw.headers("alice")), 400)


@pytest.mark.parametrize("size", ["0", "-1", "abc"])
def test_list_runs_bad_page_size(gw: Gateway, size: str) -> None:
    assert_error(gw.client.get(f"{WES}/runs", params={"page_size": size}, headers=gw.headers("alice")), 400,
                 "page_size")


# --------------------------------------------------------------------------- refused submissions


def p2_url(gw: Gateway) -> str:
    return gw.inputs("p2", "data.csv")


def _file(location: str, key: str = "location") -> str:
    return json.dumps({"f": {"class": "File", key: location}})


# (id, form fields, attachments or None for echo.cwl, status, words the message must contain)
REFUSED: list[tuple[str, dict[str, Any], Files | None, int, tuple[str, ...]]] = [
    ("dotdot", {"workflow_url": "../x.cwl"}, [("../x.cwl", b"x")], 400, ("workflow_attachment",)),
    ("absolute", {"workflow_url": "/etc/passwd"}, [("/etc/passwd", b"x")], 400, ("workflow_attachment",)),
    ("inner-dotdot", {"workflow_url": "a/../../b"}, [("a/../../b", b"x")], 400, ("workflow_attachment",)),
    ("backslash-dotdot", {"workflow_url": "..\\x"}, [("..\\x", b"x")], 400, ("workflow_attachment",)),
    ("climbs-out-of-workflow", {"workflow_url": "echo.cwl"}, [*ECHO, ("workflow/../..", b"x")], 400,
     ("workflow_attachment",)),
    ("backslash-climb", {}, [*ECHO, ("tools\\..\\..\\x.cwl", b"x")], 400, ("workflow_attachment",)),
    ("drive-letter", {}, [*ECHO, ("C:\\x.cwl", b"x")], 400, ("workflow_attachment",)),
    ("dot-segment", {}, [*ECHO, ("./y.cwl", b"x")], 400, ("workflow_attachment",)),
    ("empty-segment", {}, [*ECHO, ("a//y.cwl", b"x")], 400, ("workflow_attachment",)),
    ("duplicate", {}, [*ECHO, *ECHO], 400, ("workflow_attachment", "echo.cwl")),
    ("file-and-folder", {}, [*ECHO, ("tools", b"x"), ("tools/greet.cwl", b"x")], 400, ("workflow_attachment",)),
    ("long-name", {}, [*ECHO, ("a" * 300, b"x")], 400, ("workflow_attachment",)),
    ("params-malformed", {"workflow_params": '{"message": '}, None, 400, ("workflow_params",)),
    ("params-array", {"workflow_params": "[1, 2]"}, None, 400, ("workflow_params",)),
    ("params-string", {"workflow_params": '"hi"'}, None, 400, ("workflow_params",)),
    ("params-null", {"workflow_params": "null"}, None, 400, ("workflow_params",)),
    ("tags-malformed", {"tags": "{project: p1}"}, None, 400, ("tags",)),
    ("tags-array", {"tags": '["p1"]'}, None, 400, ("tags",)),
    ("tags-nested", {"tags": '{"a": {"b": "c"}}'}, None, 400, ("tags",)),
    ("tags-reserved-run", {"tags": '{"wes_run": "x"}'}, None, 400, ("tags", "wes_run")),
    ("tags-other-project", {"tags": '{"project": "p2"}'}, None, 400, ("p2",)),
    ("engine-params-malformed", {"workflow_engine_parameters": "{"}, None, 400, ("workflow_engine_parameters",)),
    ("engine-params-array", {"workflow_engine_parameters": '["--debug"]'}, None, 400,
     ("workflow_engine_parameters",)),
    ("engine-param-unknown", {"workflow_engine_parameters": '{"--outdir": "/tmp"}'}, None, 400,
     ("workflow_engine_parameters", "--outdir")),
    ("engine-param-sandbox", {"workflow_engine_parameters": '{"--no-container": "true"}'}, None, 400,
     ("workflow_engine_parameters",)),
    ("engine-param-bad-value", {"workflow_engine_parameters": '{"--parallel": "maybe"}'}, None, 400,
     ("workflow_engine_parameters", "--parallel")),
    ("engine-toil", {"workflow_engine": "toil"}, None, 400, ("workflow_engine", "toil")),
    ("type-wdl", {"workflow_type": "WDL"}, None, 400, ("workflow_type", "WDL")),
    ("type-version-v9", {"workflow_type_version": "v9"}, None, 400, ("workflow_type_version", "v9")),
    ("missing-workflow-url", {"workflow_url": None}, None, 400, ("workflow_url",)),
    ("missing-workflow-type", {"workflow_type": None}, None, 400, ("workflow_type",)),
    ("missing-type-version", {"workflow_type_version": None}, None, 400, ("workflow_type_version",)),
    ("url-not-attached", {"workflow_url": "main.cwl"}, None, 400, ("workflow_url", "main.cwl")),
    ("url-in-missing-folder", {"workflow_url": "tools/echo.cwl"}, None, 400, ("workflow_url",)),
    ("url-climbs", {"workflow_url": "../echo.cwl"}, None, 400, ("workflow_url",)),
    ("url-no-attachments", {"workflow_url": "echo.cwl"}, [("", b"")], 400, ()),
    ("url-http", {"workflow_url": "http://example.org/echo.cwl"}, None, 400, ("workflow_url",)),
    ("url-https", {"workflow_url": "https://raw.githubusercontent.com/x/y/main/echo.cwl"}, None, 400,
     ("workflow_url",)),
    ("url-file", {"workflow_url": "file:///etc/passwd"}, None, 400, ("workflow_url",)),
    ("params-file-etc-passwd", {"workflow_params": _file("file:///etc/passwd")}, None, 400, ("workflow_params",)),
    ("params-absolute-path", {"workflow_params": _file("/etc/passwd", "path")}, None, 400, ("workflow_params",)),
    ("params-relative-climb", {"workflow_params": _file("../../../etc/passwd")}, None, 400, ("workflow_params",)),
    ("params-not-attached", {"workflow_params": _file("missing.txt")}, None, 400, ("workflow_params",)),
    ("params-http", {"workflow_params": _file("http://example.org/data.csv")}, None, 400, ("workflow_params",)),
    ("params-s3", {"workflow_params": _file("s3://bucket/p1/data.csv")}, None, 400, ("workflow_params",)),
    ("params-not-a-string", {"workflow_params": json.dumps({"f": {"class": "File", "location": 5}})}, None, 400,
     ("workflow_params",)),
    ("params-nested-directory", {"workflow_params": json.dumps(
        {"d": [{"class": "Directory", "listing": [{"class": "File", "location": "file:///etc/shadow"}]}]})},
     None, 400, ("workflow_params",)),
]


@pytest.mark.parametrize(("fields", "files", "status", "words"),
                         [pytest.param(*case[1:], id=case[0]) for case in REFUSED])
def test_refused_submission_writes_nothing(
    module_gw: Gateway, fields: dict[str, Any], files: Files | None, status: int, words: tuple[str, ...]
) -> None:
    gw = module_gw
    files_before, runs_before = stored(gw), all_run_ids(gw)
    counts_before = service_info(gw)["system_state_counts"]
    resp = post_run(gw, echo_form(**fields), ECHO if files is None else files, gw.headers("alice"))
    assert_error(resp, status, *words)
    assert stored(gw) == files_before
    assert all_run_ids(gw) == runs_before
    assert service_info(gw)["system_state_counts"] == counts_before


@pytest.mark.parametrize("where", ["p2-inputs", "p2-released", "p1-quarantine", "p1-other-run", "p2-run"])
def test_params_cannot_name_other_projects_or_areas(module_gw: Gateway, where: str) -> None:
    gw = module_gw
    store = gw.components.store
    url = {
        "p2-inputs": gw.inputs("p2", "data.csv"),
        "p2-released": gw.released("p2", "out/r.txt"),
        "p1-quarantine": store.url_for(Area.QUARANTINE, "p1/t1/r.txt"),
        "p1-other-run": store.url_for(Area.WORK, "p1/runs/other/workflow/secret.txt"),
        "p2-run": store.url_for(Area.WORK, "p2/runs/other/outputs/secret.txt"),
    }[where]
    files_before, runs_before = stored(gw), all_run_ids(gw)
    resp = post_run(gw, echo_form(workflow_params=_file(url)), ECHO, gw.headers("alice"))
    assert_error(resp, 400, "workflow_params")
    assert stored(gw) == files_before and all_run_ids(gw) == runs_before


def test_a_symlink_in_the_work_area_leads_nowhere(gw: Gateway, tmp_path: Path) -> None:
    """A symlink planted on the way to the run folder must not carry attachments out of the store."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root: Path = gw.components.store.root  # type: ignore[attr-defined]
    (root / "work" / "p1").mkdir(parents=True, exist_ok=True)
    (root / "work" / "p1" / "runs").symlink_to(outside, target_is_directory=True)
    resp = post_run(gw, echo_form(), ECHO, gw.headers("alice"))
    assert list(outside.rglob("*")) == []
    assert all_run_ids(gw) == []
    # Refused with one of RunWorkflow's documented error responses, not a 5xx or an unrelated status.
    assert_error(resp)
    assert resp.status_code in documented_statuses("/runs", "post") - {200}, resp.text


def test_absolute_workflow_url_off_the_allow_list(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(wes_workflow_url_prefixes=["https://workflows.tre.example/"])
    assert service_info(gw)["tags"]["workflow_url_prefixes"] == "https://workflows.tre.example/"
    before = stored(gw)
    for url in ("http://workflows.tre.example/echo.cwl",  # another scheme
                "https://workflows.tre.example.evil.org/echo.cwl",  # the prefix is not a host check by accident
                "https://evil.org/https://workflows.tre.example/echo.cwl"):
        assert_error(post_run(gw, echo_form(workflow_url=url), ECHO, gw.headers("alice")), 400, "workflow_url")
    assert stored(gw) == before and all_run_ids(gw) == []


def test_refusals_of_run_workflow_are_documented(gateway_factory: Callable[..., Gateway]) -> None:
    """Each status RunWorkflow answers must be one wes.yaml documents for it (clients generated from the
    document know no other)."""
    gw = gateway_factory(max_request_bytes=8192)
    documented = documented_statuses("/runs", "post")
    headers = gw.headers("alice")
    answers = {
        "json": gw.client.post(f"{WES}/runs", json=echo_form(), headers=headers),
        "urlencoded": gw.client.post(f"{WES}/runs", data=echo_form(), headers=headers),
        "oversize": post_run(gw, echo_form(), [*ECHO, ("big.bin", b"x" * 20_000)], headers),
    }
    for resp in answers.values():
        assert_error(resp)
    undocumented = {what: r.status_code for what, r in answers.items() if r.status_code not in documented}
    assert not undocumented, f"{undocumented}; wes.yaml documents {sorted(documented)}"


def test_oversize_upload_is_413(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(max_request_bytes=8192)
    before = stored(gw)
    resp = post_run(gw, echo_form(), [*ECHO, ("big.bin", b"x" * 20_000)], gw.headers("alice"))
    body = assert_error(resp, 413)
    assert "8192" in body["msg"]
    assert stored(gw) == before and all_run_ids(gw) == []
    submit(gw)  # a request under the limit still goes through


def raw_multipart(form: dict[str, str], files: list[tuple[bytes, bytes]]) -> bytes:
    """A multipart body written by hand, so file names reach the gateway byte for byte (clients escape them)."""
    parts = [b'--b\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k.encode(), v.encode())
             for k, v in form.items()]
    parts += [b'--b\r\nContent-Disposition: form-data; name="workflow_attachment"; filename="%s"\r\n\r\n%s\r\n'
              % (name, data) for name, data in files]
    return b"".join(parts) + b"--b--\r\n"


@pytest.mark.parametrize("name", [b"a\tb.txt", b"a\x1bb.txt", b"a\x7fb.txt", b"tools/\x01.cwl"],
                         ids=["tab", "escape", "delete", "start-of-heading"])
def test_control_characters_in_attachment_names(module_gw: Gateway, name: bytes) -> None:
    """wes.yaml: file names may contain sub-folders but never '..' segments, absolute paths or control characters."""
    gw = module_gw
    before, runs_before = stored(gw), all_run_ids(gw)
    body = raw_multipart(echo_form(), [(b"echo.cwl", ECHO[0][1]), (name, b"x")])
    headers = {**gw.headers("alice"), "content-type": "multipart/form-data; boundary=b"}
    assert_error(gw.client.post(f"{WES}/runs", content=body, headers=headers), 400, "workflow_attachment")
    assert stored(gw) == before and all_run_ids(gw) == runs_before


def test_raw_multipart_is_accepted(gw: Gateway) -> None:
    """The hand-written body of the test above is a valid request once the names are clean."""
    body = raw_multipart(echo_form(), [(b"echo.cwl", ECHO[0][1]), ("caf\u00e9/r\u00e9sum\u00e9.txt".encode(), b"x")])
    headers = {**gw.headers("alice"), "content-type": "multipart/form-data; boundary=b"}
    resp = gw.client.post(f"{WES}/runs", content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    validate_wes_upstream("RunId", resp.json())
    assert work_files(gw, resp.json()["run_id"]) == {
        "workflow/echo.cwl", "workflow/caf\u00e9/r\u00e9sum\u00e9.txt", "engine/params.json"}


MALFORMED_MULTIPART = {
    "control-character-in-a-part-header": b'--b\r\nContent-Disposition: form-data; name="a\rb"\r\n\r\nx\r\n--b--\r\n',
    "not-multipart-at-all": b"garbage without a boundary",
    "bad-part-header": b"--b\r\nBad header line\r\n\r\nCWL\r\n--b--\r\n",
    "json-instead-of-parts": b"--b\r\n[[], true, 2.5]--b--\r\n",
}


@pytest.mark.parametrize("body", list(MALFORMED_MULTIPART.values()), ids=list(MALFORMED_MULTIPART))
def test_malformed_multipart_is_400(module_gw: Gateway, body: bytes) -> None:
    gw = module_gw
    before, runs_before = stored(gw), all_run_ids(gw)
    headers = {**gw.headers("alice"), "content-type": "multipart/form-data; boundary=b"}
    assert_error(gw.client.post(f"{WES}/runs", content=body, headers=headers), 400)
    assert stored(gw) == before and all_run_ids(gw) == runs_before


def test_multipart_without_a_boundary_is_400(module_gw: Gateway) -> None:
    gw = module_gw
    before = stored(gw)
    body = b'--b\r\nContent-Disposition: form-data; name="workflow_type"\r\n\r\nCWL\r\n--b--\r\n'
    headers = {**gw.headers("alice"), "content-type": "multipart/form-data"}
    assert_error(gw.client.post(f"{WES}/runs", content=body, headers=headers), 400)
    assert stored(gw) == before


def max_attachments() -> int:
    """workflow_attachment's maxItems in wes.yaml: what the gateway promises to accept."""
    document = wes_document()
    return int(document["components"]["schemas"]["RunRequestForm"]["properties"]["workflow_attachment"]["maxItems"])


def test_the_documented_number_of_attachments_is_accepted(gw: Gateway) -> None:
    count = max_attachments()
    files = [*ECHO, *((f"data/{i}.txt", b"x") for i in range(count - 1))]
    run_id = submit(gw, files=files)
    assert len(work_files(gw, run_id)) == count + 1  # and engine/params.json


def test_more_attachments_than_documented_is_400(gw: Gateway) -> None:
    count = max_attachments() + 1
    files = [*ECHO, *((f"data/{i}.txt", b"x") for i in range(count - 1))]
    before = stored(gw)
    assert_error(post_run(gw, echo_form(), files, gw.headers("alice")), 400)
    assert stored(gw) == before and all_run_ids(gw) == []


def test_submission_needs_the_researcher_role(gw: Gateway) -> None:
    before = stored(gw)
    checker = gw.tokens.mint("olga", ["p1"], ["output_checker"])
    assert_error(post_run(gw, echo_form(), ECHO, bearer(checker)), 403, "researcher")
    # An admin is not a member of any project.
    assert_error(post_run(gw, echo_form(), ECHO, gw.headers("admin")), 400, "project")
    assert stored(gw) == before and all_run_ids(gw) == []


def test_member_of_several_projects_names_one(gw: Gateway) -> None:
    both = bearer(gw.tokens.mint("carol", ["p1", "p2"], ["researcher"]))
    assert_error(post_run(gw, echo_form(), ECHO, both), 400, "project")
    resp = post_run(gw, echo_form(tags=json.dumps({"project": "p2"})), ECHO, both)
    assert resp.status_code == 200, resp.text
    run_id = resp.json()["run_id"]
    assert work_files(gw, run_id, "p2") == {"workflow/echo.cwl", "engine/params.json"}
    assert run_log(gw, run_id, "bob")["request"]["tags"]["project"] == "p2"


# What wes.yaml promises beyond the request's own fields (see RunWorkflow's description).


def test_engine_version_must_be_one_listed(gw: Gateway) -> None:
    before = stored(gw)
    resp = post_run(gw, echo_form(workflow_engine="cwltool", workflow_engine_version="0.0.0-bogus"), ECHO,
                    gw.headers("alice"))
    assert_error(resp, 400, "workflow_engine_version")
    assert stored(gw) == before and all_run_ids(gw) == []


def test_engine_version_needs_an_engine(gw: Gateway) -> None:
    version = service_info(gw)["workflow_engine_versions"]["cwltool"]["workflow_engine_version"][0]
    before = stored(gw)
    resp = post_run(gw, echo_form(workflow_engine_version=version), ECHO, gw.headers("alice"))
    assert_error(resp, 400, "workflow_engine")
    assert stored(gw) == before and all_run_ids(gw) == []


def test_step_image_is_checked_before_anything_is_stored(gw: Gateway) -> None:
    tool = workflow_file("echo.cwl").decode().replace(
        "baseCommand: echo",
        "baseCommand: echo\nrequirements:\n  DockerRequirement: {dockerPull: 'evil.example.org/miner:latest'}",
    )
    before = stored(gw)
    resp = post_run(gw, echo_form(), [("echo.cwl", tool.encode())], gw.headers("alice"))
    assert_error(resp, 400, "evil.example.org/miner")
    assert stored(gw) == before and all_run_ids(gw) == []


def test_workflow_is_parsed_before_anything_is_stored(gw: Gateway) -> None:
    before = stored(gw)
    resp = post_run(gw, echo_form(), [("echo.cwl", b"{{{ this is not CWL")], gw.headers("alice"))
    assert_error(resp, 400, "echo.cwl")
    assert stored(gw) == before and all_run_ids(gw) == []


# --------------------------------------------------------------------------- authorization


WES_OPERATIONS = [
    ("get", "/runs"),
    ("post", "/runs"),
    ("get", "/runs/{run}"),
    ("get", "/runs/{run}/status"),
    ("post", "/runs/{run}/cancel"),
    ("get", "/runs/{run}/tasks"),
    ("get", "/runs/{run}/tasks/t1"),
    ("get", "/runs/{run}/logs/stdout"),
    ("get", "/runs/{run}/tasks/t1/logs/stdout"),
    ("get", "/runs/{run}/ro-crate"),
]


@pytest.mark.parametrize("credentials", ["none", "expired", "wrong-secret", "engine-unknown-run", "engine-wrong",
                                         "engine-no-secret", "basic-garbage"])
@pytest.mark.parametrize(("method", "path"), WES_OPERATIONS)
def test_unauthenticated_is_401(module_gw: Gateway, method: str, path: str, credentials: str) -> None:
    gw = module_gw
    run_id = submit(gw)
    headers = {
        "none": {},
        "expired": bearer(gw.tokens.expired),
        "wrong-secret": bearer(gw.tokens.wrong_secret),
        "engine-unknown-run": bearer("tre-run.nope.secret"),
        "engine-wrong": bearer(f"tre-run.{run_id}.wrong"),
        "engine-no-secret": bearer(f"tre-run.{run_id}"),
        "basic-garbage": {"Authorization": "Basic Z2FyYmFnZQ=="},
    }[credentials]
    files_before = stored(gw)
    url = f"{WES}{path.format(run=run_id)}"
    if method == "post" and path == "/runs":
        resp = post_run(gw, echo_form(), ECHO, headers)
    else:
        resp = gw.client.request(method.upper(), url, headers=headers)
    assert_error(resp, 401)
    assert stored(gw) == files_before
    assert run_log(gw, run_id)["state"] == "QUEUED"


def test_personal_access_token_over_basic(gw: Gateway) -> None:
    run_id = submit(gw)
    resp = gw.client.post("/gateway/v1/tokens", json={}, headers=gw.headers("alice"))
    assert resp.status_code == 200, resp.text
    basic = gw.client.get(f"{WES}/runs/{run_id}", auth=("alice", resp.json()["token"]))
    assert basic.status_code == 200, basic.text
    validate_wes_upstream("RunLog", basic.json())


def test_projects_see_only_their_own_runs(gw: Gateway) -> None:
    mine, theirs = submit(gw, "alice"), submit(gw, "bob")
    assert [r["run_id"] for r in list_page(gw, "alice")["runs"]] == [mine]
    assert [r["run_id"] for r in list_page(gw, "bob")["runs"]] == [theirs]
    assert all_run_ids(gw, "admin") == [theirs, mine]

    for path in (f"/runs/{theirs}", f"/runs/{theirs}/status", f"/runs/{theirs}/tasks", f"/runs/{theirs}/tasks/t1",
                 f"/runs/{theirs}/logs/stdout", f"/runs/{theirs}/logs/stderr", f"/runs/{theirs}/ro-crate",
                 f"/runs/{theirs}/tasks/t1/logs/stdout"):
        body = assert_error(gw.client.get(f"{WES}{path}", headers=gw.headers("alice")), 404)
        assert "p2" not in body["msg"]
    assert_error(gw.client.post(f"{WES}/runs/{theirs}/cancel", headers=gw.headers("alice")), 404)
    assert run_log(gw, theirs, "bob")["state"] == "QUEUED"

    # An admin sees both.
    assert run_log(gw, mine, "admin")["request"]["tags"]["project"] == "p1"
    assert run_log(gw, theirs, "admin")["request"]["tags"]["project"] == "p2"
    validate_wes_upstream("RunStatus", get_ok(gw, f"/runs/{theirs}/status", "admin").json())
    # An output checker of p1 may look at p1's runs but not submit or cancel them.
    checker = bearer(gw.tokens.mint("olga", ["p1"], ["output_checker"]))
    assert [r["run_id"] for r in list_page(gw, checker)["runs"]] == [mine]
    assert_error(gw.client.post(f"{WES}/runs/{mine}/cancel", headers=checker), 403)


def test_cancel(gw: Gateway) -> None:
    run_id = submit(gw)
    carol = bearer(gw.tokens.mint("carol", ["p1"], ["researcher"]))
    assert run_log(gw, run_id, carol)["state"] == "QUEUED"
    assert_error(gw.client.post(f"{WES}/runs/{run_id}/cancel", headers=carol), 403)
    assert run_log(gw, run_id)["state"] == "QUEUED"

    for _ in range(2):  # idempotent
        resp = gw.client.post(f"{WES}/runs/{run_id}/cancel", headers=gw.headers("alice"))
        assert resp.status_code == 200, resp.text
        validate_wes_upstream("RunId", resp.json())
        assert resp.json() == {"run_id": run_id}
        assert run_log(gw, run_id)["state"] == "CANCELING"
    status = get_ok(gw, f"/runs/{run_id}/status").json()
    validate_wes_upstream("RunStatus", status)
    assert status["state"] == "CANCELING"


def test_admin_cancels_any_run_and_finished_runs_stay_finished(gw: Gateway) -> None:
    theirs = submit(gw, "bob")
    resp = gw.client.post(f"{WES}/runs/{theirs}/cancel", headers=gw.headers("admin"))
    assert resp.status_code == 200, resp.text
    assert run_log(gw, theirs, "bob")["state"] == "CANCELING"

    done = submit(gw)
    move_run(gw, done, RunState.INITIALIZING, RunState.RUNNING, RunState.COMPLETE)
    resp = gw.client.post(f"{WES}/runs/{done}/cancel", headers=gw.headers("alice"))
    assert resp.status_code == 200, resp.text
    log = run_log(gw, done)
    assert log["state"] == "COMPLETE"
    assert "start_time" in log["run_log"] and "end_time" in log["run_log"]
    summary = next(r for r in list_page(gw)["runs"] if r["run_id"] == done)
    assert summary["state"] == "COMPLETE" and "end_time" in summary


# --------------------------------------------------------------------------- tasks of a run


def test_tasks_of_a_queued_run(gw: Gateway) -> None:
    run_id = submit(gw)
    body = get_ok(gw, f"/runs/{run_id}/tasks").json()
    validate_wes_upstream("TaskListResponse", body)
    assert body["task_logs"] == [] and not body.get("next_page_token")
    assert_error(gw.client.get(f"{WES}/runs/{run_id}/tasks/01a2217834b04feecf0989a11c6b",
                               headers=gw.headers("alice")), 404)
    assert_error(gw.client.get(f"{WES}/runs/{run_id}/tasks/nope/logs/stdout", headers=gw.headers("alice")), 404)


def test_a_plain_tes_task_is_no_task_of_a_run(gw: Gateway) -> None:
    run_id = submit(gw)
    task_id = gw.create("alice")
    assert_error(gw.client.get(f"{WES}/runs/{run_id}/tasks/{task_id}", headers=gw.headers("alice")), 404)
    assert_error(gw.client.get(f"{WES}/runs/{run_id}/tasks/{task_id}/logs/stdout",
                               headers=gw.headers("alice")), 404)
    assert get_ok(gw, f"/runs/{run_id}/tasks").json()["task_logs"] == []


def test_researcher_cannot_tag_a_tes_task_as_a_step(gw: Gateway) -> None:
    run_id = submit(gw)
    before = gw.count_tasks()
    for value in ("x", run_id):
        resp = gw.client.post(f"{TES}/tasks", json=gw.task_body(tags={"wes_run": value}), headers=gw.headers("alice"))
        assert_error(resp, 400, "wes_run")
    assert gw.count_tasks() == before
    assert get_ok(gw, f"/runs/{run_id}/tasks").json()["task_logs"] == []


def engine_token(gw: Gateway, run_id: str) -> str:
    """Start a run as the run driver does: a credential for its engine, the run INITIALIZING then RUNNING."""
    runs = gw.components.runs
    run = runs.repo.get(run_id)
    assert run is not None
    token, digest = runs.mint_engine_credential(run)
    move_run(gw, run_id, RunState.INITIALIZING, RunState.RUNNING,
             engine={**run.engine, "credential_sha256": digest})
    return token


def step_body(gw: Gateway, run_id: str, step: str) -> dict[str, Any]:
    work = f"p1/runs/{run_id}/"
    store = gw.components.store
    return {
        "name": f"step {step}",
        "inputs": [{"path": "/in/echo.cwl", "url": store.url_for(Area.WORK, work + "workflow/echo.cwl")}],
        "outputs": [{"path": "/out/message.txt", "url": store.url_for(Area.WORK, work + f"steps/{step}/out.txt")}],
        "executors": [{"image": "alpine", "command": ["echo", step]}],
        "tags": {"wes_step": step},
    }


def test_steps_submitted_by_the_engine(gw: Gateway) -> None:
    run_id = submit(gw)
    token = engine_token(gw, run_id)
    engine = bearer(token)

    # The engine's credential is confined to its run's project and folder.
    step_ids = []
    for step in ("first", "second"):
        resp = gw.client.post(f"{TES}/tasks", json=step_body(gw, run_id, step), headers=engine)
        assert resp.status_code == 200, resp.text
        step_ids.append(resp.json()["id"])
    other = submit(gw)
    resp = gw.client.post(f"{TES}/tasks", json=step_body(gw, other, "x"), headers=engine)
    assert_error(resp, 400)
    resp = gw.client.post(f"{TES}/tasks", json={**step_body(gw, run_id, "x"), "tags": {"wes_run": other}},
                          headers=engine)
    assert_error(resp, 400, "wes_run")
    assert_error(gw.client.get(f"{WES}/runs/{run_id}", headers=bearer(token + "x")), 401)
    assert_error(gw.client.get(f"{WES}/runs/{run_id}", headers=bearer(f"tre-run.{other}.{token.rsplit('.', 1)[1]}")),
                 401)

    # The step tasks, as the run's task list.
    body = get_ok(gw, f"/runs/{run_id}/tasks").json()
    validate_wes_upstream("TaskListResponse", body)
    assert sorted(t["id"] for t in body["task_logs"]) == sorted(step_ids)  # the order: see the test below
    assert {t["id"]: t["name"] for t in body["task_logs"]} == dict(zip(step_ids, ["first", "second"], strict=True))
    for t in body["task_logs"]:
        validate_wes_upstream("TaskLog", t)
        assert t["tes_uri"].startswith("http://") and t["tes_uri"].endswith(f"{TES}/tasks/{t['id']}")
        assert t["stdout"].startswith("http://") and t["stdout"].endswith(f"/runs/{run_id}/tasks/{t['id']}/logs/stdout")
        assert t["cmd"] == ["echo", t["name"]]

    page = get_ok(gw, f"/runs/{run_id}/tasks", page_size=1).json()
    validate_wes_upstream("TaskListResponse", page)
    assert len(page["task_logs"]) == 1 and page["next_page_token"]
    nxt = get_ok(gw, f"/runs/{run_id}/tasks", page_size=1, page_token=page["next_page_token"]).json()
    validate_wes_upstream("TaskListResponse", nxt)
    assert {page["task_logs"][0]["id"], nxt["task_logs"][0]["id"]} == set(step_ids)
    assert_error(gw.client.get(f"{WES}/runs/{run_id}/tasks", params={"page_token": "garbage"},
                               headers=gw.headers("alice")), 400)

    # A finished step: exit code, times and its logs.
    repo, now = gw.components.tasks.repo, datetime.now(UTC)
    task = repo.get(step_ids[0])
    assert task is not None
    task = repo.save(task.moved_to(TaskState.INITIALIZING, at=now))
    task = repo.save(task.moved_to(TaskState.RUNNING, at=now))
    task = task.moved_to(TaskState.EXECUTOR_ERROR, at=now, reason=system_log("executor_failed", "exit 3"))
    repo.save(task.with_logs(executor_logs=(ExecutorLog(exit_code=3, stdout="out-\u00e9", stderr="err"),)))
    doc = get_ok(gw, f"/runs/{run_id}/tasks/{step_ids[0]}").json()
    validate_wes_upstream("TaskLog", doc)
    assert doc["exit_code"] == 3 and "start_time" in doc and "end_time" in doc
    resp = get_ok(gw, f"/runs/{run_id}/tasks/{step_ids[0]}/logs/stdout")
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text == "out-\u00e9"
    assert get_ok(gw, f"/runs/{run_id}/tasks/{step_ids[0]}/logs/stderr").text == "err"
    assert get_ok(gw, f"/runs/{run_id}/tasks/{step_ids[1]}/logs/stdout").text == ""
    # A step of one run is not a task of another.
    assert_error(gw.client.get(f"{WES}/runs/{other}/tasks/{step_ids[0]}", headers=gw.headers("alice")), 404)
    # Other projects see nothing of it.
    assert_error(gw.client.get(f"{WES}/runs/{run_id}/tasks/{step_ids[0]}", headers=gw.headers("bob")), 404)
    assert_error(gw.client.get(f"{WES}/runs/{run_id}/tasks/{step_ids[0]}/logs/stdout",
                               headers=gw.headers("bob")), 404)

    # Once the run has finished, its engine's credential is worthless.
    move_run(gw, run_id, RunState.COMPLETE)
    assert_error(gw.client.get(f"{WES}/runs/{run_id}", headers=engine), 401)
    assert_error(gw.client.post(f"{TES}/tasks", json=step_body(gw, run_id, "late"), headers=engine), 401)


def test_engine_credential_is_confined_to_its_run(gw: Gateway) -> None:
    """A run's engine credential acts for that run only (security.py: "an engine must stay confined to its own
    run"), as TES already enforces for tasks: no other runs, no new runs, no longer-lived credentials."""
    own, other = submit(gw), submit(gw)
    engine = bearer(engine_token(gw, own))
    before = stored(gw)

    listed = gw.client.get(f"{WES}/runs", headers=engine)
    if listed.status_code == 200:
        validate_wes_upstream("RunListResponse", listed.json())
        assert {r["run_id"] for r in listed.json()["runs"]} <= {own}, listed.json()
    else:
        assert_error(listed)
    assert_error(gw.client.get(f"{WES}/runs/{other}", headers=engine))
    assert_error(gw.client.post(f"{WES}/runs/{other}/cancel", headers=engine))
    assert run_log(gw, other)["state"] == "QUEUED"
    assert_error(post_run(gw, echo_form(), ECHO, engine))
    assert stored(gw) == before
    assert_error(gw.client.post("/gateway/v1/tokens", json={}, headers=engine))


def test_run_tasks_are_listed_newest_first(gw: Gateway) -> None:
    """wes.yaml, ListTasks: "List the tasks (workflow steps) of one run, newest first", with stable paging."""
    run_id = submit(gw)
    engine = bearer(engine_token(gw, run_id))
    step_ids = []
    for step in ("first", "second", "third"):
        resp = gw.client.post(f"{TES}/tasks", json=step_body(gw, run_id, step), headers=engine)
        assert resp.status_code == 200, resp.text
        step_ids.append(resp.json()["id"])
    body = get_ok(gw, f"/runs/{run_id}/tasks").json()
    validate_wes_upstream("TaskListResponse", body)
    assert [t["name"] for t in body["task_logs"]] == ["third", "second", "first"]
    paged: list[str] = []
    params: dict[str, Any] = {"page_size": 1}
    while True:
        page = get_ok(gw, f"/runs/{run_id}/tasks", **params).json()
        validate_wes_upstream("TaskListResponse", page)
        paged += [t["id"] for t in page["task_logs"]]
        if not page.get("next_page_token"):
            break
        params["page_token"] = page["next_page_token"]
    assert paged == step_ids[::-1]


# --------------------------------------------------------------------------- logs and the crate


def test_engine_logs_of_a_queued_run_are_empty_text(gw: Gateway) -> None:
    run_id = submit(gw)
    for stream in ("stdout", "stderr"):
        resp = get_ok(gw, f"/runs/{run_id}/logs/{stream}")
        assert resp.headers["content-type"].startswith("text/plain")
        assert resp.text == ""
        assert_error(gw.client.get(f"{WES}/runs/{run_id}/logs/{stream}", headers=gw.headers("bob")), 404)
    assert_error(gw.client.get(f"{WES}/runs/{run_id}/logs/other", headers=gw.headers("alice")), 400)


def test_engine_logs_are_served_as_utf8(gw: Gateway) -> None:
    run_id = submit(gw)
    run = gw.components.runs.repo.get(run_id)
    assert run is not None
    gw.components.store.put_bytes(Area.WORK, run_key(run, LOG_FILES["stderr"]), b"INFO ok\n\xff\xfe bad bytes\n")
    resp = get_ok(gw, f"/runs/{run_id}/logs/stderr")
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.text == "INFO ok\n\ufffd\ufffd bad bytes\n"
    assert get_ok(gw, f"/runs/{run_id}/logs/stdout").text == ""
    assert get_ok(gw, f"/runs/{run_id}/logs/stderr", "admin").text == resp.text


def test_ro_crate_of_a_cancelled_run(gw: Gateway) -> None:
    files, form = greet_all()
    run_id = submit(gw, form=form, files=files)
    move_run(gw, run_id, RunState.CANCELING, RunState.CANCELED)
    resp = get_ok(gw, f"/runs/{run_id}/ro-crate")
    assert resp.headers["content-type"].startswith("application/zip")
    with zipfile.ZipFile(io.BytesIO(resp.content)) as crate:
        names = set(crate.namelist())
        metadata = json.loads(crate.read("ro-crate-metadata.json"))
    assert {"ro-crate-metadata.json", "workflow/greet-all.cwl", "workflow/tools/greet.cwl"} <= names
    assert isinstance(metadata.get("@graph"), list)
    assert_error(gw.client.get(f"{WES}/runs/{run_id}/ro-crate", headers=gw.headers("bob")), 404)


def test_ro_crate_of_an_unfinished_run_is_409(gw: Gateway) -> None:
    run_id = submit(gw)
    assert_error(gw.client.get(f"{WES}/runs/{run_id}/ro-crate", headers=gw.headers("alice")), 409)
    assert_error(gw.client.get(f"{WES}/runs/{run_id}/ro-crate", headers=gw.headers("bob")), 404)
    move_run(gw, run_id, RunState.CANCELING)
    assert_error(gw.client.get(f"{WES}/runs/{run_id}/ro-crate", headers=gw.headers("alice")), 409)
