"""End to end with the real GA4GH py-tes client against a running gateway on podman."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import tes

from tests.e2e.conftest import containers_of


def wait_state(client: tes.HTTPClient, task_id: str, states: set[str], timeout: float = 60) -> tes.Task:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = client.get_task(task_id, view="MINIMAL")
        if task.state in states:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} stayed {task.state}")


def test_two_executor_task_with_content_input_and_released_output(gateway):
    client = tes.HTTPClient(gateway.base_url, token=gateway.token())
    task = tes.Task(
        name="py-tes-e2e",
        tags={"study": "s1"},
        inputs=[tes.Input(path="/in/words.txt", content="alpha\nbeta\ngamma\n")],
        outputs=[tes.Output(path="/out/count.txt", url=gateway.released_url("p1", "count.txt"))],
        executors=[
            tes.Executor(image="alpine", command=["sh", "-c", "sort -r /in/words.txt > /scratch/sorted.txt"]),
            tes.Executor(image="busybox:1.36", stdout="/out/count.txt",
                         command=["sh", "-c", "head -n1 /scratch/sorted.txt; wc -l < /scratch/sorted.txt"]),
        ],
        volumes=["/scratch"],
    )
    task_id = client.create_task(task)
    done = client.wait(task_id, timeout=60)
    assert done.state == "COMPLETE"
    full = client.get_task(task_id, view="FULL")
    log = full.logs[0]
    assert [e.exit_code for e in log.logs] == [0, 0]
    assert log.logs[1].stdout == "gamma\n3\n"
    (output,) = log.outputs
    assert output.url == gateway.released_url("p1", "count.txt")
    assert output.size_bytes == len("gamma\n3\n")
    released = Path(output.url[len("file://"):])
    assert released.read_text() == "gamma\n3\n"
    assert full.inputs[0].content == "alpha\nbeta\ngamma\n"
    basic = client.get_task(task_id, view="BASIC")
    assert basic.inputs[0].content is None
    assert basic.logs[0].logs[1].stdout is None
    assert not containers_of(task_id), "containers of a finished task must be removed"


def test_list_with_every_view_and_filter(gateway):
    token = gateway.token()
    client = tes.HTTPClient(gateway.base_url, token=token)
    ok = client.create_task(tes.Task(name="list-a", tags={"batch": "b1"},
                                     executors=[tes.Executor(image="alpine", command=["true"])]))
    bad = client.create_task(tes.Task(name="list-b", tags={"batch": "b2"},
                                      executors=[tes.Executor(image="alpine", command=["sh", "-c", "exit 4"])]))
    assert client.wait(ok, timeout=60).state == "COMPLETE"
    assert client.wait(bad, timeout=60).state == "EXECUTOR_ERROR"
    for view in ("MINIMAL", "BASIC", "FULL"):
        listed = client.list_tasks(view=view)
        ids = [t.id for t in listed.tasks]
        assert ids[:2] == [bad, ok]  # newest first
        if view == "MINIMAL":
            assert listed.tasks[0].executors is None
        else:
            assert listed.tasks[0].executors[0].command == ["sh", "-c", "exit 4"]
    # py-tes has no filter arguments: the filters are exercised over plain HTTP with the same token.
    def ids(**params):
        response = httpx.get(gateway.base_url + "/ga4gh/tes/v1/tasks", params=params,
                             headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["tasks"]]

    assert ids(name_prefix="list-") == [bad, ok]
    assert ids(state="EXECUTOR_ERROR") == [bad]
    assert ids(tag_key="batch", tag_value="b1") == [ok]
    assert ids(tag_key="batch") == [bad, ok]
    assert ids(tag_key=["batch", "project"], tag_value=["b2", "p1"]) == [bad]
    page = client.list_tasks(page_size=1)
    assert [t.id for t in page.tasks] == [bad]
    assert [t.id for t in client.list_tasks(page_size=1, page_token=page.next_page_token).tasks] == [ok]
    failed = client.get_task(bad, view="FULL")
    assert failed.logs[0].logs[0].exit_code == 4
    assert any('"executor_failed"' in line for line in failed.logs[0].system_logs)


def test_cancel_stops_the_container(gateway):
    client = tes.HTTPClient(gateway.base_url, token=gateway.token())
    task_id = client.create_task(tes.Task(executors=[tes.Executor(image="alpine", command=["sleep", "300"])]))
    wait_state(client, task_id, {"RUNNING"})
    deadline = time.monotonic() + 10
    while not any(c["State"] == "running" for c in containers_of(task_id)):
        assert time.monotonic() < deadline, "the executor container never started"
        time.sleep(0.1)
    client.cancel_task(task_id)
    client.cancel_task(task_id)  # idempotent
    assert wait_state(client, task_id, {"CANCELED"}, timeout=30).state == "CANCELED"
    assert containers_of(task_id) == []


def test_other_projects_tasks_are_invisible(gateway):
    alice = tes.HTTPClient(gateway.base_url, token=gateway.token("alice", "p1"))
    bob = tes.HTTPClient(gateway.base_url, token=gateway.token("bob", "p2"))
    task_id = alice.create_task(tes.Task(executors=[tes.Executor(image="alpine", command=["true"])]))
    assert task_id not in [t.id for t in bob.list_tasks().tasks]
    try:
        bob.get_task(task_id)
    except Exception as exc:  # py-tes raises requests' HTTPError
        assert "404" in str(exc)
    else:
        raise AssertionError("bob could read alice's task")
