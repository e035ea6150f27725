"""Thin handlers of the airlock API (openapi/airlock.yaml)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any, BinaryIO

from flask import Response

from gateway.bootstrap import Components
from gateway.domain.airlock import EgressRequest, ProjectPolicy
from gateway.domain.errors import Forbidden
from gateway.domain.views import rfc3339
from gateway.services.audit import verify

CHUNK = 1 << 16


def request_document(r: EgressRequest) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": r.id,
        "task_id": r.task_id,
        "project": r.project,
        "requester": r.requester,
        "state": r.state.value,
        "created_at": rfc3339(r.created_at),
        "required_approvals": r.required_approvals,
        "files": [
            {
                "file_id": f.file_id,
                "path": f.file.container_path,
                "destination": f.file.destination,
                "size_bytes": f.file.size_bytes,
                "sha256": f.file.sha256,
                "media_type": f.file.media_type,
                "checks": [asdict(c) for c in f.checks],
                "checks_passed": f.checks_passed,
                "flagged_cells": len(f.flagged_cells),
                "state": f.state(r.required_approvals).value,
                "decisions": [
                    {"reviewer": d.reviewer, "verdict": d.verdict.value, "reason": d.reason,
                     "at": rfc3339(d.at), "override": d.override}
                    for d in f.decisions
                ],
            }
            for f in r.files
        ],
    }
    if r.decided_at:
        doc["decided_at"] = rfc3339(r.decided_at)
    return doc


def stream_file(name: str, stream: BinaryIO) -> Response:
    def chunks() -> Iterator[bytes]:
        with stream:
            while chunk := stream.read(CHUNK):
                yield chunk

    safe = "".join(ch for ch in name if ch.isalnum() or ch in "._-") or "file"
    return Response(
        chunks(),
        mimetype="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{safe}"', "X-Content-Type-Options": "nosniff",
                 "Cache-Control": "no-store"},
    )


def handlers(c: Components) -> dict[str, Callable[..., Any]]:
    airlock = c.airlock

    def ListEgressRequests(token_info: dict[str, Any], state: str | None = None, project: str | None = None,
                           page_size: int | None = None, page_token: str | None = None) -> dict[str, Any]:
        requests, token = airlock.list_requests(token_info["principal"], state=state, project=project,
                                                size=page_size, token=page_token)
        body: dict[str, Any] = {"requests": [request_document(r) for r in requests]}
        if token:
            body["next_page_token"] = token
        return body

    def GetEgressRequest(request_id: str, token_info: dict[str, Any]) -> dict[str, Any]:
        return request_document(airlock.get(token_info["principal"], request_id))

    def PreviewEgressFile(request_id: str, file_id: str, token_info: dict[str, Any], rows: int = 50) -> dict[str, Any]:
        preview = airlock.preview(token_info["principal"], request_id, file_id, rows)
        return {
            "kind": preview.kind,
            "header": preview.header,
            "rows": preview.rows,
            "flagged": sorted([list(cell) for cell in preview.flagged]),
            "text": preview.text,
            "truncated": preview.truncated,
        }

    def GetQuarantinedFile(request_id: str, file_id: str, token_info: dict[str, Any]) -> Response:
        return stream_file(*airlock.open_quarantined(token_info["principal"], request_id, file_id))

    def DecideEgressFile(request_id: str, file_id: str, body: dict[str, Any],
                         token_info: dict[str, Any]) -> dict[str, Any]:
        decided = airlock.decide(token_info["principal"], request_id, file_id, body["verdict"],
                                 body.get("reason", ""), bool(body.get("override", False)))
        return request_document(decided)

    def DownloadReleasedFile(request_id: str, file_id: str, token_info: dict[str, Any]) -> Response:
        return stream_file(*airlock.open_released(token_info["principal"], request_id, file_id))

    def GetProjectPolicy(project: str, token_info: dict[str, Any]) -> dict[str, Any]:
        token_info["principal"].check_visible(project, f"project {project!r}")
        return asdict(airlock.policy_for(project))

    def PutProjectPolicy(project: str, body: dict[str, Any], token_info: dict[str, Any]) -> dict[str, Any]:
        current = asdict(airlock.policy_for(project))
        return asdict(airlock.set_policy(token_info["principal"], project, ProjectPolicy(**{**current, **body})))

    def VerifyAuditLog(token_info: dict[str, Any]) -> dict[str, Any]:
        if not token_info["principal"].is_admin:
            raise Forbidden("only admins verify the audit log")
        problems = verify(airlock.audit)
        return {"intact": not problems, "entries": airlock.audit.head()[0], "problems": problems}

    return {
        "ListEgressRequests": ListEgressRequests,
        "GetEgressRequest": GetEgressRequest,
        "PreviewEgressFile": PreviewEgressFile,
        "GetQuarantinedFile": GetQuarantinedFile,
        "DecideEgressFile": DecideEgressFile,
        "DownloadReleasedFile": DownloadReleasedFile,
        "GetProjectPolicy": GetProjectPolicy,
        "PutProjectPolicy": PutProjectPolicy,
        "VerifyAuditLog": VerifyAuditLog,
    }
