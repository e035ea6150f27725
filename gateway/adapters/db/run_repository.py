"""SQL implementation of the RunRepository port."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from gateway.adapters.db.airlock_repository import append_audit
from gateway.adapters.db.paging import claim_leases, newest_first
from gateway.adapters.db.serialize import as_utc, parse_time
from gateway.adapters.db.tables import runs
from gateway.domain.audit import AuditEvent
from gateway.domain.runs import Run, RunRequest, RunState
from gateway.services.ports import RunPage, RunQuery, StaleRun

# Runs a worker keeps driving: PAUSED too, because the run follows its release task's review.
_ACTIVE = [s.value for s in (RunState.QUEUED, RunState.INITIALIZING, RunState.RUNNING, RunState.PAUSED,
                             RunState.CANCELING)]


def _record(run: Run) -> dict[str, Any]:
    return {
        "start_time": run.start_time.isoformat() if run.start_time else None,
        "end_time": run.end_time.isoformat() if run.end_time else None,
        "exit_code": run.exit_code,
        "outputs": run.outputs,
        "system_logs": list(run.system_logs),
        "engine": run.engine,
        "release_task_id": run.release_task_id,
        "attachments": list(run.attachments),
    }


def _from_row(row: Any) -> Run:
    record = row.record
    created = as_utc(row.created_at)
    return Run(
        id=row.id,
        owner=row.owner,
        project=row.project,
        request=RunRequest.from_dict(row.request),
        state=RunState(row.state),
        created_at=created,
        version=row.version,
        start_time=parse_time(record.get("start_time")),
        end_time=parse_time(record.get("end_time")),
        exit_code=record.get("exit_code"),
        outputs=dict(record.get("outputs") or {}),
        system_logs=tuple(record.get("system_logs") or ()),
        engine=dict(record.get("engine") or {}),
        release_task_id=record.get("release_task_id"),
        attachments=tuple(record.get("attachments") or ()),
        seq=row.seq,
    )


class SqlRunRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, run: Run) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(runs).values(
                    id=run.id,
                    owner=run.owner,
                    project=run.project,
                    state=run.state.value,
                    version=run.version,
                    created_at=run.created_at.astimezone(UTC),
                    request=run.request.to_dict(),
                    record=_record(run),
                )
            )

    def get(self, run_id: str) -> Run | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
        return _from_row(row) if row else None

    def save(self, run: Run, events: Sequence[AuditEvent] = ()) -> Run:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(runs)
                .where(runs.c.id == run.id, runs.c.version == run.version)
                .values(state=run.state.value, version=run.version + 1, record=_record(run))
            )
            if result.rowcount != 1:
                raise StaleRun(run.id)
            for event in events:
                append_audit(conn, event)
        return run.updated(version=run.version + 1)

    def query(self, query: RunQuery) -> RunPage:
        stmt = select(runs)
        if query.projects is not None:
            if not query.projects:
                return RunPage()
            stmt = stmt.where(runs.c.project.in_(sorted(query.projects)))
        rows, last_seq, has_more = newest_first(self.engine, stmt, runs, query.before_seq, query.limit)
        return RunPage([_from_row(r) for r in rows], last_seq, has_more)

    def claim_active(self, worker: str, lease_seconds: float, limit: int) -> list[Run]:
        return [_from_row(r) for r in claim_leases(self.engine, runs, _ACTIVE, worker, lease_seconds, limit)]

    def count_by_state(self) -> dict[RunState, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs.c.state, func.count()).group_by(runs.c.state)).all()
        return {RunState(state): n for state, n in rows}
