"""Live calls: the calls waiting or running now, shared by the nodes of a cluster (who is in
each, on which node, and which node carries it), so that any node can show a waiting call,
exactly one advisor wins it, and the survivors carry on the calls of a node that died.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Written by hand, names as in ``0001`` (see there for ``op.f``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The live_calls table: one row per call not ended."""
    op.create_table(
        "live_calls",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("caller", sa.Text(), nullable=False),
        sa.Column("advisor", sa.Text(), nullable=True),
        sa.Column("guests", sa.Text(), nullable=False),
        sa.Column("appointment_id", sa.String(32), nullable=True),
        sa.Column("advisor_id", sa.String(32), nullable=True),
        sa.Column("topic_id", sa.String(32), nullable=True),
        sa.Column("topic_name", sa.Text(), nullable=True),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('waiting', 'active')", name=op.f("ck_live_calls_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_calls")),
    )
    op.create_index(op.f("ix_live_calls_owner"), "live_calls", ["owner"], unique=False)
    op.create_index(op.f("ix_live_calls_state"), "live_calls", ["state"], unique=False)


def downgrade() -> None:
    """Undo :func:`upgrade`."""
    op.drop_index(op.f("ix_live_calls_state"), table_name="live_calls")
    op.drop_index(op.f("ix_live_calls_owner"), table_name="live_calls")
    op.drop_table("live_calls")
