"""SubmissionService: Five Safes request crates through every phase, on the real crate tools and mirror.

The crate adapters are the real ones (LocalCrateTools: BagIt, SHACL; FolderWorkflowMirror on a folder in
tmp_path); repositories and the RunService are in-memory fakes. Nothing runs a workflow: runs stay
QUEUED until a test moves them in the fake run repository (PAUSED, COMPLETE, failed), puts files in the
store's released area (what the airlock released) and an egress request with reviewers' decisions.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import shutil
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.crates.bagit import verify_bag, write_bag_zip
from gateway.adapters.crates.mirror import FolderWorkflowMirror
from gateway.adapters.crates.tools import LocalCrateTools
from gateway.domain.airlock import Decision, EgressFile, EgressRequest, RequestState, Verdict
from gateway.domain.crates import ApprovedWorkflow
from gateway.domain.egress import QuarantinedFile
from gateway.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound
from gateway.domain.identity import Principal, Role
from gateway.domain.images import ImagePolicy
from gateway.domain.runs import Run, RunState
from gateway.domain.submissions import SUBMISSION_TAG, CratePolicy, Submission, SubmissionState
from gateway.domain.task import system_log
from gateway.services.locations import run_work_prefix
from gateway.services.ports import Area
from gateway.services.run_runner import output_object_name
from gateway.services.runs import WORKFLOW_DIR, RunService
from gateway.services.submissions import CrateRejected, SubmissionService
from gateway.services.tasks import TaskService
from tests.fakes import (
    FakeCratePolicyRepository,
    FakeObjectStore,
    FakeRunRepository,
    FakeSubmissionRepository,
    InMemoryAuditLog,
    InMemoryEgressRequests,
    InMemoryTaskRepository,
)

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "five-safes-crate"
EXAMPLE = SHARED / "0.4" / "example-request"
WORKFLOW_ID = "https://workflowhub.eu/workflows/289?version=1"
METADATA = "ro-crate-metadata.json"
COMPLETED = "http://schema.org/CompletedActionStatus"
FAILED = "http://schema.org/FailedActionStatus"
T0 = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)

ALICE = Principal("alice", frozenset({Role.RESEARCHER}), frozenset({"p1"}))
AMIR = Principal("amir", frozenset({Role.RESEARCHER}), frozenset({"p1", "p2"}))
BOB = Principal("bob", frozenset({Role.RESEARCHER}), frozenset({"p2"}))
CAROL = Principal("carol", frozenset({Role.OUTPUT_CHECKER}), frozenset({"p1"}))
ADMIN = Principal("root", frozenset({Role.ADMIN}), frozenset())

# The TRE's mirrored copy of the requested workflow: a small stand-in with the example's parameters.
MAIN_CWL = """cwlVersion: v1.2
class: CommandLineTool
doc: Mirror copy for tests.
baseCommand: [sh, -c]
arguments:
  - valueFrom: "grep -c . $(inputs['input-sequence'].path) > counts.csv"
inputs:
  input-sequence: File
  fast-mode: string
outputs:
  counts:
    type: File
    outputBinding: {glob: counts.csv}
"""
WORKFLOW_CRATE = {
    "@context": "https://w3id.org/ro/crate/1.1/context",
    "@graph": [
        {"@id": METADATA, "@type": "CreativeWork", "about": {"@id": "./"},
         "conformsTo": {"@id": "https://w3id.org/ro/crate/1.1"}},
        {"@id": "./", "@type": "Dataset", "name": "Mutation summary", "mainEntity": {"@id": "main.cwl"},
         "hasPart": [{"@id": "main.cwl"}]},
        {"@id": "main.cwl", "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow"], "name": "main"},
    ],
}


# ---------------------------------------------------------------- crates and the mirror


def make_mirror(folder: Path, index: dict[str, str] | None = None) -> str:
    """A workflow mirror holding the workflow crate zip; returns the zip's "sha256:<hex>"."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "workflow-289-v1.crate.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("main.cwl", MAIN_CWL)
        z.writestr(METADATA, json.dumps(WORKFLOW_CRATE))
    (folder / "index.json").write_text(json.dumps(index if index is not None else {WORKFLOW_ID: archive.name}))
    return "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()


