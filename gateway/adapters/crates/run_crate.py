"""Workflow Run RO-Crates (Provenance Run Crate 0.5) of WES runs, written as zips.

The gateway describes a run with the plain frozen dataclasses below and calls `write_run_crate`; it needs
no knowledge of RO-Crate or of the `rocrate` library that builds the metadata here.

What the crate holds (https://w3id.org/ro/wfrun/provenance/0.5, which extends the Workflow Run Crate and
Process Run Crate profiles, and Workflow RO-Crate 1.0):

- `workflow/...`: every file of the run's attachments folder; the main workflow is the root's
  `mainEntity`, typed File + SoftwareSourceCode + ComputationalWorkflow + HowTo, with its language
  (CWL), its input and output FormalParameters, its steps (HowToStep) and the tools they run (hasPart).
- the inputs (`params`): File inputs as data entities (by their URL, or the attached file for relative
  locations; never copied from the TRE's storage), other values as PropertyValues.
- the released outputs only (`output_files`): copied into the zip when `local_path` is given, otherwise
  referenced by their URL. Output files that were not released are never mentioned; non-file output
  values become PropertyValues.
- one CreateAction for the workflow run (instrument: the workflow; object: inputs; result: outputs;
  agent: the user), one CreateAction per step run (instrument: the step's tool; containerImage: its
  image; identifier: its TES task URL), one ControlAction per step run, and an OrganizeAction for the
  engine (instrument: e.g. cwltool; object: the ControlActions; result: the workflow run).

No logs are put in the crate. Nothing is fetched from the network, ever: remote entities are only named,
JSON-LD contexts are only written, and the zip is written here from the generated metadata and local
files (the library's own writers are not used).
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from rocrate.model.contextentity import ContextEntity  # type: ignore[import-untyped]
from rocrate.model.entity import Entity  # type: ignore[import-untyped]
from rocrate.rocrate import ROCrate  # type: ignore[import-untyped]

PROCESS_RUN_CRATE = "https://w3id.org/ro/wfrun/process/0.5"
WORKFLOW_RUN_CRATE = "https://w3id.org/ro/wfrun/workflow/0.5"
PROVENANCE_RUN_CRATE = "https://w3id.org/ro/wfrun/provenance/0.5"
WORKFLOW_RO_CRATE = "https://w3id.org/workflowhub/workflow-ro-crate/1.0"
WORKFLOW_RUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
DOCKER_IMAGE = "https://w3id.org/ro/terms/workflow-run#DockerImage"
FORMAL_PARAMETER_PROFILE = "https://bioschemas.org/profiles/FormalParameter/1.0-RELEASE"
COMPUTATIONAL_WORKFLOW_PROFILE = "https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE"

PROFILES = (
    (PROCESS_RUN_CRATE, "Process Run Crate", "0.5"),
    (WORKFLOW_RUN_CRATE, "Workflow Run Crate", "0.5"),
    (PROVENANCE_RUN_CRATE, "Provenance Run Crate", "0.5"),
    (WORKFLOW_RO_CRATE, "Workflow RO-Crate", "1.0"),
)

WES_BASE = "/ga4gh/wes/v1"
METADATA_NAME = "ro-crate-metadata.json"
WORKFLOW_FOLDER = "workflow"

ENGINE_URLS = {"cwltool": "https://github.com/common-workflow-language/cwltool"}

# WES/TES states as schema.org action statuses.
_COMPLETED = {"COMPLETE"}
_FAILED = {"EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}
_ACTIVE = {"INITIALIZING", "RUNNING", "PAUSED", "CANCELING"}

Timestamp = datetime | str | None


@dataclass(frozen=True)
class RunCrateStep:
    """One step execution: one TES task."""

    name: str  # the step's name in the workflow (repeated for scattered steps)
    tes_task_id: str
    tes_uri: str  # the task's URL in the gateway's TES API
    image: str  # the container image the task ran (as admitted by the image policy)
    command: Sequence[str] = ()
    state: str = "COMPLETE"  # TES state
    start_time: Timestamp = None
    end_time: Timestamp = None
    exit_code: int | None = None
    tool_path: str | None = None  # the step's tool file, relative to the attachments folder, if known


@dataclass(frozen=True)
class RunCrateFile:
    """A released output file: embedded when `local_path` is given, otherwise referenced by `url`."""

    local_path: Path | None
    crate_path: str  # where it goes in the zip when embedded, e.g. "outputs/counts.csv"
    sha256: str | None = None
    size: int | None = None
    url: str | None = None  # its URL in the project's released area
    parameter: str | None = None  # the workflow output it belongs to (else matched on `url` in `outputs`)
    media_type: str | None = None


@dataclass(frozen=True)
class RunCrateInput:
    """One workflow input: its name and JSON value (a CWL File/Directory object, or any JSON value)."""

    name: str
    value: Any


@dataclass(frozen=True)
class RunCrate:
    """Everything the crate says about one run, in plain data."""

    run_id: str
    name: str
    workflow_path: Path  # the main workflow, inside workflow_dir (absolute, or relative to workflow_dir)
    workflow_dir: Path  # the run's attachments folder: all of it goes into the crate under workflow/
    workflow_language: str = "CWL"
    workflow_language_version: str | None = None  # e.g. "v1.2"
    params: Mapping[str, Any] = field(default_factory=dict)  # the workflow's input object
    outputs: Mapping[str, Any] = field(default_factory=dict)  # the CWL output object
    output_files: Sequence[RunCrateFile] = ()  # released files only
    steps: Sequence[RunCrateStep] = ()
    state: str = "COMPLETE"  # WES state
    start_time: Timestamp = None
    end_time: Timestamp = None
    agent: str | None = None  # the user who submitted the run
    project: str | None = None
    gateway_url: str | None = None  # the gateway's public base URL (its WES base URL is accepted too)
    engine_name: str = "cwltool"
    engine_version: str | None = None
    description: str | None = None
    license: str | None = None  # e.g. an SPDX URL

    @property
    def inputs(self) -> tuple[RunCrateInput, ...]:
        return tuple(RunCrateInput(str(k), v) for k, v in self.params.items())

    @property
    def run_url(self) -> str | None:
        if not self.gateway_url:
            return None
        base = self.gateway_url.rstrip("/")
        if not base.endswith(WES_BASE):
            base += WES_BASE
        return f"{base}/runs/{quote(self.run_id, safe='')}"


class RunCrateError(ValueError):
    """The description cannot be turned into a crate (e.g. a path escapes its folder)."""


# --------------------------------------------------------------------------- small helpers


def _iso(value: Timestamp) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _status(state: str) -> str:
    if state in _COMPLETED:
        return "http://schema.org/CompletedActionStatus"
    if state in _FAILED:
        return "http://schema.org/FailedActionStatus"
    if state in _ACTIVE:
        return "http://schema.org/ActiveActionStatus"
    return "http://schema.org/PotentialActionStatus"


def _frag(text: str) -> str:
    return quote(text, safe="")


def _is_url(text: str) -> bool:
    return bool(urlsplit(text).scheme) and len(urlsplit(text).scheme) > 1


def _safe_relative(path: str, what: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if not path or rel.is_absolute() or ".." in rel.parts or "\\" in path or any(ord(c) < 32 for c in path):
        raise RunCrateError(f"{what} {path!r} must be a relative path without '..'")
    return rel


def _additional_type(value: Any) -> str:
    if isinstance(value, dict) and value.get("class") == "File":
        return "File"
    if isinstance(value, dict) and value.get("class") == "Directory":
        return "Dataset"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, list):
        kinds = {_additional_type(v) for v in value}
        return kinds.pop() if len(kinds) == 1 else "Collection"
    if isinstance(value, str):
        return "Text"
    return "PropertyValue"


def _scalar(value: Any) -> str | int | float | bool:
    if isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _parse_image(ref: str) -> dict[str, str]:
    """`registry/name:tag@sha256:digest` as ContainerImage properties (Docker Hub when no registry)."""
    rest, _, digest = ref.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, name = first, remainder
    else:
        registry, name = "docker.io", rest
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    props = {"registry": registry, "name": name}
    if tag:
        props["tag"] = tag
    if digest.startswith("sha256:"):
        props["sha256"] = digest.removeprefix("sha256:")
    return props


# --------------------------------------------------------------------------- the builder


class _Builder:
    def __init__(self, run: RunCrate) -> None:
        self.run = run
        self.crate = ROCrate(version="1.1", gen_preview=False)
        self.crate.metadata.extra_contexts.append(WORKFLOW_RUN_CONTEXT)
        self.files: dict[str, Path] = {}  # zip member -> local source
        self.workflow_files: dict[str, Entity] = {}  # path relative to workflow_dir -> entity

    # ---- parts

    def add_local_file(self, source: Path, crate_path: str, properties: dict[str, Any] | None = None) -> Entity:
        member = str(_safe_relative(crate_path, "crate path"))
        if member == METADATA_NAME or member in self.files:
            raise RunCrateError(f"crate path {crate_path!r} is used twice")
        entity = self.crate.add_file(source=source, dest_path=member, properties=properties or {})
        self.files[unquote(entity.id)] = source
        return entity

    def add_remote_file(self, url: str, properties: dict[str, Any]) -> Entity:
        existing = self.crate.get(url)
        if existing is not None:
            return existing
        # fetch_remote/validate_url stay False: the URL is only named, never opened.
        return self.crate.add_file(source=url, fetch_remote=False, validate_url=False, properties=properties)

    def contextual(self, identifier: str, properties: dict[str, Any]) -> Entity:
        existing = self.crate.get(identifier)
        if existing is not None:
            return existing
        return self.crate.add(ContextEntity(self.crate, identifier, properties=properties))

    # ---- the workflow

    def workflow(self) -> Entity:
        run = self.run
        folder = run.workflow_dir.resolve()
        if not folder.is_dir():
            raise RunCrateError(f"workflow folder {run.workflow_dir} does not exist")
        main = run.workflow_path if run.workflow_path.is_absolute() else run.workflow_dir / run.workflow_path
        main = main.resolve()
        if not main.is_relative_to(folder) or not main.is_file():
            raise RunCrateError(f"main workflow {run.workflow_path} is not a file inside {run.workflow_dir}")
        main_rel = main.relative_to(folder).as_posix()

        workflow = self.crate.add_workflow(
            source=main,
            dest_path=f"{WORKFLOW_FOLDER}/{main_rel}",
            main=True,
            lang=run.workflow_language.lower(),
            lang_version=run.workflow_language_version,
            properties={
                "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
                "name": run.name or main_rel,
                "conformsTo": {"@id": COMPUTATIONAL_WORKFLOW_PROFILE},
            },
        )
        self.files[unquote(workflow.id)] = main
        self.workflow_files[main_rel] = workflow

        # Every other attached file, in a stable order; symbolic links are never followed.
        for root, dirs, names in os.walk(folder, followlinks=False):
            dirs.sort()
            for name in sorted(names):
                path = Path(root) / name
                if path.is_symlink() or not path.is_file():
                    continue
                rel = path.relative_to(folder).as_posix()
                if rel == main_rel:
                    continue
                self.workflow_files[rel] = self.add_local_file(path, f"{WORKFLOW_FOLDER}/{rel}", {"name": rel})
        return workflow

    def parameter(self, workflow: Entity, direction: str, name: str, value: Any) -> Entity:
        param = self.contextual(
            f"#{direction}/{_frag(name)}",
            {
                "@type": "FormalParameter",
                "name": name,
                "additionalType": _additional_type(value),
                "conformsTo": {"@id": FORMAL_PARAMETER_PROFILE},
            },
        )
        if param not in (workflow.get(direction) or []):
            workflow.append_to(direction, param)
        return param

    def value_entities(self, direction: str, name: str, value: Any, param: Entity) -> list[Entity]:
        """Data entities or PropertyValues for one input value (outputs go through `output_entities`)."""
        if isinstance(value, list) and value and all(isinstance(v, dict) and "class" in v for v in value):
            out: list[Entity] = []
            for item in value:
                out += self.value_entities(direction, name, item, param)
            return out
        if isinstance(value, dict) and value.get("class") in ("File", "Directory"):
            location = str(value.get("location") or value.get("path") or "")
            props: dict[str, Any] = {"exampleOfWork": param}
            if value.get("basename"):
                props["name"] = value["basename"]
            if isinstance(value.get("size"), int):
                props["contentSize"] = str(value["size"])
            if _is_url(location):
                if value["class"] == "Directory":
                    entity = self.crate.add_dataset(
                        source=location, fetch_remote=False, validate_url=False, properties=props
                    )
                    return [entity]
                return [self.add_remote_file(location, props)]
            attached = self.workflow_files.get(location.removeprefix("./"))
            if attached is not None:
                attached.append_to("exampleOfWork", param)
                return [attached]
        pv = self.contextual(
            f"#pv-{direction}/{_frag(name)}",
            {"@type": "PropertyValue", "name": name, "value": _scalar(value), "exampleOfWork": param},
        )
        return [pv]

    def output_entities(self, workflow: Entity) -> list[Entity]:
        run = self.run
        results: list[Entity] = []
        by_url: dict[str, str] = {}
        for name, value in run.outputs.items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and item.get("class") in ("File", "Directory"):
                    location = item.get("location") or item.get("path")
                    if location:
                        by_url[str(location)] = str(name)
        for released in run.output_files:
            parameter = released.parameter or (by_url.get(released.url) if released.url else None)
            props: dict[str, Any] = {"name": PurePosixPath(released.crate_path).name or released.crate_path}
            if released.size is not None:
                props["contentSize"] = str(released.size)
            if released.sha256:
                props["sha256"] = released.sha256
            if released.media_type:
                props["encodingFormat"] = released.media_type
            if parameter:
                props["exampleOfWork"] = self.parameter(
                    workflow, "output", parameter, run.outputs.get(parameter, {"class": "File"})
                )
            if released.local_path is not None:
                if released.url:
                    props["contentUrl"] = released.url
                entity = self.add_local_file(released.local_path, released.crate_path, props)
            elif released.url:
                entity = self.add_remote_file(released.url, props)
            else:
                raise RunCrateError(f"output {released.crate_path!r} has neither a local copy nor a URL")
            results.append(entity)
        # Values that are not files; files that were not released are left out entirely.
        for name, value in run.outputs.items():
            param = self.parameter(workflow, "output", str(name), value)
            if _additional_type(value) in ("File", "Dataset") or value is None:
                continue
            if isinstance(value, list) and any(isinstance(v, dict) and "class" in v for v in value):
                continue
            results.append(
                self.contextual(
                    f"#pv-output/{_frag(str(name))}",
                    {"@type": "PropertyValue", "name": str(name), "value": _scalar(value), "exampleOfWork": param},
                )
            )
        return results

    # ---- people

    def agent(self) -> Entity | None:
        run = self.run
        org = None
        if run.project:
            org = self.contextual(
                f"#project-{_frag(run.project)}", {"@type": "Organization", "name": f"Project {run.project}"}
            )
        if run.agent:
            props: dict[str, Any] = {"@type": "Person", "name": run.agent}
            if org is not None:
                props["memberOf"] = org
            return self.contextual(f"#user-{_frag(run.agent)}", props)
        return org

    # ---- steps

    def steps(self, workflow: Entity, agent: Entity | None) -> tuple[list[Entity], list[Entity]]:
        run = self.run
        how_to: dict[str, Entity] = {}
        images: dict[str, Entity] = {}
        step_actions: list[Entity] = []
        control_actions: list[Entity] = []
        for index, step in enumerate(run.steps):
            tool = self.tool(workflow, step)
            if step.name not in how_to:
                how_to[step.name] = self.contextual(
                    f"#step/{_frag(step.name)}",
                    {"@type": "HowToStep", "name": step.name, "position": str(len(how_to)), "workExample": tool},
                )
                workflow.append_to("step", how_to[step.name])
            if step.image not in images:
                images[step.image] = self.contextual(
                    f"#container-image-{len(images)}",
                    {"@type": "ContainerImage", "additionalType": {"@id": DOCKER_IMAGE}, **_parse_image(step.image)},
                )
            props: dict[str, Any] = {
                "@type": "CreateAction",
                "name": f"Run of step {step.name} (TES task {step.tes_task_id})",
                "identifier": step.tes_uri,
                "containerImage": images[step.image],
                "actionStatus": {"@id": _status(step.state)},
            }
            details = []
            if step.command:
                details.append(f"command: {shlex.join(step.command)}")
            if step.exit_code is not None:
                details.append(f"exit code: {step.exit_code}")
            if details:
                props["description"] = "; ".join(details)
            if step.state in _FAILED:
                props["error"] = f"TES task ended {step.state}" + (
                    f" (exit code {step.exit_code})" if step.exit_code is not None else ""
                )
            for key, value in (("startTime", _iso(step.start_time)), ("endTime", _iso(step.end_time))):
                if value:
                    props[key] = value
            if agent is not None:
                props["agent"] = agent
            action = self.crate.add_action(tool, identifier=f"#step-run-{index}", properties=props)
            control = self.contextual(
                f"#step-control-{index}",
                {
                    "@type": "ControlAction",
                    "name": f"orchestrate {step.name}",
                    "instrument": how_to[step.name],
                    "object": action,
                },
            )
            step_actions.append(action)
            control_actions.append(control)
        return step_actions, control_actions

    def tool(self, workflow: Entity, step: RunCrateStep) -> Entity:
        if step.tool_path:
            attached = self.workflow_files.get(str(_safe_relative(step.tool_path, "tool path")))
            if attached is not None:
                if "SoftwareApplication" not in attached.type:
                    attached._jsonld["@type"] = [
                        *([attached.type] if isinstance(attached.type, str) else attached.type),
                        "SoftwareApplication",
                    ]
                if attached not in (workflow.get("hasPart") or []):
                    workflow.append_to("hasPart", attached)
                return attached
        tool = self.contextual(f"#tool/{_frag(step.name)}", {"@type": "SoftwareApplication", "name": step.name})
        if tool not in (workflow.get("hasPart") or []):
            workflow.append_to("hasPart", tool)
        return tool

    # ---- everything

    def build(self) -> ROCrate:
        run = self.run
        crate = self.crate
        root = crate.root_dataset
        for identifier, name, version in PROFILES:
            profile = self.contextual(identifier, {"@type": "CreativeWork", "name": name, "version": version})
            root.append_to("conformsTo", profile)
        root["name"] = f"Workflow run {run.run_id}: {run.name}"
        root["description"] = run.description or (
            f"Provenance of WES run {run.run_id} of the TRE Gateway: the workflow, its inputs, its released "
            f"outputs and the execution of each step as a TES task."
        )
        root["datePublished"] = _iso(run.end_time) or _iso(datetime.now(UTC))
        root["identifier"] = run.run_url or run.run_id
        if run.license:
            root["license"] = {"@id": run.license} if _is_url(run.license) else run.license

        workflow = self.workflow()
        objects: list[Entity] = []
        for item in run.inputs:
            param = self.parameter(workflow, "input", item.name, item.value)
            objects += self.value_entities("input", item.name, item.value, param)
        results = self.output_entities(workflow)
        agent = self.agent()

        props: dict[str, Any] = {
            "@type": "CreateAction",
            "name": f"Run of workflow {run.name} (WES run {run.run_id})",
            "identifier": run.run_url or run.run_id,
            "actionStatus": {"@id": _status(run.state)},
        }
        if run.state in _FAILED:
            props["error"] = f"The run ended {run.state}"
        for key, value in (("startTime", _iso(run.start_time)), ("endTime", _iso(run.end_time))):
            if value:
                props[key] = value
        if agent is not None:
            props["agent"] = agent
        run_action = crate.add_action(
            workflow,
            identifier=f"#run-{_frag(run.run_id)}",
            object=_unique(objects),
            result=_unique(results),
            properties=props,
        )
        step_actions, control_actions = self.steps(workflow, agent)

        engine_name = f"{run.engine_name} {run.engine_version}".strip() if run.engine_version else run.engine_name
        engine_props: dict[str, Any] = {"@type": "SoftwareApplication", "name": engine_name}
        if run.engine_version:
            engine_props["softwareVersion"] = run.engine_version
        if run.engine_name in ENGINE_URLS:
            engine_props["url"] = ENGINE_URLS[run.engine_name]
        engine = self.contextual(f"#engine-{_frag(run.engine_name)}", engine_props)
        organize_props: dict[str, Any] = {
            "@type": "OrganizeAction",
            "name": f"Run of {engine_name}",
            "actionStatus": {"@id": _status(run.state)},
        }
        for key, value in (("startTime", _iso(run.start_time)), ("endTime", _iso(run.end_time))):
            if value:
                organize_props[key] = value
        if agent is not None:
            organize_props["agent"] = agent
        organize = crate.add_action(engine, identifier=f"#engine-run-{_frag(run.run_id)}", properties=organize_props)
        organize["object"] = control_actions
        organize["result"] = run_action

        root["mentions"] = [run_action, organize, *step_actions, *control_actions]
        return crate


def _unique(entities: list[Entity]) -> list[Entity]:
    seen: set[str] = set()
    out = []
    for entity in entities:
        if entity.id not in seen:
            seen.add(entity.id)
            out.append(entity)
    return out


# --------------------------------------------------------------------------- the public entry point


def build_run_crate_metadata(crate: RunCrate) -> dict[str, Any]:
    """The ro-crate-metadata.json document of `crate` (nothing is written or fetched)."""
    return _Builder(crate).build().metadata.generate()  # type: ignore[no-any-return]


def write_run_crate(crate: RunCrate, destination: Path) -> Path:
    """Write the crate of `crate` as a zip and return its path.

    `destination` is the zip's path, or an existing folder to write `run-<run_id>-ro-crate.zip` into. The
    zip is written next to its destination first and moved into place, so a reader never sees half of it.
    Raises RunCrateError when a path of the description escapes its folder or a file is missing.
    """
    builder = _Builder(crate)
    metadata = builder.build().metadata.generate()
    destination = Path(destination)
    if destination.is_dir():
        destination = destination / f"run-{_frag(crate.run_id)}-ro-crate.zip"
    destination.parent.mkdir(parents=True, exist_ok=True)
    for member, source in builder.files.items():
        if not source.is_file():
            raise RunCrateError(f"{member}: {source} is not a file")
    fd, tmp_name = tempfile.mkstemp(prefix=".ro-crate-", suffix=".zip.part", dir=destination.parent)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            text = json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False)
            zf.writestr(METADATA_NAME, text.encode("utf-8"))
            for member in sorted(builder.files):
                zf.write(builder.files[member], arcname=member)
        os.replace(tmp_name, destination)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return destination


__all__ = [
    "RunCrate",
    "RunCrateError",
    "RunCrateFile",
    "RunCrateInput",
    "RunCrateStep",
    "build_run_crate_metadata",
    "write_run_crate",
]
