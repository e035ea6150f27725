"""Thin WES 1.1 handlers, named by operationId: parse, call a use case, render.

Log URLs in run and task logs are absolute (clients such as wes-client fetch them as they are) and
point at this gateway, which serves them to callers allowed to see the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, request

from gateway.api.urls import site_url
from gateway.bootstrap import Components
from gateway.domain.runs import CWL, CWL_VERSIONS, ENGINE_FLAGS, Run, RunState
from gateway.domain.task import Task
from gateway.domain.views import rfc3339
from gateway.services.runs import Upload

VERSION = "0.1.0"
WES_BASE = "/ga4gh/wes/v1"


def _base_url(c: Components) -> str:
    return site_url(c) + WES_BASE


def run_log_document(run: Run, base: str) -> dict[str, Any]:
    logs = f"{base}/runs/{run.id}/logs"
    run_log: dict[str, Any] = {
        "name": run.request.workflow_url,
        "cmd": list(run.engine.get("cmd") or []),
        "stdout": f"{logs}/stdout",
        "stderr": f"{logs}/stderr",
        "system_logs": list(run.system_logs),
    }
    if run.start_time:
        run_log["start_time"] = rfc3339(run.start_time)
    if run.end_time:
        run_log["end_time"] = rfc3339(run.end_time)
    if run.exit_code is not None:
        run_log["exit_code"] = run.exit_code
    return {
        "run_id": run.id,
        "request": run.request.to_dict(),
        "state": run.state.value,
        "run_log": run_log,
        "task_logs_url": f"{base}/runs/{run.id}/tasks",
        "outputs": run.outputs if run.state is RunState.COMPLETE else {},
    }


def run_summary(run: Run) -> dict[str, Any]:
    summary: dict[str, Any] = {"run_id": run.id, "state": run.state.value, "tags": dict(run.request.tags)}
    # start_time is required in RunSummary: a run that has not started reports its submission time.
    summary["start_time"] = rfc3339(run.start_time or run.created_at)
    if run.end_time:
        summary["end_time"] = rfc3339(run.end_time)
    return summary


def task_log_document(task: Task, run: Run, base: str) -> dict[str, Any]:
    """A TES task as a WES TaskLog: the last executor's command and exit code, links to its logs."""
    executors = task.spec.executors
    last_log = task.executor_logs[-1] if task.executor_logs else None
    logs = f"{base}/runs/{run.id}/tasks/{task.id}/logs"
    doc: dict[str, Any] = {
        "id": task.id,
        "name": task.spec.tags.get("wes_step") or task.spec.name or task.id,
        "cmd": list(executors[-1].command) if executors else [],
        "stdout": f"{logs}/stdout",
        "stderr": f"{logs}/stderr",
        "system_logs": list(task.system_logs) + [f"state: {task.state.value}"],
        "tes_uri": f"{base.removesuffix(WES_BASE)}/ga4gh/tes/v1/tasks/{task.id}",
    }
    if task.start_time:
        doc["start_time"] = rfc3339(task.start_time)
    if task.end_time:
        doc["end_time"] = rfc3339(task.end_time)
    if last_log is not None:
        doc["exit_code"] = last_log.exit_code
    return doc


def service_info(c: Components) -> dict[str, Any]:
    runs = c.runs
    return {
        "id": "org.tre-gateway.wes",
        "name": "TRE Gateway WES",
        "type": {"group": "org.ga4gh", "artifact": "wes", "version": "1.1.0"},
        "description": "GA4GH WES inside a Trusted Research Environment: every workflow step is a sandboxed TES "
                       "task; final outputs are released only after review.",
        "organization": {"name": "TRE Gateway", "url": c.settings.base_url + "/"},
        "documentationUrl": c.settings.base_url + WES_BASE + "/ui/",
        "environment": "dev" if c.settings.auth != "oidc" else "prod",
        "version": VERSION,
        "workflow_type_versions": {CWL: {"workflow_type_version": list(CWL_VERSIONS)}},
        "supported_wes_versions": ["1.1.0"],
        "supported_filesystem_protocols": ["file"],
        "workflow_engine_versions": {"cwltool": {"workflow_engine_version": list(runs.engine_versions)}},
        "default_workflow_engine_parameters": [
            {"name": name, "type": "string" if name == "--on-error" else "boolean",
             "default_value": {"--parallel": "true", "--strict": "true", "--on-error": "stop"}.get(name, "false")}
            for name in sorted(ENGINE_FLAGS)
        ],
        "system_state_counts": runs.state_counts(),
        "auth_instructions_url": c.settings.base_url + "/gateway/v1/ui/",
        "tags": {
            "workflow_url_prefixes": ",".join(runs.workflow_url_prefixes),
            "runs_available": "false" if runs.unavailable_reason else "true",
        },
    }


