"""cwltool as the workflow engine: one child process per run, each step handed to the gateway's TES API.

cwltool runs with the run's work folder as its world: its temporary and step output directories and the
final output directory all lie in the run's folder of the `work` area, so every path a step mounts is
an object-store location a TES task can name. Instead of docker it calls the step command
(`gateway.engines.cwl_step`), which submits the step as a TES task with the run's credential and waits.

The process gets a minimal environment (no gateway settings, no cloud credentials) and its own session,
so stopping a run signals cwltool and every step command it started.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from gateway.adapters.engines.sandbox import bwrap_command
from gateway.domain.errors import BackendError, NotFound
from gateway.domain.runs import Run
from gateway.services.ports import EngineExit
from gateway.services.runs import ENGINE_DIR, LOG_FILES, OUTPUTS_DIR, PARAMS_FILE, WORKFLOW_DIR, run_key

STOP_GRACE_SECONDS = 10.0

# Engine parameters a submitter may set, as cwltool options (see domain.runs.ENGINE_FLAGS).
_SWITCHES = {"--timestamps": ["--timestamps"], "--debug": ["--debug"]}


def engine_options(parameters: dict[str, str]) -> list[str]:
    """cwltool options for a run's (already checked) engine parameters."""
    options: list[str] = []
    if parameters.get("--parallel", "true") == "true":
        options.append("--parallel")
    if parameters.get("--strict", "true") == "false":
        options.append("--non-strict")
    if parameters.get("--on-error") == "continue":
        options += ["--on-error", "continue"]
    for name, switch in _SWITCHES.items():
        if parameters.get(name) == "true":
            options += switch
    return options


class CwltoolEngine:
    name = "cwltool"

    def __init__(self, work_root: Path, api_url: str, default_image: str, worker_id: str,
                 python: str = sys.executable, sandbox: str = "bwrap", hidden: tuple[Path, ...] = (),
                 on_exit: Callable[[], None] = lambda: None) -> None:
        """`work_root` is the directory of the object store's `work` area; `api_url` the gateway's base URL.

        `sandbox` is "bwrap" (the engine sees only its run, see sandbox.py) or "none"; `hidden` are folders
        the sandboxed engine must not see (the gateway's data directory and store).
        """
        if sandbox not in ("bwrap", "none"):
            raise ValueError(f"wes_engine_sandbox: {sandbox!r} is not one of bwrap, none")
        self.sandbox = sandbox
        self.hidden = hidden
        # Called when an engine process ends, so the run is followed up at once rather than at the next poll.
        self.on_exit = on_exit
        self.work_root = work_root.resolve()
        self.store_root = self.work_root.parent
        self.api_url = api_url.rstrip("/")
        self.default_image = default_image
        self.worker_id = worker_id
        self.python = python
        self.version = package_version("cwltool")
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def _dir(self, run: Run, relative: str = "") -> Path:
        return self.work_root / run_key(run, relative)

    def command(self, run: Run, step_command: Path) -> list[str]:
        workflow = str(run.engine.get("workflow") or "")
        path, _, fragment = workflow.partition("#")
        target = str(self._dir(run, WORKFLOW_DIR + path)) + (f"#{fragment}" if fragment else "")
        return [
            self.python, "-m", "gateway.engines.cwltool_main",
            "--user-space-docker-cmd", str(step_command),
            "--default-container", self.default_image,
            "--tmpdir-prefix", str(self._dir(run, "tmp")) + "/",
            "--tmp-outdir-prefix", str(self._dir(run, "steps")) + "/",
            "--outdir", str(self._dir(run, OUTPUTS_DIR)),
            "--disable-color",
            *engine_options(run.request.workflow_engine_parameters),
            target,
            str(self._dir(run, PARAMS_FILE)),
        ]

    def start(self, run: Run, engine_token: str) -> dict[str, Any]:
        engine_dir = self._dir(run, ENGINE_DIR)
        for sub in (ENGINE_DIR, "tmp", "steps", OUTPUTS_DIR):
            self._dir(run, sub).mkdir(parents=True, exist_ok=True)
        step_command = engine_dir / "tre-step"
        step_command.write_text(f"#!/bin/sh\nexec {shlex.quote(self.python)} -m gateway.engines.cwl_step \"$@\"\n")
        step_command.chmod(0o700)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(engine_dir),
            "LANG": "C.UTF-8",
            "TRE_GATEWAY_ENGINE_URL": self.api_url,
            "TRE_GATEWAY_ENGINE_TOKEN": engine_token,
            "TRE_GATEWAY_ENGINE_RUN": run.id,
            "TRE_GATEWAY_ENGINE_PROJECT": run.project,
            "TRE_GATEWAY_ENGINE_STORE_ROOT": str(self.store_root),
        }
        command = self.command(run, step_command)
        if self.sandbox == "bwrap":
            areas = self.store_root
            readable = [areas / "inputs" / run.project, areas / "released" / run.project]
            command = bwrap_command(self._dir(run), readable, (*self.hidden, areas), engine_dir) + command
        try:
            with open(self._dir(run, LOG_FILES["stdout"]), "wb") as out, \
                    open(self._dir(run, LOG_FILES["stderr"]), "wb") as err:
                process = subprocess.Popen(
                    command, cwd=engine_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    start_new_session=True,
                )
        except OSError as exc:
            raise BackendError(f"cannot start cwltool: {exc}") from exc
        with self._lock:
            self._processes[run.id] = process
        threading.Thread(target=self._watch, args=(process,), name=f"engine-{run.id}", daemon=True).start()
        return {"worker": self.worker_id, "pid": process.pid, "cmd": self.command(run, step_command)}

    def _watch(self, process: subprocess.Popen[bytes]) -> None:
        process.wait()
        self.on_exit()

    def poll(self, run_id: str) -> EngineExit | None:
        with self._lock:
            process = self._processes.get(run_id)
        if process is None:
            raise NotFound(f"no engine for run {run_id} in this worker")
        code = process.poll()
        if code is None:
            return None
        with self._lock:
            self._processes.pop(run_id, None)
        return EngineExit(exit_code=code, crashed=code < 0)

    def stop(self, run_id: str) -> None:
        with self._lock:
            process = self._processes.pop(run_id, None)
        if process is None or process.poll() is not None:
            return
        # The whole session: cwltool and every step command, each of which cancels its TES task on SIGTERM.
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass

    def outputs(self, run: Run) -> dict[str, Any] | None:
        try:
            value = json.loads(self._dir(run, LOG_FILES["stdout"]).read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None
