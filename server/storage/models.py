"""The tables of the server's database, as SQLAlchemy typed ORM classes.

Users, login sessions and booths (revision 0001); branches, topics, appointments and the audit
log (revision 0002); settings and uploaded assets (revision 0003); a user's duty to change a
generated password and topic names per language (revision 0006).

Types are portable between SQLite and PostgreSQL: ids are uuid4 hex strings, times are stored
in UTC and always come back timezone-aware, roles are a short string with a CHECK constraint.
The schema is created by the Alembic migrations in ``migrations/versions``, never by
``create_all``; a test checks that the two agree.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ActorKind",
    "Appointment",
    "AppointmentStatus",
    "Asset",
    "AuditEvent",
    "AuthSession",
    "Base",
    "Booth",
    "BoothEnrolment",
    "BoothHealth",
    "Branch",
    "CallEnding",
    "CallInvitation",
    "Channel",
    "LiveCall",
    "Role",
    "Rollout",
    "RolloutBooth",
    "Setting",
    "SpentNonce",
    "Topic",
    "UTCDateTime",
    "UpdateBundle",
    "User",
    "new_id",
    "user_topics",
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
    __table_args__ = (
        CheckConstraint("role IN ('advisor', 'admin')", name="role"),
        UniqueConstraint("external_issuer", "external_subject"),
    )

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
    #: Set with a generated password (revision 0006): every page but the one to change it is
    #: closed until the user has chosen their own.
    must_change_password: Mapped[bool] = mapped_column(
        Boolean(), default=False, server_default=false()
    )
    #: A user made at a single sign-on (revision 0012): the identity provider's issuer and
    #: its subject for the person. NULL for local accounts; such a user has no password.
    external_issuer: Mapped[str | None] = mapped_column(String(255), nullable=True)
    external_subject: Mapped[str | None] = mapped_column(String(255), nullable=True)

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
    #: A single sign-on's session at the provider (``sid``; revision 0012), which its
    #: back-channel logout names, and its ID token, the hint of a logout there.
    external_sid: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    id_token: Mapped[str | None] = mapped_column(Text(), nullable=True)

    def __repr__(self) -> str:
        return f"AuthSession(user_id={self.user_id!r}, expires_at={self.expires_at!r})"


class Booth(Base):
    """A booth that may connect to the server.

    An enrolled booth proves itself by signing a fresh server nonce with its Ed25519 key (only
    the public key is here). A booth added on the command line for development has a secret
    instead, of which only the hash is kept.
    """

    __tablename__ = "booths"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # SHA-256, not argon2: the secret is 32 random bytes, so nobody can guess it, and a fast
    # hash keeps booth logins cheap. None for a booth enrolled with a key (revision 0004).
    secret_hash: Mapped[str | None] = mapped_column(String(SHA256_HEX_LENGTH))
    #: The booth's Ed25519 public key, 64 hex digits; set by enrolment (revision 0004).
    public_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: What the booth said of itself at enrolment (model, serial, ...), JSON; never personal.
    hardware: Mapped[str | None] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Added in revision 0002; a booth without a branch takes no walk-ins or booth appointments.
    branch_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("branches.id", ondelete="SET NULL"), index=True
    )

    @property
    def revoked(self) -> bool:
        """Whether the booth's credential has been revoked."""
        return self.revoked_at is not None

    def __repr__(self) -> str:
        return f"Booth(id={self.id!r}, name={self.name!r}, revoked={self.revoked})"


