"""Ports: the small interfaces the use cases need from the outside world.

Each port has one fake in tests/ and one shared contract test-suite that every implementation
passes. Implementations are chosen by a configuration string at start-up (see adapters/registry.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from gateway.domain.airlock import EgressRequest, ProjectPolicy, RequestState
from gateway.domain.audit import AuditEntry, AuditEvent
from gateway.domain.errors import InvalidRequest
from gateway.domain.runs import Run
from gateway.domain.states import TaskState
from gateway.domain.submissions import CratePolicy, Submission
from gateway.domain.task import Executor, ExecutorLog, FileType, Output, Resources, Task

# ---------------------------------------------------------------- object store


class Area(StrEnum):
    INPUTS = "inputs"
    WORK = "work"
    QUARANTINE = "quarantine"
    RELEASED = "released"


@dataclass(frozen=True)
class Location:
    area: Area
    key: str


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    sha256: str


def check_key(key: str) -> str:
    """Object keys are relative, slash-separated, with no empty, '.' or '..' segments."""
    if not key or key.startswith("/") or "\x00" in key or "\\" in key:
        raise InvalidRequest(f"object key {key!r} is not a clean relative path")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidRequest(f"object key {key!r} is not a clean relative path")
    return key


class ObjectStore(Protocol):
    """Areas `inputs`, `work`, `quarantine`, `released`; keys are relative paths within an area."""

    def put_file(self, area: Area, key: str, source: Path) -> StoredObject: ...

    def put_bytes(self, area: Area, key: str, data: bytes) -> StoredObject: ...

    def open(self, area: Area, key: str) -> BinaryIO:
        """A readable binary stream; raises NotFound if the object does not exist."""
        ...

    def fetch_to(self, area: Area, key: str, destination: Path) -> None: ...

    def copy(self, source: Location, destination: Location) -> StoredObject: ...

    def list(self, area: Area, prefix: str = "") -> Iterator[StoredObject]:
        """Objects whose key starts with `prefix`, in key order (no directories)."""
        ...

    def exists(self, area: Area, key: str) -> bool: ...

    def delete_prefix(self, area: Area, prefix: str) -> int: ...

    def url_for(self, area: Area, key: str = "") -> str:
        """The URL clients use to name `key` in `area` (e.g. in TES input/output urls)."""
        ...

    def locate(self, url: str) -> Location | None:
        """The area and key a URL names in this store, or None if it is not one of ours."""
        ...


# ---------------------------------------------------------------- compute


class JobPhase(StrEnum):
    PENDING = "PENDING"        # accepted by the backend, nothing running yet
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"    # every executor finished (or failed with ignore_error); outputs collected
    FAILED = "FAILED"          # an executor exited non-zero without ignore_error
    SYSTEM_ERROR = "SYSTEM_ERROR"
    PREEMPTED = "PREEMPTED"
    MISSING = "MISSING"        # the backend has no trace of the job


@dataclass(frozen=True)
class StagedInput:
    path: str
    type: FileType
    source: Location | None = None
    content: str | None = None


@dataclass(frozen=True)
class Job:
    """A task as the backend runs it: images already resolved, inputs already located."""

    task_id: str
    project: str
    executors: tuple[Executor, ...]
    inputs: tuple[StagedInput, ...] = ()
    outputs: tuple[Output, ...] = ()
    volumes: tuple[str, ...] = ()
    resources: Resources | None = None


@dataclass(frozen=True)
class CollectedOutput:
    """An output file copied from the job's workspace into the quarantine area."""

    destination: str
    container_path: str
    stored: StoredObject


@dataclass(frozen=True)
class JobStatus:
    phase: JobPhase
    executor_logs: tuple[ExecutorLog, ...] = ()
    # A structured system-log line (see domain.task.system_log) when phase is a failure.
    reason: str | None = None
    outputs: tuple[CollectedOutput, ...] = ()
    started: bool = False


class ComputeBackend(Protocol):
    """Runs a job's executors in order in sandboxed containers.

    Every method is idempotent and safe to call again after a gateway crash: state lives in the
    backend (containers, pods) and in the database, never only in this process.
    """

    name: str

    def start(self, job: Job) -> None:
        """Stage inputs and launch the first executor. Calling it again for the same job is a no-op."""
        ...

    def poll(self, job: Job) -> JobStatus:
        """Observe the job; advance to the next executor when one ends; collect outputs at the end."""
        ...

    def cancel(self, task_id: str) -> None:
        """Stop the job: afterwards nothing of it runs. Safe for unknown ids."""
        ...

    def cleanup(self, task_id: str) -> None:
        """Remove what the job left behind (containers, workspace). Safe for unknown ids."""
        ...

    def known_task_ids(self) -> set[str]:
        """Ids of every task that still has containers or pods, for orphan reconciliation."""
        ...


