"""Property-based fuzzing of the OpenAPI documents (TES, the account API, the airlock and WES) with schemathesis.

The documents are loaded the way a client sees them: as served by the in-process app. Each operation is
fuzzed with schema-valid (positive) and, where it takes input, schema-invalid (negative) requests, sent
with a valid researcher's bearer token, and every response is checked by schemathesis: no 5xx, bodies and
content types as documented, only documented status codes. Runs are bounded and derandomized so a result
is reproducible. (The schemathesis pytest plugin's `from_fixture` does not work with this pytest, so the
hypothesis loop is driven here directly.)

WES's RunWorkflow is a multipart/form-data request: schemathesis sends each `workflow_attachment` item as a
file part (named after the field) and the other fields as plain parts. Seeded runs (one queued, one whose
engine has submitted steps, one finished) let the run and task path parameters reach real records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup, ServerError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.adapters.auth.jwt_tokens import load_or_create_dev_secret, mint_dev_token
from gateway.api.app import create_app
from gateway.bootstrap import Components, build
from gateway.config import Settings
from gateway.domain.runs import RunState
from gateway.domain.states import TaskState
from gateway.domain.task import ExecutorLog, system_log
from gateway.services.ports import Area

REPO = Path(__file__).resolve().parents[2]
SPECS = {
    "tes": (REPO / "openapi" / "tes.yaml", "/ga4gh/tes/v1"),
    "gateway": (REPO / "openapi" / "gateway.yaml", "/gateway/v1"),
    "airlock": (REPO / "openapi" / "airlock.yaml", "/airlock/v1"),
    "wes": (REPO / "openapi" / "wes.yaml", "/ga4gh/wes/v1"),
}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
MAX_EXAMPLES = 40
# Operations whose input space is much larger get more examples: RunWorkflow's multipart form has nine fields,
# three of them JSON texts, and a list of files.
EXAMPLES = {"wes.RunWorkflow": 200}

# Correctness of what comes back; `negative_data_rejection` adds: schema-invalid input must be refused.
CONFORMANCE = [not_a_server_error, response_schema_conformance, content_type_conformance, response_headers_conformance]
STATUS_CODES = [status_code_conformance]

BUG_NEWLINE_PATH = (
    "gateway bug: an encoded newline in a path parameter misses connexion's routing, reaches Flask without the "
    "security and validation middleware and ends in 500 ('Working outside of operation context')"
)
# (check group, operation label, mode) -> reason, for failures that are known and being fixed. Strict: fixing
# the gateway turns these into failures to remove.
KNOWN_FAILURES: dict[tuple[str, str, str], str] = {}


@dataclass(frozen=True)
class Operation:
    spec: str
    path: str
    method: str
    operation_id: str
    takes_input: bool

    @property
    def label(self) -> str:
        """The operationId, prefixed for WES (which reuses TES's GetServiceInfo, ListTasks and GetTask)."""
        return f"wes.{self.operation_id}" if self.spec == "wes" else self.operation_id


def operations() -> Iterator[Operation]:
    """Every operation of every document, read from the files in the repository."""
    for spec, (file, _base) in SPECS.items():
        document = yaml.safe_load(file.read_text())
        for path, item in document["paths"].items():
            for method, op in item.items():
                if method in HTTP_METHODS:
                    takes_input = bool(op.get("parameters") or item.get("parameters") or op.get("requestBody"))
                    yield Operation(spec, path, method.upper(), op["operationId"], takes_input)


def cases(group: str) -> list[Any]:
    params = []
    for op in operations():
        modes = ["positive", "negative"] if op.takes_input else ["positive"]
        for mode in modes:
            marks = []
            reason = KNOWN_FAILURES.get((group, op.label, mode))
            if reason:
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            params.append(pytest.param(op, mode, id=f"{op.label}-{mode}", marks=marks))
    return params


# --------------------------------------------------------------------------- the app under test


@dataclass
class Target:
    components: Components
    app: Any
    headers: dict[str, str]
    schemas: dict[str, Any]
    task_ids: list[str]
    token_ids: list[str]
    run_ids: list[str]
    run_steps: list[tuple[str, str]]  # (run id, id of one of its step tasks)


def _seed(c: Components, app: Any, headers: dict[str, str]) -> tuple[list[str], list[str]]:
    """Real task and token ids, so that GetTask/CancelTask/RevokeAccessToken also reach their 200 paths."""
    client = app.test_client()
    released = c.store.url_for(Area.RELEASED, "p1/seed/r.txt")
    body = {
        "name": "seed",
        "inputs": [{"path": "/in/a.txt", "content": "a"}],
        "outputs": [{"path": "/out/r.txt", "url": released}],
        "executors": [{"image": "alpine", "command": ["cp", "/in/a.txt", "/out/r.txt"]}],
        "tags": {"kind": "seed"},
    }
    task_ids = [client.post("/ga4gh/tes/v1/tasks", json=body, headers=headers).json()["id"] for _ in range(3)]
    # One finished task with logs of every kind, for the BASIC and FULL views.
    repo, now = c.tasks.repo, datetime.now(UTC)
    task = repo.get(task_ids[0])
    assert task is not None
    task = repo.save(task.moved_to(TaskState.INITIALIZING, at=now))
    task = repo.save(task.moved_to(TaskState.RUNNING, at=now))
    task = task.moved_to(TaskState.EXECUTOR_ERROR, at=now, reason=system_log("executor_failed", "exit 3"))
    repo.save(task.with_logs(executor_logs=(ExecutorLog(exit_code=3, stdout="out", stderr="err"),)))
    token_ids = [client.post("/gateway/v1/tokens", json={}, headers=headers).json()["token_id"] for _ in range(2)]
    return task_ids, token_ids


ECHO_CWL = (REPO / "tests" / "e2e" / "workflows" / "echo.cwl").read_bytes()


def _submit_run(client: Any, headers: dict[str, str]) -> str:
    form = {"workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_url": "echo.cwl",
            "workflow_params": json.dumps({"message": "seed"})}
    resp = client.post("/ga4gh/wes/v1/runs", data=form, files=[("workflow_attachment", ("echo.cwl", ECHO_CWL))],
                       headers=headers)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["run_id"])


