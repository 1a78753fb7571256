"""Settings and uploaded assets on a real database: SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from server.storage import (
    MAX_ASSET_BYTES,
    Database,
    InvalidValueError,
    asset_digest,
    audit_retention_days,
    delete_asset,
    delete_setting,
    get_asset,
    get_setting,
    put_asset,
    put_setting,
    set_audit_retention_days,
)
from tests.server.conftest import NOW, ManualClock


async def test_a_setting_is_absent_until_set_and_replaced_whole(db: Database) -> None:
    assert await get_setting(db, "branding") is None
    await put_setting(db, "branding", {"name": "Stadt", "texts": {"de": {"welcome": "Hallo"}}})
    await put_setting(db, "branding", {"name": "Land ä ü", "colours": [1, 2.5, True]})
    assert await get_setting(db, "branding") == {"name": "Land ä ü", "colours": [1, 2.5, True]}
    assert await delete_setting(db, "branding") is True
    assert await delete_setting(db, "branding") is False
    assert await get_setting(db, "branding") is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("Branding", 1, "Invalid setting name 'Branding'"),
        ("", 1, "Invalid setting name ''"),
        ("x" * 65, 1, "Invalid setting name"),
        ("ok", None, "needs a value; delete it"),
        ("ok", float("nan"), "cannot be stored as JSON"),
        ("ok", {1, 2}, "cannot be stored as JSON"),
        ("ok", "x" * (64 * 1024), "too large: at most 65536 characters"),
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(
    db: Database, key: str, value: object, message: str
) -> None:
    await put_setting(db, "ok", "before")
    with pytest.raises(InvalidValueError, match=message):
        await put_setting(db, key, value)
    assert await get_setting(db, "ok") == "before"


async def test_audit_retention_is_stored_checked_and_reset(db: Database) -> None:
    assert await audit_retention_days(db) is None
    await set_audit_retention_days(db, 30)
    assert await audit_retention_days(db) == 30
    for bad in (0, 3651, -1, True, "30", 1.5):
        with pytest.raises(InvalidValueError, match="keep audit events for 1 to 3650 days"):
            await set_audit_retention_days(db, bad)  # type: ignore[arg-type]
    assert await audit_retention_days(db) == 30
    await set_audit_retention_days(db, None)
    assert await audit_retention_days(db) is None


async def test_a_stored_retention_out_of_range_is_ignored(db: Database) -> None:
    # Written by hand or by an older version: the configured default applies instead.
    await put_setting(db, "audit_retention_days", 99_999)
    assert await audit_retention_days(db) is None
    await put_setting(db, "audit_retention_days", "30")
    assert await audit_retention_days(db) is None


async def test_assets_are_stored_with_their_hash(db: Database, clock: ManualClock) -> None:
    assert await get_asset(db, "logo") is None
    first = await put_asset(db, "logo", b"\x89PNG first", "image/png")
    clock.now += timedelta(minutes=5)
    await put_asset(db, "logo", b"<svg/>", "image/svg+xml")
    stored = await get_asset(db, "logo")
    assert stored is not None
    assert stored.data == b"<svg/>"
    assert stored.content_type == "image/svg+xml"
    assert stored.sha256 == hashlib.sha256(b"<svg/>").hexdigest() != first.sha256
    assert stored.updated_at == NOW + timedelta(minutes=5)
    assert "svg" not in repr(stored).replace("svg+xml", "")  # no content in logs
    assert await asset_digest(db, "logo") == stored.sha256
    assert await delete_asset(db, "logo") is True
    assert await delete_asset(db, "logo") is False
    assert await get_asset(db, "logo") is None
    assert await asset_digest(db, "logo") is None


@pytest.mark.parametrize(
    ("name", "data", "content_type", "message"),
    [
        ("Logo!", b"x", "image/png", "Invalid asset name"),
        ("logo", b"", "image/png", "is empty"),
        ("logo", b"x" * (MAX_ASSET_BYTES + 1), "image/png", "too large: at most 1048576"),
        ("logo", b"x", "image/png; charset=x", "Invalid content type"),
        ("logo", b"x", "png", "Invalid content type"),
    ],
)
async def test_bad_assets_are_refused_and_change_nothing(
    db: Database, name: str, data: bytes, content_type: str, message: str
) -> None:
    await put_asset(db, "logo", b"before", "image/png")
    with pytest.raises(InvalidValueError, match=message):
        await put_asset(db, name, data, content_type)
    stored = await get_asset(db, "logo")
    assert stored is not None and stored.data == b"before"
