"""WES workflow runs: the request as submitted, the run's lifecycle, and the rules on what it may name.

A run shares the TES state vocabulary (WES 1.1 and TES 1.1 define the same eleven states) and its
legal transitions, with one addition: a run may wait in PAUSED while its final outputs are reviewed.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from gateway.domain.errors import InvalidRequest
from gateway.domain.states import TaskState, check_transition

RunState = TaskState

# The one workflow language this gateway runs today, the engine that runs it, and the versions it accepts.
CWL = "CWL"
CWL_VERSIONS = ("v1.0", "v1.1", "v1.2")
DEFAULT_ENGINE = {CWL: "cwltool"}

# Engine parameters a submitter may set: each is a harmless cwltool switch (the sandbox, paths and
# the step command are the gateway's own and cannot be changed). Values are "true"/"false" flags.
ENGINE_FLAGS = {
    "--parallel": "run independent steps and scatter jobs at the same time (default true)",
    "--strict": "validate the workflow strictly against the CWL schema (default true)",
    "--timestamps": "prefix engine log lines with timestamps",
    "--debug": "verbose engine log",
    "--on-error": "'stop' (default) or 'continue': whether other steps go on after one fails",
}
MAX_ATTACHMENT_NAME = 255


# Tag that marks a TES task as part of a run; only the run's own engine identity may set it.
RUN_TAG = "wes_run"


@dataclass(frozen=True)
class RunRequest:
    """A RunWorkflow request after decoding and validation (WES RunRequest)."""

    workflow_type: str
    workflow_type_version: str
    workflow_url: str
    workflow_params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    workflow_engine: str = "cwltool"
    workflow_engine_version: str = ""
    workflow_engine_parameters: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "workflow_params": self.workflow_params,
            "workflow_type": self.workflow_type,
            "workflow_type_version": self.workflow_type_version,
            "tags": self.tags,
            "workflow_engine_parameters": self.workflow_engine_parameters,
            "workflow_url": self.workflow_url,
            "workflow_engine": self.workflow_engine,
        }
        if self.workflow_engine_version:
            body["workflow_engine_version"] = self.workflow_engine_version
        return body

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> RunRequest:
        return cls(
            workflow_type=body["workflow_type"],
            workflow_type_version=body["workflow_type_version"],
            workflow_url=body["workflow_url"],
            workflow_params=dict(body.get("workflow_params") or {}),
            tags=dict(body.get("tags") or {}),
            workflow_engine=body.get("workflow_engine") or "cwltool",
            workflow_engine_version=body.get("workflow_engine_version") or "",
            workflow_engine_parameters=dict(body.get("workflow_engine_parameters") or {}),
        )


def _json_object(field_name: str, raw: str | None, *, values_are_strings: bool = False) -> dict[str, Any]:
    if raw is None or raw.strip() == "":
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{field_name}: not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{field_name}: must be a JSON object, got {type(value).__name__}")
    if values_are_strings:
        # null is accepted as "" because some clients send a bare flag that way (`{"--parallel": null}`).
        for key, item in value.items():
            if item is not None and not isinstance(item, str | int | float | bool):
                raise InvalidRequest(f"{field_name}: the value of {key!r} must be a string")
        return {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    return value


def parse_run_request(form: Mapping[str, str | None]) -> RunRequest:
    """Decode the text fields of a multipart RunWorkflow request. Raises InvalidRequest with the field name."""
    workflow_type = (form.get("workflow_type") or "").strip()
    if not workflow_type:
        raise InvalidRequest("workflow_type: required (e.g. 'CWL')")
    if workflow_type.upper() != CWL:
        raise InvalidRequest(f"workflow_type: {workflow_type!r} is not supported; this gateway runs CWL")
    version = (form.get("workflow_type_version") or "").strip()
    if not version:
        raise InvalidRequest(f"workflow_type_version: required (one of {', '.join(CWL_VERSIONS)})")
    if version not in CWL_VERSIONS:
        raise InvalidRequest(f"workflow_type_version: {version!r} is not one of {', '.join(CWL_VERSIONS)}")
    workflow_url = (form.get("workflow_url") or "").strip()
    if not workflow_url:
        raise InvalidRequest("workflow_url: required (an attachment name or an allowed absolute URL)")
    if (form.get("workflow_engine_version") or "").strip() and not (form.get("workflow_engine") or "").strip():
        raise InvalidRequest("workflow_engine_version: name the workflow_engine it is a version of")
    engine = (form.get("workflow_engine") or "").strip() or DEFAULT_ENGINE[CWL]
    if engine != DEFAULT_ENGINE[CWL]:
        raise InvalidRequest(f"workflow_engine: {engine!r} is not available; CWL runs on cwltool")
    params = _json_object("workflow_params", form.get("workflow_params"))
    tags = _json_object("tags", form.get("tags"), values_are_strings=True)
    engine_parameters = _json_object(
        "workflow_engine_parameters", form.get("workflow_engine_parameters"), values_are_strings=True
    )
    engine_parameters = check_engine_parameters(engine_parameters)
    return RunRequest(
        workflow_type=CWL,
        workflow_type_version=version,
        workflow_url=workflow_url,
        workflow_params=params,
        tags=tags,
        workflow_engine=engine,
        workflow_engine_version=(form.get("workflow_engine_version") or "").strip(),
        workflow_engine_parameters=engine_parameters,
    )


def check_engine_parameters(parameters: Mapping[str, str]) -> dict[str, str]:
    """The parameters normalised (a bare flag means "true"); InvalidRequest for anything not allowed."""
    checked = {}
    for name, raw in parameters.items():
        if name not in ENGINE_FLAGS:
            known = ", ".join(sorted(ENGINE_FLAGS))
            raise InvalidRequest(f"workflow_engine_parameters: {name!r} is not allowed (allowed: {known})")
        allowed = ("stop", "continue") if name == "--on-error" else ("true", "false")
        value = (raw or ("true" if name != "--on-error" else "")).lower()
        if value not in allowed:
            raise InvalidRequest(
                f"workflow_engine_parameters: {name} must be one of {', '.join(allowed)}, got {raw!r}"
            )
        checked[name] = value
    return checked


def attachment_name(raw: str | None) -> str:
    """A clean relative path for an uploaded file: sub-directories allowed, no '..', no absolute names."""
    name = (raw or "").replace("\\", "/")
    if not name:
        raise InvalidRequest("workflow_attachment: every file needs a file name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise InvalidRequest(f"workflow_attachment: {raw!r} is an absolute path; names must be relative")
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in name):
        raise InvalidRequest(f"workflow_attachment: {raw!r} contains control characters")
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\x00" in name or len(name) > MAX_ATTACHMENT_NAME:
        raise InvalidRequest(f"workflow_attachment: {raw!r} is not a clean relative path (no '..' or empty parts)")
    return name


def docker_images(document: Any) -> list[str]:
    """Every image a CWL document asks for in a DockerRequirement (requirements or hints, any depth)."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("class") == "DockerRequirement":
                found.extend(str(node[k]) for k in ("dockerPull", "dockerImageId") if node.get(k))
            requirement = node.get("DockerRequirement")
            if isinstance(requirement, dict):
                found.extend(str(requirement[k]) for k in ("dockerPull", "dockerImageId") if requirement.get(k))
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(document)
    return found