# ---------------------------------------------------------------- persistence


@dataclass(frozen=True)
class TaskQuery:
    projects: frozenset[str] | None = None  # None: every project (admins)
    name_prefix: str | None = None
    state: TaskState | None = None
    tags: tuple[tuple[str, str], ...] = ()  # ("key", "") matches any value
    before_seq: int | None = None           # keyset cursor: only tasks older than this
    limit: int = 256


@dataclass
class TaskPage:
    tasks: list[Task] = field(default_factory=list)
    last_seq: int | None = None
    has_more: bool = False


class StaleTask(Exception):
    """A save was based on an out-of-date copy of the task; reload and try again."""


class TaskRepository(Protocol):
    def add(self, task: Task) -> None: ...

    def get(self, task_id: str) -> Task | None: ...

    def save(self, task: Task, events: Sequence[AuditEvent] = ()) -> Task:
        """Persist `task` if its version is current; return it with the version bumped, else StaleTask.

        `events` are appended to the audit log in the same transaction: a state change and its audit
        entry are stored together or not at all.
        """
        ...

    def query(self, query: TaskQuery) -> TaskPage:
        """Newest first, keyset-paginated on an internal, stable sequence."""
        ...

    def claim_active(self, worker: str, lease_seconds: float, limit: int) -> list[Task]:
        """Tasks in an active state whose lease is free, expired or already ours; leases them to `worker`."""
        ...

    def release_lease(self, task_id: str, worker: str) -> None: ...

    def count_by_state(self) -> dict[TaskState, int]: ...


@dataclass(frozen=True)
class AccessToken:
    """A personal access token, for clients that can only send HTTP Basic credentials."""

    token_id: str
    user: str
    secret_hash: str
    roles: tuple[str, ...]
    projects: tuple[str, ...]
    created_at: float
    expires_at: float
    revoked_at: float | None = None
    description: str = ""


class AccessTokenRepository(Protocol):
    def add(self, token: AccessToken) -> None: ...

    def find(self, token_id: str) -> AccessToken | None: ...

    def for_user(self, user: str) -> list[AccessToken]: ...

    def revoke(self, token_id: str, at: float) -> bool: ...


class MembershipRepository(Protocol):
    def projects_of(self, user: str) -> frozenset[str]: ...

    def add_member(self, project: str, user: str) -> None: ...


# ---------------------------------------------------------------- airlock and audit


class StaleRequest(Exception):
    """An egress request was changed by someone else meanwhile; reload and try again."""


@dataclass
class RequestPage:
    requests: list[EgressRequest] = field(default_factory=list)
    last_seq: int | None = None
    has_more: bool = False


class EgressRequestRepository(Protocol):
    def add(self, request: EgressRequest) -> None: ...

    def get(self, request_id: str) -> EgressRequest | None: ...

    def for_task(self, task_id: str) -> EgressRequest | None: ...

    def save(self, request: EgressRequest) -> EgressRequest:
        """Persist if the version is current (bumping it), else raise StaleRequest."""
        ...

    def query(
        self,
        *,
        states: frozenset[RequestState] | None,
        projects: frozenset[str] | None,
        limit: int,
        before_seq: int | None = None,
    ) -> RequestPage:
        """Newest first."""
        ...


class ProjectPolicyRepository(Protocol):
    def get(self, project: str) -> ProjectPolicy | None: ...

    def put(self, project: str, policy: ProjectPolicy) -> None: ...


