"""SQL implementations of the persistence ports (SQLite and PostgreSQL through SQLAlchemy Core)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, and_, bindparam, delete, exists, func, insert, select, update

from gateway.adapters.db.airlock_repository import append_audit
from gateway.adapters.db.paging import claim_leases, newest_first
from gateway.adapters.db.serialize import logs_to_json, task_from_row
from gateway.adapters.db.tables import access_tokens, project_members, task_tags, tasks
from gateway.domain.audit import AuditEvent
from gateway.domain.states import ACTIVE_STATES, TaskState
from gateway.domain.task import Task
from gateway.services.ports import AccessToken, StaleTask, TaskPage, TaskQuery

_ACTIVE = [s.value for s in ACTIVE_STATES]

# Hot statements built once: constructing a select costs more than SQLite takes to run it.
_GET_TASK = select(tasks).where(tasks.c.id == bindparam("task_id"))
_PROJECTS_OF = select(project_members.c.project).where(project_members.c.user == bindparam("user"))


class SqlTaskRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, task: Task) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(tasks).values(
                    id=task.id,
                    owner=task.owner,
                    project=task.project,
                    name=task.spec.name,
                    state=task.state.value,
                    version=task.version,
                    creation_time=task.creation_time,
                    spec=task.spec.to_dict(),
                    logs=logs_to_json(task),
                )
            )
            seq = result.inserted_primary_key[0]
            if task.spec.tags:
                conn.execute(
                    insert(task_tags),
                    [{"task_seq": seq, "key": k, "value": v} for k, v in task.spec.tags.items()],
                )

    def get(self, task_id: str) -> Task | None:
        with self.engine.connect() as conn:
            row = conn.execute(_GET_TASK, {"task_id": task_id}).first()
        return task_from_row(row) if row else None

    def save(self, task: Task, events: Sequence[AuditEvent] = ()) -> Task:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(tasks)
                .where(tasks.c.id == task.id, tasks.c.version == task.version)
                .values(state=task.state.value, version=task.version + 1, logs=logs_to_json(task))
            )
            if result.rowcount != 1:
                raise StaleTask(task.id)
            for event in events:
                append_audit(conn, event)
        return task.with_logs(version=task.version + 1)

    def query(self, query: TaskQuery) -> TaskPage:
        stmt = select(tasks)
        if query.projects is not None:
            if not query.projects:
                return TaskPage()
            stmt = stmt.where(tasks.c.project.in_(sorted(query.projects)))
        if query.name_prefix:
            escaped = query.name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(tasks.c.name.like(escaped + "%", escape="\\"))
        if query.state is not None:
            stmt = stmt.where(tasks.c.state == query.state.value)
        for key, value in query.tags:
            cond = and_(task_tags.c.task_seq == tasks.c.seq, task_tags.c.key == key)
            if value:
                cond = and_(cond, task_tags.c.value == value)
            stmt = stmt.where(exists().where(cond))
        rows, last_seq, has_more = newest_first(self.engine, stmt, tasks, query.before_seq, query.limit)
        return TaskPage(tasks=[task_from_row(r) for r in rows], last_seq=last_seq, has_more=has_more)

    def claim_active(self, worker: str, lease_seconds: float, limit: int) -> list[Task]:
        rows = claim_leases(self.engine, tasks, _ACTIVE, worker, lease_seconds, limit)
        return [task_from_row(r) for r in rows]

    def release_lease(self, task_id: str, worker: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.lease_owner == worker)
                .values(lease_owner=None, lease_expires=None)
            )

    def count_by_state(self) -> dict[TaskState, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tasks.c.state, func.count()).group_by(tasks.c.state)).all()
        return {TaskState(state): n for state, n in rows}


class SqlAccessTokenRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, token: AccessToken) -> None:
        values = dict(token.__dict__)
        values["roles"] = list(token.roles)
        values["projects"] = list(token.projects)
        with self.engine.begin() as conn:
            conn.execute(insert(access_tokens).values(**values))

    @staticmethod
    def _from_row(row) -> AccessToken:  # type: ignore[no-untyped-def]
        data = dict(row._mapping)
        data["roles"] = tuple(data["roles"])
        data["projects"] = tuple(data["projects"])
        return AccessToken(**data)

    def find(self, token_id: str) -> AccessToken | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(access_tokens).where(access_tokens.c.token_id == token_id)).first()
        return self._from_row(row) if row else None

    def for_user(self, user: str) -> list[AccessToken]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(access_tokens).where(access_tokens.c.user == user).order_by(access_tokens.c.created_at)
            ).all()
        return [self._from_row(r) for r in rows]

    def revoke(self, token_id: str, at: float) -> bool:
        with self.engine.begin() as conn:
            n = conn.execute(
                update(access_tokens)
                .where(access_tokens.c.token_id == token_id, access_tokens.c.revoked_at.is_(None))
                .values(revoked_at=at)
            ).rowcount
        return n == 1


class SqlMembershipRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def projects_of(self, user: str) -> frozenset[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(_PROJECTS_OF, {"user": user}).scalars().all()
        return frozenset(rows)

    def add_member(self, project: str, user: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(project_members).where(
                    project_members.c.project == project, project_members.c.user == user
                )
            )
            conn.execute(insert(project_members).values(project=project, user=user))
