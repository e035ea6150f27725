"""In-memory fakes of every port, for unit tests. Each passes the same contract suite as the real adapters."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from gateway.domain.airlock import EgressRequest, ProjectPolicy
from gateway.domain.audit import GENESIS, AuditEntry, AuditEvent, entry_hash
from gateway.domain.errors import BackendError, NotFound
from gateway.domain.states import ACTIVE_STATES, TaskState
from gateway.domain.task import ExecutorLog, FileType, Task, system_log
from gateway.services.ports import (
    AccessToken,
    Area,
    CollectedOutput,
    Job,
    JobPhase,
    JobStatus,
    Location,
    RequestPage,
    StaleRequest,
    StaleTask,
    StoredObject,
    TaskPage,
    TaskQuery,
    check_key,
)


def mem_url(area: Area, key: str = "") -> str:
    """The URL the fake store gives `key` in `area`."""
    return f"mem://{area.value}/{key}"

class FakeObjectStore:
    """Objects in a dict; URLs look like `mem://area/key`."""

    def __init__(self) -> None:
        self.objects: dict[tuple[Area, str], bytes] = {}

    def put_bytes(self, area: Area, key: str, data: bytes) -> StoredObject:
        self.objects[(area, check_key(key))] = data
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    def put_file(self, area: Area, key: str, source: Path) -> StoredObject:
        return self.put_bytes(area, key, Path(source).read_bytes())

    def open(self, area: Area, key: str) -> BinaryIO:
        try:
            return io.BytesIO(self.objects[(area, check_key(key))])
        except KeyError:
            raise NotFound(f"object {key!r} not found in {area.value}") from None

    def fetch_to(self, area: Area, key: str, destination: Path) -> None:
        Path(destination).write_bytes(self.open(area, key).read())

    def copy(self, source: Location, destination: Location) -> StoredObject:
        return self.put_bytes(destination.area, destination.key, self.open(source.area, source.key).read())

    def list(self, area: Area, prefix: str = "") -> Iterator[StoredObject]:
        for (a, key), data in sorted(self.objects.items(), key=lambda kv: kv[0][1]):
            if a is area and key.startswith(prefix):
                yield StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    def exists(self, area: Area, key: str) -> bool:
        return (area, check_key(key)) in self.objects

    def delete_prefix(self, area: Area, prefix: str) -> int:
        doomed = [k for k in self.objects if k[0] is area and k[1].startswith(prefix)]
        for k in doomed:
            del self.objects[k]
        return len(doomed)

    def url_for(self, area: Area, key: str = "") -> str:
        return mem_url(area, key)

    def locate(self, url: str) -> Location | None:
        parsed = urlparse(url)
        if parsed.scheme != "mem":
            return None
        try:
            area = Area(parsed.netloc)
        except ValueError:
            return None
        key = parsed.path[1:]
        return Location(area, key) if key else None


@dataclass
class _FakeJob:
    job: Job
    started_at: float
    canceled: bool = False


@dataclass
class FakeBackend:
    """Runs nothing. An executor's command decides its fate:

    - `["exit", "N"]` exits with N; `["sleep", "S"]` runs S seconds; anything else succeeds at once.
    - `["preempt"]` is evicted; `["write", PATH, TEXT]` writes TEXT to the workspace file PATH;
      `["copy", SRC, DST]` copies one workspace file to another.
    Outputs are collected from the workspace into the store's quarantine area.
    """

    store: FakeObjectStore
    name: str = "fake"
    jobs: dict[str, _FakeJob] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    clock: object = time.monotonic
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, job: Job) -> None:
        with self.lock:
            if job.task_id in self.jobs:
                return
            workspace: dict[str, str] = {}
            for inp in job.inputs:
                if inp.content is not None:
                    workspace[inp.path] = inp.content
                elif inp.source is not None and inp.type is FileType.FILE:
                    try:
                        workspace[inp.path] = self.store.open(inp.source.area, inp.source.key).read().decode()
                    except NotFound as exc:
                        raise BackendError(f"input could not be staged: {exc.msg}") from exc
            self.files[job.task_id] = workspace
            self.jobs[job.task_id] = _FakeJob(job, self.clock())  # type: ignore[operator]

    def poll(self, job: Job) -> JobStatus:
        with self.lock:
            record = self.jobs.get(job.task_id)
            if record is None or record.canceled:
                return JobStatus(JobPhase.MISSING)
            elapsed = self.clock() - record.started_at  # type: ignore[operator]
            logs: list[ExecutorLog] = []
            for ex in job.executors:
                cmd = ex.command
                if cmd[0] == "sleep":
                    elapsed -= float(cmd[1])
                    if elapsed < 0:
                        return JobStatus(JobPhase.RUNNING, tuple(logs), started=True)
                if cmd[0] == "preempt":
                    return JobStatus(JobPhase.PREEMPTED, tuple(logs), reason=system_log("preempted", "evicted"))
                if cmd[0] == "write":
                    self.files[job.task_id][cmd[1]] = cmd[2]
                if cmd[0] == "copy":
                    self.files[job.task_id][cmd[2]] = self.files[job.task_id].get(cmd[1], "")
                code = int(cmd[1]) if cmd[0] == "exit" else 0
                logs.append(ExecutorLog(exit_code=code, stdout=" ".join(cmd)))
                if code and not ex.ignore_error:
                    return JobStatus(
                        JobPhase.FAILED, tuple(logs), reason=system_log("executor_failed", f"exit {code}"),
                        started=True,
                    )
            collected = []
            for index, out in enumerate(job.outputs):
                content = self.files[job.task_id].get(out.path)
                if content is None:
                    return JobStatus(JobPhase.SYSTEM_ERROR, tuple(logs), reason=system_log("output_missing", out.path))
                name = out.path.rsplit("/", 1)[-1]
                stored = self.store.put_bytes(Area.QUARANTINE, f"{job.task_id}/{index}/{name}", content.encode())
                collected.append(CollectedOutput(out.url, out.path, stored))
            return JobStatus(JobPhase.SUCCEEDED, tuple(logs), outputs=tuple(collected), started=True)

    def cancel(self, task_id: str) -> None:
        with self.lock:
            if task_id in self.jobs:
                self.jobs[task_id].canceled = True

    def cleanup(self, task_id: str) -> None:
        with self.lock:
            self.jobs.pop(task_id, None)
            self.files.pop(task_id, None)

    def known_task_ids(self) -> set[str]:
        with self.lock:
            return {k for k, v in self.jobs.items() if not v.canceled}

    def running(self) -> set[str]:
        return self.known_task_ids()


class InMemoryTaskRepository:
    """`audit` receives the events saved with a task (a log of its own unless one is shared)."""

    def __init__(self, audit: InMemoryAuditLog | None = None) -> None:
        self.audit = audit if audit is not None else InMemoryAuditLog()
        self.rows: dict[str, tuple[int, Task]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        self.seq = 0
        self.lock = threading.Lock()

    def add(self, task: Task) -> None:
        with self.lock:
            if task.id in self.rows:
                raise ValueError(f"duplicate task id {task.id}")
            self.seq += 1
            self.rows[task.id] = (self.seq, task)

    def get(self, task_id: str) -> Task | None:
        row = self.rows.get(task_id)
        return row[1] if row else None

    def save(self, task: Task, events: Sequence[AuditEvent] = ()) -> Task:
        with self.lock:
            seq, current = self.rows[task.id]
            if current.version != task.version:
                raise StaleTask(task.id)
            saved = task.with_logs(version=task.version + 1)
            self.rows[task.id] = (seq, saved)
            for event in events:
                self.audit.record(event)
            return saved

    def query(self, query: TaskQuery) -> TaskPage:
        rows = sorted(self.rows.values(), key=lambda r: -r[0])
        picked = []
        for seq, t in rows:
            if query.projects is not None and t.project not in query.projects:
                continue
            if query.name_prefix and not (t.spec.name or "").startswith(query.name_prefix):
                continue
            if query.state is not None and t.state is not query.state:
                continue
            if any(k not in t.spec.tags or (v and t.spec.tags[k] != v) for k, v in query.tags):
                continue
            if query.before_seq is not None and seq >= query.before_seq:
                continue
            picked.append((seq, t))
        page = picked[: query.limit]
        return TaskPage([t for _, t in page], page[-1][0] if page else None, len(picked) > query.limit)

    def claim_active(self, worker: str, lease_seconds: float, limit: int) -> list[Task]:
        now = time.time()
        out = []
        with self.lock:
            for _seq, t in sorted(self.rows.values(), key=lambda r: r[0]):
                if t.state not in ACTIVE_STATES:
                    continue
                owner = self.leases.get(t.id)
                if owner and owner[0] != worker and owner[1] > now:
                    continue
                self.leases[t.id] = (worker, now + lease_seconds)
                out.append(t)
                if len(out) >= limit:
                    break
        return out

    def release_lease(self, task_id: str, worker: str) -> None:
        with self.lock:
            if self.leases.get(task_id, ("",))[0] == worker:
                del self.leases[task_id]

    def count_by_state(self) -> dict[TaskState, int]:
        counts: dict[TaskState, int] = {}
        for _, t in self.rows.values():
            counts[t.state] = counts.get(t.state, 0) + 1
        return counts


class InMemoryAccessTokens:
    def __init__(self) -> None:
        self.tokens: dict[str, AccessToken] = {}

    def add(self, token: AccessToken) -> None:
        self.tokens[token.token_id] = token

    def find(self, token_id: str) -> AccessToken | None:
        return self.tokens.get(token_id)

    def for_user(self, user: str) -> list[AccessToken]:
        return sorted((t for t in self.tokens.values() if t.user == user), key=lambda t: t.created_at)

    def revoke(self, token_id: str, at: float) -> bool:
        t = self.tokens.get(token_id)
        if t is None or t.revoked_at is not None:
            return False
        from dataclasses import replace

        self.tokens[token_id] = replace(t, revoked_at=at)
        return True


class InMemoryMemberships:
    def __init__(self) -> None:
        self.members: set[tuple[str, str]] = set()

    def projects_of(self, user: str) -> frozenset[str]:
        return frozenset(p for p, u in self.members if u == user)

    def add_member(self, project: str, user: str) -> None:
        self.members.add((project, user))


class InMemoryEgressRequests:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, EgressRequest]] = {}
        self.seq = 0

    def add(self, request: EgressRequest) -> None:
        if request.id in self.rows or self.for_task(request.task_id) is not None:
            raise ValueError("duplicate egress request")
        self.seq += 1
        self.rows[request.id] = (self.seq, request)

    def get(self, request_id: str) -> EgressRequest | None:
        row = self.rows.get(request_id)
        return row[1] if row else None

    def for_task(self, task_id: str) -> EgressRequest | None:
        return next((r for _, r in self.rows.values() if r.task_id == task_id), None)

    def save(self, request: EgressRequest) -> EgressRequest:
        seq, current = self.rows[request.id]
        if current.version != request.version:
            raise StaleRequest(request.id)
        saved = replace(request, version=request.version + 1)
        self.rows[request.id] = (seq, saved)
        return saved

    def query(self, *, states, projects, limit, before_seq=None) -> RequestPage:  # type: ignore[no-untyped-def]
        picked = [
            (seq, r) for seq, r in sorted(self.rows.values(), key=lambda x: -x[0])
            if (states is None or r.state in states) and (projects is None or r.project in projects)
            and (before_seq is None or seq < before_seq)
        ]
        page = picked[:limit]
        return RequestPage([r for _, r in page], page[-1][0] if page else None, len(picked) > limit)


class InMemoryPolicies:
    def __init__(self) -> None:
        self.policies: dict[str, ProjectPolicy] = {}

    def get(self, project: str) -> ProjectPolicy | None:
        return self.policies.get(project)

    def put(self, project: str, policy: ProjectPolicy) -> None:
        self.policies[project] = policy


class InMemoryAuditLog:
    """Chains entries exactly like the SQL log, so verification logic is exercised in unit tests too."""

    def __init__(self) -> None:
        self.rows: list[AuditEntry] = []
        self.head_seq, self.head_hash = 0, GENESIS

    def record(self, event: AuditEvent) -> AuditEntry:
        seq = self.head_seq + 1
        at = f"2026-01-01T00:00:{seq:09.6f}Z"
        entry = AuditEntry(seq, at, event, self.head_hash, entry_hash(seq, at, event, self.head_hash))
        self.rows.append(entry)
        self.head_seq, self.head_hash = seq, entry.hash
        return entry

    def entries(self):  # type: ignore[no-untyped-def]
        return iter(list(self.rows))

    def head(self) -> tuple[int, str]:
        return self.head_seq, self.head_hash

    def actions(self) -> list[str]:
        return [e.event.action for e in self.rows]


# ---------------------------------------------------------------- workflow runs

from typing import Any  # noqa: E402

from gateway.domain.runs import Run, RunState  # noqa: E402
from gateway.services.ports import EngineExit, RunPage, RunQuery, StaleRun  # noqa: E402

# Runs a worker keeps driving, PAUSED included (the run follows its release task's review).
RUN_ACTIVE_STATES = frozenset(
    {RunState.QUEUED, RunState.INITIALIZING, RunState.RUNNING, RunState.PAUSED, RunState.CANCELING}
)


class FakeRunRepository:
    """Runs in a dict, keyset-paged on an insertion sequence; `audit` receives the events saved with a run."""

    def __init__(self, audit: InMemoryAuditLog | None = None) -> None:
        self.audit = audit if audit is not None else InMemoryAuditLog()
        self.rows: dict[str, tuple[int, Run]] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        self.seq = 0
        self.lock = threading.Lock()

    def add(self, run: Run) -> None:
        with self.lock:
            if run.id in self.rows:
                raise ValueError(f"duplicate run id {run.id}")
            self.seq += 1
            self.rows[run.id] = (self.seq, replace(run, seq=self.seq))

    def get(self, run_id: str) -> Run | None:
        row = self.rows.get(run_id)
        return row[1] if row else None

    def save(self, run: Run, events: Sequence[AuditEvent] = ()) -> Run:
        with self.lock:
            seq, current = self.rows[run.id]
            if current.version != run.version:
                raise StaleRun(run.id)
            saved = replace(run, version=run.version + 1, seq=seq)
            self.rows[run.id] = (seq, saved)
            for event in events:
                self.audit.record(event)
            return saved

    def query(self, query: RunQuery) -> RunPage:
        picked = [
            (seq, r) for seq, r in sorted(self.rows.values(), key=lambda x: -x[0])
            if (query.projects is None or r.project in query.projects)
            and (query.before_seq is None or seq < query.before_seq)
        ]
        page = picked[: query.limit]
        return RunPage([r for _, r in page], page[-1][0] if page else None, len(picked) > query.limit)

    def claim_active(self, worker: str, lease_seconds: float, limit: int) -> list[Run]:
        now = time.time()
        out = []
        with self.lock:
            for _seq, r in sorted(self.rows.values(), key=lambda x: x[0]):
                if r.state not in RUN_ACTIVE_STATES:
                    continue
                owner = self.leases.get(r.id)
                if owner and owner[0] != worker and owner[1] >= now:
                    continue
                self.leases[r.id] = (worker, now + lease_seconds)
                out.append(r)
                if len(out) >= limit:
                    break
        return out

    def expire_lease(self, run_id: str) -> None:
        """Test helper: the worker holding the run's lease is gone and its lease has run out."""
        with self.lock:
            if run_id in self.leases:
                self.leases[run_id] = (self.leases[run_id][0], 0.0)

    def count_by_state(self) -> dict[RunState, int]:
        counts: dict[RunState, int] = {}
        for _, r in self.rows.values():
            counts[r.state] = counts.get(r.state, 0) + 1
        return counts


