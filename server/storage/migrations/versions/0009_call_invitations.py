"""Call invitations: the links into a running call an advisor made (an interpreter, say), by
the hash of each link's token, so that a link made on one node of a cluster opens on any.
Gone when the call ends or the link expires.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

Written by hand, names as in ``0001`` (see there for ``op.f``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The call_invitations table: one row per open invitation link."""
    op.create_table(
        "call_invitations",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_call_invitations")),
    )
    op.create_index(
        op.f("ix_call_invitations_session_id"), "call_invitations", ["session_id"], unique=False
    )


def downgrade() -> None:
    """Undo :func:`upgrade`."""
    op.drop_index(op.f("ix_call_invitations_session_id"), table_name="call_invitations")
    op.drop_table("call_invitations")
