"""RunService: the WES use cases (submit, list, get, cancel, engine credentials) against in-memory fakes."""

from __future__ import annotations

import io
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.storage.local import LocalObjectStore
from gateway.domain.errors import (
    Conflict,
    DestinationNotAllowed,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthenticated,
)
from gateway.domain.identity import Principal, Role
from gateway.domain.images import ImagePolicy
from gateway.domain.runs import RUN_TAG, Run, RunState
from gateway.services.ports import Area, StaleRun
from gateway.services.runs import CREDENTIAL_PREFIX, PARAMS_FILE, RunService, Upload
from gateway.services.tasks import TaskService
from tests.fakes import (
    FakeObjectStore,
    FakeRunRepository,
    InMemoryAuditLog,
    InMemoryTaskRepository,
    mem_url,
)

NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)

ALICE = Principal("alice", frozenset({Role.RESEARCHER}), frozenset({"p1"}))
AMIR = Principal("amir", frozenset({Role.RESEARCHER}), frozenset({"p1", "p2"}))
BOB = Principal("bob", frozenset({Role.RESEARCHER}), frozenset({"p2"}))
CAROL = Principal("carol", frozenset({Role.OUTPUT_CHECKER}), frozenset({"p1"}))
ADMIN = Principal("root", frozenset({Role.ADMIN}), frozenset({"ops"}))

WORKFLOW = b"cwlVersion: v1.2\nclass: Workflow\n"
REGISTRY = "https://workflows.example.org/"


class Fetcher:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, url: str, limit: int) -> bytes:
        self.calls.append((url, limit))
        return b"fetched: " + url.encode()


class Harness:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.task_repo = InMemoryTaskRepository()
        task_ids = itertools.count(1)
        self.tasks = TaskService(self.task_repo, store, ImagePolicy({"alpine": "localhost/tre-base:latest"}),
                                 lambda: f"task-{next(task_ids):04d}", lambda: NOW)
        self.repo = FakeRunRepository()
        self.audit = InMemoryAuditLog()
        self.fetcher = Fetcher()
        self.wakes = 0
        run_ids = itertools.count(1)
        self.service = RunService(
            repo=self.repo,
            tasks=self.tasks,
            store=store,
            new_id=lambda: f"run-{next(run_ids):04d}",
            now=lambda: NOW,
            workflow_url_prefixes=(REGISTRY,),
            fetch_workflow=self.fetcher,
            max_workflow_bytes=1234,
            audit=self.audit,
            default_page_size=3,
            max_page_size=5,
            wake=self._wake,
        )

    def _wake(self) -> None:
        self.wakes += 1

    def work_keys(self) -> set[str]:
        return {o.key for o in self.store.list(Area.WORK)}

    def submit(self, principal: Principal = ALICE, uploads: list[Upload] | None = None, **fields: Any) -> Run:
        return self.service.submit(principal, form(**fields), uploads if uploads is not None else [upload()])

    def refused(self, error: type[Exception], principal: Principal = ALICE, uploads: list[Upload] | None = None,
                **fields: Any) -> str:
        """Submit, expect `error`, and check that nothing at all was written or stored."""
        before, runs = self.work_keys(), dict(self.repo.rows)
        with pytest.raises(error) as info:
            self.submit(principal, uploads, **fields)
        assert self.work_keys() == before
        assert self.repo.rows == runs
        return getattr(info.value, "msg", str(info.value))

    def engine_token(self, run: Run, *states: RunState) -> str:
        """Mint the run's engine credential as the run runner does, then move the run through `states`."""
        token, digest = self.service.mint_engine_credential(run)
        current = self.repo.get(run.id)
        assert current is not None
        current = self.repo.save(current.updated(engine={**current.engine, "credential_sha256": digest}))
        for state in states:
            current = self.repo.save(current.moved_to(state, at=NOW))
        return token

    def move(self, run_id: str, *states: RunState) -> Run:
        current = self.repo.get(run_id)
        assert current is not None
        for state in states:
            current = self.repo.save(current.moved_to(state, at=NOW))
        return current


def form(**fields: Any) -> dict[str, str | None]:
    out: dict[str, str | None] = {"workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_url": "main.cwl"}
    for key, value in fields.items():
        out[key] = json.dumps(value) if isinstance(value, dict | list) else value
    return out


