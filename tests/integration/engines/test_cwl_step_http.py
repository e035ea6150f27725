"""The CWL step command as a process against a TES server: submission, polling, exit codes, cancellation.

The last tests put cwltool in front of it: a two-step workflow whose steps the fake server "runs"
(echo and cat, delivering stdout into the output directory as the gateway would), and a failing step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.integration.engines.fake_tes import TOKEN, FakeTes

REPO = Path(__file__).resolve().parents[3]
CWLTOOL = Path(sys.executable).with_name("cwltool")


@pytest.fixture
def fake():
    server = FakeTes().start()
    yield server
    server.stop()


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "store"
    for d in ("work/p1/runs/r1/out/o1", "work/p1/runs/r1/tmp/t1", "inputs/p1"):
        (root / d).mkdir(parents=True)
    (root / "inputs/p1/a.txt").write_text("a\n")
    return root


def shim_env(fake: FakeTes, root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRE_GATEWAY_ENGINE_")}
    env.update(
        PYTHONPATH=str(REPO),
        TRE_GATEWAY_ENGINE_URL=fake.url,
        TRE_GATEWAY_ENGINE_TOKEN=TOKEN,
        TRE_GATEWAY_ENGINE_RUN="r1",
        TRE_GATEWAY_ENGINE_PROJECT="p1",
        TRE_GATEWAY_ENGINE_STORE_ROOT=str(root),
    )
    env.update(extra)
    return env


def step_args(root: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "gateway.engines.cwl_step", "run", *extra,
        f"--volume={root / 'work' / 'p1/runs/r1/out/o1'}:/OUT", f"--volume={root / 'work' / 'p1/runs/r1/tmp/t1'}:/tmp",
        f"--volume={root}/inputs/p1/a.txt:/var/lib/cwl/stg1/a.txt", "--workdir=/OUT", "--rm",
        "--env=TMPDIR=/tmp", "--env=HOME=/OUT", "alpine", "cat", "/var/lib/cwl/stg1/a.txt",
    ]  # fmt: skip


def run_step(fake: FakeTes, root: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        step_args(root, *args), env=shim_env(fake, root, **extra), cwd=root, capture_output=True, text=True,
        timeout=30,
    )


def test_complete_exits_0_and_passes_the_logs_on(fake, store, tmp_path):
    fake.logs = [{"exit_code": 0, "stdout": "a\n", "stderr": "a warning\n"}]
    done = run_step(fake, store, f"--cidfile={tmp_path}/step.cid")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "a\n"  # stdout was a pipe, not a file in the output directory
    assert done.stderr == "a warning\n"
    (task,) = fake.tasks.values()
    assert task.body["name"] == "cat (r1)"
    assert task.body["tags"] == {"project": "p1", "wes_run": "r1"}
    assert task.body["executors"][0]["command"] == ["cat", "/var/lib/cwl/stg1/a.txt"]
    assert task.body["outputs"][0]["path"] == "/OUT"
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in fake.requests)
    paths = [path for _, path, _ in fake.requests]
    assert paths[0] == "/ga4gh/tes/v1/tasks"
    assert paths[1:-1] == ["/ga4gh/tes/v1/tasks/task-1?view=MINIMAL"] * 3
    assert paths[-1] == "/ga4gh/tes/v1/tasks/task-1?view=FULL"
    assert fake.cancels == []
    assert (tmp_path / "step.cid").read_text() == "task-1"


def test_executor_error_exits_with_the_executor_code(fake, store):
    fake.script = ["RUNNING", "EXECUTOR_ERROR"]
    fake.logs = [{"exit_code": 3, "stderr": "boom: no such thing"}]
    done = run_step(fake, store)
    assert done.returncode == 3
    assert "boom: no such thing" in done.stderr and "EXECUTOR_ERROR (exit code 3)" in done.stderr


def test_system_error_exits_1_with_the_reason(fake, store):
    fake.script = ["INITIALIZING", "SYSTEM_ERROR"]
    fake.logs = []
    fake.system_logs = [json.dumps({"reason": "backend_error", "detail": "image alpine is not available"})]
    done = run_step(fake, store)
    assert done.returncode == 1
    assert "SYSTEM_ERROR" in done.stderr and "backend_error: image alpine is not available" in done.stderr


def test_refused_submission_exits_125_with_the_gateways_message(fake, store):
    msg = "image 'alpine' is not allowed by the TRE's image policy"
    fake.submit_answers = [(400, {"msg": msg, "status_code": 400})]
    done = run_step(fake, store)
    assert done.returncode == 125
    assert msg in done.stderr
    assert fake.tasks == {}


def test_transient_errors_are_retried(fake, store):
    fake.submit_answers = [(503, {"msg": "busy", "status_code": 503})] * 2
    done = run_step(fake, store)
    assert done.returncode == 0, done.stderr
    assert [p for m, p, _ in fake.requests if m == "POST"] == ["/ga4gh/tes/v1/tasks"] * 3


def test_an_unreachable_gateway_exits_1(fake, store):
    url = fake.url
    fake.stop()
    done = subprocess.run(
        step_args(store),
        env=shim_env(fake, store, TRE_GATEWAY_ENGINE_URL=url, TRE_GATEWAY_ENGINE_RETRY_SECONDS="0.5"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "did not answer POST /tasks" in done.stderr
    fake.start()  # the fixture stops it again


def test_missing_environment_exits_125(fake, store):
    env = shim_env(fake, store)
    del env["TRE_GATEWAY_ENGINE_TOKEN"]
    done = subprocess.run(step_args(store), env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 125
    assert "TRE_GATEWAY_ENGINE_TOKEN" in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_running_cancels_the_task(fake, store, signum):
    fake.script = ["RUNNING"]
    proc = subprocess.Popen(
        step_args(store), env=shim_env(fake, store), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert fake.polled.wait(10), "the command never polled"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 143
    assert fake.cancels == ["task-1"]
    assert "task task-1 cancelled" in err


def test_the_task_is_cancelled_when_cwltool_goes_away(fake, store):
    """cwltool never signals its steps (it waits, then SIGKILLs): the command notices being orphaned."""
    fake.script = ["RUNNING"]
    command = " ".join(f"'{a}'" for a in step_args(store))
    parent = subprocess.Popen(
        ["sh", "-c", f"{command} >/dev/null 2>&1 & sleep 30"], env=shim_env(fake, store), start_new_session=True
    )
    try:
        assert fake.polled.wait(10), "the command never polled"
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while not fake.cancels and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        parent.kill()
    assert fake.cancels == ["task-1"]


def test_kill_cancels_tasks(fake, store):
    done = subprocess.run(
        [sys.executable, "-m", "gateway.engines.cwl_step", "kill", "task-7"],
        env=shim_env(fake, store), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout == "task-7\n"
    assert fake.cancels == ["task-7"]


# ------------------------------------------------------------------------------- with cwltool


def _host(url: str) -> str:
    assert url.startswith("file://")
    return unquote(url[len("file://"):])


def execute(task: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Run `echo` and `cat` "inside" the task: read inputs by URL, deliver stdout through the output."""
    ex = task["executors"][0]
    command = ex["command"]

    def reading(path: str) -> str:
        for inp in task.get("inputs", []):
            if inp["type"] == "FILE" and inp["path"] == path:
                return Path(_host(inp["url"])).read_text()
            if inp["type"] == "DIRECTORY" and path.startswith(inp["path"] + "/"):
                return Path(_host(inp["url"]), path[len(inp["path"]) + 1:]).read_text()
        raise FileNotFoundError(path)

    if command[0] == "echo":
        text = " ".join(command[1:]) + "\n"
    elif command[0] == "cat":
        text = "".join(reading(p) for p in command[1:]) if len(command) > 1 else reading(ex["stdin"])
    else:
        return "EXECUTOR_ERROR", [{"exit_code": 127, "stderr": f"{command[0]}: not found\n"}]
    if "stdout" not in ex:
        return "COMPLETE", [{"exit_code": 0, "stdout": text}]
    (out,) = (o for o in task["outputs"] if ex["stdout"].startswith(o["path"] + "/"))
    target = Path(_host(out["url"]), ex["stdout"][len(out["path"]) + 1:])
    partial = target.with_name(".part-" + target.name)
    partial.write_text(text)
    os.replace(partial, target)  # as the object store delivers: a new file, never the one cwltool holds open
    return "COMPLETE", [{"exit_code": 0, "stdout": text}]