def _seed_runs(c: Components, app: Any, headers: dict[str, str]) -> tuple[list[str], list[tuple[str, str]]]:
    """A queued run, a running one with two step tasks (one finished, with logs), and a finished run."""
    client = app.test_client()
    queued, running, finished = (_submit_run(client, headers) for _ in range(3))
    repo, now = c.runs.repo, datetime.now(UTC)

    run = repo.get(running)
    assert run is not None
    token, digest = c.runs.mint_engine_credential(run)
    run = repo.save(run.updated(engine={**run.engine, "credential_sha256": digest}))
    run = repo.save(run.moved_to(RunState.INITIALIZING, at=now))
    repo.save(run.moved_to(RunState.RUNNING, at=now))
    step_ids = []
    for step in ("first", "second"):
        work = f"p1/runs/{running}/"
        body = {
            "name": step,
            "inputs": [{"path": "/in/echo.cwl", "url": c.store.url_for(Area.WORK, work + "workflow/echo.cwl")}],
            "outputs": [{"path": "/out/m.txt", "url": c.store.url_for(Area.WORK, work + f"steps/{step}/m.txt")}],
            "executors": [{"image": "alpine", "command": ["echo", step]}],
            "tags": {"wes_step": step},
        }
        resp = client.post("/ga4gh/tes/v1/tasks", json=body, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, resp.text
        step_ids.append(resp.json()["id"])
    task = c.tasks.repo.get(step_ids[0])
    assert task is not None
    task = c.tasks.repo.save(task.moved_to(TaskState.INITIALIZING, at=now))
    task = c.tasks.repo.save(task.moved_to(TaskState.RUNNING, at=now))
    task = task.moved_to(TaskState.COMPLETE, at=now, reason=system_log("finished", "exit 0"))
    c.tasks.repo.save(task.with_logs(executor_logs=(ExecutorLog(exit_code=0, stdout="first", stderr="\u00e9"),)))

    run = repo.get(finished)
    assert run is not None
    run = repo.save(run.moved_to(RunState.CANCELING, at=now))
    repo.save(run.moved_to(RunState.CANCELED, at=now))
    return [queued, running, finished], [(running, s) for s in step_ids]


def make_target(data_dir: Path) -> Target:
    s = Settings.load({}, data_dir=data_dir, egress_review="automatic")
    c = build(s)
    app = create_app(s, components=c)
    token = mint_dev_token(load_or_create_dev_secret(s.dev_secret_file), "alice", ["p1"], ["researcher"])
    headers = {"Authorization": f"Bearer {token}"}
    schemas = {
        name: schemathesis.openapi.from_asgi(f"{base}/openapi.json", app) for name, (_file, base) in SPECS.items()
    }
    task_ids, token_ids = _seed(c, app, headers)
    run_ids, run_steps = _seed_runs(c, app, headers)
    return Target(c, app, headers, schemas, task_ids, token_ids, run_ids, run_steps)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    t = make_target(tmp_path_factory.mktemp("fuzz"))
    yield t
    t.components.engine.dispose()


# --------------------------------------------------------------------------- strategies


def _valid_tasks(t: Target) -> st.SearchStrategy[dict[str, Any]]:
    """Task bodies the policies admit, with fuzzed names, commands, env, tags and outputs."""
    name = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
    executor = st.fixed_dictionaries(
        {
            "image": st.sampled_from(["alpine", "busybox", "alpine:3.19", "docker.io/library/busybox:1.36"]),
            "command": st.lists(st.text(max_size=20), min_size=1, max_size=4),
        },
        optional={
            "env": st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,7}", fullmatch=True), st.text(max_size=10),
                                   max_size=3),
            "workdir": st.sampled_from(["/work", "/out", "/tmp/x"]),
            "ignore_error": st.booleans(),
        },
    )
    output = name.map(lambda k: {"path": f"/out/{k}.txt", "url": t.components.store.url_for(Area.RELEASED, f"p1/{k}")})
    return st.fixed_dictionaries(
        {"executors": st.lists(executor, min_size=1, max_size=2)},
        optional={
            "name": st.text(max_size=40),
            "description": st.text(max_size=40),
            "tags": st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k != "project"),
                                    st.text(max_size=10), max_size=3),
            "outputs": st.lists(output, max_size=2, unique_by=lambda o: o["path"]),
            "inputs": st.lists(name.map(lambda k: {"path": f"/in/{k}", "content": k}), max_size=2,
                               unique_by=lambda i: i["path"]),
        },
    )