def upload(name: str | None = "main.cwl", data: bytes = WORKFLOW) -> Upload:
    return Upload(name, io.BytesIO(data))


@pytest.fixture
def h() -> Harness:
    return Harness(FakeObjectStore())


@pytest.fixture
def local(tmp_path: Path) -> Harness:
    return Harness(LocalObjectStore(tmp_path / "store"))


def params_of(h: Harness, run: Run) -> dict[str, Any]:
    with h.store.open(Area.WORK, f"{run.project}/runs/{run.id}/{PARAMS_FILE}") as stream:
        loaded: dict[str, Any] = json.loads(stream.read())
    return loaded


# ---------------------------------------------------------------- submit


def test_a_valid_submit_writes_the_attachments_and_params_into_the_run_folder(local: Harness) -> None:
    h = local
    h.store.put_bytes(Area.INPUTS, "p1/ref.fa", b">chr1\nACGT\n")
    ref_url = h.store.url_for(Area.INPUTS, "p1/ref.fa")
    ref_path = ref_url[len("file://"):]
    uploads = [upload("main.cwl"), upload("tools/align.cwl", b"tool"), upload("data/reads.fq", b"@r1\nACGT\n")]
    params = {
        "reads": {"class": "File", "location": "data/reads.fq"},
        "also": {"class": "File", "path": "./tools/align.cwl"},
        "folder": {"class": "Directory", "location": "data"},
        "reference": {"class": "File", "path": ref_path},
        "reference2": {"class": "File", "location": ref_url},
        "threads": 4,
    }
    run = h.submit(uploads=uploads, workflow_url="main.cwl#main", workflow_params=params, tags={"study": "s1"})

    folder = "p1/runs/run-0001/"
    assert h.work_keys() == {
        folder + "workflow/main.cwl", folder + "workflow/tools/align.cwl", folder + "workflow/data/reads.fq",
        folder + "engine/params.json",
    }
    with h.store.open(Area.WORK, folder + "workflow/data/reads.fq") as stream:
        assert stream.read() == b"@r1\nACGT\n"
    written = params_of(h, run)
    work = h.store.url_for(Area.WORK, folder + "workflow/")
    assert work.startswith("file://")
    assert written == {
        "reads": {"class": "File", "location": work + "data/reads.fq"},
        "also": {"class": "File", "location": work + "tools/align.cwl"},
        "folder": {"class": "Directory", "location": work + "data"},
        "reference": {"class": "File", "location": ref_url},
        "reference2": {"class": "File", "location": ref_url},
        "threads": 4,
    }
    # The rewritten locations are the very files that were written.
    assert h.store.locate(written["reads"]["location"]).key == folder + "workflow/data/reads.fq"

    assert (run.id, run.owner, run.project, run.state, run.created_at) == ("run-0001", "alice", "p1",
                                                                          RunState.QUEUED, NOW)
    assert run.attachments == ("data/reads.fq", "main.cwl", "tools/align.cwl")
    assert run.engine == {"workflow": "main.cwl#main"}
    assert run.request.tags == {"study": "s1", "project": "p1"}
    assert run.request.workflow_params == params  # the request keeps what the client sent
    stored = h.repo.get(run.id)
    assert stored is not None and stored.state is RunState.QUEUED and stored.request == run.request
    assert h.wakes == 1
    assert [(e.event.action, e.event.object_id) for e in h.audit.rows] == [("run.submitted", "run-0001")]


def test_absolute_input_paths_and_urls_of_the_own_project_are_kept(h: Harness) -> None:
    params = {"a": {"class": "File", "location": "mem://inputs/p1/a.csv"},
              "b": {"class": "File", "location": "mem://released/p1/earlier/b.csv"}}
    run = h.submit(workflow_params=params)
    assert params_of(h, run) == params


def test_the_project_tag_picks_among_projects(h: Harness) -> None:
    run = h.submit(AMIR, tags={"project": "p2"})
    assert run.project == "p2"
    assert all(k.startswith("p2/runs/run-0001/") for k in h.work_keys())
    with pytest.raises(InvalidRequest):
        h.submit(AMIR)  # two projects and none named


def test_a_workflow_named_by_its_client_side_path_is_the_attachment(h: Harness) -> None:
    run = h.submit(workflow_url="file:///home/alice/wf/main.cwl#main")
    assert run.engine["workflow"] == "main.cwl#main"
    run = h.submit(workflow_url="./main.cwl")
    assert run.engine["workflow"] == "main.cwl"