@dataclass
class FakeWorkflowEngine:
    """Runs nothing. A run is known only to the instance that started it (another instance is another worker).

    `finish(run_id, code)` scripts what the next polls report (None until then); `script(run_id, *results)`
    queues several poll results (the last one repeats); `outputs_of[run_id]` is the CWL output object;
    `start_error` makes `start` raise it.
    """

    worker: str = "w1"
    name: str = "fake-engine"
    version: str = "0.0"
    started: dict[str, str] = field(default_factory=dict)  # run id -> engine token
    stopped: list[str] = field(default_factory=list)
    polls: dict[str, list[EngineExit | None]] = field(default_factory=dict)
    outputs_of: dict[str, dict[str, Any]] = field(default_factory=dict)
    start_error: Exception | None = None

    def start(self, run: Run, engine_token: str) -> dict[str, Any]:
        if self.start_error is not None:
            raise self.start_error
        self.started[run.id] = engine_token
        return {"worker": self.worker, "pid": 1000 + len(self.started)}

    def poll(self, run_id: str) -> EngineExit | None:
        if run_id not in self.started:
            raise NotFound(f"no engine for run {run_id} in worker {self.worker}")
        queue = self.polls.get(run_id) or [None]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def stop(self, run_id: str) -> None:
        self.stopped.append(run_id)

    def outputs(self, run: Run) -> dict[str, Any]:
        return dict(self.outputs_of.get(run.id, {}))

    def finish(self, run_id: str, exit_code: int = 0, *, crashed: bool = False) -> None:
        self.polls[run_id] = [EngineExit(exit_code, crashed)]

    def script(self, run_id: str, *results: EngineExit | None) -> None:
        self.polls[run_id] = list(results)


