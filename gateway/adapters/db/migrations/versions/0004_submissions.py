"""Five Safes RO-Crate submissions and per-project crate policies.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

seq_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("seq", seq_type, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("project", sa.String(255), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
    )
    op.create_index("ix_submissions_project_seq", "submissions", ["project", "seq"])
    op.create_index("ix_submissions_state_seq", "submissions", ["state", "seq"])
    op.create_table(
        "crate_policies",
        sa.Column("project", sa.String(255), primary_key=True),
        sa.Column("policy", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("crate_policies")
    op.drop_table("submissions")
