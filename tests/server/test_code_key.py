"""Join codes are hashed with the server's key, which lives in a file and not in the database:
a stolen database alone does not reveal which 8-digit code opens an appointment."""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from server.__main__ import main
from server.keyfile import KEY_BYTES, KeyFileError, load_or_create_key
from server.keys import CONFIG, DATABASE
from server.storage import Appointment, appointment_by_code, authenticate_user, create_appointment
from tests.server.conftest import PASSWORD, Harness


async def test_codes_are_keyed_and_the_key_stays_out_of_the_database(harness: Harness) -> None:
    db = harness.app[DATABASE]
    await harness.add_advisor("alice")
    advisor = await authenticate_user(db, "alice", PASSWORD)
    assert advisor is not None
    appointment, _, code = await create_appointment(
        db,
        advisor_id=advisor.id,
        starts_at=datetime.now(UTC) + timedelta(minutes=5),
        duration_minutes=30,
        channel="either",
    )
    async with db.session() as session:
        row = await session.scalar(select(Appointment).where(Appointment.id == appointment.id))
    assert row is not None
    assert row.join_code_salt.startswith("k1:")
    # Someone with the database but not the key cannot check a guess:
    unkeyed = hashlib.sha256(f"{row.join_code_salt}:{code}".encode()).hexdigest()
    assert unkeyed != row.join_code_hash
    # The server (which has the key) finds the appointment by its code.
    found = await appointment_by_code(db, code)
    assert found is not None
    assert found.id == appointment.id

    key_file = harness.app[CONFIG].effective_secret_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key_file.read_text().strip())) == KEY_BYTES
    assert key_file.read_text().strip() not in (await _dump(db)).hex()


async def _dump(db: object) -> bytes:
    # What a thief of the database gets: every stored value, as bytes.
    from sqlalchemy import text

    out = b""
    async with db.session() as session:  # type: ignore[attr-defined]
        for table in ("appointments", "users", "audit_events"):
            for row in await session.execute(text(f"SELECT * FROM {table}")):  # noqa: S608
                out += repr(tuple(row)).encode()
    return out


def test_the_key_is_made_once_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "server.key"
    first = load_or_create_key(path)
    assert load_or_create_key(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_damaged_key_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "server.key"
    path.write_text("not a key\n")
    with pytest.raises(KeyFileError, match="damaged"):
        load_or_create_key(path)
    config = tmp_path / "server.toml"
    config.write_text(f'data_dir = "{tmp_path}"\nsecret_key_file = "{path}"\n')
    assert main(["--config", str(config), "serve", "--port", "0"]) == 1
    assert "server key" in capsys.readouterr().err
    assert path.read_text() == "not a key\n"  # left as it was