def _valid_runs() -> st.SearchStrategy[dict[str, Any]]:
    """RunWorkflow forms the gateway accepts, with fuzzed parameters, tags and engine parameters.

    Schemathesis names each file part after its field, so the one attachment is `workflow_attachment`.
    """
    short = st.text(max_size=8)
    scalar = st.one_of(short, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False, allow_infinity=False))
    params = st.dictionaries(st.text(max_size=8), st.one_of(scalar, st.lists(scalar, max_size=3)), max_size=4)
    return st.fixed_dictionaries(
        {
            "workflow_type": st.sampled_from(["CWL", "cwl"]),
            "workflow_type_version": st.sampled_from(["v1.0", "v1.1", "v1.2"]),
            "workflow_url": st.sampled_from(
                ["workflow_attachment", "./workflow_attachment", "workflow_attachment#main"]),
            "workflow_attachment": st.one_of(st.just(ECHO_CWL), st.text(max_size=40).map(str.encode)).map(
                lambda data: [data]),
        },
        optional={
            "workflow_params": params.map(json.dumps),
            "tags": st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k not in ("project", "wes_run")),
                                    short, max_size=3).map(json.dumps),
            "workflow_engine": st.just("cwltool"),
            "workflow_engine_parameters": st.dictionaries(
                st.sampled_from(["--parallel", "--strict", "--timestamps", "--debug"]),
                st.sampled_from(["true", "false"]), max_size=2).map(json.dumps),
        },
    )


def strategy(t: Target, op: Operation, mode: str) -> st.SearchStrategy[Any]:
    api_op = t.schemas[op.spec][op.path][op.method]
    generated = api_op.as_strategy(generation_mode=GenerationMode(mode))
    if mode != "positive":
        return generated
    extra: list[st.SearchStrategy[Any]] = []
    if "{id}" in op.path:
        extra += [api_op.as_strategy(path_parameters={"id": i}) for i in t.task_ids]
    if "{token_id}" in op.path:
        extra += [api_op.as_strategy(path_parameters={"token_id": i}) for i in t.token_ids]
    if "{run_id}" in op.path and "{task_id}" in op.path:
        extra += [api_op.as_strategy(path_parameters={"run_id": r, "task_id": k}) for r, k in t.run_steps]
    elif "{run_id}" in op.path:
        extra += [api_op.as_strategy(path_parameters={"run_id": r}) for r in t.run_ids]
    if op.operation_id == "CreateTask":
        extra.append(_valid_tasks(t).flatmap(lambda body: api_op.as_strategy(body=body)))
    if op.label == "wes.RunWorkflow":
        extra.append(_valid_runs().flatmap(lambda body: api_op.as_strategy(body=body)))
    return st.one_of(generated, *extra)


