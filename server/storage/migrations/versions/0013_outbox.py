"""The outbox (mails and webhooks sent from the database, tried again while they cannot be)
and the sealed contacts of appointments invited by e-mail.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

Written by hand, names as in ``0001``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The two tables."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("ordering_key", sa.String(length=80), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.CheckConstraint("kind IN ('mail', 'webhook')", name=op.f("ck_outbox_kind")),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'failed', 'superseded')", name=op.f("ck_outbox_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    for column in ("ordering_key", "state", "created_at", "next_attempt_at"):
        op.create_index(op.f(f"ix_outbox_{column}"), "outbox", [column])
    op.create_table(
        "appointment_contacts",
        sa.Column("appointment_id", sa.String(length=32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_appointment_contacts_appointment_id_appointments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("appointment_id", name=op.f("pk_appointment_contacts")),
    )


def downgrade() -> None:
    """Undo :func:`upgrade`."""
    op.drop_table("appointment_contacts")
    for column in ("ordering_key", "state", "created_at", "next_attempt_at"):
        op.drop_index(op.f(f"ix_outbox_{column}"), table_name="outbox")
    op.drop_table("outbox")
