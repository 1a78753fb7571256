"""The tables of the server's database, as SQLAlchemy typed ORM classes.

Types are portable between SQLite and PostgreSQL: ids are uuid4 hex strings, times are stored
in UTC and always come back timezone-aware, roles are a short string with a CHECK constraint.
The schema is created by the Alembic migrations in ``migrations/versions``, never by
``create_all``; a test checks that the two agree.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "AuthSession",
    "Base",
    "Booth",
    "Role",
    "UTCDateTime",
    "User",
    "new_id",
    "utc_now",
]

# Named constraints let later migrations drop or alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 32
SHA256_HEX_LENGTH = 64


def new_id() -> str:
    """Return a new random record id: a uuid4 as 32 lowercase hex digits."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC that always loads timezone-aware.

    SQLite has no time zones and returns naive values; PostgreSQL's ``timestamptz`` keeps
    them. Naive values are refused on the way in, because their zone is a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column; pass a timezone-aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Role(StrEnum):
    """What a user may do: advisors take calls, administrators also manage users and booths."""

    ADVISOR = "advisor"
    ADMIN = "admin"


class Base(DeclarativeBase):
    """Base class of the ORM models; its ``metadata`` describes the whole schema."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """An advisor or administrator who logs in with a username and password."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('advisor', 'admin')", name="role"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    # Stored lower-cased, which makes the unique constraint case-insensitive.
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            native_enum=False,
            create_constraint=False,  # the CHECK constraint above, with a stable name
            length=16,
            values_callable=lambda roles: [role.value for role in roles],
        )
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    disabled: Mapped[bool] = mapped_column(Boolean(), default=False)

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, username={self.username!r}, role={self.role.value!r})"


class AuthSession(Base):
    """A login session of a user, found by the SHA-256 of its cookie token.

    The token itself is never stored: a copy of the database does not let anyone log in.
    """

    __tablename__ = "auth_sessions"

    token_hash: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)

    def __repr__(self) -> str:
        return f"AuthSession(user_id={self.user_id!r}, expires_at={self.expires_at!r})"


class Booth(Base):
    """A booth that may connect to the server, found by id and checked by its secret's hash."""

    __tablename__ = "booths"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # SHA-256, not argon2: the secret is 32 random bytes, so nobody can guess it, and a fast
    # hash keeps booth logins cheap.
    secret_hash: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def revoked(self) -> bool:
        """Whether the booth's credential has been revoked."""
        return self.revoked_at is not None

    def __repr__(self) -> str:
        return f"Booth(id={self.id!r}, name={self.name!r}, revoked={self.revoked})"
