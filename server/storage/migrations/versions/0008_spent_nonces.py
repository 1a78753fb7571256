"""Spent nonces: the booth login challenges used already, for the nodes of a cluster (a booth's
challenge and its login may reach different nodes, so a nonce must be spent for all of them).
Kept until the nonce expires (a minute).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

Written by hand, names as in ``0001`` (see there for ``op.f``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The spent_nonces table: one row per nonce used, by its SHA-256."""
    op.create_table(
        "spent_nonces",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_spent_nonces")),
    )
    op.create_index(
        op.f("ix_spent_nonces_expires_at"), "spent_nonces", ["expires_at"], unique=False
    )


def downgrade() -> None:
    """Undo :func:`upgrade`."""
    op.drop_index(op.f("ix_spent_nonces_expires_at"), table_name="spent_nonces")
    op.drop_table("spent_nonces")
