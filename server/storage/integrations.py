"""The organisation's booking system as the API knows it: service accounts, their tokens
(SHA-256 at rest, scoped, expiring, revocable), the idempotency keys of their writes and
their webhook endpoints."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from .common import delete_older, rowcount, sha256_hex
from .database import Database
from .errors import DuplicateError, InvalidValueError, NotFoundError
from .models import ApiToken, IdempotencyKey, ServiceAccount, WebhookEndpoint, new_id
from .validation import clean_text

__all__ = [
    "ABANDONED_AFTER",
    "IDEMPOTENCY_RETENTION",
    "SCOPES",
    "TOKEN_PREFIX",
    "Idempotent",
    "ServiceCaller",
    "add_webhook",
    "begin_idempotent",
    "create_service_account",
    "delete_webhook",
    "drop_idempotent",
    "finish_idempotent",
    "get_webhook",
    "issue_token",
    "list_service_accounts",
    "list_tokens",
    "list_webhooks",
    "purge_idempotency",
    "revoke_token",
    "service_for_token",
    "webhooks_for",
]

#: What a token may be allowed.
SCOPES = ("appointments:read", "appointments:write")
#: Every token starts so (and a booth's credential never does).
TOKEN_PREFIX = "vbt_"  # noqa: S105 - a marker, not a secret
#: How exactly a token's last use is kept.
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: A key claimed and not answered for this long belongs to a request whose server died.
ABANDONED_AFTER = timedelta(minutes=2)
#: How long a key and its answer are kept (a booking system retries within minutes).
IDEMPOTENCY_RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class ServiceCaller:
    account_id: str
    name: str
    token_id: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class Idempotent:
    """What an idempotency key says of a write: ``new`` (go on), ``replay`` (answer
    ``status``/``response`` again), ``conflict`` (the key was used for another request) or
    ``busy`` (the first request with it is still being answered)."""

    outcome: str
    status: int | None = None
    response: str | None = None


async def create_service_account(db: Database, name: str) -> ServiceAccount:
    clean = clean_text(name, "name", 100)
    account = ServiceAccount(id=new_id(), name=clean, created_at=db.now(), disabled=False)
    try:
        async with db.session() as session:
            session.add(account)
            await session.commit()
    except IntegrityError:
        raise DuplicateError(f"A service account called {clean!r} exists already.") from None
    return account


async def list_service_accounts(db: Database) -> list[ServiceAccount]:
    async with db.reads() as session:
        return list(await session.scalars(select(ServiceAccount).order_by(ServiceAccount.name)))


async def issue_token(
    db: Database, account_id: str, *, scopes: set[str], expires_at: datetime
) -> tuple[ApiToken, str]:
    """A new token for the account: its row, and the token itself (shown once)."""
    unknown = scopes - set(SCOPES)
    if unknown or not scopes:
        raise InvalidValueError(f"scopes: choose from {', '.join(SCOPES)}")
    if expires_at <= db.now():
        raise InvalidValueError("expires_at: a token must expire in the future")
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        id=new_id(),
        account_id=account_id,
        token_hash=sha256_hex(text),
        prefix=text[:12],
        scopes=" ".join(sorted(scopes)),
        created_at=db.now(),
        expires_at=expires_at,
    )
    async with db.session() as session:
        if await session.get(ServiceAccount, account_id) is None:
            raise NotFoundError(f"No service account with id {account_id!r}.")
        session.add(token)
        await session.commit()
    return token, text


async def list_tokens(db: Database, account_id: str) -> list[ApiToken]:
    async with db.reads() as session:
        query = select(ApiToken).where(ApiToken.account_id == account_id)
        return list(await session.scalars(query.order_by(ApiToken.created_at)))


async def revoke_token(db: Database, token_id: str) -> ApiToken:
    async with db.session() as session:
        token = await session.get(ApiToken, token_id)
        if token is None:
            raise NotFoundError(f"No token with id {token_id!r}.")
        if token.revoked_at is None:
            token.revoked_at = db.now()
        await session.commit()
    return token


async def service_for_token(db: Database, text: str) -> ServiceCaller | None:
    """The service account a bearer token belongs to, if the token is good now."""
    if not text.startswith(TOKEN_PREFIX) or len(text) > 100:
        return None
    now = db.now()
    query = (
        select(ApiToken, ServiceAccount)
        .join(ServiceAccount, ApiToken.account_id == ServiceAccount.id)
        .where(ApiToken.token_hash == sha256_hex(text))
    )
    async with db.session() as session:
        found = (await session.execute(query)).one_or_none()
        if found is None:
            return None
        token, account = found
        if token.revoked_at is not None or token.expires_at <= now or account.disabled:
            return None
        # To the minute: not a write for every request of a busy booking system.
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            await session.execute(
                update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
            )
            await session.commit()
    return ServiceCaller(account.id, account.name, token.id, frozenset(token.scopes.split()))


async def begin_idempotent(
    db: Database, account_id: str, key: str, request_hash: str
) -> Idempotent:
    """Claim ``key`` for this request, or say what became of it before.

    A claim left unanswered for longer than ``ABANDONED_AFTER`` (its server died between the
    claim and the answer) is taken over by the same request when it comes again: without
    that, the key would say "still being answered" for good. If that server died after its
    write and before the answer was kept, the write is done a second time: the one case in
    which a key does not keep a write single (a booking system sees it as a second
    appointment in the webhooks and the list).
    """
    row = IdempotencyKey(
        account_id=account_id, key=key, request_hash=request_hash, created_at=db.now()
    )
    try:
        async with db.session() as session:
            session.add(row)
            await session.commit()
        return Idempotent("new")
    except IntegrityError:
        pass
    async with db.reads() as session:
        known = await session.get(IdempotencyKey, (account_id, key))
    if known is None:  # dropped meanwhile (its first request failed): the client tries again
        return Idempotent("busy")
    if known.request_hash != request_hash:
        return Idempotent("conflict")
    if known.status is None and db.now() - known.created_at > ABANDONED_AFTER:
        async with db.session() as session:
            taken = await session.execute(
                update(IdempotencyKey)
                .where(
                    IdempotencyKey.account_id == account_id,
                    IdempotencyKey.key == key,
                    IdempotencyKey.status.is_(None),
                    IdempotencyKey.created_at == known.created_at,
                )
                .values(created_at=db.now())
            )
            await session.commit()
        # One of several requests finding it abandoned takes it over; the others wait.
        return Idempotent("new" if rowcount(taken) == 1 else "busy")
    if known.status is None:
        return Idempotent("busy")
    return Idempotent("replay", known.status, known.response)


async def finish_idempotent(
    db: Database, account_id: str, key: str, *, status: int, response: str
) -> None:
    async with db.session() as session:
        await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.account_id == account_id, IdempotencyKey.key == key)
            .values(status=status, response=response)
        )
        await session.commit()


async def drop_idempotent(db: Database, account_id: str, key: str) -> None:
    """The request under ``key`` failed without an answer worth repeating: the key is free."""
    async with db.session() as session:
        await session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.account_id == account_id, IdempotencyKey.key == key
            )
        )
        await session.commit()


async def purge_idempotency(db: Database, *, older_than: timedelta) -> int:
    """Forget the keys (and the answers kept with them) older than ``older_than``."""
    return await delete_older(db, IdempotencyKey.created_at, older_than)


async def add_webhook(
    db: Database,
    account_id: str,
    *,
    url: str,
    events: set[str],
    sealed_secret: Callable[[str], bytes],
) -> WebhookEndpoint:
    """A webhook endpoint; ``sealed_secret(row id)`` seals its signing secret."""
    row_id = new_id()
    endpoint = WebhookEndpoint(
        id=row_id,
        account_id=account_id,
        url=url,
        events=" ".join(sorted(events)),
        sealed_secret=sealed_secret(row_id),
        created_at=db.now(),
    )
    async with db.session() as session:
        if await session.get(ServiceAccount, account_id) is None:
            raise NotFoundError(f"No service account with id {account_id!r}.")
        session.add(endpoint)
        await session.commit()
    return endpoint


async def list_webhooks(db: Database, account_id: str) -> list[WebhookEndpoint]:
    async with db.reads() as session:
        query = select(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id)
        return list(await session.scalars(query.order_by(WebhookEndpoint.created_at)))


async def delete_webhook(db: Database, webhook_id: str) -> None:
    async with db.session() as session:
        result = await session.execute(
            delete(WebhookEndpoint).where(WebhookEndpoint.id == webhook_id)
        )
        await session.commit()
    if rowcount(result) == 0:
        raise NotFoundError(f"No webhook with id {webhook_id!r}.")


async def get_webhook(db: Database, webhook_id: str) -> WebhookEndpoint | None:
    async with db.reads() as session:
        return await session.get(WebhookEndpoint, webhook_id)


async def webhooks_for(db: Database, event: str) -> list[WebhookEndpoint]:
    """The endpoints of enabled service accounts that hear of ``event``."""
    query = (
        select(WebhookEndpoint)
        .join(ServiceAccount, WebhookEndpoint.account_id == ServiceAccount.id)
        .where(ServiceAccount.disabled.is_(False))
    )
    async with db.reads() as session:
        return [w for w in await session.scalars(query) if event in w.events.split()]
