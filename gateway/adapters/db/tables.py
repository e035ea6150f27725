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
