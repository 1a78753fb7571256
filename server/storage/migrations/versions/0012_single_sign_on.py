"""Single sign-on for staff: a user made at an OpenID Connect login is known by its provider's
issuer and subject, and a login session remembers the provider's session id (for the
provider's back-channel logout) and its ID token (the hint for a logout at the provider).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

Written by hand, names as in ``0001``. Local accounts keep NULL in both new user columns (the
unique constraint lets any number of NULL pairs pass, in PostgreSQL and SQLite alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The provider's names of a user and of a login."""
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("external_issuer", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("external_subject", sa.String(length=255), nullable=True))
        batch.create_unique_constraint(
            op.f("uq_users_external_issuer"), ["external_issuer", "external_subject"]
        )
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(sa.Column("external_sid", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("id_token", sa.Text(), nullable=True))
        batch.create_index(op.f("ix_auth_sessions_external_sid"), ["external_sid"])


def downgrade() -> None:
    """Undo :func:`upgrade`."""
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_index(op.f("ix_auth_sessions_external_sid"))
        batch.drop_column("id_token")
        batch.drop_column("external_sid")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("uq_users_external_issuer"), type_="unique")
        batch.drop_column("external_subject")
        batch.drop_column("external_issuer")
