"""SQL implementations of the airlock ports: egress requests, project policies, the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from gateway.adapters.db.paging import newest_first
from gateway.adapters.db.tables import audit_events, audit_head, egress_requests, project_policies
from gateway.domain.airlock import (
    CellFlag,
    Decision,
    EgressFile,
    EgressRequest,
    ProjectPolicy,
    RequestState,
    Verdict,
)
from gateway.domain.audit import AuditEntry, AuditEvent, entry_hash
from gateway.domain.egress import CheckResult, QuarantinedFile
from gateway.services.ports import RequestPage, StaleRequest


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def files_to_json(files: tuple[EgressFile, ...]) -> list[dict[str, Any]]:
    return [
        {
            "file_id": f.file_id,
            "file": asdict(f.file),
            "checks": [asdict(c) for c in f.checks],
            "flagged_cells": [asdict(c) for c in f.flagged_cells],
            "decisions": [
                {**asdict(d), "verdict": d.verdict.value, "at": d.at.isoformat()} for d in f.decisions
            ],
        }
        for f in files
    ]


def files_from_json(data: list[dict[str, Any]]) -> tuple[EgressFile, ...]:
    return tuple(
        EgressFile(
            file_id=f["file_id"],
            file=QuarantinedFile(**f["file"]),
            checks=tuple(CheckResult(**c) for c in f["checks"]),
            flagged_cells=tuple(CellFlag(**c) for c in f.get("flagged_cells", [])),
            decisions=tuple(
                Decision(
                    reviewer=d["reviewer"],
                    verdict=Verdict(d["verdict"]),
                    reason=d["reason"],
                    at=_utc(datetime.fromisoformat(d["at"])),  # type: ignore[arg-type]
                    override=d.get("override", False),
                )
                for d in f["decisions"]
            ),
        )
        for f in data
    )


def _request_from_row(row: Any) -> EgressRequest:
    return EgressRequest(
        id=row.id,
        task_id=row.task_id,
        project=row.project,
        requester=row.requester,
        created_at=_utc(row.created_at),  # type: ignore[arg-type]
        files=files_from_json(row.files),
        required_approvals=row.required_approvals,
        state=RequestState(row.state),
        decided_at=_utc(row.decided_at),
        version=row.version,
    )


class SqlEgressRequestRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, request: EgressRequest) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(egress_requests).values(
                    id=request.id,
                    task_id=request.task_id,
                    project=request.project,
                    requester=request.requester,
                    state=request.state.value,
                    version=request.version,
                    created_at=request.created_at,
                    decided_at=request.decided_at,
                    required_approvals=request.required_approvals,
                    files=files_to_json(request.files),
                )
            )

    def _one(self, where: Any) -> EgressRequest | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(egress_requests).where(where)).first()
        return _request_from_row(row) if row else None

    def get(self, request_id: str) -> EgressRequest | None:
        return self._one(egress_requests.c.id == request_id)

    def for_task(self, task_id: str) -> EgressRequest | None:
        return self._one(egress_requests.c.task_id == task_id)

    def save(self, request: EgressRequest) -> EgressRequest:
        with self.engine.begin() as conn:
            n = conn.execute(
                update(egress_requests)
                .where(egress_requests.c.id == request.id, egress_requests.c.version == request.version)
                .values(
                    state=request.state.value,
                    version=request.version + 1,
                    decided_at=request.decided_at,
                    files=files_to_json(request.files),
                )
            ).rowcount
        if n != 1:
            raise StaleRequest(request.id)
        return replace(request, version=request.version + 1)

    def query(
        self,
        *,
        states: frozenset[RequestState] | None,
        projects: frozenset[str] | None,
        limit: int,
        before_seq: int | None = None,
    ) -> RequestPage:
        stmt = select(egress_requests)
        if states is not None:
            stmt = stmt.where(egress_requests.c.state.in_(sorted(s.value for s in states)))
        if projects is not None:
            if not projects:
                return RequestPage()
            stmt = stmt.where(egress_requests.c.project.in_(sorted(projects)))
        rows, last_seq, has_more = newest_first(self.engine, stmt, egress_requests, before_seq, limit)
        return RequestPage([_request_from_row(r) for r in rows], last_seq, has_more)


class SqlProjectPolicyRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, project: str) -> ProjectPolicy | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(project_policies).where(project_policies.c.project == project)).first()
        return ProjectPolicy(**row.policy) if row else None

    def put(self, project: str, policy: ProjectPolicy) -> None:
        with self.engine.begin() as conn:
            n = conn.execute(
                update(project_policies).where(project_policies.c.project == project).values(policy=asdict(policy))
            ).rowcount
            if n == 0:
                conn.execute(insert(project_policies).values(project=project, policy=asdict(policy)))


def append_audit(conn: Connection, event: AuditEvent) -> AuditEntry:
    """Chain `event` onto the log inside the caller's transaction (it commits or rolls back with it)."""
    at = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    # Taking the head row first serialises concurrent writers across processes.
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=audit_head.c.seq + 1))
    # The head still holds the previous entry's hash: that is the link.
    seq, prev_hash = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    digest = entry_hash(seq, at, event, prev_hash)
    conn.execute(
        insert(audit_events).values(
            seq=seq,
            at=at,
            actor=event.actor,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            project=event.project,
            details=event.details,
            prev_hash=prev_hash,
            hash=digest,
        )
    )
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(hash=digest))
    return AuditEntry(seq, at, event, prev_hash, digest)


class SqlAuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, event: AuditEvent) -> AuditEntry:
        with self.engine.begin() as conn:
            return append_audit(conn, event)

    def entries(self) -> Iterator[AuditEntry]:
        with self.engine.connect() as conn:
            for row in conn.execute(select(audit_events).order_by(audit_events.c.seq)):
                event = AuditEvent(row.actor, row.action, row.object_type, row.object_id, row.project, row.details)
                yield AuditEntry(row.seq, row.at, event, row.prev_hash, row.hash)

    def head(self) -> tuple[int, str]:
        with self.engine.connect() as conn:
            seq, digest = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
        return int(seq), str(digest)
