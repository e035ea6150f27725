"""Five Safes RO-Crate submissions: a request crate in, its phases recorded, a result crate out.

Phases, in the order the profile's examples record them, each as the profile's action in the crate:

1. check (AssessAction CheckValue): the archive is unpacked safely and its BagIt manifests verified;
2. validation (AssessAction ValidationCheck): the crate is repaired where the profile allows, its
   structure checked and its metadata validated against the Five Safes shapes; client-supplied
   assessment actions are removed and the requester and project are those of the authenticated caller;
3. workflow retrieval (DownloadAction): the workflow comes from the TRE's own mirror, never the internet;
4. sign-off (AssessAction SignOff): the requester is a member of the project and the workflow (id,
   version, checksum of the retrieved copy) is on the project's approved list; automatic when the
   project's policy says so, otherwise an admin decides;
5. execution (the request's CreateAction): a normal WES run, so every step is a sandboxed TES task;
6. disclosure (AssessAction DisclosureCheck): the run's outputs pass the airlock; the output checkers'
   decisions are recorded with the checkers as agents;
7. publishing (UpdateAction): the result crate holds only released outputs (with checksums) and is
   written as a BagIt zip with regenerated manifests.

A crate refused at any phase gets that phase recorded as Failed, and its returned crate (metadata only)
can be downloaded like any result; nothing of it is executed.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from gateway.domain.audit import AuditEvent
from gateway.domain.crates import (
    GATEWAY,
    Agent,
    Crate,
    DisclosureDecision,
    OutputFile,
    Phase,
    Policy,
    RequestedWorkflow,
    RequestingAgent,
    RuleOutcome,
    admit_request,
    check_sign_off,
    complete_phase,
    complete_workflow_retrieval,
    fail_phase,
    phase_action,
    phase_status,
    plan_phase,
    record_disclosure,
    record_sign_off,
    set_run_outputs,
    start_phase,
)
from gateway.domain.crates.vocab import ActionStatus
from gateway.domain.errors import Conflict, DomainError, Forbidden, InvalidRequest, NotFound
from gateway.domain.identity import Principal, Role
from gateway.domain.runs import Run, RunState
from gateway.domain.submissions import SUBMISSION_TAG, CratePolicy, Submission, SubmissionState
from gateway.services.audit import NullAuditLog
from gateway.services.paging import decode_token, next_token, page_size
from gateway.services.ports import (
    Area,
    AuditLog,
    CratePolicyRepository,
    CrateTools,
    EgressRequestRepository,
    ObjectStore,
    StaleSubmission,
    SubmissionRepository,
    WorkflowMirror,
)
from gateway.services.run_runner import output_object_name
from gateway.services.runs import RunService, Upload

log = logging.getLogger(__name__)

METADATA = "ro-crate-metadata.json"
CHUNK = 1 << 20


class CrateRejected(InvalidRequest):
    """The crate was refused at one of its phases; the refusal is recorded in `submission`."""

    def __init__(self, msg: str, submission: Submission) -> None:
        super().__init__(msg)
        self.submission = submission


def _skeleton(submission: Submission) -> dict[str, Any]:
    """A crate describing a submission whose own metadata could not be read (so it can carry the Failed check)."""
    return {
        "@context": "https://w3id.org/ro/crate/1.2/context",
        "@graph": [
            {"@id": METADATA, "@type": "CreativeWork", "about": {"@id": "./"},
             "conformsTo": {"@id": "https://w3id.org/ro/crate/1.2"}},
            {"@id": "./", "@type": "Dataset", "name": f"Refused submission {submission.id}",
             "description": "The submitted archive could not be read as a crate.",
             "datePublished": submission.created_at.isoformat()},
        ],
    }


def _cwl_version(path: Path) -> str:
    match = re.search(r"cwlVersion:\s*[\"']?(v1\.[0-2])", path.read_text(errors="replace")[:65536])
    return match.group(1) if match else "v1.2"


@dataclass
class SubmissionService:
    repo: SubmissionRepository
    policies: CratePolicyRepository
    runs: RunService
    egress_requests: EgressRequestRepository
    tools: CrateTools
    mirror: WorkflowMirror
    store: ObjectStore
    # The folder of the store's `work` area (crates are unpacked and assembled on the file system).
    work_root: Path | None
    new_id: Callable[[], str]
    now: Callable[[], datetime]
    audit: AuditLog = field(default_factory=NullAuditLog)
    default_page_size: int = 100
    max_page_size: int = 1000

    # ------------------------------------------------------------ files

    def _dir(self, s: Submission, sub: str = "") -> Path:
        if self.work_root is None:
            raise InvalidRequest("crate submissions need a filesystem-backed work area (object_store = 'local')")
        return self.work_root / s.project / "submissions" / s.id / sub

    def _load(self, s: Submission) -> Crate:
        return Crate(json.loads((self._dir(s) / "crate.json").read_text()))

    def _keep(self, s: Submission, crate: Crate) -> None:
        (self._dir(s) / "crate.json").write_text(json.dumps(crate.to_json(), indent=2))

    # ------------------------------------------------------------ intake

    def submit(self, principal: Principal, archive: BinaryIO, project: str | None) -> Submission:
        """Receive a request crate and take it as far as it can go now.

        Raises CrateRejected (the refusal recorded, a returned crate available) when a phase fails.
        """
        principal.require_role(Role.RESEARCHER)
        project = (project or "").strip() or (next(iter(principal.projects)) if len(principal.projects) == 1 else "")
        if not project:
            raise InvalidRequest("project: name the project this request is for")
        at = self.now()
        s = Submission(id="fs-" + self.new_id(), owner=principal.user, project=project,
                       state=SubmissionState.RECEIVED, created_at=at, updated_at=at)
        base = self._dir(s)
        base.mkdir(parents=True)
        upload = base / "upload.zip"
        with open(upload, "wb") as out:
            shutil.copyfileobj(archive, out, CHUNK)
        self.repo.add(s, (AuditEvent(principal.user, "crate.submitted", "submission", s.id, project, {}),))
        try:
            crate_root, verified, metadata = self.tools.intake(upload, base / "received")
        except InvalidRequest as exc:
            crate = Crate(_skeleton(s))
            self._fail(crate, Phase.CHECK_VALUE, exc.msg)
            raise self._reject(s, crate, f"the archive was refused: {exc.msg}") from None
        finally:
            upload.unlink(missing_ok=True)
        return self._admit(s, principal, crate_root, verified, metadata)

    def _admit(self, s: Submission, principal: Principal, crate_root: Path, verified: tuple[str, ...],
               metadata: dict[str, Any]) -> Submission:
        requester = RequestingAgent.member(principal.user, s.project)
        try:
            admitted = admit_request(metadata, requester)
        except InvalidRequest as exc:
            try:
                crate = Crate(metadata)
            except (InvalidRequest, ValueError, TypeError, KeyError):
                crate = Crate(_skeleton(s))
            self._pass(crate, Phase.CHECK_VALUE, "OK", _manifests_note(verified))
            self._fail(crate, Phase.VALIDATION_CHECK, exc.msg)
            raise self._reject(s, crate, f"the crate is not a valid Five Safes request: {exc.msg}") from None
        crate = admitted.crate
        repairs = tuple(r.description for r in admitted.repairs)
        s = s.updated(profile=str(admitted.profile.value), repairs=repairs)
        self._pass(crate, Phase.CHECK_VALUE, "OK", _manifests_note(verified))
        violations = self.tools.violations(crate.to_json())
        if violations:
            self._fail(crate, Phase.VALIDATION_CHECK, "; ".join(violations[:5]))
            raise self._reject(s, crate, f"the crate breaks the Five Safes profile: {violations[0]}")
        self._pass(crate, Phase.VALIDATION_CHECK, "approved",
                   "repairs: " + "; ".join(repairs) if repairs else None)
        self._copy_payload(crate_root, self._dir(s, "payload"))
        requested = RequestedWorkflow.from_crate(crate)
        s = s.updated(workflow_id=requested.workflow_id, workflow_version=requested.version or "")
        if s.project not in principal.projects:
            plan_phase(crate, Phase.SIGN_OFF, policy=self._policy_entity(s))
            start_phase(crate, Phase.SIGN_OFF, at=self.now())
            record_sign_off(crate, RuleOutcome(False, f"the requester {principal.user!r} is not a member of project "
                                                      f"{s.project!r}"), agent=GATEWAY, at=self.now())
            raise self._reject(s, crate, f"you are not a member of project {s.project!r}")
        checksum = self._retrieve(s, crate, requested)
        policy = self.policy_for(s.project)
        plan_phase(crate, Phase.SIGN_OFF, policy=self._policy_entity(s))
        start_phase(crate, Phase.SIGN_OFF, at=self.now())
        outcome = check_sign_off(requested, policy.approved_workflows, checksum, principal.user, {principal.user})
        if not outcome.passed:
            record_sign_off(crate, outcome, agent=GATEWAY, at=self.now())
            raise self._reject(s, crate, f"sign-off refused: {outcome.reason}")
        if not policy.automatic_sign_off:
            self._keep(s, crate)
            return self._save(s.moved_to(SubmissionState.AWAITING_SIGN_OFF, self.now()), "crate.awaiting_sign_off")
        record_sign_off(crate, outcome, agent=GATEWAY, at=self.now())
        return self._execute(s, crate)

    def _retrieve(self, s: Submission, crate: Crate, requested: RequestedWorkflow) -> str:
        plan_phase(crate, Phase.WORKFLOW_RETRIEVAL, agent=GATEWAY)
        start_phase(crate, Phase.WORKFLOW_RETRIEVAL, at=self.now())
        source = self.mirror.locate(requested.workflow_id)
        if source is None or not source.is_file():
            reason = f"workflow {requested.workflow_id!r} is not in this TRE's workflow mirror"
            self._fail(crate, Phase.WORKFLOW_RETRIEVAL, reason, started=True)
            raise self._reject(s, crate, reason)
        _size, sha256, _sha512 = self.tools.digests(source)
        try:
            self.tools.unpack_workflow(source, self._dir(s, "workflow"))
        except InvalidRequest as exc:
            self._fail(crate, Phase.WORKFLOW_RETRIEVAL, f"the mirrored workflow crate is unusable: {exc.msg}",
                       started=True)
            raise self._reject(s, crate, f"the mirrored workflow crate is unusable: {exc.msg}") from None
        complete_workflow_retrieval(crate, local_id="workflow/", at=self.now())
        return f"sha256:{sha256}"

    # ------------------------------------------------------------ sign-off by an admin

    def decide_sign_off(self, principal: Principal, submission_id: str, approve: bool, reason: str) -> Submission:
        s = self.get(principal, submission_id)
        if not principal.is_admin:
            raise Forbidden("only admins sign off crate submissions")
        if s.state is not SubmissionState.AWAITING_SIGN_OFF:
            raise Conflict(f"submission {s.id} is {s.state.value}, not waiting for sign-off")
        if not reason.strip():
            raise InvalidRequest("reason: say why")
        crate = self._load(s)
        record_sign_off(crate, RuleOutcome(approve, reason.strip()), agent=Agent.person(principal.user),
                        at=self.now())
        if not approve:
            raise_rejected = self._reject(s, crate, f"sign-off refused by {principal.user}: {reason.strip()}")
            return raise_rejected.submission
        return self._execute(s, crate)

    # ------------------------------------------------------------ execution

    def _execute(self, s: Submission, crate: Crate) -> Submission:
        uploads: list[Upload] = []
        handles: list[BinaryIO] = []
        try:
            try:
                run = self._start_run(s, crate, uploads, handles)
            except DomainError as exc:
                start_phase(crate, Phase.EXECUTION, at=self.now())
                self._fail(crate, Phase.EXECUTION, f"the workflow run could not start: {exc.msg}", started=True)
                raise self._reject(s, crate, f"the workflow run could not start: {exc.msg}") from None
        finally:
            for opened in handles:
                opened.close()
        start_phase(crate, Phase.EXECUTION, at=self.now())
        self._keep(s, crate)
        return self._save(s.moved_to(SubmissionState.EXECUTING, self.now(), run_id=run.id), "crate.executing",
                          run_id=run.id)

    def _start_run(self, s: Submission, crate: Crate, uploads: list[Upload], handles: list[BinaryIO]) -> Run:
        """Submit the WES run: the mirrored workflow's files and the crate's inputs as attachments."""
        workflow_root = self._workflow_root(s)
        main = self._main_workflow(workflow_root)
        for path in sorted(p for p in workflow_root.rglob("*") if p.is_file()):
            handle = open(path, "rb")  # noqa: SIM115 - closed by _execute
            handles.append(handle)
            uploads.append(Upload("wf/" + path.relative_to(workflow_root).as_posix(), handle))
        params = self._parameters(s, crate, uploads, handles)
        form: dict[str, str | None] = {
            "workflow_type": "CWL",
            "workflow_type_version": _cwl_version(workflow_root / main),
            "workflow_url": "wf/" + main,
            "workflow_params": json.dumps(params),
            "tags": json.dumps({"project": s.project, SUBMISSION_TAG: s.id}),
        }
        requester = Principal(user=s.owner, roles=frozenset({Role.RESEARCHER}), projects=frozenset({s.project}))
        return self.runs.submit(requester, form, uploads)

    def _workflow_root(self, s: Submission) -> Path:
        root = self._dir(s, "workflow")
        tops = [p for p in root.iterdir()] if root.is_dir() else []
        # A zip may wrap the crate in one top folder (a bag's data/ when it is a bag).
        if (root / "data" / METADATA).is_file():
            return root / "data"
        if len(tops) == 1 and tops[0].is_dir() and (tops[0] / METADATA).is_file():
            return tops[0]
        return root

    def _main_workflow(self, root: Path) -> str:
        try:
            graph = {e.get("@id"): e for e in json.loads((root / METADATA).read_text())["@graph"]}
            main = str(graph["./"]["mainEntity"]["@id"])
        except (OSError, ValueError, KeyError, TypeError):
            raise InvalidRequest("the mirrored workflow crate names no main workflow") from None
        if main.startswith(("/", "..")) or "://" in main or not (root / main).is_file():
            raise InvalidRequest(f"the mirrored workflow crate's main workflow {main!r} is not a file in it")
        return main

    def _parameters(
        self, s: Submission, crate: Crate, uploads: list[Upload], handles: list[BinaryIO]
    ) -> dict[str, Any]:
        """The CWL job from the request's CreateAction: File objects become attachments, values stay values."""
        action = crate.workflow_run()
        objects = action.get("object") or []
        objects = objects if isinstance(objects, list) else [objects]
        payload = self._dir(s, "payload")
        params: dict[str, Any] = {}
        for ref in objects:
            entity = crate.get(ref.get("@id", "")) if isinstance(ref, dict) else None
            if entity is None:
                continue
            parameter = crate.get(_first_id(entity.get("exampleOfWork")) or "")
            name = str(parameter.get("name")) if parameter else str(entity.get("name") or entity["@id"])
            types = entity.get("@type")
            types = types if isinstance(types, list) else [types]
            if "File" in types:
                local = (payload / str(entity["@id"])).resolve()
                if not local.is_relative_to(payload.resolve()) or not local.is_file():
                    raise InvalidRequest(f"input {entity['@id']!r} is not a file of the crate")
                stream = open(local, "rb")  # noqa: SIM115 - closed by the caller
                handles.append(stream)
                uploads.append(Upload("inputs/" + str(entity["@id"]), stream))
                params[name] = {"class": "File", "location": "inputs/" + str(entity["@id"])}
            elif "value" in entity:
                params[name] = entity["value"]
        return params

    # ------------------------------------------------------------ following the run

    def any_active(self) -> bool:
        """Submissions only follow their runs, which the dispatcher drives (and waits for) on their own."""
        return False

    def run_once(self) -> int:
        """Advance every submission whose run is under way; return how many were looked at."""
        active = self.repo.active()
        for s in active:
            try:
                self.advance(s)
            except StaleSubmission:
                pass
            except Exception:  # noqa: BLE001 - one broken submission must not stop the others
                log.exception("unexpected error advancing submission", extra={"submission_id": s.id})
        return len(active)

    def advance(self, s: Submission) -> Submission:
        run = self.runs.repo.get(s.run_id or "")
        if run is None:
            return s
        if run.state is RunState.PAUSED and s.state is SubmissionState.EXECUTING:
            crate = self._load(s)
            if phase_action(crate, Phase.DISCLOSURE_CHECK) is None:
                plan_phase(crate, Phase.DISCLOSURE_CHECK)
                start_phase(crate, Phase.DISCLOSURE_CHECK, at=self.now())
            self._keep(s, crate)
            return self._save(s.moved_to(SubmissionState.AWAITING_DISCLOSURE, self.now()), "crate.awaiting_disclosure")
        if not run.state.is_terminal:
            return s
        crate = self._load(s)
        if run.state is RunState.COMPLETE:
            return self._publish(s, crate, run)
        withheld_all = any('"egress_rejected"' in line for line in run.system_logs)
        if withheld_all:
            complete_phase(crate, Phase.EXECUTION, at=run.end_time or self.now())
            set_run_outputs(crate, ())
            self._record_review(crate, run, ())
            reason = "output checkers withheld every output"
        else:
            reason = f"the workflow run ended {run.state.value}"
            self._fail(crate, Phase.EXECUTION, reason, started=True)
        return self._finish(s, crate, SubmissionState.FAILED, reason)

    def _publish(self, s: Submission, crate: Crate, run: Run) -> Submission:
        result = self._dir(s, "result")
        shutil.rmtree(result, ignore_errors=True)
        self._copy_payload(self._dir(s, "payload"), result)
        outputs: list[OutputFile] = []
        prefix = f"{run.project}/runs/{run.id}/"
        for obj in self.store.list(Area.RELEASED, prefix):
            relative = obj.key[len(prefix):]
            if relative == output_object_name(run):
                continue  # the gateway's own record of the output values, not a workflow output
            target = result / "outputs" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            self.store.fetch_to(Area.RELEASED, obj.key, target)
            size, sha256, sha512 = self.tools.digests(target)
            outputs.append(OutputFile(path=f"outputs/{relative}", size=size, sha256=sha256, sha512=sha512))
        complete_phase(crate, Phase.EXECUTION, at=run.end_time or self.now())
        set_run_outputs(crate, tuple(outputs))
        self._record_review(crate, run, tuple(o.path for o in outputs))
        return self._finish(s, crate, SubmissionState.PUBLISHED, None, result_dir=result)

    def _record_review(self, crate: Crate, run: Run, released: tuple[str, ...]) -> None:
        request = self.egress_requests.for_task(run.release_task_id) if run.release_task_id else None
        if request is None:
            reviewers: tuple[Agent, ...] = (GATEWAY,)  # released by the automated checks alone
            started = decided = run.end_time or self.now()
            withheld = 0
        else:
            names = sorted({d.reviewer for f in request.files for d in f.decisions})
            reviewers = tuple(Agent.person(n) for n in names) or (GATEWAY,)
            started, decided = request.created_at, request.decided_at or self.now()
            withheld = len([f for f in request.rejected()
                            if not f.file.container_path.endswith(output_object_name(run))])
        record_disclosure(crate, DisclosureDecision(reviewers, released, withheld, started, decided))

    # ------------------------------------------------------------ endings

    def _reject(self, s: Submission, crate: Crate, reason: str) -> CrateRejected:
        """Record the refusal, write the returned crate, and give the exception for the caller to raise."""
        saved = self._finish(s, crate, SubmissionState.REJECTED, reason)
        return CrateRejected(reason, saved)

    def _finish(self, s: Submission, crate: Crate, state: SubmissionState, reason: str | None,
                result_dir: Path | None = None) -> Submission:
        result = result_dir or self._dir(s, "result")
        if result_dir is None:
            # A refused or failed request comes back as its metadata only, with the Failed action.
            shutil.rmtree(result, ignore_errors=True)
            result.mkdir(parents=True, exist_ok=True)
        plan_phase(crate, Phase.PUBLISHING, agent=GATEWAY)
        start_phase(crate, Phase.PUBLISHING, at=self.now())
        complete_phase(crate, Phase.PUBLISHING, at=self.now())
        document = crate.to_json()
        (result / METADATA).write_text(json.dumps(document, indent=2))
        violations = self.tools.violations(document)
        if violations:
            log.warning("result crate breaks the profile", extra={"submission_id": s.id, "violations": violations})
        self.tools.write_bag(result, self._dir(s, "result-crate.zip"), f"result-{s.id}")
        self._keep(s, crate)
        return self._save(s.moved_to(state, self.now(), reason=reason), f"crate.{state.value.lower()}",
                          reason=reason, violations=len(violations))

    def _save(self, s: Submission, action: str, **details: Any) -> Submission:
        event = AuditEvent("gateway", action, "submission", s.id, s.project, details)
        return self.repo.save(s, (event,))

    def _pass(self, crate: Crate, phase: Phase, outcome: str, note: str | None) -> None:
        plan_phase(crate, phase, agent=GATEWAY)
        start_phase(crate, phase, at=self.now())
        complete_phase(crate, phase, at=self.now(), outcome=outcome, note=note)

    def _fail(self, crate: Crate, phase: Phase, reason: str, started: bool = False) -> None:
        if not started and phase_action(crate, phase) is None:
            plan_phase(crate, phase, agent=GATEWAY)
        # The workflow run's agent is the requester, whatever ended it.
        agent = None if phase is Phase.EXECUTION else GATEWAY
        fail_phase(crate, phase, at=self.now(), reason=reason, agent=agent)

    def _policy_entity(self, s: Submission) -> Policy:
        return Policy(f"#crate-policy-{s.project}", f"Approved-workflow policy of project {s.project}")

    @staticmethod
    def _copy_payload(source: Path, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for path in source.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.name != METADATA:
                destination = target / path.relative_to(source)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, destination)

    # ------------------------------------------------------------ reading

    def get(self, principal: Principal, submission_id: str) -> Submission:
        s = self.repo.get(submission_id)
        if s is None or not (principal.can_see_project(s.project) or principal.user == s.owner):
            raise NotFound(f"submission {submission_id!r} not found")
        return s

    def page(
        self, principal: Principal, size: int | None, token: str | None
    ) -> tuple[list[Submission], str | None]:
        page = self.repo.query(
            None if principal.is_admin else principal.projects,
            None if principal.is_admin else principal.user,
            page_size(size, self.default_page_size, self.max_page_size),
            decode_token(token) if token else None,
        )
        return page.submissions, next_token(page.has_more, page.last_seq)

    def phases(self, s: Submission) -> list[dict[str, Any]]:
        """Each recorded phase as the crate says it is: its action, status, times and agents."""
        if not (self._dir(s) / "crate.json").is_file():
            return []
        crate = self._load(s)
        found = []
        for phase in Phase:
            try:
                action = phase_action(crate, phase)
                status = phase_status(crate, phase)
            except InvalidRequest:
                continue  # a refused crate may lack the workflow run altogether
            if action is None or status is None or (phase is Phase.EXECUTION and status is ActionStatus.POTENTIAL):
                continue
            agents = action.get("agent") or []
            agents = agents if isinstance(agents, list) else [agents]
            entry: dict[str, Any] = {
                "phase": phase.value, "action": action["@id"], "type": action.get("@type"),
                "status": status.value.rsplit("/", 1)[-1],
                "agents": [str(a.get("@id")) for a in agents if isinstance(a, dict)],
            }
            for key, name in (("startTime", "start_time"), ("endTime", "end_time"), ("description", "message")):
                if action.get(key):
                    entry[name] = action[key]
            found.append(entry)
        return found

    def result_crate(self, principal: Principal, submission_id: str) -> bytes:
        s = self.get(principal, submission_id)
        if not s.state.is_final:
            raise Conflict(f"submission {s.id} is {s.state.value}; its crate is returned once it has finished")
        return self._dir(s, "result-crate.zip").read_bytes()

    # ------------------------------------------------------------ policy

    def policy_for(self, project: str) -> CratePolicy:
        return self.policies.get(project) or CratePolicy()

    def get_policy(self, principal: Principal, project: str) -> CratePolicy:
        principal.check_visible(project, f"project {project!r}")
        return self.policy_for(project)

    def set_policy(self, principal: Principal, project: str, body: dict[str, Any]) -> CratePolicy:
        if not principal.is_admin:
            raise Forbidden("only admins set a project's crate policy")
        policy = CratePolicy.from_dict(body)
        self.policies.put(project, policy)
        self.audit.record(AuditEvent(principal.user, "crate_policy.updated", "project", project, project,
                                     policy.to_dict()))
        return policy


def _first_id(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value["@id"]) if isinstance(value, dict) and "@id" in value else None


def _manifests_note(verified: tuple[str, ...]) -> str:
    return ("BagIt manifests verified: " + ", ".join(verified)) if verified else "not a bag: no manifests to verify"