def _text(body: bytes | str) -> Response:
    # Logs may hold any bytes; responses are validated as text, so undecodable bytes become U+FFFD.
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return Response(text, 200, mimetype="text/plain; charset=utf-8")


def handlers(c: Components) -> dict[str, Callable[..., Any]]:
    def GetServiceInfo() -> dict[str, Any]:
        return service_info(c)

    def ListRuns(token_info: dict[str, Any], page_size: int | None = None,
                 page_token: str | None = None) -> dict[str, Any]:
        runs, token = c.runs.list(token_info["principal"], page_size, page_token)
        body: dict[str, Any] = {"runs": [run_summary(r) for r in runs], "next_page_token": token or ""}
        return body

    def RunWorkflow(token_info: dict[str, Any], **_form: Any) -> dict[str, Any]:
        # Read the parts from the request itself: connexion's own decoding of multipart fields
        # varies with the client's encoding, and the file names must be judged exactly as sent.
        form = {key: request.form.get(key) for key in request.form}
        uploads = [Upload(f.filename, f.stream) for f in request.files.getlist("workflow_attachment")]
        run = c.runs.submit(token_info["principal"], form, uploads)
        return {"run_id": run.id}

    def GetRunLog(run_id: str, token_info: dict[str, Any]) -> dict[str, Any]:
        return run_log_document(c.runs.get(token_info["principal"], run_id), _base_url(c))

    def GetRunStatus(run_id: str, token_info: dict[str, Any]) -> dict[str, Any]:
        run = c.runs.get(token_info["principal"], run_id)
        return {"run_id": run.id, "state": run.state.value}

    def CancelRun(run_id: str, token_info: dict[str, Any]) -> dict[str, Any]:
        run = c.runs.cancel(token_info["principal"], run_id)
        return {"run_id": run.id}

    def ListTasks(run_id: str, token_info: dict[str, Any], page_size: int | None = None,
                  page_token: str | None = None) -> dict[str, Any]:
        principal = token_info["principal"]
        run = c.runs.get(principal, run_id)
        page = c.runs.step_tasks(principal, run_id, page_size, page_token)
        base = _base_url(c)
        return {
            "task_logs": [task_log_document(t, run, base) for t in page.tasks],
            "next_page_token": page.next_page_token or "",
        }

    def GetTask(run_id: str, task_id: str, token_info: dict[str, Any]) -> dict[str, Any]:
        principal = token_info["principal"]
        run = c.runs.get(principal, run_id)
        return task_log_document(c.runs.step_task(principal, run_id, task_id), run, _base_url(c))

    def GetRunLogStream(run_id: str, stream: str, token_info: dict[str, Any]) -> Response:
        return _text(c.runs.engine_log(token_info["principal"], run_id, stream))

    def GetTaskLogStream(run_id: str, task_id: str, stream: str, token_info: dict[str, Any]) -> Response:
        task = c.runs.step_task(token_info["principal"], run_id, task_id)
        parts = [getattr(log, stream) or "" for log in task.executor_logs]
        return _text("".join(parts))

    def GetRunCrate(run_id: str, token_info: dict[str, Any]) -> Response:
        data = c.run_crates.crate_zip(token_info["principal"], run_id, site_url(c))
        return Response(data, 200, mimetype="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="run-{run_id}-ro-crate.zip"'})

    return {
        "GetServiceInfo": GetServiceInfo,
        "ListRuns": ListRuns,
        "RunWorkflow": RunWorkflow,
        "GetRunLog": GetRunLog,
        "GetRunStatus": GetRunStatus,
        "CancelRun": CancelRun,
        "ListTasks": ListTasks,
        "GetTask": GetTask,
        "GetRunLogStream": GetRunLogStream,
        "GetTaskLogStream": GetTaskLogStream,
        "GetRunCrate": GetRunCrate,
    }
