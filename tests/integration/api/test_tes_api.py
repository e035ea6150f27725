"""Every TES 1.1 operation through the in-process app, each response checked against the upstream schema."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.domain.states import TaskState
from gateway.domain.task import ExecutorLog, OutputFileLog, system_log
from tests.integration.api.conftest import BASE, Gateway

Validate = Callable[..., None]


def rfc3339(value: str) -> datetime:
    assert "T" in value and (value.endswith("Z") or value[-6] in "+-"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assert_error(resp: Any, status: int | None = None) -> dict[str, Any]:
    """A refused request: a 4xx (or exactly `status`) with a JSON body whose `msg` explains why."""
    if status is None:
        assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    else:
        assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body.get("msg"), str) and body["msg"].strip(), body
    assert body.get("status_code") == resp.status_code, body
    return body


def run_to_completion(gw: Gateway, task_id: str) -> None:
    """Drive a stored task through its lifecycle as a dispatcher would, leaving logs of every kind."""
    repo = gw.components.tasks.repo
    now = datetime.now(UTC)
    task = repo.get(task_id)
    assert task is not None
    task = repo.save(task.moved_to(TaskState.INITIALIZING, at=now))
    task = repo.save(task.moved_to(TaskState.RUNNING, at=now))
    task = task.moved_to(TaskState.COMPLETE, at=now, reason=system_log("finished", "all executors exited 0"))
    task = task.with_logs(
        executor_logs=(
            ExecutorLog(
                exit_code=0,
                start_time="2024-01-01T10:00:00Z",
                end_time="2024-01-01T10:00:05Z",
                stdout="secret-stdout-line",
                stderr="secret-stderr-line",
            ),
        ),
        output_logs=(OutputFileLog(url=gw.released("p1", "full/r.txt"), path="/out/result.txt", size_bytes=12),),
        metadata={"host": "worker-1"},
    )
    repo.save(task)


def rich_task(gw: Gateway) -> dict[str, Any]:
    """A task using most of the TES task fields, including an inline input with content."""
    return gw.task_body(
        name="rich",
        description="uses most fields",
        inputs=[
            {"path": "/in/inline.txt", "content": "inline-secret-content", "name": "inline"},
            {"path": "/in/data.csv", "url": gw.inputs("p1", "data.csv"), "type": "FILE"},
        ],
        outputs=[{"path": "/out/result.txt", "url": gw.released("p1", "full/r.txt"), "type": "FILE"}],
        executors=[
            {
                "image": "alpine",
                "command": ["sh", "-c", "cat /in/inline.txt > /out/result.txt"],
                "workdir": "/out",
                "stdout": "/out/stdout.txt",
                "env": {"LANG": "C"},
            }
        ],
        resources={"cpu_cores": 1, "ram_gb": 0.5, "disk_gb": 1.0},
        volumes=["/scratch"],
        tags={"sample": "s1"},
    )


# --------------------------------------------------------------------------- service-info


def test_service_info_needs_no_credentials_and_conforms(gw: Gateway, validate_upstream: Validate) -> None:
    resp = gw.client.get(f"{BASE}/service-info")
    assert resp.status_code == 200
    body = resp.json()
    validate_upstream("tesServiceInfo", body)
    assert body["type"] == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}
    assert body["id"] and body["name"] and body["version"]
    assert body["organization"]["name"] and body["organization"]["url"].startswith("http")
    # The storage list tells clients where inputs come from and where outputs may go.
    store_root = gw.settings.resolved_store_dir.resolve().as_posix()
    assert body["storage"] == [f"file://{store_root}/inputs/", f"file://{store_root}/released/"]
    assert body["tesResources_backend_parameters"] == []


# --------------------------------------------------------------------------- CreateTask / GetTask


def test_create_task_stores_a_queued_task_in_the_callers_project(gw: Gateway, validate_upstream: Validate) -> None:
    before = gw.count_tasks()
    resp = gw.client.post(f"{BASE}/tasks", json=rich_task(gw), headers=gw.headers("alice"))
    assert resp.status_code == 200, resp.text
    validate_upstream("tesCreateTaskResponse", resp.json())
    task_id = resp.json()["id"]
    assert isinstance(task_id, str) and task_id
    assert gw.count_tasks() == before + 1

    got = gw.client.get(f"{BASE}/tasks/{task_id}", params={"view": "BASIC"}, headers=gw.headers("alice")).json()
    assert got["state"] == "QUEUED"
    # The project comes from the caller's only project and is recorded as the `project` tag.
    assert got["tags"] == {"sample": "s1", "project": "p1"}
    assert got["executors"][0]["image"] == "alpine"  # the requested name, not the mirrored image
    assert got["resources"] == {"cpu_cores": 1, "ram_gb": 0.5, "disk_gb": 1.0}
    assert got["volumes"] == ["/scratch"]
    created = rfc3339(got["creation_time"])
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60


def test_create_task_ids_are_unique(gw: Gateway) -> None:
    ids = {gw.create() for _ in range(5)}
    assert len(ids) == 5


def test_get_task_default_and_minimal_views(gw: Gateway, validate_upstream: Validate) -> None:
    task_id = gw.create()
    for params in ({}, {"view": "MINIMAL"}):
        resp = gw.client.get(f"{BASE}/tasks/{task_id}", params=params, headers=gw.headers("alice"))
        assert resp.status_code == 200
        body = resp.json()
        validate_upstream("tesTask", body, minimal=True)
        assert body == {"id": task_id, "state": "QUEUED"}


def test_get_task_basic_view_omits_content_streams_and_system_logs(gw: Gateway, validate_upstream: Validate) -> None:
    resp = gw.client.post(f"{BASE}/tasks", json=rich_task(gw), headers=gw.headers("alice"))
    task_id = resp.json()["id"]
    run_to_completion(gw, task_id)

    resp = gw.client.get(f"{BASE}/tasks/{task_id}", params={"view": "BASIC"}, headers=gw.headers("alice"))
    assert resp.status_code == 200
    body = resp.json()
    validate_upstream("tesTask", body)
    assert body["state"] == "COMPLETE"
    assert body["name"] == "rich" and body["description"] == "uses most fields"
    inline, by_url = body["inputs"]
    assert "content" not in inline and inline["path"] == "/in/inline.txt"
    assert by_url["url"] == gw.inputs("p1", "data.csv")
    (log,) = body["logs"]
    (executor_log,) = log["logs"]
    assert executor_log["exit_code"] == 0
    assert "stdout" not in executor_log and "stderr" not in executor_log
    assert "system_logs" not in log
    assert log["outputs"] == [{"url": gw.released("p1", "full/r.txt"), "path": "/out/result.txt", "size_bytes": "12"}]
    assert log["metadata"] == {"host": "worker-1"}
    assert rfc3339(log["start_time"]) <= rfc3339(log["end_time"])
    text = resp.text
    for secret in ("inline-secret-content", "secret-stdout-line", "secret-stderr-line", "finished"):
        assert secret not in text


def test_get_task_full_view_includes_content_streams_and_system_logs(gw: Gateway, validate_upstream: Validate) -> None:
    resp = gw.client.post(f"{BASE}/tasks", json=rich_task(gw), headers=gw.headers("alice"))
    task_id = resp.json()["id"]
    run_to_completion(gw, task_id)

    resp = gw.client.get(f"{BASE}/tasks/{task_id}", params={"view": "FULL"}, headers=gw.headers("alice"))
    assert resp.status_code == 200
    body = resp.json()
    validate_upstream("tesTask", body)
    assert body["inputs"][0]["content"] == "inline-secret-content"
    (log,) = body["logs"]
    assert log["logs"][0]["stdout"] == "secret-stdout-line"
    assert log["logs"][0]["stderr"] == "secret-stderr-line"
    (line,) = log["system_logs"]
    assert json.loads(line)["reason"] == "finished"


def test_get_unknown_task_is_404(gw: Gateway) -> None:
    resp = gw.client.get(f"{BASE}/tasks/0123456789abcdef", headers=gw.headers("alice"))
    assert "not found" in assert_error(resp, 404)["msg"]


def test_get_task_with_unknown_view_is_400(gw: Gateway) -> None:
    task_id = gw.create()
    resp = gw.client.get(f"{BASE}/tasks/{task_id}", params={"view": "EVERYTHING"}, headers=gw.headers("alice"))
    assert_error(resp, 400)


# --------------------------------------------------------------------------- ListTasks


def test_list_tasks_views(gw: Gateway, validate_upstream: Validate) -> None:
    resp = gw.client.post(f"{BASE}/tasks", json=rich_task(gw), headers=gw.headers("alice"))
    rich_id = resp.json()["id"]
    run_to_completion(gw, rich_id)
    plain_id = gw.create()

    def listed(view: str | None) -> list[dict[str, Any]]:
        params = {"view": view} if view else {}
        resp = gw.client.get(f"{BASE}/tasks", params=params, headers=gw.headers("alice"))
        assert resp.status_code == 200
        body = resp.json()
        validate_upstream("tesListTasksResponse", body, minimal=view in (None, "MINIMAL"))
        assert "next_page_token" not in body
        assert [t["id"] for t in body["tasks"]] == [plain_id, rich_id]
        return list(body["tasks"])

    for view in (None, "MINIMAL"):
        assert listed(view) == [{"id": plain_id, "state": "QUEUED"}, {"id": rich_id, "state": "COMPLETE"}]

    basic = listed("BASIC")
    assert basic[1]["name"] == "rich" and basic[1]["executors"]
    assert "content" not in basic[1]["inputs"][0]
    assert "stdout" not in basic[1]["logs"][0]["logs"][0]
    assert "system_logs" not in basic[1]["logs"][0]

    full = listed("FULL")
    assert full[1]["inputs"][0]["content"] == "inline-secret-content"
    assert full[1]["logs"][0]["logs"][0]["stdout"] == "secret-stdout-line"
    assert full[1]["logs"][0]["system_logs"]


def test_list_tasks_by_name_prefix(gw: Gateway) -> None:
    align = [gw.create(name=name) for name in ("align-1", "align-2")]
    gw.create(name="qc-1")
    underscore = gw.create(name="a_b")
    gw.create(name="axb")

    def names(prefix: str) -> list[str]:
        resp = gw.client.get(f"{BASE}/tasks", params={"name_prefix": prefix}, headers=gw.headers("alice"))
        assert resp.status_code == 200
        return [t["id"] for t in resp.json()["tasks"]]

    assert names("align") == align[::-1]
    assert names("align-2") == [align[1]]
    assert names("zzz") == []
    # LIKE wildcards in the prefix are matched literally.
    assert names("a_") == [underscore]
    assert names("%") == []


def test_list_tasks_by_state(gw: Gateway) -> None:
    queued = gw.create()
    canceled = gw.create()
    assert gw.client.post(f"{BASE}/tasks/{canceled}:cancel", headers=gw.headers("alice")).status_code == 200

    def ids(state: str) -> list[str]:
        resp = gw.client.get(f"{BASE}/tasks", params={"state": state}, headers=gw.headers("alice"))
        assert resp.status_code == 200
        return [t["id"] for t in resp.json()["tasks"]]

    assert ids("QUEUED") == [queued]
    assert ids("CANCELING") == [canceled]
    assert ids("COMPLETE") == []
    assert_error(gw.client.get(f"{BASE}/tasks", params={"state": "DONE"}, headers=gw.headers("alice")), 400)


def test_list_tasks_by_tags(gw: Gateway) -> None:
    s1b1 = gw.create(tags={"sample": "s1", "batch": "b1"})
    s2b1 = gw.create(tags={"sample": "s2", "batch": "b1"})
    s1 = gw.create(tags={"sample": "s1"})

    def ids(query: list[tuple[str, str]]) -> set[str]:
        resp = gw.client.get(f"{BASE}/tasks", params=query, headers=gw.headers("alice"))
        assert resp.status_code == 200, resp.text
        return {t["id"] for t in resp.json()["tasks"]}

    assert ids([("tag_key", "sample"), ("tag_value", "s1")]) == {s1b1, s1}
    # Repeated pairs must all match.
    pairs = [("tag_key", "sample"), ("tag_value", "s1"), ("tag_key", "batch"), ("tag_value", "b1")]
    assert ids(pairs) == {s1b1}
    # A key alone, or with an empty value, matches any value.
    assert ids([("tag_key", "batch")]) == {s1b1, s2b1}
    assert ids([("tag_key", "batch"), ("tag_value", "")]) == {s1b1, s2b1}
    assert ids([("tag_key", "batch"), ("tag_key", "sample"), ("tag_value", ""), ("tag_value", "s2")]) == {s2b1}
    # The project tag the gateway adds is filterable too.
    assert ids([("tag_key", "project"), ("tag_value", "p1")]) == {s1b1, s2b1, s1}
    assert ids([("tag_key", "nope")]) == set()
    assert ids([("tag_key", "sample"), ("tag_value", "s3")]) == set()
    # A value with no key to pair with is refused.
    resp = gw.client.get(f"{BASE}/tasks", params={"tag_value": "s1"}, headers=gw.headers("alice"))
    assert "tag_key" in assert_error(resp, 400)["msg"]


@pytest.mark.parametrize("size", ["0", "-1", "2147483648", "ten"])
def test_list_tasks_rejects_bad_page_size(gw: Gateway, size: str) -> None:
    resp = gw.client.get(f"{BASE}/tasks", params={"page_size": size}, headers=gw.headers("alice"))
    assert_error(resp, 400)


def test_list_tasks_caps_huge_page_size(gateway_factory: Callable[..., Gateway]) -> None:
    gw = gateway_factory(default_page_size=2, max_page_size=3)
    ids = [gw.create() for _ in range(5)]
    resp = gw.client.get(f"{BASE}/tasks", params={"page_size": 2147483647}, headers=gw.headers("alice"))
    assert resp.status_code == 200
    body = resp.json()
    assert [t["id"] for t in body["tasks"]] == ids[::-1][:3]
    assert body["next_page_token"]
    # Without page_size the default applies.
    resp = gw.client.get(f"{BASE}/tasks", headers=gw.headers("alice"))
    assert len(resp.json()["tasks"]) == 2


def test_list_tasks_huge_page_size_is_not_an_error(gw: Gateway) -> None:
    task_id = gw.create()
    resp = gw.client.get(f"{BASE}/tasks", params={"page_size": 2147483647}, headers=gw.headers("alice"))
    assert resp.status_code == 200
    assert [t["id"] for t in resp.json()["tasks"]] == [task_id]


def test_list_tasks_keyset_paging(gw: Gateway, validate_upstream: Validate) -> None:
    created = [gw.create() for _ in range(8)]
    newest_first = created[::-1]
    seen: list[str] = []
    pages = 0
    token: str | None = None
    while True:
        params: dict[str, Any] = {"page_size": 3}
        if token:
            params["page_token"] = token
        resp = gw.client.get(f"{BASE}/tasks", params=params, headers=gw.headers("alice"))
        assert resp.status_code == 200
        body = resp.json()
        validate_upstream("tesListTasksResponse", body, minimal=True)
        pages += 1
        assert len(body["tasks"]) <= 3
        seen += [t["id"] for t in body["tasks"]]
        if pages == 1:
            # A task created while paging must neither appear later nor shift what follows.
            late = gw.create()
        token = body.get("next_page_token")
        if not token:
            break
        assert pages < 10, "paging does not end"
    assert pages == 3
    assert seen == newest_first
    assert len(set(seen)) == len(seen)
    assert late not in seen

    # Starting over shows the new task first, then the same stable order.
    resp = gw.client.get(f"{BASE}/tasks", params={"page_size": 3}, headers=gw.headers("alice"))
    assert [t["id"] for t in resp.json()["tasks"]] == [late, *newest_first[:2]]


def test_list_tasks_exact_multiple_of_page_size(gw: Gateway) -> None:
    created = [gw.create() for _ in range(4)]
    first = gw.client.get(f"{BASE}/tasks", params={"page_size": 2}, headers=gw.headers("alice")).json()
    second = gw.client.get(
        f"{BASE}/tasks", params={"page_size": 2, "page_token": first["next_page_token"]}, headers=gw.headers("alice")
    ).json()
    assert [t["id"] for t in first["tasks"] + second["tasks"]] == created[::-1]
    if "next_page_token" in second:  # a trailing empty page is allowed, but must be empty and final
        third = gw.client.get(
            f"{BASE}/tasks", params={"page_size": 2, "page_token": second["next_page_token"]},
            headers=gw.headers("alice"),
        ).json()
        assert third == {"tasks": []}


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    ["garbage!", _b64("k1:-5"), _b64("k2:10"), _b64("k1:ten"), "%%%", "x" * 257],
    ids=["not-base64", "negative", "wrong-prefix", "not-a-number", "percent", "too-long"],
)
def test_list_tasks_rejects_bad_page_token(gw: Gateway, token: str) -> None:
    gw.create()
    resp = gw.client.get(f"{BASE}/tasks", params={"page_token": token}, headers=gw.headers("alice"))
    assert_error(resp, 400)


def test_list_tasks_rejects_unknown_query_parameter(gw: Gateway) -> None:
    resp = gw.client.get(f"{BASE}/tasks", params={"pagesize": 5}, headers=gw.headers("alice"))
    assert "pagesize" in assert_error(resp, 400)["msg"]


# --------------------------------------------------------------------------- CancelTask


def test_cancel_task_is_idempotent(gw: Gateway, validate_upstream: Validate) -> None:
    task_id = gw.create()
    for _ in range(2):
        resp = gw.client.post(f"{BASE}/tasks/{task_id}:cancel", headers=gw.headers("alice"))
        assert resp.status_code == 200
        validate_upstream("tesCancelTaskResponse", resp.json())
        assert resp.json() == {}
        state = gw.client.get(f"{BASE}/tasks/{task_id}", headers=gw.headers("alice")).json()["state"]
        assert state == "CANCELING"


def test_cancel_finished_task_changes_nothing(gw: Gateway) -> None:
    task_id = gw.create()
    run_to_completion(gw, task_id)
    resp = gw.client.post(f"{BASE}/tasks/{task_id}:cancel", headers=gw.headers("alice"))
    assert resp.status_code == 200
    assert gw.client.get(f"{BASE}/tasks/{task_id}", headers=gw.headers("alice")).json()["state"] == "COMPLETE"


def test_cancel_unknown_task_is_404(gw: Gateway) -> None:
    assert_error(gw.client.post(f"{BASE}/tasks/0123456789abcdef:cancel", headers=gw.headers("alice")), 404)


# --------------------------------------------------------------------------- refused submissions

Case = Callable[[Gateway], dict[str, Any]]


def _body(**fields: Any) -> Case:
    return lambda gw: {"json": gw.task_body(**fields)}


def _executor(**fields: Any) -> Case:
    return lambda gw: {"json": gw.task_body(executors=[{"image": "alpine", "command": ["true"], **fields}])}


def _input(**fields: Any) -> Case:
    return lambda gw: {"json": gw.task_body(inputs=[fields])}


def _output_url(make_url: Callable[[Gateway], str]) -> Case:
    return lambda gw: {"json": gw.task_body(outputs=[{"path": "/out/r.txt", "url": make_url(gw)}])}


def _without(key: str) -> Case:
    def case(gw: Gateway) -> dict[str, Any]:
        body = gw.task_body()
        del body[key]
        return {"json": body}

    return case


# (case, expected status, a word the explanation must contain)
REFUSED: dict[str, tuple[Case, int, str]] = {
    "malformed-json": (
        lambda gw: {"content": b'{"executors": [', "headers": {"Content-Type": "application/json"}}, 400, "",
    ),
    "body-is-a-list": (lambda gw: {"json": [gw.task_body()]}, 400, "object"),
    "empty-body": (lambda gw: {"content": b"", "headers": {"Content-Type": "application/json"}}, 400, ""),
    "wrong-content-type": (
        lambda gw: {"content": json.dumps(gw.task_body()).encode(), "headers": {"Content-Type": "text/plain"}},
        415, "",
    ),
    "missing-executors": (_without("executors"), 400, "executors"),
    "no-executors": (_body(executors=[]), 400, "executors"),
    "empty-command": (_executor(command=[]), 400, "command"),
    "missing-image": (lambda gw: {"json": gw.task_body(executors=[{"command": ["true"]}])}, 400, "image"),
    "blank-image": (_executor(image="   "), 400, "image"),
    "disallowed-image": (_executor(image="ubuntu"), 400, "ubuntu"),
    "disallowed-image-registry": (_executor(image="evil.example.org/library/alpine"), 400, "image"),
    "relative-workdir": (_executor(workdir="work"), 400, "absolute"),
    "relative-stdout": (_executor(stdout="stdout.txt"), 400, "absolute"),
    "dotdot-stdin": (_executor(stdin="/data/../../etc/shadow"), 400, ".."),
    "reserved-path": (_input(path="/proc/self/environ", content="x"), 400, "reserved"),
    "relative-input-path": (_input(path="data/in.txt", content="x"), 400, "absolute"),
    "dotdot-input-path": (_input(path="/data/../etc/passwd", content="x"), 400, ".."),
    "input-url-and-content": (
        lambda gw: {"json": gw.task_body(inputs=[{"path": "/in/x", "content": "x", "url": gw.inputs("p1", "x")}])},
        400, "exactly one",
    ),
    "duplicate-input-paths": (
        _body(inputs=[{"path": "/in/x", "content": "a"}, {"path": "/in/x", "content": "b"}]), 400, "/in/x",
    ),
    "relative-output-path": (
        lambda gw: {"json": gw.task_body(outputs=[{"path": "out.txt", "url": gw.released("p1", "o.txt")}])},
        400, "absolute",
    ),
    "dotdot-output-path": (
        lambda gw: {"json": gw.task_body(outputs=[{"path": "/out/../../x", "url": gw.released("p1", "o.txt")}])},
        400, "..",
    ),
    "output-missing-url": (_body(outputs=[{"path": "/out/r.txt"}]), 400, "url"),
    "output-other-project": (_output_url(lambda gw: gw.released("p2", "stolen.txt")), 400, "another project"),
    "output-dotdot-into-other-project": (
        _output_url(lambda gw: gw.released("p1", "../p2/stolen.txt")), 400, "output url",
    ),
    "output-encoded-dotdot": (
        # Written by hand: url_for would quote the '%' itself.
        _output_url(lambda gw: gw.released("p1", "") + "%2e%2e/p2/stolen.txt"), 400, "output url",
    ),
    "output-http": (_output_url(lambda gw: "http://example.org/upload/r.txt"), 400, "outside"),
    "output-file-elsewhere": (_output_url(lambda gw: "file:///tmp/r.txt"), 400, "outside"),
    "output-to-inputs-area": (_output_url(lambda gw: gw.inputs("p1", "r.txt")), 400, "outside"),
    "output-to-quarantine": (
        _output_url(lambda gw: gw.released("p1", "r.txt").replace("/released/", "/quarantine/")), 400, "outside",
    ),
    "output-area-root": (_output_url(lambda gw: gw.released("p1", "").removesuffix("p1/")), 400, "outside"),
    "output-wildcard-without-prefix": (
        lambda gw: {"json": gw.task_body(outputs=[{"path": "/out/*.txt", "url": gw.released("p1", "d")}])},
        400, "path_prefix",
    ),
    "input-other-project": (
        lambda gw: {"json": gw.task_body(inputs=[{"path": "/in/d.csv", "url": gw.inputs("p2", "d.csv")}])},
        400, "another project",
    ),
    "input-http": (
        lambda gw: {"json": gw.task_body(inputs=[{"path": "/in/d.csv", "url": "https://example.org/d.csv"}])},
        400, "outside",
    ),
    "input-file-elsewhere": (
        lambda gw: {"json": gw.task_body(inputs=[{"path": "/in/p", "url": "file:///etc/passwd"}])}, 400, "outside",
    ),
    "unknown-query-param": (lambda gw: {"json": gw.task_body(), "params": {"dry_run": "1"}}, 400, "dry_run"),
    "project-not-a-member": (_body(tags={"project": "p2"}), 400, "p2"),
    "negative-cpu": (_body(resources={"cpu_cores": 0}), 400, "cpu_cores"),
    "bad-env-name": (_executor(env={"A=B": "x"}), 400, "env"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_submission_changes_nothing(gw: Gateway, name: str) -> None:
    case, status, word = REFUSED[name]
    gw.create()  # one task stored before
    before = gw.all_task_ids()
    kwargs = case(gw)
    headers = {**gw.headers("alice"), **kwargs.pop("headers", {})}
    resp = gw.client.post(f"{BASE}/tasks", headers=headers, **kwargs)
    body = assert_error(resp, status)
    assert word in body["msg"], body["msg"]
    assert gw.all_task_ids() == before


def test_non_utf8_body_is_a_client_error(gw: Gateway) -> None:
    before = gw.count_tasks()
    resp = gw.client.post(
        f"{BASE}/tasks", content=b"\xff\xfe{\x00", headers={**gw.headers("alice"), "Content-Type": "application/json"}
    )
    assert_error(resp, 400)
    assert gw.count_tasks() == before


@pytest.mark.parametrize("who", ["alice", None])
@pytest.mark.parametrize("method,path", [("get", "/tasks/a%0Ab"), ("post", "/tasks/a%0A:cancel")])
def test_control_characters_in_the_path_are_a_client_error(
    gw: Gateway, who: str | None, method: str, path: str
) -> None:
    headers = gw.headers(who) if who else {}
    resp = getattr(gw.client, method)(f"{BASE}{path}", headers=headers)
    assert_error(resp)