# ---------------------------------------------------------------- Five Safes crate submissions

from gateway.domain.submissions import CratePolicy, Submission, SubmissionState  # noqa: E402
from gateway.services.ports import StaleSubmission, SubmissionPage  # noqa: E402

SUBMISSION_ACTIVE_STATES = (SubmissionState.EXECUTING, SubmissionState.AWAITING_DISCLOSURE)


class FakeSubmissionRepository:
    """Submissions in a dict, keyset-paged on an insertion sequence; `audit` receives the events saved with them."""

    def __init__(self, audit: InMemoryAuditLog | None = None) -> None:
        self.audit = audit if audit is not None else InMemoryAuditLog()
        self.rows: dict[str, Submission] = {}
        self.seq = 0
        self.lock = threading.Lock()

    def add(self, submission: Submission, events: Sequence[AuditEvent] = ()) -> None:
        with self.lock:
            if submission.id in self.rows:
                raise ValueError(f"duplicate submission id {submission.id}")
            self.seq += 1
            self.rows[submission.id] = replace(submission, seq=self.seq)
            for event in events:
                self.audit.record(event)

    def get(self, submission_id: str) -> Submission | None:
        return self.rows.get(submission_id)

    def save(self, submission: Submission, events: Sequence[AuditEvent] = ()) -> Submission:
        with self.lock:
            current = self.rows.get(submission.id)
            if current is None or current.version != submission.version:
                raise StaleSubmission(submission.id)
            saved = replace(submission, version=submission.version + 1, seq=current.seq)
            self.rows[submission.id] = saved
            for event in events:
                self.audit.record(event)
            return saved

    def query(self, projects: frozenset[str] | None, owner: str | None, limit: int,
              before_seq: int | None = None) -> SubmissionPage:
        picked = [
            s for s in sorted(self.rows.values(), key=lambda s: -(s.seq or 0))
            if (projects is None or s.project in projects or (owner is not None and s.owner == owner))
            and (before_seq is None or (s.seq or 0) < before_seq)
        ]
        page = picked[:limit]
        return SubmissionPage(page, page[-1].seq if page else None, len(picked) > limit)

    def active(self, limit: int = 64) -> list[Submission]:
        found = sorted((s for s in self.rows.values() if s.state in SUBMISSION_ACTIVE_STATES),
                       key=lambda s: s.seq or 0)
        return found[:limit]


class FakeCratePolicyRepository:
    def __init__(self) -> None:
        self.policies: dict[str, CratePolicy] = {}

    def get(self, project: str) -> CratePolicy | None:
        return self.policies.get(project)

    def put(self, project: str, policy: CratePolicy) -> None:
        self.policies[project] = policy
