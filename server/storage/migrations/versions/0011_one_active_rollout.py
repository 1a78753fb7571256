"""At most one rollout running or paused, kept by the database: two administrators (or two
nodes) starting rollouts at the same moment both saw none active and both started one.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

Written by hand, names as in ``0001``: ``rollouts.active`` is true while the rollout is
running or paused and NULL once it is over, under a unique constraint (which any number of
NULLs pass, in PostgreSQL and SQLite alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """``rollouts.active``, set for the newest rollout still running or paused."""
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("active", sa.Boolean(), nullable=True))
    op.execute(
        "UPDATE rollouts SET active = true WHERE id = (SELECT id FROM rollouts "
        "WHERE state IN ('running', 'paused') ORDER BY created_at DESC LIMIT 1)"
    )
    with op.batch_alter_table("rollouts") as batch:
        batch.create_unique_constraint(op.f("uq_rollouts_active"), ["active"])


def downgrade() -> None:
    """Undo :func:`upgrade`."""
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_constraint(op.f("uq_rollouts_active"), type_="unique")
        batch.drop_column("active")
