"""Booth updates: the bundles administrators uploaded, the rollouts and each booth's progress
in them, and each branch's maintenance window and time zone.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Written by hand, names as in ``0001`` (see there for ``op.f``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The update_bundles, rollouts and rollout_booths tables; branches' windows."""
    op.create_table(
        "update_bundles",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("compatible", sa.String(64), nullable=False),
        sa.Column("signer", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_update_bundles")),
        sa.UniqueConstraint("sha256", name=op.f("uq_update_bundles_sha256")),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("bundle_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("max_failure_share", sa.Float(), nullable=False),
        sa.Column("health_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("max_parallel", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bundle_id"],
            ["update_bundles.id"],
            name=op.f("fk_rollouts_bundle_id_update_bundles"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )
    op.create_index(op.f("ix_rollouts_bundle_id"), "rollouts", ["bundle_id"], unique=False)
    op.create_table(
        "rollout_booths",
        sa.Column("rollout_id", sa.String(32), nullable=False),
        sa.Column("booth_id", sa.String(32), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("progress", sa.String(16), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_rollout_booths_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rollout_id", "booth_id", name=op.f("pk_rollout_booths")),
    )
    op.create_index(
        op.f("ix_rollout_booths_booth_id"), "rollout_booths", ["booth_id"], unique=False
    )
    with op.batch_alter_table("branches") as batch:
        batch.add_column(sa.Column("maintenance_window", sa.String(11), nullable=True))
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=True))


def downgrade() -> None:
    """Undo :func:`upgrade`."""
    with op.batch_alter_table("branches") as batch:
        batch.drop_column("timezone")
        batch.drop_column("maintenance_window")
    op.drop_index(op.f("ix_rollout_booths_booth_id"), table_name="rollout_booths")
    op.drop_table("rollout_booths")
    op.drop_index(op.f("ix_rollouts_bundle_id"), table_name="rollouts")
    op.drop_table("rollouts")
    op.drop_table("update_bundles")