def _enum_column(enum: type[StrEnum]) -> Enum:
    """A string column for *enum*'s values; the CHECK constraint is declared on the table."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,  # a CHECK constraint on the table, with a stable name
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class Branch(Base):
    """A branch office; its booths belong to it and walk-in queues are kept per region."""

    __tablename__ = "branches"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    region: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    #: When its booths may install updates (``22:00-05:00``) and in which time zone
    #: (revision 0010); None: the server's ``[updates]`` defaults.
    maintenance_window: Mapped[str | None] = mapped_column(String(11))
    timezone: Mapped[str | None] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"Branch(id={self.id!r}, name={self.name!r}, region={self.region!r})"


class Topic(Base):
    """A service a citizen can ask for (e.g. "Residence permit"); inactive ones are hidden."""

    __tablename__ = "topics"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    active: Mapped[bool] = mapped_column(Boolean(), default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    #: The name in other languages, JSON ``{"ar": "...", ...}`` (revision 0006); the citizen's
    #: language falls back to ``name``.
    names: Mapped[str | None] = mapped_column(Text())

    def __repr__(self) -> str:
        return f"Topic(id={self.id!r}, name={self.name!r}, active={self.active})"


user_topics = Table(
    "user_topics",
    Base.metadata,
    Column(
        "user_id",
        String(ID_LENGTH),
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "topic_id",
        String(ID_LENGTH),
        ForeignKey("topics.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)
"""Which users serve which topics (both sides are deleted with the user or the topic)."""


class Channel(StrEnum):
    """How the citizen joins an appointment."""

    OWN_DEVICE = "own_device"
    BOOTH = "booth"
    EITHER = "either"


class AppointmentStatus(StrEnum):
    """Only scheduled appointments can be joined, moved or cancelled."""

    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    DONE = "done"


class Appointment(Base):
    """A consultation booked with an advisor, joined by a link (token) or a booth code.

    Neither the link's token nor the code is stored: the token as its SHA-256, the code as
    the SHA-256 of a per-row salt and the code. *citizen_label* is an optional short note;
    leave it empty when the consultation does not need it.
    """

    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint("duration_minutes BETWEEN 5 AND 240", name="duration"),
        CheckConstraint("channel IN ('own_device', 'booth', 'either')", name="channel"),
        CheckConstraint("status IN ('scheduled', 'cancelled', 'done')", name="status"),
        CheckConstraint("channel <> 'booth' OR branch_id IS NOT NULL", name="booth_branch"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    advisor_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    topic_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("topics.id", ondelete="SET NULL")
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    duration_minutes: Mapped[int] = mapped_column(Integer())
    channel: Mapped[Channel] = mapped_column(_enum_column(Channel))
    # No ON DELETE: a branch with appointments cannot be deleted (booth appointments need one).
    branch_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("branches.id"))
    citizen_label: Mapped[str | None] = mapped_column(String(80))
    join_token_hash: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH), unique=True)
    join_code_salt: Mapped[str] = mapped_column(String(32))
    join_code_hash: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH))
    status: Mapped[AppointmentStatus] = mapped_column(_enum_column(AppointmentStatus))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    #: When its join window closed with nobody joined (revision 0014): the no-show, told once.
    no_show_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @property
    def ends_at(self) -> datetime:
        """When the consultation is planned to end."""
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    def __repr__(self) -> str:
        # No label, token or code hashes: reprs end up in logs.
        return (
            f"Appointment(id={self.id!r}, advisor_id={self.advisor_id!r}, "
            f"starts_at={self.starts_at!r}, status={self.status.value!r})"
        )


class ActorKind(StrEnum):
    """Who did what an audit event records."""

    USER = "user"
    BOOTH = "booth"
    CITIZEN = "citizen"
    SYSTEM = "system"
    SERVICE = "service"  # a booking system's API token (revision 0014)


class AuditEvent(Base):
    """One entry of the audit log: who did what, when. Metadata only, never content."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint(
            "actor_kind IN ('user', 'booth', 'citizen', 'system', 'service')", name="actor_kind"
        ),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor_kind: Mapped[ActorKind] = mapped_column(_enum_column(ActorKind))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(500))

    def __repr__(self) -> str:
        return (
            f"AuditEvent(at={self.at!r}, actor_kind={self.actor_kind.value!r}, "
            f"actor_id={self.actor_id!r}, action={self.action!r}, subject={self.subject!r})"
        )