def test_a_workflow_on_the_allow_list_is_fetched(h: Harness) -> None:
    url = REGISTRY + "pipelines/align.cwl"
    run = h.submit(uploads=[], workflow_url=url + "#main")
    assert h.fetcher.calls == [(url, 1234)]
    assert run.engine["workflow"] == "fetched/align.cwl#main"
    with h.store.open(Area.WORK, "p1/runs/run-0001/workflow/fetched/align.cwl") as stream:
        assert stream.read() == b"fetched: " + url.encode()


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/align.cwl",
        "https://workflows.example.org.evil.com/align.cwl",
        "http://workflows.example.org/align.cwl",
        "file:///etc/passwd",
        "ftp://workflows.example.org/align.cwl",
    ],
)
def test_a_workflow_off_the_allow_list_is_refused_and_not_fetched(h: Harness, url: str) -> None:
    message = h.refused(InvalidRequest, workflow_url=url)
    assert message.startswith("workflow_url:")
    assert h.fetcher.calls == []


def test_a_workflow_url_that_is_not_an_attachment_writes_nothing(h: Harness) -> None:
    message = h.refused(InvalidRequest, uploads=[upload("main.cwl"), upload("other.cwl")], workflow_url="missing.cwl")
    assert message.startswith("workflow_url:") and "main.cwl, other.cwl" in message
    assert h.store.objects == {} and h.repo.rows == {}
    assert h.wakes == 0 and h.audit.rows == []


@pytest.mark.parametrize(
    "names",
    [
        ["../evil.cwl"],
        ["main.cwl", "../../p2/runs/x/workflow/main.cwl"],
        ["main.cwl", "/etc/cron.d/evil"],
        ["main.cwl", "..\\evil"],
        ["main.cwl", "C:\\evil"],
        ["main.cwl", "a//b"],
        ["main.cwl", None],
        ["main.cwl", "main.cwl"],
        ["main.cwl", "tools", "tools/x.cwl"],
        ["main.cwl", "tools/x.cwl", "tools"],
    ],
)
def test_bad_attachment_names_write_nothing(h: Harness, names: list[str | None]) -> None:
    message = h.refused(InvalidRequest, uploads=[upload(n) for n in names])
    assert message.startswith("workflow_attachment:")
    assert h.store.objects == {} and h.repo.rows == {}


def test_duplicate_and_clashing_names_are_explained(h: Harness) -> None:
    assert "sent twice" in h.refused(InvalidRequest, uploads=[upload(), upload("main.cwl")])
    message = h.refused(InvalidRequest, uploads=[upload(), upload("d/x"), upload("d")])
    assert "both a file and a folder" in message


@pytest.mark.parametrize(
    "location",
    [
        "mem://inputs/p2/secret.csv",            # another project's inputs
        "mem://released/p2/out.csv",             # another project's released outputs
        "mem://inputs/p1/../p2/secret.csv",      # climbing into another project
        "mem://quarantine/p1/x.csv",             # not readable by tasks at all
        mem_url(Area.WORK, "p1/runs/other/outputs/x"),    # another run's work folder
        "/etc/passwd",
        "file:///etc/passwd",
        "http://example.org/data.csv",
        "https://example.org/data.csv",
        "s3://bucket/p1/data.csv",
        "missing.csv",                           # a relative name that was not attached
        "../main.cwl",
        "tools/../../main.cwl",
    ],
)
def test_params_naming_files_the_run_may_not_read_write_nothing(h: Harness, location: str) -> None:
    params = {"x": {"class": "File", "location": location}}
    message = h.refused(InvalidRequest, workflow_params=params)
    assert message.startswith("workflow_params/x/location:")
    assert h.store.objects == {} and h.repo.rows == {}


def test_a_refused_parameter_is_named_by_its_position(h: Harness) -> None:
    params = {"samples": [{"class": "File", "location": "mem://inputs/p1/ok.csv"},
                          {"class": "File", "location": "mem://inputs/p1/a.csv",
                           "secondaryFiles": [{"class": "File", "path": "mem://inputs/p2/a.csv.idx"}]}]}
    message = h.refused(InvalidRequest, workflow_params=params)
    assert message.startswith("workflow_params/samples/1/secondaryFiles/0/path:")
    message = h.refused(InvalidRequest, workflow_params={"d": {"class": "Directory", "path": "/etc"}})
    assert message.startswith("workflow_params/d/path:")