WORKFLOW = {
    "say.cwl": """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  msg: {type: string, inputBinding: {position: 1}}
stdout: said.txt
outputs:
  out: {type: stdout}
""",
    "copy.cwl": """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: cat
inputs:
  infile: File
stdin: $(inputs.infile.path)
stdout: copy.txt
outputs:
  out: {type: stdout}
""",
    "wf.cwl": """\
cwlVersion: v1.2
class: Workflow
inputs:
  msg: string
outputs:
  copied: {type: File, outputSource: copy/out}
steps:
  say: {run: say.cwl, in: {msg: msg}, out: [out]}
  copy: {run: copy.cwl, in: {infile: say/out}, out: [out]}
""",
    "fail.cwl": """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [frobnicate, --hard]
inputs: []
outputs: []
""",
}


@pytest.mark.skipif(not CWLTOOL.exists(), reason="cwltool is not installed")
def test_cwltool_runs_its_steps_as_tasks(fake, tmp_path):
    fake.execute = execute
    root = tmp_path / "store"
    run_dir = root / "work" / "p1" / "runs" / "r1"
    for d in (run_dir / "tmp", run_dir / "out", tmp_path / "cwl"):
        d.mkdir(parents=True)
    for name, text in WORKFLOW.items():
        (tmp_path / "cwl" / name).write_text(text)
    shim = tmp_path / "docker-shim"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gateway.engines.cwl_step "$@"\n')
    shim.chmod(0o755)

    def cwltool(outdir: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                str(CWLTOOL), "--quiet", "--user-space-docker-cmd", str(shim), "--default-container", "alpine",
                "--tmpdir-prefix", f"{run_dir}/tmp/", "--tmp-outdir-prefix", f"{run_dir}/out/",
                "--outdir", str(run_dir / outdir), *args,
            ],
            cwd=tmp_path / "cwl", env=shim_env(fake, root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    good, bad = cwltool("final", "wf.cwl", "--msg", "hello world"), cwltool("failed", "fail.cwl")
    out, err = good.communicate(timeout=60)
    _, bad_err = bad.communicate(timeout=60)

    assert good.returncode == 0, err
    copied = json.loads(out)["copied"]
    assert Path(copied["path"]).read_text() == "hello world\n"
    assert Path(copied["path"]).parent == run_dir / "final"
    bodies = {t.body["executors"][0]["command"][0]: t.body for t in fake.tasks.values()}
    assert set(bodies) == {"echo", "cat", "frobnicate"}
    cat = bodies["cat"]["executors"][0]
    assert cat["stdin"].startswith("/var/lib/cwl/stg") and cat["stdout"] == cat["workdir"] + "/copy.txt"
    assert all(b["tags"] == {"project": "p1", "wes_run": "r1"} for b in bodies.values())

    assert bad.returncode == 1
    assert "frobnicate: not found" in bad_err and "EXECUTOR_ERROR (exit code 127)" in bad_err
    assert "permanentFail" in bad_err