def approved_policy(checksum: str, automatic: bool = True) -> CratePolicy:
    return CratePolicy(automatic, (ApprovedWorkflow("https://workflowhub.eu/workflows/289", "1", checksum),))


def request_bag(tmp_path: Path, edit: Callable[[dict[str, Any]], None] | None = None, name: str = "request",
                with_input: bool = True) -> bytes:
    """The profile's 0.4 example request re-bagged with fresh manifests (its own list files it lacks)."""
    payload = tmp_path / f"{name}-payload"
    payload.mkdir()
    if with_input:
        shutil.copy(EXAMPLE / "data" / "input1.txt", payload / "input1.txt")
    metadata = json.loads((EXAMPLE / "data" / METADATA).read_text())
    if edit is not None:
        edit(metadata)
    (payload / METADATA).write_text(json.dumps(metadata))
    target = tmp_path / f"{name}.zip"
    write_bag_zip(payload, target, bag_name=name)
    return target.read_bytes()


def tampered_bag(tmp_path: Path) -> bytes:
    """A bag whose input file no longer has the sha512 its manifest lists."""
    source = zipfile.ZipFile(io.BytesIO(request_bag(tmp_path, name="tampered")))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for info in source.infolist():
            content = source.read(info)
            if info.filename.endswith("data/input1.txt"):
                content = content.replace(b"Gly", b"Ala")
                assert content != source.read(info)
            z.writestr(info, content)
    return buffer.getvalue()


def drop_main_entity(metadata: dict[str, Any]) -> None:
    root = next(e for e in metadata["@graph"] if e["@id"] == "./")
    del root["mainEntity"]


def other_workflow(metadata: dict[str, Any]) -> None:
    text = json.dumps(metadata).replace("workflows/289", "workflows/9999")
    metadata.clear()
    metadata.update(json.loads(text))


def type_for_at_type(metadata: dict[str, Any]) -> None:
    """`type` written for `@type` on the inputs, as the profile's own example results do."""
    for entity in metadata["@graph"]:
        if entity["@id"] in ("input1.txt", "#enableFastMode"):
            entity["type"] = entity.pop("@type")


def graph_of(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["@id"]: e for e in metadata["@graph"]}


def failed_actions(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in metadata["@graph"] if e.get("actionStatus") == FAILED]


def kind_of(action: dict[str, Any]) -> str:
    """`CheckValue`, `SignOff`, ... for assessments; the @type (DownloadAction, CreateAction) otherwise."""
    additional = action.get("additionalType")
    return str(additional["@id"]).rsplit("#", 1)[-1] if additional else str(action["@type"])


