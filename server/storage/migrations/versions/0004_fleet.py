"""Fleet: booths enrolled with an Ed25519 key, one-time enrolment tokens, health reports.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

Written by hand, names as in ``0001`` (see there for ``op.f``). SQLite cannot alter a column in
place, so the booths table is changed in batch mode (copied, which keeps its rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Booths get a public key, enrolment time and hardware facts; the secret becomes
    optional; enrolment tokens and health reports get their tables."""
    with op.batch_alter_table("booths") as batch:
        batch.alter_column("secret_hash", existing_type=sa.String(64), nullable=True)
        batch.add_column(sa.Column("public_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("hardware", sa.Text(), nullable=True))
        batch.create_unique_constraint(op.f("uq_booths_public_key"), ["public_key"])
    op.create_table(
        "booth_enrolments",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("booth_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["booth_id"],
            ["booths.id"],
            name=op.f("fk_booth_enrolments_booth_id_booths"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_booth_enrolments")),
    )
    op.create_index(
        op.f("ix_booth_enrolments_booth_id"), "booth_enrolments", ["booth_id"], unique=False
    )
    op.create_table(
        "booth_health",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("booth_id", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booth_id"],
            ["booths.id"],
            name=op.f("fk_booth_health_booth_id_booths"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booth_health")),
    )
    op.create_index(op.f("ix_booth_health_booth_id"), "booth_health", ["booth_id"], unique=False)
    op.create_index(op.f("ix_booth_health_at"), "booth_health", ["at"], unique=False)


def downgrade() -> None:
    """Undo :func:`upgrade`. Booths enrolled with a key have no secret and are removed (they
    could not log in under the older schema); health reports and tokens are lost."""
    op.drop_index(op.f("ix_booth_health_at"), table_name="booth_health")
    op.drop_index(op.f("ix_booth_health_booth_id"), table_name="booth_health")
    op.drop_table("booth_health")
    op.drop_index(op.f("ix_booth_enrolments_booth_id"), table_name="booth_enrolments")
    op.drop_table("booth_enrolments")
    op.execute("DELETE FROM booths WHERE secret_hash IS NULL")
    with op.batch_alter_table("booths") as batch:
        batch.drop_constraint(op.f("uq_booths_public_key"), type_="unique")
        batch.drop_column("hardware")
        batch.drop_column("enrolled_at")
        batch.drop_column("public_key")
        batch.alter_column("secret_hash", existing_type=sa.String(64), nullable=False)