def test_a_relative_reference_that_is_not_attached_says_so(h: Harness) -> None:
    message = h.refused(InvalidRequest, workflow_params={"x": {"class": "File", "location": "missing.csv"}})
    assert message == "workflow_params/x/location: 'missing.csv' is not an attachment of this request"


@pytest.mark.parametrize(
    "principal, fields, error",
    [
        (BOB, {"tags": {"project": "p1"}}, InvalidRequest),          # not a member of p1
        (CAROL, {}, Forbidden),                                      # no researcher role
        (ADMIN, {"tags": {"project": "p1"}}, InvalidRequest),        # admins too must be members
        (Principal("nobody", frozenset({Role.RESEARCHER}), frozenset()), {}, InvalidRequest),
        (ALICE, {"tags": {RUN_TAG: "run-9"}}, InvalidRequest),       # the run tag is reserved
    ],
)
def test_who_may_not_submit_writes_nothing(h: Harness, principal: Principal, fields: dict[str, Any],
                                           error: type[Exception]) -> None:
    h.refused(error, principal, **fields)
    assert h.store.objects == {} and h.repo.rows == {}


@pytest.mark.parametrize(
    "fields",
    [
        {"workflow_type": "WDL"},
        {"workflow_type_version": "v9"},
        {"workflow_params": "{not json"},
        {"workflow_engine_parameters": {"--outdir": "/"}},
        {"workflow_engine": "toil"},
    ],
)
def test_malformed_requests_write_nothing(h: Harness, fields: dict[str, Any]) -> None:
    h.refused(InvalidRequest, **fields)
    assert h.store.objects == {} and h.repo.rows == {}


def test_a_gateway_that_cannot_run_workflows_says_why(h: Harness) -> None:
    h.service.unavailable_reason = "the object store is S3"
    message = h.refused(InvalidRequest)
    assert "the object store is S3" in message


class BrokenRepository(FakeRunRepository):
    def add(self, run: Run) -> None:
        raise RuntimeError("database down")


def test_files_already_written_are_removed_when_the_run_cannot_be_stored(h: Harness) -> None:
    h.service.repo = BrokenRepository()
    h.store.put_bytes(Area.WORK, "p1/runs/older/workflow/main.cwl", b"x")  # another run's files stay
    with pytest.raises(RuntimeError):
        h.submit(uploads=[upload(), upload("d/x.txt")])
    assert h.work_keys() == {"p1/runs/older/workflow/main.cwl"}
    assert h.audit.rows == [] and h.wakes == 0


# ---------------------------------------------------------------- get and list


def test_get_shows_runs_of_the_own_projects_only(h: Harness) -> None:
    mine = h.submit(ALICE)
    theirs = h.submit(BOB)
    assert h.service.get(ALICE, mine.id).id == mine.id
    assert h.service.get(AMIR, theirs.id).id == theirs.id
    assert h.service.get(ADMIN, mine.id).id == mine.id
    with pytest.raises(NotFound):
        h.service.get(ALICE, theirs.id)
    with pytest.raises(NotFound):
        h.service.get(ALICE, "run-9999")


def test_list_pages_newest_first_and_only_visible_projects(h: Harness) -> None:
    mine = [h.submit(ALICE).id for _ in range(5)]
    theirs = [h.submit(BOB).id for _ in range(2)]

    def everything(principal: Principal, size: int | None) -> tuple[list[str], int]:
        seen, token, pages = [], None, 0
        while True:
            runs, token = h.service.list(principal, size, token)
            pages += 1
            seen += [r.id for r in runs]
            if token is None:
                return seen, pages

    assert everything(ALICE, 2) == (list(reversed(mine)), 3)
    assert everything(BOB, None) == (list(reversed(theirs)), 1)
    assert everything(ADMIN, 5)[0] == list(reversed(mine + theirs))
    assert everything(AMIR, None) == (list(reversed(mine + theirs)), 3)  # default page size 3


def test_list_pages_stay_stable_while_runs_are_submitted(h: Harness) -> None:
    first = [h.submit().id for _ in range(4)]
    page1, token = h.service.list(ALICE, 2, None)
    h.submit()
    page2, token = h.service.list(ALICE, 2, token)
    assert [r.id for r in page1 + page2] == list(reversed(first))
    assert token is None


