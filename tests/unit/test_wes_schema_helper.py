"""The WES schema helper: upstream WES 1.1.0 schemas resolve locally, accept good bodies, refuse bad ones.

Every example valid against our openapi/wes.yaml is also checked against upstream: the response schemas
of our document must be at least as strict as the upstream ones.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
import yaml

from tests.wes_schema import OUR_WES, validate_wes_ours, validate_wes_upstream

SERVICE_INFO: dict[str, Any] = {
    "id": "org.example.tre.wes",
    "name": "TRE Gateway WES",
    "type": {"group": "org.ga4gh", "artifact": "wes", "version": "1.1.0"},
    "description": "Workflows inside the TRE",
    "organization": {"name": "Example TRE", "url": "https://tre.example.org"},
    "contactUrl": "mailto:support@tre.example.org",
    "documentationUrl": "https://tre.example.org/docs",
    "createdAt": "2024-05-01T12:00:00Z",
    "updatedAt": "2024-05-02T08:30:00+01:00",
    "environment": "test",
    "version": "0.9.0",
    "workflow_type_versions": {"CWL": {"workflow_type_version": ["v1.0", "v1.1", "v1.2"]}},
    "supported_wes_versions": ["1.1.0"],
    "supported_filesystem_protocols": ["s3", "file"],
    "workflow_engine_versions": {"cwltool": {"workflow_engine_version": ["3.1.20240508115724"]}},
    "default_workflow_engine_parameters": [{"name": "parallel", "type": "boolean", "default_value": "false"}],
    "system_state_counts": {"RUNNING": 2, "COMPLETE": 10},
    "auth_instructions_url": "https://tre.example.org/docs/auth",
    "tags": {"tre": "example"},
}

RUN_LOG: dict[str, Any] = {
    "run_id": "run-01",
    "request": {
        "workflow_params": {"reads": {"class": "File", "location": "s3://inputs/p1/reads.csv"}},
        "workflow_type": "CWL",
        "workflow_type_version": "v1.2",
        "workflow_url": "main.cwl",
        "tags": {"project": "p1"},
        "workflow_engine": "cwltool",
        "workflow_engine_parameters": {"parallel": "true"},
    },
    "state": "COMPLETE",
    "run_log": {
        "name": "main.cwl",
        "cmd": ["cwltool", "main.cwl", "params.json"],
        "start_time": "2024-05-01T12:00:00Z",
        "end_time": "2024-05-01T12:10:00Z",
        "stdout": "/ga4gh/wes/v1/runs/run-01/logs/stdout",
        "stderr": "/ga4gh/wes/v1/runs/run-01/logs/stderr",
        "exit_code": 0,
        "system_logs": [],
    },
    "task_logs_url": "/ga4gh/wes/v1/runs/run-01/tasks",
    "outputs": {"counts": {"class": "File", "location": "s3://released/p1/run-01/counts.csv", "size": 12}},
}

TASK_LOG: dict[str, Any] = {
    "id": "t1",
    "name": "count",
    "cmd": ["python", "count.py"],
    "start_time": "2024-05-01T12:01:00Z",
    "end_time": "2024-05-01T12:02:00Z",
    "stdout": "/ga4gh/wes/v1/runs/run-01/tasks/t1/logs/stdout",
    "stderr": "/ga4gh/wes/v1/runs/run-01/tasks/t1/logs/stderr",
    "exit_code": 0,
    "system_logs": [],
    "tes_uri": "/ga4gh/tes/v1/tasks/abc",
}

GOOD: list[tuple[str, Any]] = [
    ("ServiceInfo", SERVICE_INFO),
    ("RunLog", RUN_LOG),
    ("RunLog", {**RUN_LOG, "task_logs": [TASK_LOG]}),
    ("RunStatus", {"run_id": "run-01", "state": "RUNNING"}),
    ("RunSummary", {"run_id": "run-01", "state": "QUEUED", "tags": {}}),
    ("RunListResponse", {"runs": [], "next_page_token": ""}),
    (
        "RunListResponse",
        {
            "runs": [
                {
                    "run_id": "run-02",
                    "state": "PAUSED",
                    "tags": {"project": "p1"},
                    "start_time": "2024-05-01T12:00:00Z",
                },
                {"run_id": "run-01", "state": "CANCELED", "tags": {}, "end_time": "2024-05-01T12:00:00Z"},
            ],
            "next_page_token": "abc",
        },
    ),
    ("RunId", {"run_id": "run-01"}),
    ("TaskLog", TASK_LOG),
    ("TaskListResponse", {"task_logs": [TASK_LOG], "next_page_token": ""}),
    ("ErrorResponse", {"msg": "no such run", "status_code": 404}),
]


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def replaced(body: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


BAD: list[tuple[str, Any, str]] = [
    ("RunStatus", {"run_id": "run-01", "state": "DONE"}, "is not one of"),
    ("RunStatus", {"state": "RUNNING"}, "'run_id' is a required property"),
    ("RunLog", replaced(RUN_LOG, ["state"], "FINISHED"), "is not one of"),
    ("RunLog", replaced(RUN_LOG, ["run_log", "exit_code"], "0"), "is not of type 'integer'"),
    ("RunLog", replaced(RUN_LOG, ["outputs"], []), "is not of type 'object'"),
    ("RunLog", replaced(RUN_LOG, ["request"], without(RUN_LOG["request"], "workflow_url")), "workflow_url"),
    ("RunLog", replaced(RUN_LOG, ["request", "tags"], {"n": 1}), "is not of type 'string'"),
    ("RunListResponse", {"runs": [{"run_id": "r", "state": "paused"}]}, "is not valid under any of the given schemas"),
    ("RunListResponse", {"runs": {"run_id": "r"}}, "is not of type 'array'"),
    ("RunSummary", {"run_id": "r", "state": "RUNNING"}, "'tags' is a required property"),
    ("TaskLog", without(TASK_LOG, "name"), "'name' is a required property"),
    ("ServiceInfo", without(SERVICE_INFO, "type"), "'type' is a required property"),
    ("ServiceInfo", without(SERVICE_INFO, "auth_instructions_url"), "'auth_instructions_url' is a required"),
    ("ServiceInfo", replaced(SERVICE_INFO, ["organization", "url"], "not a url"), "is not a 'uri'"),
    ("ServiceInfo", replaced(SERVICE_INFO, ["createdAt"], "2024-13-01T00:00:00Z"), "is not a 'date-time'"),
    (
        "ServiceInfo",
        replaced(SERVICE_INFO, ["workflow_engine_versions"], {"cwltool": ["3.1"]}),
        "is not of type 'object'",
    ),
    ("ServiceInfo", replaced(SERVICE_INFO, ["system_state_counts", "RUNNING"], "2"), "is not of type 'integer'"),
]


@pytest.mark.parametrize(("schema", "body"), GOOD, ids=[f"{name}-{i}" for i, (name, _) in enumerate(GOOD)])
def test_accepts_conforming_bodies(schema: str, body: Any) -> None:
    validate_wes_upstream(schema, body)


@pytest.mark.parametrize(("schema", "body"), GOOD, ids=[f"{name}-{i}" for i, (name, _) in enumerate(GOOD)])
def test_our_schemas_accept_the_same_bodies(schema: str, body: Any) -> None:
    validate_wes_ours(schema, body)


@pytest.mark.parametrize(
    ("schema", "body", "message"), BAD, ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(BAD)]
)
def test_rejects_nonconforming_bodies(schema: str, body: Any, message: str) -> None:
    with pytest.raises(jsonschema.ValidationError) as raised:
        validate_wes_upstream(schema, body)
    assert message in raised.value.message or any(message in e.message for e in raised.value.context)


@pytest.mark.parametrize(
    ("schema", "body", "message"), BAD, ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(BAD)]
)
def test_our_schemas_reject_what_upstream_rejects(schema: str, body: Any, message: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_wes_ours(schema, body)


def test_openapi_nullable_is_honoured() -> None:
    # Upstream marks the deprecated RunLog.task_logs `nullable`; OpenAPI 3.0 lets it be null.
    validate_wes_upstream("RunLog", {**RUN_LOG, "task_logs": None})
    with pytest.raises(jsonschema.ValidationError):
        validate_wes_upstream("RunLog", {**RUN_LOG, "task_logs": "none"})


def test_our_schemas_are_stricter_where_we_promise_more() -> None:
    # Upstream allows a RunStatus without state and RunStatus items in RunListResponse; we never send them.
    validate_wes_upstream("RunStatus", {"run_id": "r"})
    with pytest.raises(jsonschema.ValidationError):
        validate_wes_ours("RunStatus", {"run_id": "r"})
    with pytest.raises(jsonschema.ValidationError):
        validate_wes_ours("RunLog", {**RUN_LOG, "task_logs": None})


def test_unknown_schema_name_is_an_error() -> None:
    with pytest.raises(Exception, match="NoSuchSchema"):
        validate_wes_upstream("NoSuchSchema", {})


def test_our_document_references_nothing_remote() -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(OUR_WES.read_text()))
    assert refs
    assert all(ref.startswith("#/") for ref in refs), [r for r in refs if not r.startswith("#/")]


WES_OPERATIONS = {
    "GetServiceInfo", "ListRuns", "RunWorkflow", "GetRunLog", "CancelRun", "GetRunStatus", "ListTasks", "GetTask",
}
EXTENSIONS = {"GetRunCrate", "GetRunLogStream", "GetTaskLogStream"}


def test_our_document_is_valid_openapi_and_loads_in_connexion() -> None:
    import connexion
    from connexion.resolver import Resolver
    from openapi_spec_validator import validate

    doc = yaml.safe_load(OUR_WES.read_text())
    validate(doc)
    assert doc["servers"] == [{"url": "/ga4gh/wes/v1"}]
    operations = {op["operationId"]: op for item in doc["paths"].values() for op in item.values()}
    assert set(operations) == WES_OPERATIONS | EXTENSIONS
    assert {name for name, op in operations.items() if op.get("x-tre-extension")} == EXTENSIONS
    assert {name for name, op in operations.items() if op.get("security") == []} == {"GetServiceInfo"}
    assert doc["security"] == [{"bearerAuth": []}, {"basicAuth": []}]

    resolved: list[str] = []

    def resolve(operation_id: str) -> Any:
        resolved.append(operation_id)
        return lambda *args, **kwargs: {}

    app = connexion.FlaskApp(__name__, specification_dir=str(OUR_WES.parent))
    app.add_api(OUR_WES.name, resolver=Resolver(resolve), validate_responses=True, strict_validation=True)
    # connexion builds its routes (resolving every operation) when the app serves its first request.
    assert app.test_client().get("/ga4gh/wes/v1/runs").status_code == 401
    assert set(resolved) == WES_OPERATIONS | EXTENSIONS
