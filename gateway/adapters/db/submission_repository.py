"""SQL implementations of the submission and crate-policy repositories."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from gateway.adapters.db.airlock_repository import append_audit
from gateway.adapters.db.paging import newest_first
from gateway.adapters.db.serialize import as_utc
from gateway.adapters.db.tables import crate_policies, submissions
from gateway.domain.audit import AuditEvent
from gateway.domain.submissions import CratePolicy, Submission, SubmissionState
from gateway.services.ports import StaleSubmission, SubmissionPage

_ACTIVE = [SubmissionState.EXECUTING.value, SubmissionState.AWAITING_DISCLOSURE.value]


def _record(s: Submission) -> dict[str, Any]:
    return {"profile": s.profile, "workflow_id": s.workflow_id, "workflow_version": s.workflow_version,
            "run_id": s.run_id, "repairs": list(s.repairs), "reason": s.reason}


def _from_row(row: Any) -> Submission:
    r = row.record
    return Submission(
        id=row.id, owner=row.owner, project=row.project, state=SubmissionState(row.state),
        created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at), version=row.version,
        profile=r.get("profile") or "", workflow_id=r.get("workflow_id") or "",
        workflow_version=r.get("workflow_version") or "", run_id=r.get("run_id"),
        repairs=tuple(r.get("repairs") or ()), reason=r.get("reason"), seq=row.seq,
    )


class SqlSubmissionRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, submission: Submission, events: Sequence[AuditEvent] = ()) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(submissions).values(
                id=submission.id, owner=submission.owner, project=submission.project,
                state=submission.state.value, version=submission.version,
                created_at=submission.created_at.astimezone(UTC), updated_at=submission.updated_at.astimezone(UTC),
                record=_record(submission),
            ))
            for event in events:
                append_audit(conn, event)

    def get(self, submission_id: str) -> Submission | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(submissions).where(submissions.c.id == submission_id)).first()
        return _from_row(row) if row else None

    def save(self, submission: Submission, events: Sequence[AuditEvent] = ()) -> Submission:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(submissions)
                .where(submissions.c.id == submission.id, submissions.c.version == submission.version)
                .values(state=submission.state.value, version=submission.version + 1,
                        updated_at=submission.updated_at.astimezone(UTC), record=_record(submission))
            )
            if result.rowcount != 1:
                raise StaleSubmission(submission.id)
            for event in events:
                append_audit(conn, event)
        return submission.updated(version=submission.version + 1)

    def query(self, projects: frozenset[str] | None, owner: str | None, limit: int,
              before_seq: int | None = None) -> SubmissionPage:
        stmt = select(submissions)
        if projects is not None:
            visible = submissions.c.project.in_(sorted(projects))
            stmt = stmt.where(visible | (submissions.c.owner == owner) if owner else visible)
        rows, last_seq, has_more = newest_first(self.engine, stmt, submissions, before_seq, limit)
        return SubmissionPage([_from_row(r) for r in rows], last_seq, has_more)

    def active(self, limit: int = 64) -> list[Submission]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(submissions).where(submissions.c.state.in_(_ACTIVE)).order_by(submissions.c.seq).limit(limit)
            ).all()
        return [_from_row(r) for r in rows]


class SqlCratePolicyRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, project: str) -> CratePolicy | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(crate_policies.c.policy).where(crate_policies.c.project == project)).first()
        return CratePolicy.from_dict(row[0]) if row else None

    def put(self, project: str, policy: CratePolicy) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(crate_policies).where(crate_policies.c.project == project))
            conn.execute(insert(crate_policies).values(project=project, policy=policy.to_dict()))
