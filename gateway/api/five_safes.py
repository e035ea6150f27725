"""Thin handlers for Five Safes RO-Crate submissions, named by operationId."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Response, request

from gateway.api.urls import site_url
from gateway.bootstrap import Components
from gateway.domain.submissions import Submission
from gateway.domain.views import rfc3339
from gateway.services.submissions import CrateRejected

BASE = "/five-safes/v1"
# The crate's phase names -> the API's.
PHASE_NAMES = {"check_value": "check", "validation_check": "validation", "disclosure_check": "disclosure"}


def summary(s: Submission) -> dict[str, Any]:
    return {"id": s.id, "state": s.state.value, "project": s.project, "owner": s.owner,
            "created_at": rfc3339(s.created_at), "updated_at": rfc3339(s.updated_at)}


def document(c: Components, s: Submission) -> dict[str, Any]:
    doc = summary(s)
    phases = []
    for phase in c.submissions.phases(s):
        phase["phase"] = PHASE_NAMES.get(phase["phase"], phase["phase"])
        phases.append(phase)
    doc.update({"phases": phases, "repairs": list(s.repairs)})
    if s.profile:
        doc["profile"] = s.profile
    if s.workflow_id:
        doc["workflow"] = {"id": s.workflow_id, **({"version": s.workflow_version} if s.workflow_version else {})}
    if s.run_id:
        doc["run_id"] = s.run_id
        doc["run_url"] = f"{site_url(c)}/ga4gh/wes/v1/runs/{s.run_id}"
    if s.reason:
        doc["reason"] = s.reason
    if s.state.is_final:
        doc["result_crate_url"] = f"{site_url(c)}{BASE}/submissions/{s.id}/crate"
    return doc


def handlers(c: Components) -> dict[str, Callable[..., Any]]:
    def SubmitCrate(token_info: dict[str, Any], **_form: Any) -> Any:
        upload = request.files.get("crate")
        if upload is None:
            return Response(json.dumps({"msg": "crate: attach the crate archive", "status_code": 400}), 400,
                            mimetype="application/json")
        try:
            s = c.submissions.submit(token_info["principal"], upload.stream, request.form.get("project"))
        except CrateRejected as exc:
            body = {"msg": exc.msg, "status_code": 422, "submission_id": exc.submission.id,
                    "result_crate_url": f"{site_url(c)}{BASE}/submissions/{exc.submission.id}/crate"}
            return Response(json.dumps(body), 422, mimetype="application/json")
        return document(c, s), 202

    def ListSubmissions(token_info: dict[str, Any], page_size: int | None = None,
                        page_token: str | None = None) -> dict[str, Any]:
        found, token = c.submissions.page(token_info["principal"], page_size, page_token)
        return {"submissions": [summary(s) for s in found], "next_page_token": token or ""}

    def GetSubmission(submission_id: str, token_info: dict[str, Any]) -> dict[str, Any]:
        return document(c, c.submissions.get(token_info["principal"], submission_id))

    def DecideSignOff(submission_id: str, body: dict[str, Any], token_info: dict[str, Any]) -> dict[str, Any]:
        s = c.submissions.decide_sign_off(token_info["principal"], submission_id, body["decision"] == "approve",
                                          body["reason"])
        return document(c, s)

    def GetResultCrate(submission_id: str, token_info: dict[str, Any]) -> Response:
        data = c.submissions.result_crate(token_info["principal"], submission_id)
        return Response(data, 200, mimetype="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="result-{submission_id}.zip"'})

    def GetCratePolicy(project: str, token_info: dict[str, Any]) -> dict[str, Any]:
        return c.submissions.get_policy(token_info["principal"], project).to_dict()

    def PutCratePolicy(project: str, body: dict[str, Any], token_info: dict[str, Any]) -> dict[str, Any]:
        return c.submissions.set_policy(token_info["principal"], project, body).to_dict()

    return {
        "SubmitCrate": SubmitCrate,
        "ListSubmissions": ListSubmissions,
        "GetSubmission": GetSubmission,
        "DecideSignOff": DecideSignOff,
        "GetResultCrate": GetResultCrate,
        "GetCratePolicy": GetCratePolicy,
        "PutCratePolicy": PutCratePolicy,
    }
