"""The Workflow Run RO-Crate of a finished run, assembled from the run, its TES tasks and the store.

Only released outputs go into the crate (a researcher downloading it receives nothing the airlock has
not let out). The crate is built on request into a temporary file: it is small (workflow, parameters,
released outputs) and always reflects the run's current record.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from gateway.adapters.crates.run_crate import RunCrate, RunCrateFile, RunCrateStep, write_run_crate
from gateway.domain.errors import Conflict
from gateway.domain.identity import Principal
from gateway.domain.runs import Run
from gateway.domain.task import Task
from gateway.services.ports import Area, ObjectStore
from gateway.services.run_runner import RELEASE_STEP
from gateway.services.runs import WORKFLOW_DIR, RunService, run_key


class RunCrateBuilder:
    def __init__(self, runs: RunService, store: ObjectStore, work_root: Path, engine_version: str | None) -> None:
        self.runs, self.store, self.work_root, self.engine_version = runs, store, work_root, engine_version

    def _steps(self, principal: Principal, run: Run, site: str) -> list[RunCrateStep]:
        steps: list[Task] = []
        token: str | None = None
        while True:
            page = self.runs.step_tasks(principal, run.id, 500, token)
            steps.extend(page.tasks)
            token = page.next_page_token
            if token is None:
                break
        return [
            RunCrateStep(
                name=t.spec.tags.get("wes_step") or t.spec.name or t.id,
                tes_task_id=t.id,
                tes_uri=f"{site}/ga4gh/tes/v1/tasks/{t.id}",
                image=t.spec.executors[-1].image,
                command=tuple(t.spec.executors[-1].command),
                state=t.state.value,
                start_time=t.start_time,
                end_time=t.end_time,
                exit_code=t.executor_logs[-1].exit_code if t.executor_logs else None,
            )
            for t in reversed(steps)  # oldest first: the order the steps ran
            if t.spec.tags.get("wes_step") != RELEASE_STEP
        ]

    def _released(self, run: Run) -> list[RunCrateFile]:
        prefix = f"{run.project}/runs/{run.id}/"
        files = []
        for obj in self.store.list(Area.RELEASED, prefix):
            local = self.work_root.parent / Area.RELEASED.value / obj.key
            files.append(
                RunCrateFile(
                    local_path=local if local.is_file() else None,
                    crate_path="outputs/" + obj.key[len(prefix) :],
                    sha256=obj.sha256,
                    size=obj.size_bytes,
                    url=self.store.url_for(Area.RELEASED, obj.key),
                )
            )
        return files

    def crate_zip(self, principal: Principal, run_id: str, site: str) -> bytes:
        """The zip of the crate (`site`: the gateway's base URL); Conflict while the run has not finished."""
        run = self.runs.get(principal, run_id)
        if not run.state.is_terminal:
            raise Conflict(f"run {run_id} is {run.state.value}; its RO-Crate exists once it has finished")
        workflow_dir = self.work_root / run_key(run, WORKFLOW_DIR)
        main = str(run.engine.get("workflow") or run.request.workflow_url).partition("#")[0]
        crate = RunCrate(
            run_id=run.id,
            name=f"Workflow run {run.id}",
            workflow_path=workflow_dir / main,
            workflow_dir=workflow_dir,
            workflow_language_version=run.request.workflow_type_version,
            params=run.request.workflow_params,
            outputs=run.outputs,
            output_files=self._released(run),
            steps=self._steps(principal, run, site),
            state=run.state.value,
            start_time=run.start_time or run.created_at,
            end_time=run.end_time,
            agent=run.owner,
            project=run.project,
            gateway_url=site,
            engine_version=self.engine_version,
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = write_run_crate(crate, Path(tmp) / "crate.zip")
            return path.read_bytes()