class AuditLog(Protocol):
    def record(self, event: AuditEvent) -> AuditEntry:
        """Append one event, chained to the previous entry. Never fails silently."""
        ...

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry in sequence order."""
        ...

    def head(self) -> tuple[int, str]:
        """(sequence, hash) of the last entry as recorded by the log itself."""
        ...


# ---------------------------------------------------------------- workflow runs


class StaleRun(Exception):
    """A run was changed by someone else meanwhile; reload and try again."""


@dataclass(frozen=True)
class RunQuery:
    projects: frozenset[str] | None = None  # None: every project (admins)
    before_seq: int | None = None
    limit: int = 256


@dataclass
class RunPage:
    runs: list[Run] = field(default_factory=list)
    last_seq: int | None = None
    has_more: bool = False


class RunRepository(Protocol):
    def add(self, run: Run) -> None: ...

    def get(self, run_id: str) -> Run | None: ...

    def save(self, run: Run, events: Sequence[AuditEvent] = ()) -> Run:
        """Persist if the version is current (bumping it), else StaleRun; `events` in the same transaction."""
        ...

    def query(self, query: RunQuery) -> RunPage:
        """Newest first, keyset-paginated."""
        ...

    def claim_active(self, worker: str, lease_seconds: float, limit: int) -> list[Run]:
        """Active runs whose lease is free, expired or ours; leases them to `worker` (renewing ours)."""
        ...

    def count_by_state(self) -> dict[TaskState, int]: ...


@dataclass(frozen=True)
class EngineExit:
    exit_code: int
    # True when the process ended by a signal or could not start: the gateway's fault, not the workflow's.
    crashed: bool = False


class WorkflowEngine(Protocol):
    """Starts and watches workflow engine processes (cwltool) for runs. Handles live in this process."""

    name: str
    version: str

    def start(self, run: Run, engine_token: str) -> dict[str, Any]:
        """Launch the engine for `run`; returns a small JSON-able description (worker, pid)."""
        ...

    def poll(self, run_id: str) -> EngineExit | None:
        """None while the engine runs; its exit once it has ended. Raises NotFound if not started here."""
        ...

    def stop(self, run_id: str) -> None:
        """Stop the engine and every step command it started; safe for unknown or finished runs."""
        ...

    def outputs(self, run: Run) -> dict[str, Any] | None:
        """The CWL output object the engine printed, or None if it printed none (the run did not succeed;
        cwltool exits 0 after some failures, e.g. a document that fails validation)."""
        ...


# ---------------------------------------------------------------- Five Safes crate submissions


class StaleSubmission(Exception):
    """A submission was changed by someone else meanwhile; reload and try again."""


@dataclass
class SubmissionPage:
    submissions: list[Submission] = field(default_factory=list)
    last_seq: int | None = None
    has_more: bool = False


class SubmissionRepository(Protocol):
    def add(self, submission: Submission, events: Sequence[AuditEvent] = ()) -> None: ...

    def get(self, submission_id: str) -> Submission | None: ...

    def save(self, submission: Submission, events: Sequence[AuditEvent] = ()) -> Submission:
        """Persist if the version is current (bumping it), else StaleSubmission."""
        ...

    def query(self, projects: frozenset[str] | None, owner: str | None, limit: int,
              before_seq: int | None = None) -> SubmissionPage:
        """Newest first: submissions of `projects` (None: all) or owned by `owner`."""
        ...

    def active(self, limit: int = 64) -> list[Submission]:
        """Submissions whose run the gateway is following (executing or awaiting disclosure)."""
        ...


class CratePolicyRepository(Protocol):
    def get(self, project: str) -> CratePolicy | None: ...

    def put(self, project: str, policy: CratePolicy) -> None: ...


class CrateTools(Protocol):
    """Reading, checking and writing crates on disk (BagIt, SHACL): the adapters behind the crate use cases."""

    def intake(self, source: Path, target: Path) -> tuple[Path, tuple[str, ...], dict[str, Any]]:
        """Unpack and verify the client's archive into `target`: (crate root, verified manifests, metadata).

        Raises InvalidRequest with a message for the client; nothing is left in `target` then.
        """
        ...

    def unpack_workflow(self, source: Path, target: Path) -> tuple[Path, dict[str, Any]]:
        """Unpack a Workflow RO-Crate (zip or folder) into `target`: (crate root, metadata)."""
        ...

    def violations(self, document: dict[str, Any]) -> list[str]:
        """MUST-level problems of a crate's metadata against the Five Safes shapes (empty: conforms)."""
        ...

    def write_bag(self, payload: Path, destination: Path, bag_name: str) -> None:
        """Zip `payload` as a BagIt bag with regenerated SHA-512 manifests."""
        ...

    def digests(self, path: Path) -> tuple[int, str, str]:
        """(size, sha256, sha512) of a file."""
        ...


class WorkflowMirror(Protocol):
    """The TRE's own copies of approved workflows (nothing is fetched from the internet)."""

    def locate(self, workflow_id: str) -> Path | None:
        """The local Workflow RO-Crate (zip or folder) for a workflow id, or None if the mirror lacks it."""
        ...