def _work_area(t: Target) -> set[str]:
    root: Path = t.components.store.root / Area.WORK.value  # type: ignore[attr-defined]
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def fuzz(t: Target, op: Operation, mode: str, checks: list[Any], max_examples: int | None = None) -> dict[int, int]:
    """Send generated requests; any failed check raises (after hypothesis shrinks it). Returns status counts."""
    seen: dict[int, int] = {}
    max_examples = max_examples or EXAMPLES.get(op.label, MAX_EXAMPLES)

    @given(case=strategy(t, op, mode))
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    def run(case: Any) -> None:
        before = _work_area(t) if op.label == "wes.RunWorkflow" else None
        response = case.call_and_validate(headers=t.headers, checks=checks)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        if before is not None and response.status_code != 200:
            assert _work_area(t) == before, f"a refused RunWorkflow ({response.status_code}) wrote to the work area"

    run()
    return seen


# --------------------------------------------------------------------------- tests


# Positive fuzzing of these must reach a 200 at least once (seeded ids, valid-body strategies).
MUST_SUCCEED = {
    "GetServiceInfo", "ListTasks", "GetTask", "CancelTask", "WhoAmI",
    "wes.GetServiceInfo", "wes.ListRuns", "wes.RunWorkflow", "wes.GetRunLog", "wes.GetRunStatus", "wes.CancelRun",
    "wes.ListTasks", "wes.GetTask", "wes.GetRunLogStream", "wes.GetTaskLogStream", "wes.GetRunCrate",
}


@pytest.mark.parametrize(("op", "mode"), cases("conformance"))
def test_no_server_errors_and_responses_conform(target: Target, op: Operation, mode: str) -> None:
    checks = CONFORMANCE + ([negative_data_rejection] if mode == "negative" else [])
    seen = fuzz(target, op, mode, checks)
    assert sum(seen.values()) > 0
    assert not any(code >= 500 for code in seen), seen
    if mode == "positive" and op.label in MUST_SUCCEED:
        assert 200 in seen, f"the fuzzer never reached a successful {op.label}: {seen}"


@pytest.mark.parametrize(("op", "mode"), cases("status"))
def test_only_documented_status_codes(target: Target, op: Operation, mode: str) -> None:
    seen = fuzz(target, op, mode, STATUS_CODES)
    assert sum(seen.values()) > 0


def test_create_task_fuzzing_reaches_accepted_tasks(target: Target) -> None:
    """The valid-body strategy must actually produce accepted tasks, or the positive run proves little."""
    create = next(op for op in operations() if op.operation_id == "CreateTask")
    seen = fuzz(target, create, "positive", CONFORMANCE)
    assert seen.get(200, 0) >= 5, seen


def test_run_workflow_fuzzing_reaches_accepted_runs(target: Target) -> None:
    """The valid-form strategy must produce accepted multipart runs, or the positive run proves little."""
    run_workflow = next(op for op in operations() if op.label == "wes.RunWorkflow")
    seen = fuzz(target, run_workflow, "positive", CONFORMANCE)
    assert seen.get(200, 0) >= 5, seen


def test_every_operation_is_fuzzed() -> None:
    labels = [op.label for op in operations()]
    assert len(labels) == len(set(labels))
    assert set(labels) == {
        "GetServiceInfo", "ListTasks", "CreateTask", "GetTask", "CancelTask",
        "WhoAmI", "ListAccessTokens", "CreateAccessToken", "RevokeAccessToken",
        "ListEgressRequests", "GetEgressRequest", "PreviewEgressFile", "GetQuarantinedFile", "DecideEgressFile",
        "DownloadReleasedFile", "GetProjectPolicy", "PutProjectPolicy", "VerifyAuditLog",
        "wes.GetServiceInfo", "wes.ListRuns", "wes.RunWorkflow", "wes.GetRunLog", "wes.CancelRun", "wes.GetRunStatus",
        "wes.ListTasks", "wes.GetTask", "wes.GetRunCrate", "wes.GetRunLogStream", "wes.GetTaskLogStream",
    }


def test_the_harness_fails_on_a_server_error(tmp_path: Path) -> None:
    """Guard against a harness that cannot fail: a handler that crashes must fail the fuzz run."""
    t = make_target(tmp_path / "broken")
    try:

        def crash(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("simulated crash")

        t.components.tasks.list = crash  # type: ignore[method-assign]
        list_tasks = next(op for op in operations() if op.label == "ListTasks")
        with pytest.raises(FailureGroup) as failure:
            fuzz(t, list_tasks, "positive", CONFORMANCE, max_examples=5)
        assert any(isinstance(f, ServerError) for f in failure.value.exceptions), failure.value
    finally:
        t.components.engine.dispose()

