"""The TES task as the gateway understands it: the requested spec, its owner and project, state and logs.

Everything here is pure: no I/O, no clock, no framework. Parsing takes a request body that the API
layer has already validated against the OpenAPI schema, and adds the semantic checks a schema cannot
express (absolute container paths, no traversal, executor output paths inside the task).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from gateway.domain.errors import InvalidRequest
from gateway.domain.states import TaskState, check_transition

# Container paths a task may not claim: they belong to the runtime or to the gateway's helper.
RESERVED_PREFIXES = ("/proc", "/sys", "/dev", "/.tre")


class FileType(StrEnum):
    FILE = "FILE"
    DIRECTORY = "DIRECTORY"


class View(StrEnum):
    MINIMAL = "MINIMAL"
    BASIC = "BASIC"
    FULL = "FULL"


def container_path(value: Any, where: str) -> str:
    """Return `value` if it is a clean absolute container path, else raise InvalidRequest."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidRequest(f"{where}: must be an absolute path inside the container")
    if "\x00" in value or any(part == ".." for part in value.split("/")):
        raise InvalidRequest(f"{where}: must not contain '..' or NUL")
    # normpath keeps a leading "//" (POSIX leaves its meaning to the implementation); containers do not.
    normal = "/" + posixpath.normpath(value).lstrip("/")
    if normal == "/":
        raise InvalidRequest(f"{where}: the container root cannot be used")
    if any(normal == p or normal.startswith(p + "/") for p in RESERVED_PREFIXES):
        raise InvalidRequest(f"{where}: {normal} is reserved by the runtime")
    return normal


@dataclass(frozen=True)
class Input:
    path: str
    url: str | None = None
    content: str | None = None
    type: FileType = FileType.FILE
    name: str | None = None
    description: str | None = None
    streamable: bool | None = None


@dataclass(frozen=True)
class Output:
    path: str
    url: str
    type: FileType = FileType.FILE
    path_prefix: str | None = None
    name: str | None = None
    description: str | None = None

    @property
    def is_wildcard(self) -> bool:
        return any(ch in self.path for ch in "*?[")


@dataclass(frozen=True)
class Executor:
    image: str
    command: tuple[str, ...]
    workdir: str | None = None
    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    ignore_error: bool = False


@dataclass(frozen=True)
class Resources:
    cpu_cores: int | None = None
    ram_gb: float | None = None
    disk_gb: float | None = None
    preemptible: bool | None = None
    zones: tuple[str, ...] = ()
    backend_parameters: dict[str, str] = field(default_factory=dict)
    backend_parameters_strict: bool | None = None


@dataclass(frozen=True)
class TaskSpec:
    """What the client asked for. Immutable once accepted."""

    executors: tuple[Executor, ...]
    name: str | None = None
    description: str | None = None
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    resources: Resources | None = None
    volumes: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> TaskSpec:
        """Build a spec from a schema-valid TES task body; raise InvalidRequest on semantic errors."""
        executors = tuple(_executor(e, i) for i, e in enumerate(body.get("executors") or []))
        if not executors:
            raise InvalidRequest("executors: a task needs at least one executor")
        inputs = tuple(_input(x, i) for i, x in enumerate(body.get("inputs") or []))
        outputs = tuple(_output(x, i) for i, x in enumerate(body.get("outputs") or []))
        volumes = tuple(
            container_path(v, f"volumes[{i}]") for i, v in enumerate(body.get("volumes") or [])
        )
        res = body.get("resources")
        resources = None
        if res is not None:
            for key in ("cpu_cores", "ram_gb", "disk_gb"):
                if res.get(key) is not None and res[key] <= 0:
                    raise InvalidRequest(f"resources.{key}: must be positive")
            resources = Resources(
                cpu_cores=res.get("cpu_cores"),
                ram_gb=res.get("ram_gb"),
                disk_gb=res.get("disk_gb"),
                preemptible=res.get("preemptible"),
                zones=tuple(res.get("zones") or ()),
                backend_parameters=dict(res.get("backend_parameters") or {}),
                backend_parameters_strict=res.get("backend_parameters_strict"),
            )
        spec = cls(
            executors=executors,
            name=body.get("name"),
            description=body.get("description"),
            inputs=inputs,
            outputs=outputs,
            resources=resources,
            volumes=volumes,
            tags={str(k): str(v) for k, v in (body.get("tags") or {}).items()},
        )
        _check_paths_disjoint(spec)
        return spec

    def to_dict(self, *, with_content: bool = True) -> dict[str, Any]:
        """The spec in TES JSON form (omitting unset fields)."""
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.description is not None:
            out["description"] = self.description
        if self.inputs:
            out["inputs"] = [_drop_none(_input_dict(i, with_content)) for i in self.inputs]
        if self.outputs:
            out["outputs"] = [
                _drop_none(
                    {
                        "name": o.name,
                        "description": o.description,
                        "url": o.url,
                        "path": o.path,
                        "path_prefix": o.path_prefix,
                        "type": o.type.value,
                    }
                )
                for o in self.outputs
            ]
        if self.resources is not None:
            r = self.resources
            out["resources"] = _drop_none(
                {
                    "cpu_cores": r.cpu_cores,
                    "ram_gb": r.ram_gb,
                    "disk_gb": r.disk_gb,
                    "preemptible": r.preemptible,
                    "zones": list(r.zones) or None,
                    "backend_parameters": r.backend_parameters or None,
                    "backend_parameters_strict": r.backend_parameters_strict,
                }
            )
        out["executors"] = [
            _drop_none(
                {
                    "image": e.image,
                    "command": list(e.command),
                    "workdir": e.workdir,
                    "stdin": e.stdin,
                    "stdout": e.stdout,
                    "stderr": e.stderr,
                    "env": e.env or None,
                    "ignore_error": e.ignore_error or None,
                }
            )
            for e in self.executors
        ]
        if self.volumes:
            out["volumes"] = list(self.volumes)
        if self.tags:
            out["tags"] = dict(self.tags)
        return out


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _input_dict(i: Input, with_content: bool) -> dict[str, Any]:
    return {
        "name": i.name,
        "description": i.description,
        "url": i.url,
        "path": i.path,
        "type": i.type.value,
        "content": i.content if with_content else None,
        "streamable": i.streamable,
    }