class Setting(Base):
    """One setting an administrator changed (revision 0003): a key and a JSON value.

    Settings nobody changed have no row; readers fall back to the configuration or a default.
    """

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text())  # JSON text
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)

    def __repr__(self) -> str:
        return f"Setting(key={self.key!r}, updated_at={self.updated_at!r})"


class Asset(Base):
    """A file an administrator uploaded, such as the organisation's logo (revision 0003).

    *sha256* is the hex digest of *data*; it versions the file's URL and is its ETag.
    """

    __tablename__ = "assets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(100))
    data: Mapped[bytes] = mapped_column(LargeBinary())
    sha256: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)

    def __repr__(self) -> str:
        # No data: reprs end up in logs.
        return (
            f"Asset(name={self.name!r}, content_type={self.content_type!r}, "
            f"size={len(self.data)}, sha256={self.sha256[:12]!r})"
        )


class BoothEnrolment(Base):
    """A one-time enrolment token for a booth: only its hash is kept (revision 0004)."""

    __tablename__ = "booth_enrolments"

    token_hash: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH), primary_key=True)
    booth_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("booths.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BoothHealth(Base):
    """One health report of a booth (a heartbeat's figures), kept for a day or so."""

    __tablename__ = "booth_health"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    booth_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("booths.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    state: Mapped[str] = mapped_column(String(32))
    #: The report's figures as JSON (version, uptime, temperature, load, disk, self-tests).
    data: Mapped[str] = mapped_column(Text())


class CallEnding(Base):
    """A call that ended (``participant_id`` empty) or a participant who left or was removed
    from a call that goes on (revision 0005). Kept as long as a resume token can name it, so
    that no token takes either up again, also after a restart."""

    __tablename__ = "call_endings"

    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    participant_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class LiveCall(Base):
    """A call waiting or running now (revision 0007), as the nodes of a cluster share it:
    who is in it (each member with the node holding its connection, as JSON text), which node
    carries it (``owner``), and what the waiting room shows of it. Gone when the call ends."""

    __tablename__ = "live_calls"
    __table_args__ = (CheckConstraint("state IN ('waiting', 'active')", name="state"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    caller: Mapped[str] = mapped_column(Text)
    advisor: Mapped[str | None] = mapped_column(Text, nullable=True)
    guests: Mapped[str] = mapped_column(Text)
    appointment_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    advisor_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    topic_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    topic_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    region: Mapped[str | None] = mapped_column(Text, nullable=True)
    waiting_since: Mapped[datetime] = mapped_column(UTCDateTime())


class SpentNonce(Base):
    """A booth login challenge used already (revision 0008), by the SHA-256 of the nonce: a
    cluster's nodes share which are spent. Kept until it expires."""

    __tablename__ = "spent_nonces"

    digest: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class CallInvitation(Base):
    """An invitation link into a running call (revision 0009), by the SHA-256 of its token,
    as the nodes of a cluster share them. Gone when the call ends."""

    __tablename__ = "call_invitations"

    token_hash: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    label: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UpdateBundle(Base):
    """A booth update bundle an administrator uploaded (revision 0010), checked with RAUC
    against the trusted certificate; the file is kept by its SHA-256 in the data folder."""

    __tablename__ = "update_bundles"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    version: Mapped[str] = mapped_column(String(64))
    compatible: Mapped[str] = mapped_column(String(64))
    signer: Mapped[str] = mapped_column(Text())
    sha256: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH), unique=True)
    size: Mapped[int] = mapped_column(BigInteger())
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    uploaded_by: Mapped[str | None] = mapped_column(String(ID_LENGTH))


class Rollout(Base):
    """A bundle rolled out to booths in stages (revision 0010)."""

    __tablename__ = "rollouts"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    bundle_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("update_bundles.id", ondelete="RESTRICT"), index=True
    )
    state: Mapped[str] = mapped_column(String(16))
    #: The stage reached (0: the canaries).
    stage: Mapped[int] = mapped_column(Integer(), default=0)
    max_failure_share: Mapped[float] = mapped_column(Float())
    health_timeout_seconds: Mapped[int] = mapped_column(Integer())
    max_parallel: Mapped[int] = mapped_column(Integer())
    #: Why it stopped or ended, for the pages.
    reason: Mapped[str | None] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    created_by: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    #: True while running or paused, NULL once over: unique, so at most one rollout is active
    #: however many start at once (revision 0011).
    active: Mapped[bool | None] = mapped_column(Boolean(), unique=True)


class RolloutBooth(Base):
    """One booth in a rollout: its stage and how far it got (revision 0010)."""

    __tablename__ = "rollout_booths"

    rollout_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True
    )
    booth_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, index=True)
    stage: Mapped[int] = mapped_column(Integer())
    progress: Mapped[str] = mapped_column(String(16))
    percent: Mapped[int] = mapped_column(Integer(), default=0)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    detail: Mapped[str] = mapped_column(Text(), default="")