def test_list_page_sizes_are_checked(h: Harness) -> None:
    for _ in range(7):
        h.submit()
    assert len(h.service.list(ALICE, 100, None)[0]) == 5  # capped
    with pytest.raises(InvalidRequest):
        h.service.list(ALICE, 0, None)
    with pytest.raises(InvalidRequest):
        h.service.list(ALICE, None, "not-a-token")


def test_state_counts_name_every_state(h: Harness) -> None:
    h.submit()
    run = h.submit()
    h.move(run.id, RunState.CANCELING)
    counts = h.service.state_counts()
    assert set(counts) == {s.value for s in RunState}
    assert (counts["QUEUED"], counts["CANCELING"], counts["COMPLETE"]) == (1, 1, 0)


def test_engine_logs_are_read_from_the_run_folder(h: Harness) -> None:
    run = h.submit()
    assert h.service.engine_log(ALICE, run.id, "stderr") == b""
    h.store.put_bytes(Area.WORK, f"p1/runs/{run.id}/engine/stderr.log", b"INFO ok\n")
    assert h.service.engine_log(ALICE, run.id, "stderr") == b"INFO ok\n"
    with pytest.raises(NotFound):
        h.service.engine_log(BOB, run.id, "stderr")


# ---------------------------------------------------------------- cancel


def test_cancel_by_the_owner_moves_to_canceling_once(h: Harness) -> None:
    run = h.submit()
    wakes = h.wakes
    canceling = h.service.cancel(ALICE, run.id)
    assert canceling.state is RunState.CANCELING
    assert h.repo.get(run.id).state is RunState.CANCELING
    assert h.wakes == wakes + 1
    version = h.repo.get(run.id).version
    again = h.service.cancel(ALICE, run.id)
    assert again.state is RunState.CANCELING
    assert h.repo.get(run.id).version == version  # nothing saved the second time
    actions = [e.event.action for e in h.repo.audit.rows]
    assert actions == ["run.cancel_requested", "run.state_changed"]
    assert h.repo.audit.rows[1].event.details["previous"] == "QUEUED"


def test_cancel_of_a_running_or_paused_run(h: Harness) -> None:
    running = h.submit()
    h.move(running.id, RunState.INITIALIZING, RunState.RUNNING)
    paused = h.submit()
    h.move(paused.id, RunState.INITIALIZING, RunState.RUNNING, RunState.PAUSED)
    assert h.service.cancel(ALICE, running.id).state is RunState.CANCELING
    assert h.service.cancel(ALICE, paused.id).state is RunState.CANCELING


def test_cancel_of_a_finished_run_changes_nothing(h: Harness) -> None:
    run = h.submit()
    done = h.move(run.id, RunState.INITIALIZING, RunState.RUNNING, RunState.COMPLETE)
    assert h.service.cancel(ALICE, run.id).state is RunState.COMPLETE
    assert h.repo.get(run.id).version == done.version


def test_cancel_by_another_researcher_of_the_project_is_forbidden(h: Harness) -> None:
    run = h.submit()
    with pytest.raises(Forbidden):
        h.service.cancel(AMIR, run.id)
    with pytest.raises(NotFound):
        h.service.cancel(BOB, run.id)
    assert h.repo.get(run.id).state is RunState.QUEUED
    assert h.service.cancel(ADMIN, run.id).state is RunState.CANCELING


class FlakyRuns(FakeRunRepository):
    """Every save fails as stale `stale` times before it goes through."""

    def __init__(self, stale: int) -> None:
        super().__init__()
        self.stale = stale

    def save(self, run: Run, events=()) -> Run:  # type: ignore[no-untyped-def]
        if self.stale:
            self.stale -= 1
            raise StaleRun(run.id)
        return super().save(run, events)


def test_cancel_retries_after_a_concurrent_change_and_then_gives_up(h: Harness) -> None:
    flaky = FlakyRuns(stale=2)
    h.service.repo = flaky
    run = h.submit()
    assert h.service.cancel(ALICE, run.id).state is RunState.CANCELING
    flaky.stale = 100
    other = h.submit()
    with pytest.raises(Conflict):
        h.service.cancel(ALICE, other.id)


