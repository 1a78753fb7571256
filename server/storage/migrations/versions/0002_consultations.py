"""The consultation domain: branches, topics, appointments and the audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05

Written by hand, names as in ``0001`` (see there for ``op.f``). Booths get a branch: on SQLite
``batch_alter_table`` copies the table to add the foreign key, elsewhere it is an ALTER.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create branches, topics, user_topics, appointments and audit_events; link booths."""
    op.create_table(
        "branches",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("region", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_branches")),
        sa.UniqueConstraint("name", name=op.f("uq_branches_name")),
    )
    op.create_index(op.f("ix_branches_region"), "branches", ["region"])
    with op.batch_alter_table("booths") as batch:
        batch.add_column(sa.Column("branch_id", sa.String(32), nullable=True))
        batch.create_foreign_key(
            op.f("fk_booths_branch_id_branches"),
            "branches",
            ["branch_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(op.f("ix_booths_branch_id"), ["branch_id"])
    op.create_table(
        "topics",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topics")),
        sa.UniqueConstraint("name", name=op.f("uq_topics_name")),
    )
    op.create_table(
        "user_topics",
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("topic_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "topic_id", name=op.f("pk_user_topics")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_topics_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_user_topics_topic_id_topics"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_user_topics_topic_id"), "user_topics", ["topic_id"])
    op.create_table(
        "appointments",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("advisor_id", sa.String(32), nullable=False),
        sa.Column("topic_id", sa.String(32), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("branch_id", sa.String(32), nullable=True),
        sa.Column("citizen_label", sa.String(80), nullable=True),
        sa.Column("join_token_hash", sa.String(64), nullable=False),
        sa.Column("join_code_salt", sa.String(32), nullable=False),
        sa.Column("join_code_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
        sa.UniqueConstraint("join_token_hash", name=op.f("uq_appointments_join_token_hash")),
        sa.ForeignKeyConstraint(
            ["advisor_id"],
            ["users.id"],
            name=op.f("fk_appointments_advisor_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_appointments_topic_id_topics"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["branch_id"], ["branches.id"], name=op.f("fk_appointments_branch_id_branches")
        ),
        sa.CheckConstraint(
            "duration_minutes BETWEEN 5 AND 240", name=op.f("ck_appointments_duration")
        ),
        sa.CheckConstraint(
            "channel IN ('own_device', 'booth', 'either')", name=op.f("ck_appointments_channel")
        ),
        sa.CheckConstraint(
            "status IN ('scheduled', 'cancelled', 'done')", name=op.f("ck_appointments_status")
        ),
        sa.CheckConstraint(
            "channel <> 'booth' OR branch_id IS NOT NULL",
            name=op.f("ck_appointments_booth_branch"),
        ),
    )
    op.create_index(op.f("ix_appointments_advisor_id"), "appointments", ["advisor_id"])
    op.create_index(op.f("ix_appointments_starts_at"), "appointments", ["starts_at"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.CheckConstraint(
            "actor_kind IN ('user', 'booth', 'citizen', 'system')",
            name=op.f("ck_audit_events_actor_kind"),
        ),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"])


def downgrade() -> None:
    """Drop everything :func:`upgrade` created; booths lose their branch."""
    op.drop_index(op.f("ix_audit_events_at"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index(op.f("ix_appointments_starts_at"), table_name="appointments")
    op.drop_index(op.f("ix_appointments_advisor_id"), table_name="appointments")
    op.drop_table("appointments")
    op.drop_index(op.f("ix_user_topics_topic_id"), table_name="user_topics")
    op.drop_table("user_topics")
    op.drop_table("topics")
    with op.batch_alter_table("booths") as batch:
        batch.drop_index(op.f("ix_booths_branch_id"))
        batch.drop_constraint(op.f("fk_booths_branch_id_branches"), type_="foreignkey")
        batch.drop_column("branch_id")
    op.drop_index(op.f("ix_branches_region"), table_name="branches")
    op.drop_table("branches")