def split_fragment(url: str) -> tuple[str, str]:
    """('main.cwl', 'step') for 'main.cwl#step'; the fragment names a process inside a packed document."""
    base, _, fragment = url.partition("#")
    return base, fragment


@dataclass(frozen=True)
class FileReference:
    """A `location` or `path` of a File or Directory object in the workflow parameters."""

    pointer: str  # JSON-pointer-like position, for error messages
    key: str      # "location" or "path"
    value: str


def file_references(params: Any, pointer: str = "") -> Iterator[FileReference]:
    """Every location/path of File and Directory objects, however deeply nested (listing, secondaryFiles)."""
    if isinstance(params, dict):
        if params.get("class") in ("File", "Directory"):
            for key in ("location", "path"):
                value = params.get(key)
                if value is not None:
                    if not isinstance(value, str):
                        raise InvalidRequest(f"workflow_params{pointer}/{key}: must be a string")
                    yield FileReference(pointer, key, value)
        for key, item in params.items():
            yield from file_references(item, f"{pointer}/{key}")
    elif isinstance(params, list):
        for index, item in enumerate(params):
            yield from file_references(item, f"{pointer}/{index}")


def is_relative_reference(value: str) -> bool:
    return "://" not in value and not value.startswith("/") and ":" not in value.split("/", 1)[0]


def resolve_relative(base_dir: str, value: str) -> str:
    """Join a relative reference to `base_dir`, refusing anything that climbs out of it."""
    joined = posixpath.normpath(posixpath.join(base_dir, value))
    inside = (not (joined == ".." or joined.startswith(("/", "../"))) and joined != ".") if not base_dir else (
        joined == base_dir or joined.startswith(base_dir.rstrip("/") + "/"))
    if not inside:
        raise InvalidRequest(f"workflow_params: {value!r} points outside the run's attachments")
    return joined


@dataclass(frozen=True)
class Run:
    id: str
    owner: str
    project: str
    request: RunRequest
    state: RunState
    created_at: datetime
    version: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    system_logs: tuple[str, ...] = ()
    # Where the engine runs (worker id and process id) while it runs; for recovery and cancel.
    engine: dict[str, Any] = field(default_factory=dict)
    # The TES task that carries the final outputs through the airlock, once the engine has finished.
    release_task_id: str | None = None
    attachments: tuple[str, ...] = ()
    seq: int | None = None

    def moved_to(self, target: RunState, *, at: datetime, reason: str | None = None) -> Run:
        check_transition(self.state, target)
        changes: dict[str, Any] = {"state": target}
        if target is RunState.RUNNING and self.start_time is None:
            changes["start_time"] = at
        if target.is_terminal:
            changes["end_time"] = at
        if reason:
            changes["system_logs"] = (*self.system_logs, reason)
        return replace(self, **changes)

    def updated(self, **changes: Any) -> Run:
        return replace(self, **changes)
