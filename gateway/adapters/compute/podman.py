"""ComputeBackend on podman: each executor is one container, run in order on this host.

Sandbox (Five Safes "safe settings"): no network, read-only root filesystem, every capability
dropped, no-new-privileges, a non-root user, pid and resource limits. A static busybox from the
host is mounted read-only at /.tre and used as the entrypoint, so stdin/stdout/stderr redirection
works even for images without a shell (the way Tekton injects its entrypoint).

All state is in podman (containers labelled with the task id) and in the workspace directory, so
`poll` picks up where a crashed gateway left off.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.adapters.compute.workspace import Workspace, plan_mounts
from gateway.domain.errors import BackendError
from gateway.domain.task import ExecutorLog, system_log
from gateway.services.ports import Job, JobPhase, JobStatus, ObjectStore

log = logging.getLogger(__name__)

LABEL_TASK = "tre.task"
LABEL_EXECUTOR = "tre.executor"
LABEL_PROJECT = "tre.project"
# Several gateways may share one host (and podman): each only ever sees and removes its own containers.
LABEL_INSTANCE = "tre.instance"
HELPER_DIR = "/.tre"

# Runs as `busybox sh -c WRAPPER sh STDIN STDOUT STDERR command...`: redirect, then become the command.
WRAPPER = (
    'i="$1"; o="$2"; e="$3"; shift 3; '
    '[ -n "$i" ] && exec 0<"$i"; [ -n "$o" ] && exec 1>"$o"; [ -n "$e" ] && exec 2>"$e"; '
    'exec "$@"'
)


class PodmanBackend:
    name = "podman"

    def __init__(
        self,
        store: ObjectStore,
        workspace_root: Path,
        *,
        containers_conf: Path | None = None,
        helper_binary: Path = Path("/bin/busybox"),
        uid: int = 10001,
        gid: int = 10001,
        pids_limit: int = 1024,
        command_timeout: float = 120.0,
        instance: str = "default",
    ) -> None:
        if shutil.which("podman") is None:
            raise BackendError("podman is not installed (run the set-up script or choose another backend)")
        if not helper_binary.is_file():
            raise BackendError(f"helper binary {helper_binary} not found (install busybox-static)")
        self.store = store
        self.workspace_root = workspace_root
        self.workspace_root.mkdir(parents=True, exist_ok=True)
        self.helper_binary = helper_binary
        self.uid, self.gid = uid, gid
        self.pids_limit = pids_limit
        self.command_timeout = command_timeout
        self.instance = instance
        self.env = dict(os.environ)
        if containers_conf is not None:
            self.env["CONTAINERS_CONF"] = str(containers_conf)

    # ------------------------------------------------------------ podman CLI

    def _podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                ["podman", *args],
                capture_output=True,
                text=True,
                env=self.env,
                timeout=self.command_timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise BackendError(f"podman {args[0]} timed out") from exc
        if check and proc.returncode != 0:
            raise BackendError(f"podman {args[0]} failed: {proc.stderr.strip()[-500:]}")
        return proc

    def _containers(self, task_id: str | None = None) -> list[dict[str, Any]]:
        selector = f"label={LABEL_TASK}={task_id}" if task_id else f"label={LABEL_TASK}"
        proc = self._podman(
            "ps", "-a", "--filter", selector, "--filter", f"label={LABEL_INSTANCE}={self.instance}", "--format", "json"
        )
        return json.loads(proc.stdout or "[]")

    # ------------------------------------------------------------ port

    def _workspace(self, task_id: str) -> Workspace:
        return Workspace(self.workspace_root / task_id, self.uid, self.gid)

    def start(self, job: Job) -> None:
        workspace = self._workspace(job.task_id)
        workspace.prepare(job, self.store)
        existing = {int(c["Labels"][LABEL_EXECUTOR]) for c in self._containers(job.task_id)}
        if 0 not in existing:
            self._run_executor(job, 0, workspace)

    def _container_name(self, task_id: str, index: int) -> str:
        return f"tre-{task_id}-{index}"

    def _run_executor(self, job: Job, index: int, workspace: Workspace) -> None:
        ex = job.executors[index]
        mounts = plan_mounts(job)
        args = [
            "run", "--detach", "--pull=never",
            "--name", self._container_name(job.task_id, index),
            "--label", f"{LABEL_TASK}={job.task_id}",
            "--label", f"{LABEL_EXECUTOR}={index}",
            "--label", f"{LABEL_PROJECT}={job.project}",
            "--label", f"{LABEL_INSTANCE}={self.instance}",
            "--network=none", "--read-only", "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            f"--user={self.uid}:{self.gid}",
            f"--pids-limit={self.pids_limit}",
            "--log-driver=k8s-file",
        ]
        res = job.resources
        if res is not None and res.cpu_cores:
            args.append(f"--cpus={res.cpu_cores}")
        if res is not None and res.ram_gb:
            args.append(f"--memory={max(6, int(res.ram_gb * 1024))}m")
        if ex.workdir:
            args.append(f"--workdir={ex.workdir}")
        if ex.env:
            env_file = workspace.base / f"env-{index}"
            env_file.write_text("".join(f"{k}={v.replace(chr(10), ' ')}\n" for k, v in ex.env.items()))
            args.append(f"--env-file={env_file}")
        for m in mounts:
            host = workspace.host_path(m.container_path)
            host.mkdir(parents=True, exist_ok=True)
            args += ["--volume", f"{host}:{m.container_path}:{'ro' if m.read_only else 'rw'},z"]
        args += ["--volume", f"{self.helper_binary}:{HELPER_DIR}/busybox:ro"]
        args += ["--entrypoint", f"{HELPER_DIR}/busybox", ex.image]
        args += ["sh", "-c", WRAPPER, "sh", ex.stdin or "", ex.stdout or "", ex.stderr or "", *ex.command]
        proc = self._podman(*args, check=False)
        if proc.returncode != 0:
            err = proc.stderr.strip()
            if "already in use" in err:
                return  # created by an earlier attempt that crashed before recording it
            if "image not known" in err or "no such image" in err.lower() or "unable to find" in err.lower():
                raise BackendError(f"image {ex.image} is not available on this host")
            raise BackendError(f"podman run failed: {err[-500:]}")

    def poll(self, job: Job) -> JobStatus:
        workspace = self._workspace(job.task_id)
        by_index = {int(c["Labels"][LABEL_EXECUTOR]): c for c in self._containers(job.task_id)}
        if not by_index and not (workspace.base / ".staged").exists():
            return JobStatus(JobPhase.MISSING)
        logs: list[ExecutorLog] = []
        for index, ex in enumerate(job.executors):
            container = by_index.get(index)
            if container is None:
                self._run_executor(job, index, workspace)
                return JobStatus(JobPhase.RUNNING, tuple(logs), started=True)
            if container["State"] not in ("exited", "stopped"):
                logs.append(ExecutorLog(exit_code=0, start_time=_time(container.get("StartedAt"))))
                return JobStatus(JobPhase.RUNNING, tuple(logs), started=True)
            record = self._finished_log(job, index, container, workspace)
            logs.append(record["log"])
            if record["log"].exit_code != 0 and not ex.ignore_error:
                reason = record.get("reason") or system_log(
                    "executor_failed",
                    f"executor {index} exited with code {record['log'].exit_code}",
                    executor=index,
                    exit_code=record["log"].exit_code,
                )
                return JobStatus(JobPhase.FAILED, tuple(logs), reason=reason, started=True)
        try:
            outputs = workspace.collect(job.task_id, job.outputs, self.store)
        except BackendError as exc:
            return JobStatus(
                JobPhase.SYSTEM_ERROR, tuple(logs), reason=system_log("output_missing", exc.msg), started=True
            )
        return JobStatus(JobPhase.SUCCEEDED, tuple(logs), outputs=outputs, started=True)

    def _finished_log(self, job: Job, index: int, container: dict[str, Any], workspace: Workspace) -> dict[str, Any]:
        """Exit code, times and log tails of a finished executor, read once and kept in the workspace."""
        cache = workspace.base / "logs" / f"{index}.json"
        if cache.exists():
            data = json.loads(cache.read_text())
            return {"log": ExecutorLog(**data["log"]), "reason": data.get("reason")}
        ex = job.executors[index]
        name = self._container_name(job.task_id, index)
        inspect = json.loads(self._podman("inspect", name).stdout)[0]
        state = inspect["State"]
        exit_code = int(state.get("ExitCode", -1))
        reason = None
        if state.get("OOMKilled"):
            reason = system_log("oom_killed", f"executor {index} exceeded its memory limit", executor=index)
        streams = self._podman("logs", name, check=False)
        stdout = workspace.tail(ex.stdout) if ex.stdout else streams.stdout[-10240:]
        stderr = workspace.tail(ex.stderr) if ex.stderr else streams.stderr[-10240:]
        entry = ExecutorLog(
            exit_code=exit_code,
            start_time=_iso(state.get("StartedAt")),
            end_time=_iso(state.get("FinishedAt")),
            stdout=stdout,
            stderr=stderr,
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"log": entry.__dict__, "reason": reason}))
        return {"log": entry, "reason": reason}

    def cancel(self, task_id: str) -> None:
        names = [c["Names"][0] for c in self._containers(task_id)]
        if names:
            self._podman("rm", "--force", "--time=0", *names, check=False)
            if self._containers(task_id):
                raise BackendError(f"containers of task {task_id} could not be removed")

    def cleanup(self, task_id: str) -> None:
        self.cancel(task_id)
        self._workspace(task_id).remove()

    def known_task_ids(self) -> set[str]:
        ids = {c["Labels"][LABEL_TASK] for c in self._containers()}
        ids |= {p.name for p in self.workspace_root.iterdir() if p.is_dir()}
        return ids


def _time(value: Any) -> str | None:
    if isinstance(value, (int, float)) and value > 0:
        return datetime.fromtimestamp(value, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return None


def _iso(value: str | None) -> str | None:
    """podman's inspect times ('2026-11-28T07:10:00.123456789Z' or with offset) in RFC 3339, ms precision."""
    if not value or value.startswith("0001-"):
        return None
    text = value.strip()
    try:
        head, _, rest = text.partition(".")
        frac = ""
        tz = "Z"
        if rest:
            digits = "".join(ch for ch in rest if ch.isdigit())
            frac = "." + digits[:3].ljust(3, "0")
            tail = rest[len(digits):].strip()
            if tail and tail not in ("Z",):
                tz = tail.split(" ")[0]
        parsed = datetime.fromisoformat(head + frac + ("+00:00" if tz == "Z" else tz))
        return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except ValueError:
        return None
