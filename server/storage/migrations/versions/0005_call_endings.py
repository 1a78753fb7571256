"""Call endings: calls that ended and participants who left one, kept until no resume token
can name them any more (12 hours), so that an old token never brings either back, also after a
restart of the server.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

Written by hand, names as in ``0001`` (see there for ``op.f``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The call_endings table: one row per ended call (participant_id empty) and per
    participant finished in a call that goes on."""
    op.create_table(
        "call_endings",
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("participant_id", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "participant_id", name=op.f("pk_call_endings")),
    )
    op.create_index(op.f("ix_call_endings_at"), "call_endings", ["at"], unique=False)


def downgrade() -> None:
    """Undo :func:`upgrade`."""
    op.drop_index(op.f("ix_call_endings_at"), table_name="call_endings")
    op.drop_table("call_endings")
