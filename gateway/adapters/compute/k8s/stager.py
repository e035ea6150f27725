"""Staging for Kubernetes tasks: the code stager pods run, and the plan and result they exchange with the backend.

The worker writes the task's plan (the Job as JSON) to the object store at `work/<task>/k8s/plan.json`. A stager
pod mounts the task's volume at /tre/volume and runs

    python -m gateway.adapters.compute.k8s.stager stage-in  --task ID --volume /tre/volume
    python -m gateway.adapters.compute.k8s.stager stage-out --task ID --volume /tre/volume

`stage-in` fetches the inputs into `<volume>/ws/root/<container path>` and creates every directory the
executor pod mounts; `stage-out` copies the outputs into quarantine (`<task>/<output index>/...`) and writes
the list of what it copied to `work/<task>/k8s/collected.json`, which the backend reads. Both use the
project's Workspace, so path checks (nothing resolving outside the task's tree, no symlinks followed out)
are the same as with the podman backend. A short message for the worker goes to the container's
termination message; credentials are read from files and never printed.

The object store comes from `TRE_GATEWAY_OBJECT_STORE` and `TRE_GATEWAY_S3_*` variables (non-secret values;
the credential *file paths* point into a mounted Secret).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gateway.adapters.compute.k8s.manifests import TERMINATION_LOG, WORKSPACE_SUBDIR
from gateway.adapters.compute.workspace import Workspace, plan_mounts
from gateway.domain.errors import BackendError, DomainError, NotFound
from gateway.domain.task import Executor, FileType, Output, system_log
from gateway.services.ports import Area, CollectedOutput, Job, Location, ObjectStore, StagedInput, StoredObject

log = logging.getLogger(__name__)

PLAN_VERSION = 1


def plan_key(task_id: str) -> str:
    return f"{task_id}/k8s/plan.json"


def collected_key(task_id: str) -> str:
    return f"{task_id}/k8s/collected.json"


def work_prefix(task_id: str) -> str:
    return f"{task_id}/k8s/"


# ---------------------------------------------------------------- plan


def job_to_plan(job: Job, uid: int, gid: int) -> dict[str, Any]:
    return {
        "version": PLAN_VERSION,
        "task_id": job.task_id,
        "project": job.project,
        "uid": uid,
        "gid": gid,
        "executors": [
            {"image": e.image, "command": list(e.command), "workdir": e.workdir, "stdin": e.stdin,
             "stdout": e.stdout, "stderr": e.stderr, "env": dict(e.env), "ignore_error": e.ignore_error}
            for e in job.executors
        ],
        "inputs": [
            {"path": i.path, "type": i.type.value, "content": i.content,
             "source": {"area": i.source.area.value, "key": i.source.key} if i.source else None}
            for i in job.inputs
        ],
        "outputs": [
            {"path": o.path, "url": o.url, "type": o.type.value, "path_prefix": o.path_prefix}
            for o in job.outputs
        ],
        "volumes": list(job.volumes),
    }


def plan_to_job(plan: Mapping[str, Any]) -> tuple[Job, int, int]:
    if plan.get("version") != PLAN_VERSION:
        raise BackendError(f"staging plan version {plan.get('version')!r} is not supported")
    job = Job(
        task_id=str(plan["task_id"]),
        project=str(plan["project"]),
        executors=tuple(
            Executor(image=e["image"], command=tuple(e["command"]), workdir=e.get("workdir"), stdin=e.get("stdin"),
                     stdout=e.get("stdout"), stderr=e.get("stderr"), env=dict(e.get("env") or {}),
                     ignore_error=bool(e.get("ignore_error")))
            for e in plan["executors"]
        ),
        inputs=tuple(
            StagedInput(path=i["path"], type=FileType(i["type"]), content=i.get("content"),
                        source=Location(Area(i["source"]["area"]), i["source"]["key"]) if i.get("source") else None)
            for i in plan["inputs"]
        ),
        outputs=tuple(
            Output(path=o["path"], url=o["url"], type=FileType(o["type"]), path_prefix=o.get("path_prefix"))
            for o in plan["outputs"]
        ),
        volumes=tuple(plan.get("volumes") or ()),
    )
    return job, int(plan["uid"]), int(plan["gid"])


def write_plan(store: ObjectStore, job: Job, uid: int, gid: int) -> None:
    data = json.dumps(job_to_plan(job, uid, gid), sort_keys=True).encode()
    store.put_bytes(Area.WORK, plan_key(job.task_id), data)


def read_plan(store: ObjectStore, task_id: str) -> tuple[Job, int, int]:
    try:
        with store.open(Area.WORK, plan_key(task_id)) as stream:
            plan = json.loads(stream.read())
    except NotFound:
        raise BackendError(f"no staging plan for task {task_id}") from None
    except ValueError:
        raise BackendError(f"the staging plan of task {task_id} is not valid JSON") from None
    job, uid, gid = plan_to_job(plan)
    if job.task_id != task_id:
        raise BackendError("the staging plan names another task")
    return job, uid, gid


# ---------------------------------------------------------------- stages


@dataclass(frozen=True)
class StageResult:
    exit_code: int
    message: str  # for the termination message: short, no secrets


def _workspace(volume: Path, uid: int, gid: int) -> Workspace:
    return Workspace(volume / WORKSPACE_SUBDIR, uid, gid)


def stage_in(store: ObjectStore, task_id: str, volume: Path) -> StageResult:
    """Fetch inputs and create the mount directories. Idempotent (the Workspace keeps a marker)."""
    try:
        job, uid, gid = read_plan(store, task_id)
        workspace = _workspace(volume, uid, gid)
        workspace.prepare(job, store)
    except DomainError as exc:
        return StageResult(1, system_log("staging_failed", exc.msg))
    return StageResult(0, system_log("staged_in", f"{len(job.inputs)} input(s) staged",
                                     mounts=len(plan_mounts(job))))


def stage_out(store: ObjectStore, task_id: str, volume: Path) -> StageResult:
    """Copy outputs to quarantine; record what was copied (or why nothing was) for the backend."""
    try:
        job, uid, gid = read_plan(store, task_id)
    except DomainError as exc:
        return StageResult(1, system_log("staging_failed", exc.msg))
    workspace = _workspace(volume, uid, gid)
    try:
        collected = workspace.collect(task_id, job.outputs, store)
    except DomainError as exc:
        reason = "output_missing" if isinstance(exc, BackendError | NotFound) else "staging_failed"
        error = system_log(reason, exc.msg)
        _put_json(store, collected_key(task_id), {"error": json.loads(error)})
        return StageResult(1, error)
    _put_json(store, collected_key(task_id), {"outputs": [
        {"destination": c.destination, "container_path": c.container_path, "key": c.stored.key,
         "size_bytes": c.stored.size_bytes, "sha256": c.stored.sha256}
        for c in collected
    ]})
    return StageResult(0, system_log("staged_out", f"{len(collected)} file(s) copied to quarantine"))


def _put_json(store: ObjectStore, key: str, value: Any) -> None:
    store.put_bytes(Area.WORK, key, json.dumps(value, sort_keys=True).encode())


def read_collected(store: ObjectStore, task_id: str) -> tuple[tuple[CollectedOutput, ...], str | None]:
    """(outputs, None) after a successful stage-out; ((), system-log reason) otherwise."""
    try:
        with store.open(Area.WORK, collected_key(task_id)) as stream:
            data = json.loads(stream.read())
    except NotFound:
        return (), system_log("staging_failed", "stage-out left no record of the outputs")
    except ValueError:
        return (), system_log("staging_failed", "stage-out left an unreadable record")
    if "error" in data:
        error = data["error"] or {}
        return (), system_log(str(error.get("reason", "staging_failed")), str(error.get("detail", "")))
    outputs = tuple(
        CollectedOutput(o["destination"], o["container_path"],
                        StoredObject(o["key"], int(o["size_bytes"]), o["sha256"]))
        for o in data.get("outputs", [])
    )
    return outputs, None


STAGES = {"stage-in": stage_in, "stage-out": stage_out}


def run_stage(stage: str, store: ObjectStore, task_id: str, volume: Path) -> StageResult:
    return STAGES[stage](store, task_id, volume)


# ---------------------------------------------------------------- container entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway.adapters.compute.k8s.stager")
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--task", required=True)
    parser.add_argument("--volume", required=True, type=Path)
    return parser


def store_from_env(env: Mapping[str, str]) -> ObjectStore:
    """The object store named by TRE_GATEWAY_OBJECT_STORE (only `s3` makes sense in a pod)."""
    kind = env.get("TRE_GATEWAY_OBJECT_STORE", "s3")
    if kind != "s3":
        raise BackendError(f"stager pods need object_store=s3, not {kind!r}")
    from gateway.adapters.storage.s3 import s3_store_from_settings

    prefix = "TRE_GATEWAY_"
    values = {k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix + "S3_")}
    return s3_store_from_settings(SimpleNamespace(**values))


def _write_termination_message(message: str, path: str = TERMINATION_LOG) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(message[:3000])
    except OSError:
        pass


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        store = store_from_env(os.environ if env is None else env)
        result = run_stage(args.stage, store, args.task, args.volume)
    except (DomainError, ValueError) as exc:  # settings errors are ValueErrors
        result = StageResult(2, system_log("staging_failed", getattr(exc, "msg", None) or str(exc)))
    _write_termination_message(result.message)
    print(result.message, file=sys.stderr if result.exit_code else sys.stdout)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