# ---------------------------------------------------------------- engine credentials


@pytest.mark.parametrize("states", [(RunState.INITIALIZING,), (RunState.INITIALIZING, RunState.RUNNING),
                                    (RunState.INITIALIZING, RunState.RUNNING, RunState.CANCELING)])
def test_the_engine_credential_works_while_the_engine_is_active(h: Harness, states: tuple[RunState, ...]) -> None:
    run = h.submit(AMIR, tags={"project": "p2"})
    token = h.engine_token(run, *states)
    assert token.startswith(CREDENTIAL_PREFIX + run.id + ".")
    principal = h.service.engine_principal(token)
    assert principal.user == "amir"
    assert principal.run_scope == run.id
    assert principal.projects == frozenset({"p2"})  # only the run's project, not all of amir's
    assert principal.roles == frozenset({Role.RESEARCHER}) and not principal.is_admin
    assert principal.service


@pytest.mark.parametrize(
    "states",
    [
        (),  # QUEUED: the engine has not started
        (RunState.INITIALIZING, RunState.RUNNING, RunState.PAUSED),
        (RunState.INITIALIZING, RunState.RUNNING, RunState.COMPLETE),
        (RunState.INITIALIZING, RunState.RUNNING, RunState.EXECUTOR_ERROR),
        (RunState.INITIALIZING, RunState.SYSTEM_ERROR),
        (RunState.INITIALIZING, RunState.RUNNING, RunState.CANCELING, RunState.CANCELED),
    ],
)
def test_the_engine_credential_dies_with_the_engine(h: Harness, states: tuple[RunState, ...]) -> None:
    run = h.submit()
    token = h.engine_token(run, *states)
    with pytest.raises(Unauthenticated):
        h.service.engine_principal(token)


def test_wrong_or_malformed_engine_credentials_are_refused(h: Harness) -> None:
    run = h.submit()
    other = h.submit()
    token = h.engine_token(run, RunState.INITIALIZING, RunState.RUNNING)
    h.engine_token(other, RunState.INITIALIZING, RunState.RUNNING)
    secret = token.rsplit(".", 1)[1]
    for bad in [
        token[:-1] + ("A" if token[-1] != "A" else "B"),    # wrong secret
        f"{CREDENTIAL_PREFIX}{other.id}.{secret}",           # right secret, another run
        f"{CREDENTIAL_PREFIX}run-9999.{secret}",             # unknown run
        f"{CREDENTIAL_PREFIX}{run.id}.",                     # no secret
        f"{CREDENTIAL_PREFIX}{run.id}",
        CREDENTIAL_PREFIX,
        "",
    ]:
        with pytest.raises(Unauthenticated):
            h.service.engine_principal(bad)
    assert h.service.engine_principal(token).run_scope == run.id


def test_a_run_without_a_minted_credential_accepts_none(h: Harness) -> None:
    run = h.submit()
    h.move(run.id, RunState.INITIALIZING, RunState.RUNNING)
    with pytest.raises(Unauthenticated):
        h.service.engine_principal(f"{CREDENTIAL_PREFIX}{run.id}.anything")


def test_each_minted_credential_is_new_and_the_run_keeps_no_secret(h: Harness) -> None:
    run = h.submit()
    first, digest1 = h.service.mint_engine_credential(run)
    second, digest2 = h.service.mint_engine_credential(run)
    assert first != second and digest1 != digest2
    token = h.engine_token(run, RunState.INITIALIZING)
    secret = token.rsplit(".", 1)[1]
    assert len(secret) >= 32
    assert secret not in json.dumps(h.repo.get(run.id).engine)
    with pytest.raises(Unauthenticated):
        h.service.engine_principal(first)  # an earlier credential is replaced by the one kept on the run


# ---------------------------------------------------------------- steps submitted by the engine


def step_body(run: Run, **fields: Any) -> dict[str, Any]:
    folder = mem_url(Area.WORK, f"{run.project}/runs/{run.id}/")
    return {
        "name": "align",
        "executors": [{"image": "alpine", "command": ["true"]}],
        "inputs": [{"path": "/in/main.cwl", "url": folder + "workflow/main.cwl"}],
        "outputs": [{"path": "/out/a.bam", "url": folder + "steps/align/a.bam"}],
        **fields,
    }


