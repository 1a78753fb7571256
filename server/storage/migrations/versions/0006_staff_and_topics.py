"""Staff and topics: a user given a generated password must change it at the next login, and
a topic has a name per language besides its own (the booth and the citizens' page show the
one in the visitor's language).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Written by hand, names as in ``0001`` (see there for ``op.f``). SQLite cannot add a NOT NULL
column without a default, so ``must_change_password`` gets a server default of false: users
that exist keep the passwords they chose.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """users.must_change_password and topics.names (JSON: language -> name)."""
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column(
                "must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    with op.batch_alter_table("topics") as batch:
        batch.add_column(sa.Column("names", sa.Text(), nullable=True))


def downgrade() -> None:
    """Undo :func:`upgrade`; the names per language are lost, the topics' own names stay."""
    with op.batch_alter_table("topics") as batch:
        batch.drop_column("names")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("must_change_password")
