"""Initial schema: tasks, task tags, access tokens, project memberships.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

seq_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("seq", seq_type, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("project", sa.String(255), nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("creation_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("logs", sa.JSON, nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires", sa.Float, nullable=True),
    )
    op.create_index("ix_tasks_project_seq", "tasks", ["project", "seq"])
    op.create_index("ix_tasks_state_seq", "tasks", ["state", "seq"])
    op.create_index("ix_tasks_name", "tasks", ["name"])
    op.create_table(
        "task_tags",
        sa.Column("task_seq", seq_type, sa.ForeignKey("tasks.seq", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("ix_task_tags_key_value", "task_tags", ["key", "value"])
    op.create_table(
        "access_tokens",
        sa.Column("token_id", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("projects", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("description", sa.Text, nullable=False),
    )
    op.create_index("ix_access_tokens_user", "access_tokens", ["user"])
    op.create_table(
        "project_members",
        sa.Column("project", sa.String(255), primary_key=True),
        sa.Column("user", sa.String(255), primary_key=True),
    )
    op.create_index("ix_project_members_user", "project_members", ["user"])


def downgrade() -> None:
    op.drop_table("project_members")
    op.drop_table("access_tokens")
    op.drop_table("task_tags")
    op.drop_table("tasks")