def by_kind(metadata: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [e for e in metadata["@graph"] if "actionStatus" in e and kind_of(e) == kind]
    assert len(found) == 1, (kind, found)
    return found[0]


# ---------------------------------------------------------------- the service on fakes


class Clock:
    """A second later at every call: phases need times that move forward, and stamps have whole seconds."""

    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.clock = Clock()
        self.store = FakeObjectStore()
        self.audit = InMemoryAuditLog()
        ids = itertools.count(1)
        self.task_repo = InMemoryTaskRepository()
        tasks = TaskService(self.task_repo, self.store, ImagePolicy({"alpine": "localhost/tre-base:latest"}),
                            lambda: f"task-{next(ids):04d}", self.clock)
        self.run_repo = FakeRunRepository()
        self.runs = RunService(repo=self.run_repo, tasks=tasks, store=self.store,
                               new_id=lambda: f"run-{next(ids):04d}", now=self.clock, workflow_url_prefixes=(),
                               fetch_workflow=None, max_workflow_bytes=1 << 20)
        self.repo = FakeSubmissionRepository()
        self.policies = FakeCratePolicyRepository()
        self.egress = InMemoryEgressRequests()
        self.mirror_dir = tmp_path / "mirror"
        self.checksum = make_mirror(self.mirror_dir)
        self.policies.put("p1", approved_policy(self.checksum))
        self.service = SubmissionService(
            repo=self.repo, policies=self.policies, runs=self.runs, egress_requests=self.egress,
            tools=LocalCrateTools(), mirror=FolderWorkflowMirror(self.mirror_dir), store=self.store,
            work_root=tmp_path / "work", new_id=lambda: f"{next(ids):04d}", now=self.clock, audit=self.audit,
            default_page_size=2, max_page_size=3,
        )
        self._bags = itertools.count()

    # ---- submitting

    def bag(self, **kwargs: Any) -> bytes:
        return request_bag(self.tmp, name=f"request{next(self._bags)}", **kwargs)

    def submit(self, principal: Principal = ALICE, data: bytes | None = None, project: str | None = "p1") -> Submission:
        return self.service.submit(principal, io.BytesIO(data if data is not None else self.bag()), project)

    def refused(self, principal: Principal, data: bytes, project: str | None = "p1") -> CrateRejected:
        with pytest.raises(CrateRejected) as info:
            self.submit(principal, data, project)
        return info.value

    def executing(self) -> tuple[Submission, Run]:
        s = self.submit(project=None)  # the caller's only project
        assert s.project == "p1"
        assert s.state is SubmissionState.EXECUTING and s.run_id
        run = self.run_repo.get(s.run_id)
        assert run is not None
        return s, run

    # ---- reading

    def statuses(self, s: Submission) -> dict[str, str]:
        return {p["phase"]: p["status"] for p in self.service.phases(s)}

    def phase(self, s: Submission, name: str) -> dict[str, Any]:
        return next(p for p in self.service.phases(s) if p["phase"] == name)

    def returned(self, principal: Principal, submission_id: str) -> tuple[dict[str, Any], Path]:
        """The returned crate: its metadata and its bag folder (whose manifests must hold)."""
        data = self.service.result_crate(principal, submission_id)
        target = self.tmp / f"returned-{submission_id}"
        shutil.rmtree(target, ignore_errors=True)
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            z.extractall(target)
        (bag,) = list(target.iterdir())
        assert "sha512" in verify_bag(bag)
        return json.loads((bag / "data" / METADATA).read_text()), bag

    def actions(self) -> list[str]:
        return [e.event.action for e in self.repo.audit.rows]

    # ---- simulating the run and its review

    def move(self, run_id: str, *states: RunState, reason: str | None = None, **changes: Any) -> Run:
        run = self.run_repo.get(run_id)
        assert run is not None
        if changes:
            run = self.run_repo.save(run.updated(**changes))
        for state in states:
            run = self.run_repo.save(run.moved_to(state, at=self.clock(), reason=reason if state.is_terminal else None))
        return run

    def release(self, run: Run, relative: str, content: bytes) -> None:
        self.store.put_bytes(Area.RELEASED, f"{run.project}/runs/{run.id}/{relative}", content)

    def review(self, run: Run, task_id: str, verdicts: dict[str, tuple[str, Verdict]],
               state: RequestState) -> EgressRequest:
        """An egress request for the run's release task: file name -> (reviewer, verdict)."""
        files = []
        for index, (name, (reviewer, verdict)) in enumerate(verdicts.items()):
            quarantined = QuarantinedFile(f"file:///released/{name}", f"/outputs/{name}", f"q/{index}/{name}", 10,
                                          "00" * 32, "text/plain")
            files.append(EgressFile(f"f{index}", quarantined, (),
                                    decisions=(Decision(reviewer, verdict, f"{verdict.value}: {name}", self.clock()),)))
        request = EgressRequest(f"eg-{task_id}", task_id, run.project, run.owner, self.clock(), tuple(files),
                                state=state, decided_at=self.clock())
        self.egress.add(request)
        return request


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


# ---------------------------------------------------------------- the happy path


def test_a_valid_request_is_admitted_and_runs_as_a_wes_run(h: Harness) -> None:
    s = h.submit()
    assert s.state is SubmissionState.EXECUTING
    assert (s.owner, s.project, s.profile) == ("alice", "p1", "0.4")
    assert (s.workflow_id, s.workflow_version) == (WORKFLOW_ID, "1")
    assert s.id.startswith("fs-") and s.repairs == () and s.reason is None
    assert h.repo.get(s.id) == s
    assert h.statuses(s) == {
        "check_value": "CompletedActionStatus", "validation_check": "CompletedActionStatus",
        "workflow_retrieval": "CompletedActionStatus", "sign_off": "CompletedActionStatus",
        "execution": "ActiveActionStatus",
    }
    assert h.phase(s, "check_value")["message"] == "BagIt manifests verified: sha512"
    assert h.phase(s, "sign_off")["agents"] == ["#tre-gateway"]
    # The run's agent is the authenticated requester, not the person the client wrote into the crate.
    assert h.phase(s, "execution")["agents"] == ["#person-alice"]
    for p in h.service.phases(s):
        assert p["start_time"] <= p.get("end_time", p["start_time"])

    run = h.run_repo.get(s.run_id or "")
    assert run is not None and run.state is RunState.QUEUED
    assert (run.owner, run.project) == ("alice", "p1")
    assert run.request.workflow_type == "CWL" and run.request.workflow_type_version == "v1.2"
    assert run.request.workflow_url == "wf/main.cwl"
    assert run.request.workflow_params == {
        "input-sequence": {"class": "File", "location": "inputs/input1.txt"},  # the File input, uploaded
        "fast-mode": "True",  # the PropertyValue's value, kept as it is
    }
    assert run.request.tags == {"project": "p1", SUBMISSION_TAG: s.id}
    assert set(run.attachments) == {"inputs/input1.txt", "wf/main.cwl", f"wf/{METADATA}"}
    prefix = run_work_prefix("p1", run.id) + WORKFLOW_DIR
    uploaded = h.store.open(Area.WORK, prefix + "inputs/input1.txt").read()
    assert uploaded == (EXAMPLE / "data" / "input1.txt").read_bytes()
    assert h.store.open(Area.WORK, prefix + "wf/main.cwl").read().decode() == MAIN_CWL
    assert h.actions() == ["crate.submitted", "crate.executing"]
    with pytest.raises(Conflict):
        h.service.result_crate(ALICE, s.id)  # nothing to download before it has finished


def test_a_member_of_several_projects_must_name_one_and_nothing_is_stored(h: Harness) -> None:
    with pytest.raises(InvalidRequest, match="project"):
        h.submit(AMIR, project=None)
    with pytest.raises(Forbidden):
        h.submit(CAROL)  # output checkers do not submit work
    assert h.repo.rows == {} and h.run_repo.rows == {}


def test_repairs_are_recorded_on_the_submission_and_the_validation_check(h: Harness) -> None:
    s = h.submit(data=h.bag(edit=type_for_at_type))
    assert s.state is SubmissionState.EXECUTING
    assert len(s.repairs) == 2 and all("type" in r for r in s.repairs)
    assert h.repo.get(s.id).repairs == s.repairs
    assert "repairs" in h.phase(s, "validation_check")["message"]
    run = h.run_repo.get(s.run_id or "")
    assert run.request.workflow_params["fast-mode"] == "True"


# ---------------------------------------------------------------- manual sign-off


@pytest.fixture
def waiting(h: Harness) -> Submission:
    h.policies.put("p1", approved_policy(h.checksum, automatic=False))
    s = h.submit()
    assert s.state is SubmissionState.AWAITING_SIGN_OFF
    return s


def test_a_manual_policy_waits_for_an_admin_and_runs_nothing(h: Harness, waiting: Submission) -> None:
    assert waiting.run_id is None and h.run_repo.rows == {}
    statuses = h.statuses(waiting)
    assert statuses["sign_off"] == "ActiveActionStatus" and "execution" not in statuses
    assert h.repo.active() == []
    assert h.actions() == ["crate.submitted", "crate.awaiting_sign_off"]
    with pytest.raises(Conflict):
        h.service.result_crate(ALICE, waiting.id)
    # Only an admin signs off, and says why.
    with pytest.raises(Forbidden):
        h.service.decide_sign_off(ALICE, waiting.id, True, "my own request")
    with pytest.raises(NotFound):
        h.service.decide_sign_off(BOB, waiting.id, True, "not my project")
    with pytest.raises(InvalidRequest):
        h.service.decide_sign_off(ADMIN, waiting.id, True, "   ")
    assert h.repo.get(waiting.id) == waiting and h.run_repo.rows == {}


def test_an_admins_approval_starts_the_run(h: Harness, waiting: Submission) -> None:
    s = h.service.decide_sign_off(ADMIN, waiting.id, True, "agreed at the data access committee")
    assert s.state is SubmissionState.EXECUTING and s.run_id in h.run_repo.rows
    assert h.repo.get(s.id) == s
    sign_off = h.phase(s, "sign_off")
    assert sign_off["status"] == "CompletedActionStatus" and sign_off["agents"] == ["#person-root"]
    assert h.statuses(s)["execution"] == "ActiveActionStatus"
    assert h.run_repo.get(s.run_id or "").request.tags[SUBMISSION_TAG] == s.id
    with pytest.raises(Conflict):
        h.service.decide_sign_off(ADMIN, s.id, False, "changed my mind")


def test_an_admins_rejection_is_final(h: Harness, waiting: Submission) -> None:
    s = h.service.decide_sign_off(ADMIN, waiting.id, False, "  no ethics approval  ")
    assert s.state is SubmissionState.REJECTED
    assert s.reason == "sign-off refused by root: no ethics approval"
    assert h.repo.get(s.id).state is SubmissionState.REJECTED and h.run_repo.rows == {}
    sign_off = h.phase(s, "sign_off")
    assert sign_off["status"] == "FailedActionStatus" and sign_off["agents"] == ["#person-root"]
    assert sign_off["message"] == "no ethics approval"
    metadata, _bag = h.returned(ALICE, s.id)
    assert [kind_of(a) for a in failed_actions(metadata)] == ["SignOff"]
    with pytest.raises(Conflict):
        h.service.decide_sign_off(ADMIN, s.id, True, "changed my mind")
    assert h.actions()[-1] == "crate.rejected"


# ---------------------------------------------------------------- refusals


def _not_approved(h: Harness) -> None:
    h.policies.put("p1", CratePolicy(True, (ApprovedWorkflow("https://workflowhub.eu/workflows/1", "1", h.checksum),)))


def _wrong_checksum(h: Harness) -> None:
    h.policies.put("p1", approved_policy("sha256:" + "0" * 64))


# case -> (set-up, archive, who, failed action kind, words in its description)
REFUSALS: dict[str, tuple[Callable[[Harness], None] | None, Callable[[Harness], bytes], Principal, str, str]] = {
    "not a zip": (None, lambda h: b"this is not a zip archive", ALICE, "CheckValue", "zip"),
    "bad sha512 in the manifest": (None, lambda h: tampered_bag(h.tmp), ALICE, "CheckValue", "sha512"),
    "missing mainEntity": (None, lambda h: h.bag(edit=drop_main_entity), ALICE, "ValidationCheck", "mainEntity"),
    "workflow not in the mirror": (None, lambda h: h.bag(edit=other_workflow), ALICE, "DownloadAction",
                                   "not in this TRE's workflow mirror"),
    "workflow not approved": (_not_approved, lambda h: h.bag(), ALICE, "SignOff",
                              "is not on the project's approved list"),
    "wrong checksum": (_wrong_checksum, lambda h: h.bag(), ALICE, "SignOff", "checksum differs"),
    "requester not a member": (None, lambda h: h.bag(), BOB, "SignOff", "not a member"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_crates_are_recorded_with_one_failed_action_and_never_run(h: Harness, case: str) -> None:
    setup, make, who, kind, words = REFUSALS[case]
    if setup is not None:
        setup(h)
    refusal = h.refused(who, make(h))
    s = refusal.submission
    assert s.state is SubmissionState.REJECTED and s.reason == refusal.msg and s.owner == who.user
    assert h.repo.get(s.id) == s
    assert s.run_id is None and h.run_repo.rows == {}  # nothing was executed
    assert list(h.store.list(Area.WORK)) == []  # nor uploaded for a run
    assert h.repo.active() == []
    assert h.actions() == ["crate.submitted", "crate.rejected"]

    metadata, _bag = h.returned(who, s.id)
    failed = failed_actions(metadata)
    assert len(failed) == 1, failed
    assert kind_of(failed[0]) == kind
    assert words in failed[0]["description"], failed[0]["description"]
    publishing = by_kind(metadata, "GenerateCheckValue")
    assert publishing["@type"] == "UpdateAction" and publishing["actionStatus"] == COMPLETED
    assert "FailedActionStatus" in h.statuses(s).values()
    # The refusal is the requester's to read, whatever project it named.
    assert h.service.get(who, s.id) == s


def test_a_refused_crate_is_returned_with_its_metadata_only(h: Harness) -> None:
    """openapi/five-safes.yaml: "for a rejected or failed one, only the metadata with the failed action";
    the service's docstring: "its returned crate (metadata only)"."""
    _not_approved(h)
    refusal = h.refused(ALICE, h.bag())
    _metadata, bag = h.returned(ALICE, refusal.submission.id)
    payload = sorted(p.relative_to(bag / "data").as_posix() for p in (bag / "data").rglob("*") if p.is_file())
    assert payload == [METADATA]


def test_an_input_that_is_not_in_the_crate_is_refused_and_recorded(h: Harness) -> None:
    """The CreateAction names input1.txt but the crate does not carry it: the request cannot run. It must be
    refused like any other crate (422 with a returned crate), not left RECEIVED forever."""
    with pytest.raises(CrateRejected) as info:
        h.submit(data=h.bag(with_input=False))
    s = info.value.submission
    assert h.repo.get(s.id).state is SubmissionState.REJECTED
    assert h.run_repo.rows == {}
    metadata, _bag = h.returned(ALICE, s.id)
    assert len(failed_actions(metadata)) == 1


# ---------------------------------------------------------------- following the run


def test_a_paused_run_means_the_outputs_await_disclosure(h: Harness) -> None:
    s, run = h.executing()
    assert h.service.run_once() == 1
    assert h.repo.get(s.id).version == s.version  # a queued run changes nothing
    h.move(run.id, RunState.INITIALIZING, RunState.RUNNING, RunState.PAUSED)
    assert h.service.run_once() == 1
    waiting = h.repo.get(s.id)
    assert waiting.state is SubmissionState.AWAITING_DISCLOSURE
    statuses = h.statuses(waiting)
    assert statuses["disclosure_check"] == "ActiveActionStatus" and statuses["execution"] == "ActiveActionStatus"
    assert h.actions()[-1] == "crate.awaiting_disclosure"
    h.service.run_once()  # still paused: nothing more happens
    assert h.repo.get(s.id) == waiting
    assert [x.id for x in h.repo.active()] == [s.id]


def test_a_completed_run_publishes_only_the_released_outputs(h: Harness) -> None:
    s, run = h.executing()
    h.move(run.id, RunState.INITIALIZING, RunState.RUNNING, RunState.PAUSED, release_task_id="task-rel")
    h.service.run_once()
    summary, table = b"mutations requested: 3\n", b"chain,n\nA,3\n"
    h.release(run, "summary.txt", summary)
    h.release(run, "tables/ok.csv", table)
    h.release(run, output_object_name(run), b'{"summary": {"class": "File"}}')  # the gateway's own record
    h.store.put_bytes(Area.QUARANTINE, "task-rel/0/counts.csv", b"chain,n\nA,1\n")  # withheld
    h.store.put_bytes(Area.RELEASED, f"p1/runs/{run.id}-other/leak.txt", b"another run's output")
    h.review(run, "task-rel", {"summary.txt": ("carol", Verdict.APPROVE), "ok.csv": ("dave", Verdict.APPROVE),
                               "counts.csv": ("dave", Verdict.REJECT),
                               output_object_name(run): ("carol", Verdict.APPROVE)},
             RequestState.PARTIALLY_RELEASED)
    h.move(run.id, RunState.COMPLETE)

    assert h.service.run_once() == 1
    s = h.repo.get(s.id)
    assert s.state is SubmissionState.PUBLISHED and s.reason is None
    assert set(h.statuses(s).values()) == {"CompletedActionStatus"} and len(h.statuses(s)) == 7
    disclosure = h.phase(s, "disclosure_check")
    assert disclosure["agents"] == ["#person-carol", "#person-dave"]
    assert h.repo.active() == [] and h.service.run_once() == 0
    assert h.actions()[-1] == "crate.published"

    metadata, bag = h.returned(ALICE, s.id)
    data = bag / "data"
    payload = sorted(p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file())
    assert payload == ["input1.txt", "outputs/summary.txt", "outputs/tables/ok.csv", METADATA]
    graph = graph_of(metadata)
    create = graph["#query-37252371-c937-43bd-a0a7-3680b48c0538"]
    assert create["actionStatus"] == COMPLETED and create["agent"]["@id"] == "#person-alice"
    results = create["result"] if isinstance(create["result"], list) else [create["result"]]
    assert sorted(r["@id"] for r in results) == ["outputs/summary.txt", "outputs/tables/ok.csv"]
    for path, content in (("outputs/summary.txt", summary), ("outputs/tables/ok.csv", table)):
        assert (data / path).read_bytes() == content
        entity = graph[path]
        assert entity["sha256"] == hashlib.sha256(content).hexdigest()
        assert entity["sha512"] == hashlib.sha512(content).hexdigest()
        assert entity["contentSize"] == str(len(content))
    review = by_kind(metadata, "DisclosureCheck")
    assert review["actionStatus"] == COMPLETED and "partially approved" in review["name"]
    assert sorted(a["@id"] for a in review["agent"]) == ["#person-carol", "#person-dave"]
    assert review["description"] == "2 output(s) released, 1 withheld"
    assert graph["#person-dave"]["@type"] == "Person"
    assert "https://orcid.org/0000-0001-9842-9718" not in graph
    assert failed_actions(metadata) == []
    assert LocalCrateTools().violations(metadata) == []


def test_outputs_released_by_the_automated_checks_alone_name_the_gateway(h: Harness) -> None:
    s, run = h.executing()
    h.release(run, "summary.txt", b"ok\n")
    h.move(run.id, RunState.INITIALIZING, RunState.RUNNING, RunState.COMPLETE)
    h.service.run_once()
    s = h.repo.get(s.id)
    assert s.state is SubmissionState.PUBLISHED
    assert h.phase(s, "disclosure_check")["agents"] == ["#tre-gateway"]


@pytest.mark.parametrize("ending", [RunState.EXECUTOR_ERROR, RunState.SYSTEM_ERROR])
def test_a_failed_run_fails_the_submission(h: Harness, ending: RunState) -> None:
    s, run = h.executing()
    h.move(run.id, RunState.INITIALIZING, RunState.RUNNING, ending, reason=system_log("executor_failed", "exit 1"))
    h.service.run_once()
    s = h.repo.get(s.id)
    assert s.state is SubmissionState.FAILED and s.reason == f"the workflow run ended {ending.value}"
    statuses = h.statuses(s)
    assert statuses["execution"] == "FailedActionStatus" and "disclosure_check" not in statuses
    metadata, bag = h.returned(ALICE, s.id)
    (failed,) = failed_actions(metadata)
    assert failed["@type"] == "CreateAction" and failed["description"] == s.reason
    assert not (bag / "data" / "outputs").exists()
    assert h.repo.active() == [] and h.actions()[-1] == "crate.failed"


def test_outputs_all_withheld_fail_the_disclosure_check(h: Harness) -> None:
    s, run = h.executing()
    h.move(run.id, RunState.INITIALIZING, RunState.RUNNING, RunState.PAUSED, release_task_id="task-rel")
    h.service.run_once()
    h.review(run, "task-rel", {"counts.csv": ("carol", Verdict.REJECT)}, RequestState.REJECTED)
    h.move(run.id, RunState.SYSTEM_ERROR, reason=system_log("egress_rejected", "every output was rejected"))

    h.service.run_once()
    s = h.repo.get(s.id)
    assert s.state is SubmissionState.FAILED and s.reason == "output checkers withheld every output"
    statuses = h.statuses(s)
    assert statuses["execution"] == "CompletedActionStatus"
    assert statuses["disclosure_check"] == "FailedActionStatus"
    assert h.phase(s, "disclosure_check")["agents"] == ["#person-carol"]
    metadata, bag = h.returned(ALICE, s.id)
    (failed,) = failed_actions(metadata)
    assert kind_of(failed) == "DisclosureCheck" and "rejected" in failed["name"]
    assert "result" not in graph_of(metadata)["#query-37252371-c937-43bd-a0a7-3680b48c0538"]
    assert not (bag / "data" / "outputs").exists()


def test_one_broken_submission_does_not_stop_the_others(h: Harness) -> None:
    first, run1 = h.executing()
    second, run2 = h.executing()
    shutil.rmtree(h.tmp / "work" / "p1" / "submissions" / first.id)  # its crate is gone
    h.move(run1.id, RunState.INITIALIZING, RunState.RUNNING, RunState.PAUSED)
    h.move(run2.id, RunState.INITIALIZING, RunState.RUNNING, RunState.PAUSED)
    assert h.service.run_once() == 2
    assert h.repo.get(first.id).state is SubmissionState.EXECUTING
    assert h.repo.get(second.id).state is SubmissionState.AWAITING_DISCLOSURE


# ---------------------------------------------------------------- who sees what


def test_submissions_are_visible_to_their_project_only(h: Harness) -> None:
    s = h.submit()
    for reader in (ALICE, AMIR, CAROL, ADMIN):
        assert h.service.get(reader, s.id) == s
    with pytest.raises(NotFound):
        h.service.get(BOB, s.id)
    with pytest.raises(NotFound):
        h.service.result_crate(BOB, s.id)
    with pytest.raises(NotFound):
        h.service.get(ALICE, "fs-no-such-submission")
    assert h.service.page(BOB, None, None) == ([], None)


def test_the_owner_of_a_refused_submission_outside_their_projects_still_reads_it(h: Harness) -> None:
    mine = h.submit()
    refused = h.refused(BOB, h.bag()).submission
    assert refused.project == "p1" and refused.owner == "bob"
    assert h.service.get(BOB, refused.id) == refused
    assert [x.id for x in h.service.page(BOB, None, None)[0]] == [refused.id]
    assert [x.id for x in h.service.page(ALICE, None, None)[0]] == [refused.id, mine.id]
    h.returned(BOB, refused.id)


def test_pages_are_newest_first(h: Harness) -> None:
    made = [h.submit(), h.refused(ALICE, b"not a zip").submission, h.submit()]
    first, token = h.service.page(ALICE, None, None)  # the default page size is 2
    assert [x.id for x in first] == [made[2].id, made[1].id] and token
    rest, end = h.service.page(ALICE, 5, token)  # capped at 3
    assert [x.id for x in rest] == [made[0].id] and end is None
    assert [x.id for x in h.service.page(ADMIN, 3, None)[0]] == [x.id for x in reversed(made)]


# ---------------------------------------------------------------- crate policy


def test_a_project_without_a_policy_signs_off_automatically_but_approves_nothing(h: Harness) -> None:
    assert h.service.get_policy(ADMIN, "p3") == CratePolicy(True, ())
    assert h.service.get_policy(ALICE, "p1") == approved_policy(h.checksum)
    assert h.service.get_policy(CAROL, "p1") == approved_policy(h.checksum)
    with pytest.raises(NotFound):
        h.service.get_policy(BOB, "p1")


def test_only_admins_set_a_policy(h: Harness) -> None:
    body = {"automatic_sign_off": False, "approved_workflows": [
        {"workflow_id": "https://workflowhub.eu/workflows/289", "version": "2", "checksum": "sha256:" + "a" * 64}]}
    with pytest.raises(Forbidden):
        h.service.set_policy(ALICE, "p1", body)
    assert h.policies.get("p1") == approved_policy(h.checksum)
    policy = h.service.set_policy(ADMIN, "p1", body)
    assert policy.to_dict() == body
    assert h.policies.get("p1") == policy == h.service.get_policy(ALICE, "p1")
    (entry,) = h.audit.rows
    assert (entry.event.actor, entry.event.action, entry.event.project) == ("root", "crate_policy.updated", "p1")
    assert entry.event.details == body


BAD_POLICIES = {
    "entry without a checksum": {"approved_workflows": [{"workflow_id": "w", "version": "1"}]},
    "entry that is not an object": {"approved_workflows": ["https://workflowhub.eu/workflows/289"]},
    "too many entries": {"approved_workflows": [{"workflow_id": "w", "version": str(i), "checksum": "sha256:0"}
                                                for i in range(1001)]},
    "list that is not a list": {"approved_workflows": 5},
    "flag that is not a boolean": {"automatic_sign_off": "false", "approved_workflows": []},
}


@pytest.mark.parametrize("case", list(BAD_POLICIES))
def test_malformed_policies_are_refused_and_change_nothing(h: Harness, case: str) -> None:
    with pytest.raises(InvalidRequest):
        h.service.set_policy(ADMIN, "p1", BAD_POLICIES[case])
    assert h.policies.get("p1") == approved_policy(h.checksum)
    assert h.audit.rows == []