class OutboxItem(Base):
    """A message to send (revision 0013): a mail through the SMTP relay or a webhook, kept
    until it is sent and tried again with backoff while it cannot be. Its content is sealed
    with a key of the server (server/outbox/sealing.py) and emptied once sent; ``purpose``
    and ``last_error`` say what it is and what went wrong, never to whom or what it says."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint("kind IN ('mail', 'webhook')", name="kind"),
        CheckConstraint("state IN ('pending', 'sent', 'failed', 'superseded')", name="state"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    #: What the message is for (an invitation, a reminder, ``appointment.moved`` ...).
    purpose: Mapped[str] = mapped_column(String(64))
    #: Messages with the same key go out in the order made (a webhook's appointment), and a
    #: newer one may supersede an older (a reminder of a moved appointment).
    ordering_key: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    #: Not sent before this (a reminder); tried next at ``next_attempt_at``.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(Integer(), default=0)
    #: A node sending it holds it until then (a node that dies while sending lets it go).
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class AppointmentContact(Base):
    """How to reach an appointment's citizen (revision 0013): the e-mail address, language,
    join link and code, sealed like the outbox's messages, for the mails that follow the
    invitation (reminder, moved, cancelled). Gone with the appointment's last mail."""

    __tablename__ = "appointment_contacts"

    appointment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("appointments.id", ondelete="CASCADE"), primary_key=True
    )
    sealed: Mapped[bytes] = mapped_column(LargeBinary())
    #: The calendar entry's SEQUENCE: one more with every change.
    sequence: Mapped[int] = mapped_column(Integer(), default=0)


class ServiceAccount(Base):
    """A system that calls the API on its own (revision 0014): the organisation's booking
    system. It holds tokens (:class:`ApiToken`) and webhook endpoints."""

    __tablename__ = "service_accounts"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    disabled: Mapped[bool] = mapped_column(Boolean(), default=False)


class ApiToken(Base):
    """A service account's API token (revision 0014), known by its SHA-256 only: shown once,
    with the scopes it allows, until it expires or is revoked."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("service_accounts.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH), unique=True)
    #: The token's first characters, to tell tokens apart on the admin page.
    prefix: Mapped[str] = mapped_column(String(16))
    #: Space-separated: appointments:read, appointments:write.
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IdempotencyKey(Base):
    """A service account's write under an ``Idempotency-Key`` (revision 0014): the same key
    with the same request gets the first answer again, never a second appointment."""

    __tablename__ = "idempotency_keys"

    account_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("service_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH))
    #: NULL while the first request is still being answered.
    status: Mapped[int | None] = mapped_column(Integer(), nullable=True)
    response: Mapped[str | None] = mapped_column(Text(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class WebhookEndpoint(Base):
    """Where a service account hears of appointment events (revision 0014); its signing
    secret is sealed with a key of the server (server/outbox/sealing.py)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("service_accounts.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(500))
    #: Space-separated event names.
    events: Mapped[str] = mapped_column(String(300))
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
