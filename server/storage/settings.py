"""Settings an administrator changed (JSON values by key) and uploaded assets (the logo).

Plain async functions that take the :class:`~server.storage.database.Database`, like the
other store modules; each call is one transaction. A setting nobody changed has no
row: readers fall back to the server's configuration or a built-in default. Writes replace the
whole value in one statement (``INSERT ... ON CONFLICT DO UPDATE`` on both backends), so two
administrators saving at once leave one complete value, never a mix.

Values are checked for size and shape here; what they mean (colours, texts) is checked by the
module that owns them (:mod:`server.branding`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Executable

from .common import rowcount
from .database import Database
from .errors import InvalidValueError
from .models import Asset, Base, Setting

__all__ = [
    "AUDIT_RETENTION_KEY",
    "MAX_ASSET_BYTES",
    "MAX_AUDIT_RETENTION_DAYS",
    "MAX_SETTING_CHARS",
    "MIN_AUDIT_RETENTION_DAYS",
    "asset_digest",
    "audit_retention_days",
    "delete_asset",
    "delete_setting",
    "get_asset",
    "get_setting",
    "put_asset",
    "put_setting",
    "set_audit_retention_days",
]

logger = logging.getLogger(__name__)

AUDIT_RETENTION_KEY = "audit_retention_days"
MIN_AUDIT_RETENTION_DAYS = 1
MAX_AUDIT_RETENTION_DAYS = 3650
MAX_SETTING_CHARS = 64 * 1024
"""Longest value of a setting, as JSON text."""
MAX_ASSET_BYTES = 1024 * 1024
"""Largest asset stored; the endpoints that accept uploads set tighter limits of their own."""

_KEY = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_CONTENT_TYPE = re.compile(r"[a-z0-9.+-]{1,40}/[a-z0-9.+-]{1,59}")


def _check_key(key: str, what: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidValueError(
            f"Invalid {what} {str(key)[:80]!r}: use 1 to 64 characters a-z, 0-9, _ and ., "
            "starting with a letter."
        )
    return key


def _upsert(db: Database, model: type[Base], key: str, values: dict[str, Any]) -> Executable:
    """One statement that inserts *values*, or replaces the row with the same *key*."""
    changes = [name for name in values if name != key]
    if db.dialect_name == "postgresql":
        pg = postgresql.insert(model).values(values)
        return pg.on_conflict_do_update(
            index_elements=[key], set_={name: pg.excluded[name] for name in changes}
        )
    lite = sqlite.insert(model).values(values)
    return lite.on_conflict_do_update(
        index_elements=[key], set_={name: lite.excluded[name] for name in changes}
    )


# ---------------------------------------------------------------------------------------------
# Settings


async def get_setting(db: Database, key: str) -> Any:
    """Return the value stored under *key*, or None when nobody set it.

    A stored value that is not valid JSON (written by hand, say) is logged and reads as None.
    """
    _check_key(key, "setting name")
    async with db.reads() as session:
        record = await session.get(Setting, key)
    if record is None:
        return None
    try:
        return json.loads(record.value)
    except ValueError:
        logger.warning("Setting %s holds no valid JSON; using the default instead", key)
        return None


async def put_setting(db: Database, key: str, value: Any) -> None:
    """Store *value* (anything JSON can hold, not None) under *key*, replacing the old value.

    Raises :class:`InvalidValueError` for a malformed key, a None value, a value JSON cannot
    hold (including NaN and infinities) or one longer than :data:`MAX_SETTING_CHARS` as JSON.
    """
    _check_key(key, "setting name")
    if value is None:
        raise InvalidValueError(
            f"The setting {key!r} needs a value; delete it to go back to the default."
        )
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"The setting {key!r} cannot be stored as JSON: {exc}.") from None
    if len(text) > MAX_SETTING_CHARS:
        raise InvalidValueError(
            f"The setting {key!r} is too large: at most {MAX_SETTING_CHARS} characters as JSON "
            f"(it has {len(text)})."
        )
    statement = _upsert(db, Setting, "key", {"key": key, "value": text, "updated_at": db.now()})
    async with db.session() as session:
        await session.execute(statement)
        await session.commit()
    logger.info("Setting %s changed", key)


async def delete_setting(db: Database, key: str) -> bool:
    """Forget the value of *key*, so the default applies again; return whether one was set."""
    _check_key(key, "setting name")
    async with db.session() as session:
        result = await session.execute(delete(Setting).where(Setting.key == key))
        await session.commit()
    deleted = rowcount(result) > 0
    if deleted:
        logger.info("Setting %s reset to its default", key)
    return deleted


def _valid_retention(days: object) -> bool:
    return (
        isinstance(days, int)
        and not isinstance(days, bool)
        and MIN_AUDIT_RETENTION_DAYS <= days <= MAX_AUDIT_RETENTION_DAYS
    )


async def audit_retention_days(db: Database) -> int | None:
    """Return how many days audit events are kept, if an administrator set it, else None.

    A stored value out of range is logged and ignored, so the configured default applies.
    """
    days = await get_setting(db, AUDIT_RETENTION_KEY)
    if days is None:
        return None
    if not _valid_retention(days):
        logger.warning("Stored audit retention %r is out of range; using the default", days)
        return None
    assert isinstance(days, int)
    return days


async def set_audit_retention_days(db: Database, days: int | None) -> None:
    """Keep audit events for *days* days (1 to 3650); None goes back to the configured default.

    Raises :class:`InvalidValueError` for anything else.
    """
    if days is None:
        await delete_setting(db, AUDIT_RETENTION_KEY)
        return
    if not _valid_retention(days):
        raise InvalidValueError(
            f"Invalid audit retention {days!r}: keep audit events for "
            f"{MIN_AUDIT_RETENTION_DAYS} to {MAX_AUDIT_RETENTION_DAYS} days."
        )
    await put_setting(db, AUDIT_RETENTION_KEY, days)


# ---------------------------------------------------------------------------------------------
# Assets


async def get_asset(db: Database, name: str) -> Asset | None:
    """Return the asset called *name* with its data, or None."""
    _check_key(name, "asset name")
    async with db.reads() as session:
        return await session.get(Asset, name)


async def asset_digest(db: Database, name: str) -> str | None:
    """Return the SHA-256 (hex) of the asset called *name*, or None, without loading its data."""
    _check_key(name, "asset name")
    async with db.reads() as session:
        digest: str | None = await session.scalar(select(Asset.sha256).where(Asset.name == name))
        return digest


async def put_asset(db: Database, name: str, data: bytes, content_type: str) -> Asset:
    """Store *data* as the asset *name*, replacing any earlier one; return it.

    The data is stored as given: check it before (see :mod:`server.svg`). Raises
    :class:`InvalidValueError` for a malformed name or content type, and for empty data or data
    larger than :data:`MAX_ASSET_BYTES`.
    """
    _check_key(name, "asset name")
    if not isinstance(content_type, str) or not _CONTENT_TYPE.fullmatch(content_type):
        raise InvalidValueError(
            f"Invalid content type {str(content_type)[:80]!r}: use a media type such as "
            "image/png, without parameters."
        )
    if not isinstance(data, bytes) or not data:
        raise InvalidValueError(f"The asset {name!r} is empty.")
    if len(data) > MAX_ASSET_BYTES:
        raise InvalidValueError(
            f"The asset {name!r} is too large: at most {MAX_ASSET_BYTES} bytes "
            f"(it has {len(data)})."
        )
    asset = Asset(
        name=name,
        content_type=content_type,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        updated_at=db.now(),
    )
    values = {
        "name": asset.name,
        "content_type": asset.content_type,
        "data": asset.data,
        "sha256": asset.sha256,
        "updated_at": asset.updated_at,
    }
    async with db.session() as session:
        await session.execute(_upsert(db, Asset, "name", values))
        await session.commit()
    logger.info("Asset %s stored: %s, %d bytes", name, content_type, len(data))
    return asset


async def delete_asset(db: Database, name: str) -> bool:
    """Delete the asset *name*; return whether there was one."""
    _check_key(name, "asset name")
    async with db.session() as session:
        result = await session.execute(delete(Asset).where(Asset.name == name))
        await session.commit()
    deleted = rowcount(result) > 0
    if deleted:
        logger.info("Asset %s deleted", name)
    return deleted
