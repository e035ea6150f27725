"""Driving workflow runs: start the engine, follow it, release the final outputs, stop what is cancelled.

A run holds a lease like a task does, but keeps it while its engine runs in this worker (the engine is
a child process here). If the worker dies, the lease runs out and whichever worker claims the run next
finds no engine: the run ends in SYSTEM_ERROR (`engine_lost`) and its steps are cancelled.

The run's final outputs leave through one "release" TES task owned by the run's submitter: it carries
`outputs/` of the run's work folder to the project's released area, so they pass the same quarantine,
automated checks and human review as any task's outputs. The run is PAUSED while that review waits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.domain.errors import DomainError, InvalidRequest, NotFound
from gateway.domain.identity import Principal, Role
from gateway.domain.runs import RUN_TAG, Run, RunState
from gateway.domain.states import TaskState
from gateway.domain.task import Task, TaskSpec, system_log
from gateway.services.audit import record
from gateway.services.egress import EgressService, deliver
from gateway.services.ports import (
    Area,
    CollectedOutput,
    Location,
    ObjectStore,
    RunRepository,
    StaleRun,
    WorkflowEngine,
    check_key,
)
from gateway.services.runs import OUTPUTS_DIR, run_key, run_state_event
from gateway.services.tasks import TaskService

log = logging.getLogger(__name__)

RELEASE_STEP = "release outputs"


def output_object_name(run: Run) -> str:
    """The file that carries the run's output object (all values, not only files) through review."""
    return f"wes-run-{run.id}-outputs.json"


def engine_identity(run: Run) -> Principal:
    """The run's confined identity, used for tasks the gateway submits on the run's behalf."""
    return Principal(user=run.owner, roles=frozenset({Role.RESEARCHER}), projects=frozenset({run.project}),
                     service=True, run_scope=run.id)


_GATEWAY = Principal(user="gateway", roles=frozenset({Role.ADMIN}), projects=frozenset(), service=True)