def test_the_engine_may_use_its_run_folder_and_its_steps_are_tagged(h: Harness) -> None:
    run = h.submit()
    engine = h.service.engine_principal(h.engine_token(run, RunState.INITIALIZING, RunState.RUNNING))
    task = h.tasks.create(engine, step_body(run))
    assert task.spec.tags[RUN_TAG] == run.id
    assert (task.owner, task.project) == ("alice", "p1")
    # The engine still reads the project's inputs like any task of the project.
    h.tasks.create(engine, step_body(run, inputs=[{"path": "/in/a", "url": "mem://inputs/p1/a.csv"}]))
    listed = h.service.step_tasks(ALICE, run.id, None, None)
    assert {t.id for t in listed.tasks} == {task.id, "task-0002"}
    assert h.service.step_task(ALICE, run.id, task.id).id == task.id


def test_a_researcher_may_not_use_a_run_folder_nor_the_run_tag(h: Harness) -> None:
    run = h.submit()
    h.engine_token(run, RunState.INITIALIZING, RunState.RUNNING)
    with pytest.raises(DestinationNotAllowed):
        h.tasks.create(ALICE, step_body(run))  # even the run's own submitter
    with pytest.raises(DestinationNotAllowed):
        h.tasks.create(ALICE, step_body(run, outputs=[]))  # reading the run folder
    with pytest.raises(DestinationNotAllowed):
        h.tasks.create(ALICE, step_body(run, inputs=[]))  # writing the run folder
    with pytest.raises(InvalidRequest) as info:
        h.tasks.create(ALICE, step_body(run, inputs=[], outputs=[], tags={RUN_TAG: run.id}))
    assert RUN_TAG in info.value.msg
    assert h.task_repo.rows == {}


def test_the_engine_is_confined_to_its_own_run(h: Harness) -> None:
    run = h.submit(AMIR, tags={"project": "p1"})
    other = h.submit(AMIR, tags={"project": "p1"})
    elsewhere = h.submit(AMIR, tags={"project": "p2"})
    engine = h.service.engine_principal(h.engine_token(run, RunState.INITIALIZING, RunState.RUNNING))
    refused = [
        (step_body(other), DestinationNotAllowed),                                   # a sibling run's folder
        (step_body(run, outputs=[{"path": "/o", "url": mem_url(Area.WORK, "p1/runs/other/x")}]), DestinationNotAllowed),
        (step_body(run, outputs=[{"path": "/o", "url": mem_url(Area.WORK, f"p1/runs/{run.id}/../{other.id}/x")}]),
         DestinationNotAllowed),
        (step_body(run, outputs=[{"path": "/o", "url": mem_url(Area.WORK, "p1/x")}]), DestinationNotAllowed),
        (step_body(run, outputs=[{"path": "/o", "url": "mem://released/p2/x"}]), DestinationNotAllowed),
        (step_body(run, inputs=[{"path": "/i", "url": "mem://inputs/p2/x"}]), DestinationNotAllowed),
        (step_body(elsewhere), DestinationNotAllowed),
        (step_body(run, tags={"project": "p2"}), InvalidRequest),                    # amir's other project
        (step_body(run, tags={RUN_TAG: other.id}), InvalidRequest),                  # another run's tag
    ]
    for body, error in refused:
        with pytest.raises(error):
            h.tasks.create(engine, body)
    assert h.task_repo.rows == {}


def test_step_tasks_list_only_the_runs_steps_and_respect_visibility(h: Harness) -> None:
    run = h.submit()
    other = h.submit()
    engine = h.service.engine_principal(h.engine_token(run, RunState.INITIALIZING, RunState.RUNNING))
    other_engine = h.service.engine_principal(h.engine_token(other, RunState.INITIALIZING, RunState.RUNNING))
    mine = h.tasks.create(engine, step_body(run))
    theirs = h.tasks.create(other_engine, step_body(other))
    plain = h.tasks.create(ALICE, {"executors": [{"image": "alpine", "command": ["true"]}]})
    assert [t.id for t in h.service.step_tasks(ALICE, run.id, None, None).tasks] == [mine.id]
    for task_id in (theirs.id, plain.id, "task-9999"):
        with pytest.raises(NotFound):
            h.service.step_task(ALICE, run.id, task_id)
    with pytest.raises(NotFound):
        h.service.step_tasks(BOB, run.id, None, None)
