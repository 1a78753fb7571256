"""Booking systems: service accounts with API tokens (hashed, scoped, expiring, revocable),
idempotency keys of their writes, and their webhook endpoints.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

Written by hand, names as in ``0001``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def _account() -> sa.Column[str]:
    return sa.Column("account_id", sa.String(length=32), nullable=False)


def _belongs(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"],
        ["service_accounts.id"],
        name=op.f(f"fk_{table}_account_id_service_accounts"),
        ondelete="CASCADE",
    )


_KINDS = "actor_kind IN ('user', 'booth', 'citizen', 'system')"
_KINDS_0014 = "actor_kind IN ('user', 'booth', 'citizen', 'system', 'service')"


def _actor_kinds(rule: str) -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_constraint(op.f("ck_audit_events_actor_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_audit_events_actor_kind"), rule)


def upgrade() -> None:
    """The four tables; the audit log names service accounts as actors; appointments say
    when they were a no-show."""
    _actor_kinds(_KINDS_0014)
    with op.batch_alter_table("appointments") as batch:
        batch.add_column(sa.Column("no_show_at", _WHEN, nullable=True))
    op.create_table(
        "service_accounts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_service_accounts_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        _account(),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.String(length=200), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.Column("revoked_at", _WHEN, nullable=True),
        sa.Column("last_used_at", _WHEN, nullable=True),
        _belongs("api_tokens"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_account_id"), "api_tokens", ["account_id"])
    op.create_table(
        "idempotency_keys",
        _account(),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        _belongs("idempotency_keys"),
        sa.PrimaryKeyConstraint("account_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=32), nullable=False),
        _account(),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("events", sa.String(length=300), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        _belongs("webhook_endpoints"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(op.f("ix_webhook_endpoints_account_id"), "webhook_endpoints", ["account_id"])


def downgrade() -> None:
    """Undo :func:`upgrade` (the service accounts' audit events go with them)."""
    op.execute("DELETE FROM audit_events WHERE actor_kind = 'service'")
    _actor_kinds(_KINDS)
    with op.batch_alter_table("appointments") as batch:
        batch.drop_column("no_show_at")
    op.drop_table("webhook_endpoints")
    op.drop_table("idempotency_keys")
    op.drop_table("api_tokens")
    op.drop_table("service_accounts")
