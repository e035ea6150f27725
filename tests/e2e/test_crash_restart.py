"""kill -9 of the API and the worker mid-flight: after a restart no task is lost or stuck, no container orphaned."""

from __future__ import annotations

import subprocess
import time

import httpx

from tests.e2e.conftest import IMAGE, containers_of


def test_tasks_in_every_state_survive_kill9_and_restart(gateway_factory):
    gw = gateway_factory(egress_review="human", dispatcher_lease_seconds="2")
    gw.start(dispatcher=False)
    gw.start_worker()
    headers = {"Authorization": f"Bearer {gw.token()}"}
    api = gw.base_url + "/ga4gh/tes/v1"

    def submit(command, **extra):
        body = {"executors": [{"image": "alpine", "command": command}], **extra}
        response = httpx.post(api + "/tasks", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()["id"]

    def state(task_id):
        return httpx.get(f"{api}/tasks/{task_id}", headers=headers).json()["state"]

    def wait_for(task_id, wanted, timeout=40):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if state(task_id) in wanted:
                return state(task_id)
            time.sleep(0.2)
        raise AssertionError(f"{task_id} is {state(task_id)}, expected one of {wanted}")

    complete = submit(["true"])
    failed = submit(["sh", "-c", "exit 2"])
    paused = submit(["sh", "-c", "echo 42 > /out/answer.txt"],
                    outputs=[{"path": "/out/answer.txt", "url": gw.released_url("p1", "answer.txt")}])
    system_error = submit(["true"], outputs=[{"path": "/out/none.txt", "url": gw.released_url("p1", "none.txt")}])
    canceled = submit(["sleep", "300"])
    running = submit(["sh", "-c", "sleep 4; echo survived"])
    to_cancel = submit(["sleep", "300"])
    wait_for(complete, {"COMPLETE"})
    wait_for(failed, {"EXECUTOR_ERROR"})
    wait_for(paused, {"PAUSED"})
    wait_for(system_error, {"SYSTEM_ERROR"})
    wait_for(canceled, {"RUNNING"})
    httpx.post(f"{api}/tasks/{canceled}:cancel", headers=headers)
    wait_for(canceled, {"CANCELED"})
    wait_for(running, {"RUNNING"})
    wait_for(to_cancel, {"RUNNING"})

    gw.kill9("worker")
    queued = submit(["true"])
    httpx.post(f"{api}/tasks/{to_cancel}:cancel", headers=headers)
    # A stray container labelled with a finished task, as a crash between start and record could leave.
    subprocess.run(["podman", "run", "-d", "--pull=never", "--network=none", "--label", f"tre.task={complete}",
                    "--label", f"tre.instance={gw.instance}", IMAGE, "sleep", "300"], check=True, capture_output=True)
    before = {t: state(t) for t in (complete, failed, paused, system_error, canceled, running, to_cancel, queued)}
    assert before == {
        complete: "COMPLETE", failed: "EXECUTOR_ERROR", paused: "PAUSED", system_error: "SYSTEM_ERROR",
        canceled: "CANCELED", running: "RUNNING", to_cancel: "CANCELING", queued: "QUEUED",
    }
    gw.kill9("serve")

    gw.start(dispatcher=True)
    assert wait_for(queued, {"COMPLETE"}) == "COMPLETE"
    assert wait_for(to_cancel, {"CANCELED"}) == "CANCELED"
    assert wait_for(running, {"COMPLETE"}) == "COMPLETE"
    full = httpx.get(f"{api}/tasks/{running}", params={"view": "FULL"}, headers=headers).json()
    assert full["logs"][0]["logs"][0]["stdout"] == "survived\n"
    for task_id, expected in before.items():
        if expected not in ("RUNNING", "CANCELING", "QUEUED"):
            assert state(task_id) == expected, task_id
    listed = httpx.get(api + "/tasks", params={"page_size": 100}, headers=headers).json()["tasks"]
    assert {t["id"] for t in listed} == set(before)
    deadline = time.monotonic() + 10
    while containers_of(instance=gw.instance) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert containers_of(instance=gw.instance) == [], "orphaned containers survived the restart"