def _executor(e: dict[str, Any], i: int) -> Executor:
    where = f"executors[{i}]"
    command = e.get("command") or []
    if not command or not all(isinstance(c, str) for c in command):
        raise InvalidRequest(f"{where}.command: must be a non-empty list of strings")
    image = (e.get("image") or "").strip()
    if not image:
        raise InvalidRequest(f"{where}.image: must not be empty")
    env = e.get("env") or {}
    for key in env:
        if not key or "=" in key or "\x00" in key:
            raise InvalidRequest(f"{where}.env: invalid variable name {key!r}")
    return Executor(
        image=image,
        command=tuple(command),
        workdir=container_path(e["workdir"], f"{where}.workdir") if e.get("workdir") else None,
        stdin=container_path(e["stdin"], f"{where}.stdin") if e.get("stdin") else None,
        stdout=container_path(e["stdout"], f"{where}.stdout") if e.get("stdout") else None,
        stderr=container_path(e["stderr"], f"{where}.stderr") if e.get("stderr") else None,
        env={str(k): str(v) for k, v in env.items()},
        ignore_error=bool(e.get("ignore_error", False)),
    )


def _input(x: dict[str, Any], i: int) -> Input:
    where = f"inputs[{i}]"
    has_url, has_content = bool(x.get("url")), x.get("content") is not None
    if has_url == has_content:
        raise InvalidRequest(f"{where}: exactly one of 'url' or 'content' is required")
    ftype = FileType(x.get("type") or "FILE")
    if has_content and ftype is FileType.DIRECTORY:
        raise InvalidRequest(f"{where}: 'content' can only provide a FILE")
    return Input(
        path=container_path(x.get("path"), f"{where}.path"),
        url=x.get("url"),
        content=x.get("content"),
        type=ftype,
        name=x.get("name"),
        description=x.get("description"),
        streamable=x.get("streamable"),
    )


def _output(x: dict[str, Any], i: int) -> Output:
    where = f"outputs[{i}]"
    if not x.get("url"):
        raise InvalidRequest(f"{where}.url: required")
    out = Output(
        path=container_path(x.get("path"), f"{where}.path"),
        url=x["url"],
        type=FileType(x.get("type") or "FILE"),
        path_prefix=(
            container_path(x["path_prefix"], f"{where}.path_prefix") if x.get("path_prefix") else None
        ),
        name=x.get("name"),
        description=x.get("description"),
    )
    if out.is_wildcard:
        if out.path_prefix is None:
            raise InvalidRequest(f"{where}.path_prefix: required when path contains wildcards")
        if not out.path.startswith(out.path_prefix.rstrip("/") + "/"):
            raise InvalidRequest(f"{where}.path_prefix: must be a leading directory of path")
    return out


def _check_paths_disjoint(spec: TaskSpec) -> None:
    seen: dict[str, str] = {}
    for i, inp in enumerate(spec.inputs):
        if inp.path in seen:
            raise InvalidRequest(f"inputs[{i}].path: {inp.path} is already used by {seen[inp.path]}")
        seen[inp.path] = f"inputs[{i}]"


@dataclass(frozen=True)
class ExecutorLog:
    exit_code: int
    start_time: str | None = None
    end_time: str | None = None
    stdout: str | None = None
    stderr: str | None = None

    def to_dict(self, *, with_streams: bool = True) -> dict[str, Any]:
        return _drop_none(
            {
                "start_time": self.start_time,
                "end_time": self.end_time,
                "stdout": self.stdout if with_streams else None,
                "stderr": self.stderr if with_streams else None,
                "exit_code": self.exit_code,
            }
        )


@dataclass(frozen=True)
class OutputFileLog:
    url: str
    path: str
    size_bytes: int


def system_log(reason: str, detail: str, **extra: Any) -> str:
    """A structured system-log line: one JSON object with a stable machine-readable `reason`."""
    return json.dumps({"reason": reason, "detail": detail, **extra}, sort_keys=True)


@dataclass(frozen=True)
class Task:
    """A task owned by `owner` within `project`. State changes go through `moved_to`."""

    id: str
    owner: str
    project: str
    spec: TaskSpec
    state: TaskState
    creation_time: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    executor_logs: tuple[ExecutorLog, ...] = ()
    output_logs: tuple[OutputFileLog, ...] = ()
    system_logs: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    # Optimistic-concurrency counter: a save based on a stale copy is refused by the repository.
    version: int = 0

    def moved_to(self, target: TaskState, *, at: datetime, reason: str | None = None) -> Task:
        """Return the task in `target` state, enforcing the lifecycle; `reason` is appended to system_logs."""
        check_transition(self.state, target)
        logs = self.system_logs + ((reason,) if reason else ())
        start = self.start_time
        if target is TaskState.INITIALIZING and start is None:
            start = at
        end = at if target.is_terminal else self.end_time
        return replace(self, state=target, system_logs=logs, start_time=start, end_time=end)

    def with_logs(self, **changes: Any) -> Task:
        return replace(self, **changes)
