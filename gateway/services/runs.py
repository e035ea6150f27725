"""WES use cases: submit, list, inspect and cancel workflow runs on behalf of an authenticated principal.

A run's files live in its folder of the `work` area (`<project>/runs/<run>/`): `workflow/` holds the
attachments (and a fetched workflow), `engine/` the engine's parameters and logs, `outputs/` the final
outputs before release. Nothing is written unless every check of the request has passed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO
from urllib.parse import unquote

import yaml

from gateway.domain.audit import AuditEvent
from gateway.domain.errors import (
    Conflict,
    DestinationNotAllowed,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthenticated,
)
from gateway.domain.identity import Principal, Role
from gateway.domain.runs import (
    RUN_TAG,
    FileReference,
    Run,
    RunRequest,
    RunState,
    attachment_name,
    docker_images,
    file_references,
    is_relative_reference,
    parse_run_request,
    resolve_relative,
    split_fragment,
)
from gateway.domain.task import Task
from gateway.services.audit import NullAuditLog, record
from gateway.services.locations import input_location, run_work_prefix
from gateway.services.paging import decode_token, next_token, page_size
from gateway.services.ports import Area, AuditLog, ObjectStore, RunQuery, RunRepository, StaleRun
from gateway.services.tasks import ListResult, TaskService

WORKFLOW_DIR = "workflow/"
ENGINE_DIR = "engine/"
OUTPUTS_DIR = "outputs/"
PARAMS_FILE = ENGINE_DIR + "params.json"
LOG_FILES = {"stdout": ENGINE_DIR + "stdout.json", "stderr": ENGINE_DIR + "stderr.log"}
CREDENTIAL_PREFIX = "tre-run."
# Attachments parsed as workflow documents before a run is accepted.
CWL_SUFFIXES = (".cwl",)
# Who may drive a run's steps: the engine's own identity never sees more than the run's project.
ENGINE_ACTIVE = frozenset({RunState.INITIALIZING, RunState.RUNNING, RunState.CANCELING})


@dataclass(frozen=True)
class Upload:
    """One `workflow_attachment` part: the name the client sent and its content."""

    filename: str | None
    stream: BinaryIO


def run_key(run: Run, relative: str = "") -> str:
    return run_work_prefix(run.project, run.id) + relative


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run_state_event(run: Run, previous: RunState, actor: str = "gateway") -> AuditEvent:
    reason = run.system_logs[-1] if run.system_logs and run.state.is_terminal else None
    return AuditEvent(actor, "run.state_changed", "run", run.id, run.project,
                      {"state": run.state.value, "previous": previous.value, "reason": reason})


@dataclass
class RunService:
    repo: RunRepository
    tasks: TaskService
    store: ObjectStore
    new_id: Callable[[], str]
    now: Callable[[], datetime]
    # Absolute workflow URLs are fetched only under these prefixes (a TRE's own workflow registry mirror).
    workflow_url_prefixes: tuple[str, ...] = ()
    fetch_workflow: Callable[[str, int], bytes] | None = None
    max_workflow_bytes: int = 4 << 20
    # Why runs cannot start here (e.g. the object store cannot host an engine's files); None if they can.
    unavailable_reason: str | None = None
    audit: AuditLog = field(default_factory=NullAuditLog)
    default_page_size: int = 256
    max_page_size: int = 2047
    wake: Callable[[], None] = field(default=lambda: None)
    # The engine versions this gateway runs (a request naming another is refused); empty: not checked.
    engine_versions: tuple[str, ...] = ()

    # ------------------------------------------------------------ submit

    def submit(self, principal: Principal, form: dict[str, str | None], uploads: Sequence[Upload]) -> Run:
        """Validate the whole request, then write the attachments and store the run as QUEUED."""
        if self.unavailable_reason:
            raise InvalidRequest(f"this gateway runs no workflows: {self.unavailable_reason}")
        request = parse_run_request(form)
        project = principal.project_for_submission(request.tags.get("project"))
        if RUN_TAG in request.tags:
            raise InvalidRequest(f"tags: {RUN_TAG!r} is reserved")
        if request.workflow_engine_version and self.engine_versions and (
                request.workflow_engine_version not in self.engine_versions):
            raise InvalidRequest(f"workflow_engine_version: {request.workflow_engine_version!r} is not available "
                                 f"(this gateway runs {', '.join(self.engine_versions)})")
        named = self._attachments(uploads)
        run_id = self.new_id()
        prefix = run_work_prefix(project, run_id)
        workflow_url, fetched = self._workflow_source(request.workflow_url, named)
        self._check_documents(named, fetched)
        params = self._checked_params(request.workflow_params, project, named, prefix)
        request = RunRequest(**{**request.__dict__, "tags": {**request.tags, "project": project}})
        run = Run(
            id=run_id,
            owner=principal.user,
            project=project,
            request=request,
            state=RunState.QUEUED,
            created_at=self.now(),
            attachments=tuple(sorted(named)),
            engine={"workflow": workflow_url},
        )
        try:
            for name, upload in named.items():
                upload.stream.seek(0)
                self.store.put_bytes(Area.WORK, prefix + WORKFLOW_DIR + name, upload.stream.read())
            if fetched is not None:
                self.store.put_bytes(Area.WORK, prefix + WORKFLOW_DIR + fetched[0], fetched[1])
            self.store.put_bytes(Area.WORK, prefix + PARAMS_FILE, json.dumps(params).encode())
            self.repo.add(run)
        except NotFound as exc:
            self.store.delete_prefix(Area.WORK, prefix)
            raise DestinationNotAllowed(f"the run's work folder cannot be written: {exc.msg}") from None
        except BaseException:
            self.store.delete_prefix(Area.WORK, prefix)
            raise
        record(self.audit, principal.user, "run.submitted", "run", run.id, project,
               workflow_url=request.workflow_url, attachments=len(named))
        self.wake()
        return run

    def _check_documents(self, named: dict[str, Upload], fetched: tuple[str, bytes] | None) -> None:
        """Parse every CWL document and check each DockerRequirement image against the image policy.

        A workflow the engine could not even read, or one whose steps name an image the TRE does not
        have, is refused now rather than failing later.
        """
        documents: list[tuple[str, bytes]] = [(fetched[0], fetched[1])] if fetched else []
        for name, upload in named.items():
            if name.endswith(CWL_SUFFIXES):
                upload.stream.seek(0)
                documents.append((name, upload.stream.read(self.max_workflow_bytes + 1)))
        for name, data in documents:
            if len(data) > self.max_workflow_bytes:
                raise InvalidRequest(f"workflow_attachment: {name!r} is larger than {self.max_workflow_bytes} bytes")
            try:
                document = yaml.safe_load(data)
            except yaml.YAMLError as exc:
                raise InvalidRequest(f"workflow_attachment: {name!r} is not valid CWL (YAML/JSON): "
                                     f"{str(exc).splitlines()[0]}") from None
            for image in docker_images(document):
                try:
                    self.tasks.images.resolve(image)
                except InvalidRequest as exc:
                    raise InvalidRequest(f"workflow_attachment: {name!r}: {exc.msg}") from None

    def _attachments(self, uploads: Sequence[Upload]) -> dict[str, Upload]:
        named: dict[str, Upload] = {}
        for upload in uploads:
            name = attachment_name(upload.filename)
            if name in named:
                raise InvalidRequest(f"workflow_attachment: {name!r} is sent twice")
            clash = [n for n in named if n.startswith(name + "/") or name.startswith(n + "/")]
            if clash:
                raise InvalidRequest(f"workflow_attachment: {name!r} is both a file and a folder ({clash[0]!r})")
            named[name] = upload
        return named

    def _workflow_source(self, url: str, named: dict[str, Upload]) -> tuple[str, tuple[str, bytes] | None]:
        """The workflow as the engine names it (relative to workflow/, with any #fragment) and a fetched file."""
        base, fragment = split_fragment(url)
        suffix = f"#{fragment}" if fragment else ""
        if base.startswith("file://") and not any(base.startswith(p) for p in self.workflow_url_prefixes):
            # Some clients name an attachment by the absolute path it had on their machine.
            tail = base.rsplit("/", 1)[-1]
            if tail in named:
                return tail + suffix, None
        if "://" not in base:
            name = base[2:] if base.startswith("./") else base
            if name not in named:
                sent = ", ".join(sorted(named)) or "none"
                raise InvalidRequest(f"workflow_url: {url!r} is not one of the attachments (sent: {sent})")
            return name + suffix, None
        if not any(base.startswith(p) for p in self.workflow_url_prefixes) or self.fetch_workflow is None:
            raise InvalidRequest(
                f"workflow_url: {base!r} is not on this TRE's list of workflow sources; attach the workflow instead"
            )
        data = self.fetch_workflow(base, self.max_workflow_bytes)
        name = "fetched/" + (base.rstrip("/").rsplit("/", 1)[-1] or "workflow.cwl")
        attachment_name(name)
        return name + suffix, (name, data)

    def _checked_params(
        self, params: dict[str, Any], project: str, named: dict[str, Upload], prefix: str
    ) -> dict[str, Any]:
        """Every File/Directory the parameters name must be an attachment or readable by the project."""
        rewritten: dict[str, str] = {}
        for ref in file_references(params):
            rewritten[ref.value] = self._checked_reference(ref, project, named, prefix)
        checked: dict[str, Any] = _replace_references(params, rewritten)
        return checked

    def _checked_reference(self, ref: FileReference, project: str, named: dict[str, Upload], prefix: str) -> str:
        where = f"workflow_params{ref.pointer}/{ref.key}"
        if is_relative_reference(ref.value):
            try:
                name = resolve_relative("", ref.value)
            except InvalidRequest as exc:
                raise InvalidRequest(f"{where}: {exc.msg.removeprefix('workflow_params: ')}") from None
            if name not in named and not any(n.startswith(name.rstrip("/") + "/") for n in named):
                raise InvalidRequest(f"{where}: {ref.value!r} is not an attachment of this request")
            return self.store.url_for(Area.WORK, prefix + WORKFLOW_DIR + name)
        url = "file://" + ref.value if ref.value.startswith("/") else ref.value
        try:
            input_location(self.store, project, url)
        except InvalidRequest as exc:
            # Clients such as wes-client make relative locations absolute on their own machine before
            # sending them; such a path names the attachment it ends with.
            attached = _attachment_suffix(url, named)
            if attached is None:
                raise InvalidRequest(f"{where}: {exc.msg}") from None
            return self.store.url_for(Area.WORK, prefix + WORKFLOW_DIR + attached)
        return url

    # ------------------------------------------------------------ read

    def get(self, principal: Principal, run_id: str) -> Run:
        run = self.repo.get(run_id)
        if run is None:
            raise NotFound(f"run {run_id!r} not found")
        principal.check_visible(run.project, f"run {run_id!r}")
        return run

    def list(self, principal: Principal, size: int | None, token: str | None) -> tuple[list[Run], str | None]:
        page = self.repo.query(
            RunQuery(
                projects=None if principal.is_admin else principal.projects,
                before_seq=decode_token(token) if token else None,
                limit=page_size(size, self.default_page_size, self.max_page_size),
            )
        )
        return page.runs, next_token(page.has_more, page.last_seq)

    def state_counts(self) -> dict[str, int]:
        counts = self.repo.count_by_state()
        return {state.value: counts.get(state, 0) for state in RunState}

    def step_tasks(self, principal: Principal, run_id: str, size: int | None, token: str | None) -> ListResult:
        run = self.get(principal, run_id)
        return self.tasks.list(_project_reader(run), tag_keys=[RUN_TAG], tag_values=[run.id], size=size,
                               token=token)

    def step_task(self, principal: Principal, run_id: str, task_id: str) -> Task:
        run = self.get(principal, run_id)
        task = self.tasks.repo.get(task_id)
        if task is None or task.spec.tags.get(RUN_TAG) != run.id:
            raise NotFound(f"task {task_id!r} is not a task of run {run_id!r}")
        return task

    def engine_log(self, principal: Principal, run_id: str, stream: str) -> bytes:
        run = self.get(principal, run_id)
        key = run_key(run, LOG_FILES[stream])
        if not self.store.exists(Area.WORK, key):
            return b""
        with self.store.open(Area.WORK, key) as handle:
            return handle.read()

    # ------------------------------------------------------------ cancel

    def cancel(self, principal: Principal, run_id: str) -> Run:
        """Ask the run to stop; the run driver stops its engine and every step. Idempotent."""
        for _ in range(5):
            run = self.get(principal, run_id)
            if principal.user != run.owner and not principal.is_admin:
                raise Forbidden("only the run's submitter or an admin can cancel it")
            if run.state.is_terminal or run.state is RunState.CANCELING:
                return run
            canceling = run.moved_to(RunState.CANCELING, at=self.now())
            requested = AuditEvent(principal.user, "run.cancel_requested", "run", run.id, run.project,
                                   {"previous": run.state.value})
            try:
                saved = self.repo.save(canceling, (requested, run_state_event(canceling, run.state, principal.user)))
            except StaleRun:
                continue
            self.wake()
            return saved
        raise Conflict(f"run {run_id!r} is changing state too quickly; try again")

    # ------------------------------------------------------------ engine credentials

    def mint_engine_credential(self, run: Run) -> tuple[str, str]:
        """(token for the engine, its SHA-256 to keep on the run). The token names the run it belongs to."""
        secret = secrets.token_urlsafe(32)
        return f"{CREDENTIAL_PREFIX}{run.id}.{secret}", _sha256(secret)

    def engine_principal(self, token: str) -> Principal:
        """The confined identity of a run's engine, while the run's engine is active."""
        body = token[len(CREDENTIAL_PREFIX):]
        run_id, _, secret = body.partition(".")
        run = self.repo.get(run_id) if run_id and secret else None
        expected = (run.engine.get("credential_sha256") if run else None) or ""
        if run is None or not expected or not hmac.compare_digest(expected, _sha256(secret)):
            raise Unauthenticated("unknown workflow engine credential")
        if run.state not in ENGINE_ACTIVE:
            raise Unauthenticated(f"the credential of run {run.id} is no longer valid (run is {run.state.value})")
        return Principal(
            user=run.owner,
            roles=frozenset({Role.RESEARCHER}),
            projects=frozenset({run.project}),
            service=True,
            run_scope=run.id,
        )


def _attachment_suffix(url: str, named: dict[str, Upload]) -> str | None:
    """The longest attachment name that a client-side file:// URL ends with, if any."""
    if not url.startswith("file://"):
        return None
    path = unquote(url[len("file://"):])
    matches = [n for n in named if path.endswith("/" + n)]
    return max(matches, key=len) if matches else None


def _project_reader(run: Run) -> Principal:
    """Lists a run's tasks once the caller has been allowed to see the run itself."""
    return Principal(user="gateway", roles=frozenset({Role.RESEARCHER}), projects=frozenset({run.project}),
                     service=True)


def _replace_references(value: Any, rewritten: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _replace_references(v, rewritten) for k, v in value.items()}
        if value.get("class") in ("File", "Directory"):
            source = value.get("location") if isinstance(value.get("location"), str) else value.get("path")
            if isinstance(source, str):
                out.pop("path", None)
                out["location"] = rewritten[source]
        return out
    if isinstance(value, list):
        return [_replace_references(v, rewritten) for v in value]
    return value
