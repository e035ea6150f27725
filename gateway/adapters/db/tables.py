"""The relational schema (SQLAlchemy Core). Alembic migrations create exactly these tables."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
SeqType = BigInteger().with_variant(Integer(), "sqlite")

tasks = Table(
    "tasks",
    metadata,
    # Internal, monotonically increasing: the stable newest-first order and the keyset cursor.
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("owner", String(255), nullable=False),
    Column("project", String(255), nullable=False),
    Column("name", Text, nullable=True),
    Column("state", String(32), nullable=False),
    Column("version", Integer, nullable=False, default=0),
    Column("creation_time", DateTime(timezone=True), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("logs", JSON, nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires", Float, nullable=True),
    Index("ix_tasks_project_seq", "project", "seq"),
    Index("ix_tasks_state_seq", "state", "seq"),
    Index("ix_tasks_name", "name"),
)

task_tags = Table(
    "task_tags",
    metadata,
    Column("task_seq", SeqType, ForeignKey("tasks.seq", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_task_tags_key_value", "key", "value"),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("token_id", String(64), primary_key=True),
    Column("user", String(255), nullable=False, index=True),
    Column("secret_hash", String(128), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("projects", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("description", Text, nullable=False, default=""),
)

project_members = Table(
    "project_members",
    metadata,
    Column("project", String(255), primary_key=True),
    Column("user", String(255), primary_key=True),
    Index("ix_project_members_user", "user"),
)

egress_requests = Table(
    "egress_requests",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("task_id", String(64), nullable=False, unique=True),
    Column("project", String(255), nullable=False),
    Column("requester", String(255), nullable=False),
    Column("state", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("required_approvals", Integer, nullable=False),
    Column("files", JSON, nullable=False),
    Index("ix_egress_requests_state_seq", "state", "seq"),
    Index("ix_egress_requests_project_seq", "project", "seq"),
)

project_policies = Table(
    "project_policies",
    metadata,
    Column("project", String(255), primary_key=True),
    Column("policy", JSON, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(255), nullable=False),
    Column("project", String(255), nullable=True),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_object", "object_type", "object_id"),
)

# One row: the sequence and hash of the newest audit entry. Updating it first in every append
# serialises writers (a row lock on PostgreSQL, the write lock on SQLite).
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("owner", String(255), nullable=False),
    Column("project", String(255), nullable=False),
    Column("state", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("request", JSON, nullable=False),
    # Times, exit code, outputs, system logs, engine handle, release task, attachment names.
    Column("record", JSON, nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires", Float, nullable=True),
    Index("ix_runs_project_seq", "project", "seq"),
    Index("ix_runs_state_seq", "state", "seq"),
)

submissions = Table(
    "submissions",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("owner", String(255), nullable=False),
    Column("project", String(255), nullable=False),
    Column("state", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Profile, workflow, run, repairs and reason.
    Column("record", JSON, nullable=False),
    Index("ix_submissions_project_seq", "project", "seq"),
    Index("ix_submissions_state_seq", "state", "seq"),
)

crate_policies = Table(
    "crate_policies",
    metadata,
    Column("project", String(255), primary_key=True),
    Column("policy", JSON, nullable=False),
)