@dataclass
class RunRunner:
    repo: RunRepository
    tasks: TaskService
    store: ObjectStore
    engine: WorkflowEngine
    now: Callable[[], datetime]
    mint_credential: Callable[[Run], tuple[str, str]]
    worker_id: str
    release_image: str = "alpine"
    lease_seconds: float = 30.0
    # With it, the release moves files itself (see _release); without, it runs as a container task.
    egress: EgressService | None = None

    def run_once(self) -> int:
        """Advance every run this worker can lease; return how many were leased."""
        runs = self.repo.claim_active(self.worker_id, self.lease_seconds, 64)
        for run in runs:
            try:
                self.advance(run)
            except StaleRun:
                pass  # changed by the API meanwhile (e.g. cancelled): the next pass sees it
            except Exception:  # noqa: BLE001 - one broken run must not stop the others
                log.exception("unexpected error advancing run", extra={"run_id": run.id})
        return len(runs)

    def any_active(self) -> bool:
        counts = self.repo.count_by_state()
        active = (RunState.QUEUED, RunState.INITIALIZING, RunState.RUNNING, RunState.CANCELING)
        return any(counts.get(s, 0) for s in active)

    def advance(self, run: Run) -> Run:
        if run.state is RunState.CANCELING:
            return self._cancel(run)
        if run.state is RunState.QUEUED:
            token, digest = self.mint_credential(run)
            run = self._save(run.updated(engine={**run.engine, "credential_sha256": digest})
                             .moved_to(RunState.INITIALIZING, at=self.now()), run.state)
            try:
                handle = self.engine.start(run, token)
            except DomainError as exc:
                return self._fail(run, "engine_start_failed", exc.msg)
            return self._save(run.updated(engine={**run.engine, **handle}).moved_to(RunState.RUNNING, at=self.now()),
                              run.state)
        if run.state is RunState.INITIALIZING:
            # Only a worker that died between the two saves above leaves a run here.
            return self._fail(run, "engine_lost", "the worker starting the engine stopped")
        if run.release_task_id is not None:
            return self._follow_release(run)
        if run.state is RunState.RUNNING:
            return self._follow_engine(run)
        return run

    # ------------------------------------------------------------ engine

    def _follow_engine(self, run: Run) -> Run:
        try:
            ended = self.engine.poll(run.id)
        except NotFound:
            return self._fail(run, "engine_lost", "the engine process is gone (its worker restarted or died)")
        if ended is None:
            return run
        if ended.crashed:
            return self._fail(run, "engine_failed", f"the engine ended abnormally (status {ended.exit_code})",
                              exit_code=ended.exit_code)
        outputs = self.engine.outputs(run) if ended.exit_code == 0 else None
        if outputs is None:
            code = ended.exit_code or 1
            failed = run.updated(exit_code=code)
            detail = f"the workflow failed (engine exit code {ended.exit_code}); see the run's stderr log"
            self._cancel_steps(run)
            return self._save(failed.moved_to(RunState.EXECUTOR_ERROR, at=self.now(),
                                              reason=system_log("workflow_failed", detail)), run.state)
        finished = run.updated(exit_code=0, outputs=outputs)
        if outputs:
            # Output values that are not files (strings, numbers) can carry data too: they leave only as
            # this file, reviewed with the others, and the run log shows them only once it is released.
            self.store.put_bytes(Area.WORK, run_key(run, OUTPUTS_DIR + output_object_name(run)),
                                 json.dumps(outputs, indent=2, sort_keys=True).encode())
        produced = any(True for _ in self.store.list(Area.WORK, run_key(run, OUTPUTS_DIR)))
        if not produced:
            return self._save(finished.moved_to(RunState.COMPLETE, at=self.now()), run.state)
        try:
            if self.egress is not None:
                task_id = self._release(run)
            else:
                task_id = self.tasks.create(engine_identity(run), self._release_task(run)).id
        except DomainError as exc:
            return self._fail(finished, "release_failed", f"the release task could not be created: {exc.msg}")
        saved = self._save(finished.updated(release_task_id=task_id), run.state)
        # A release that passed on policy is already complete: finish the run in the same turn.
        return self._follow_release(saved)

    def _release(self, run: Run) -> str:
        """Put the run's final outputs through the airlock as one TES task that the gateway carries itself.

        Releasing computes nothing, it only moves files: the outputs are copied from the run's work folder
        into quarantine and handed to the egress step exactly as a container's collected outputs are, with
        no container started for it. The task is stored already PAUSED (awaiting review) or COMPLETE
        (released by the project's policy), and is listed with the run's steps.
        """
        assert self.egress is not None
        body = self._release_task(run)
        body["tags"] = {**body["tags"], RUN_TAG: run.id}
        at = self.now()
        task_id = self.tasks.new_id()
        prefix = run_key(run, OUTPUTS_DIR)
        collected = []
        for obj in self.store.list(Area.WORK, prefix):
            relative = obj.key[len(prefix):]
            stored = self.store.copy(Location(Area.WORK, obj.key), Location(Area.QUARANTINE, f"{task_id}/0/{relative}"))
            destination = self.store.url_for(Area.RELEASED, f"{run.project}/runs/{run.id}/{relative}")
            collected.append(CollectedOutput(destination, f"/outputs/{relative}", stored))
        task = Task(id=task_id, owner=run.owner, project=run.project, spec=TaskSpec.from_dict(body),
                    state=TaskState.RUNNING, creation_time=at, start_time=at,
                    metadata={"carried_by": "gateway: a release moves files and starts no container"})
        outcome, deliveries = self.egress.process(task, tuple(collected))
        self.tasks.repo.add(outcome)
        record(self.egress.audit, "gateway", "task.submitted", "task", task_id, run.project, name=body["name"],
               state=outcome.state.value, run=run.id)
        if deliveries:
            deliver(self.store, self.egress.audit, run.project, None, deliveries)
        return task_id

    def _release_task(self, run: Run) -> dict[str, Any]:
        source = self.store.url_for(Area.WORK, run_key(run, OUTPUTS_DIR.rstrip("/")))
        target = self.store.url_for(Area.RELEASED, f"{run.project}/runs/{run.id}")
        return {
            "name": f"{RELEASE_STEP} of run {run.id}",
            "description": "Carries the workflow run's final outputs through the airlock.",
            "tags": {"project": run.project, "wes_step": RELEASE_STEP},
            "inputs": [{"path": "/outputs", "url": source, "type": "DIRECTORY"}],
            "outputs": [{"path": "/outputs", "url": target, "type": "DIRECTORY"}],
            "executors": [{"image": self.release_image, "command": ["true"]}],
        }

    # ------------------------------------------------------------ release

    def _follow_release(self, run: Run) -> Run:
        task = self.tasks.repo.get(run.release_task_id or "")
        if task is None:
            return self._fail(run, "release_lost", "the release task of the run's outputs is gone")
        if task.state is TaskState.PAUSED:
            if run.state is RunState.RUNNING:
                request = task.metadata.get("egress_request")
                waiting = system_log("awaiting_output_review", "the run's outputs wait for output checkers",
                                     egress_request=request, release_task=task.id)
                return self._save(run.moved_to(RunState.PAUSED, at=self.now(), reason=waiting), run.state)
            return run
        if not task.state.is_terminal:
            return run
        if task.state is TaskState.COMPLETE:
            values = self.store.exists(Area.RELEASED, f"{run.project}/runs/{run.id}/{output_object_name(run)}")
            released = run.updated(outputs=self._released_outputs(run, run.outputs, values))
            # A partial release carries the withheld list in the task's last system log; the run shows it too.
            reason = task.system_logs[-1] if task.system_logs else None
            return self._save(released.moved_to(RunState.COMPLETE, at=self.now(), reason=reason), run.state)
        reason = task.system_logs[-1] if task.system_logs else system_log(
            "release_failed", f"the release task ended {task.state.value}")
        return self._save(run.updated(outputs={}).moved_to(RunState.SYSTEM_ERROR, at=self.now(), reason=reason),
                          run.state)

    def _released_outputs(self, run: Run, outputs: Any, values_released: bool, in_file: bool = False) -> Any:
        """The engine's output object with work-area locations replaced by released ones.

        Withheld files become null; so do all plain values unless the output object itself was released.
        """
        if isinstance(outputs, list):
            return [self._released_outputs(run, v, values_released, in_file) for v in outputs]
        if not isinstance(outputs, dict):
            return outputs if values_released or in_file else None
        if outputs.get("class") in ("File", "Directory") and isinstance(outputs.get("location"), str):
            where = self.store.locate(outputs["location"])
            prefix = run_key(run, OUTPUTS_DIR)
            if where is None or where.area is not Area.WORK or not (where.key + "/").startswith(prefix):
                return None
            key = f"{run.project}/runs/{run.id}/{where.key[len(prefix):]}".rstrip("/")
            try:
                check_key(key)
            except InvalidRequest:
                return None
            if outputs["class"] == "File" and not self.store.exists(Area.RELEASED, key):
                return None
            # `contents` (loadContents) is data, not a description of the file: shown only with the values.
            hidden = {"path"} if values_released else {"path", "contents"}
            moved = {k: self._released_outputs(run, v, values_released, True) for k, v in outputs.items()
                     if k not in hidden}
            moved["location"] = self.store.url_for(Area.RELEASED, key)
            if "listing" in moved:
                moved["listing"] = [e for e in moved["listing"] if e is not None]
            return moved
        return {k: self._released_outputs(run, v, values_released, in_file) for k, v in outputs.items()}

    # ------------------------------------------------------------ stopping

    def _cancel(self, run: Run) -> Run:
        """Stop the engine and every step; the run is CANCELED once none of its steps is still stopping."""
        self.engine.stop(run.id)
        if self._cancel_steps(run):
            return run
        return self._save(run.moved_to(RunState.CANCELED, at=self.now()), run.state)

    def _cancel_steps(self, run: Run) -> int:
        """Ask every unfinished task of the run to stop; return how many have not finished yet."""
        token: str | None = None
        unfinished = 0
        while True:
            page = self.tasks.list(_GATEWAY, tag_keys=[RUN_TAG], tag_values=[run.id], size=500, token=token)
            for task in page.tasks:
                if task.state.is_terminal:
                    continue
                unfinished += 1
                if task.state is not TaskState.CANCELING:
                    try:
                        self.tasks.cancel(_GATEWAY, task.id)
                    except DomainError:
                        log.warning("could not cancel step", extra={"run_id": run.id, "task_id": task.id})
            token = page.next_page_token
            if token is None:
                return unfinished

    def _fail(self, run: Run, reason: str, detail: str, exit_code: int | None = None) -> Run:
        self.engine.stop(run.id)
        self._cancel_steps(run)
        failed = run.updated(exit_code=exit_code) if exit_code is not None else run
        return self._save(failed.moved_to(RunState.SYSTEM_ERROR, at=self.now(), reason=system_log(reason, detail)),
                          run.state)

    def _save(self, run: Run, previous: RunState) -> Run:
        events = (run_state_event(run, previous),) if run.state is not previous else ()
        saved = self.repo.save(run, events)
        if saved.state.is_terminal:
            log.info("run finished", extra={"run_id": saved.id, "state": saved.state.value})
        return saved

