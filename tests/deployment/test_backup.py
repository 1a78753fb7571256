"""Backups, restored into a fresh installation: a running server with users, an enrolled booth,
an appointment and a logo is backed up; the archive is restored into a new data folder (or a
new PostgreSQL database) after the old one is gone; a server started there lets the advisor
log in, opens the appointment with its old code and link, and lets the booth log in with its
key. Then every way a restore must refuse: a damaged or truncated archive, one from a newer
schema or format, a database or key already there, a server running on it; each with one
clear line and nothing changed.

Real processes throughout (``python -m server``), as an operator runs them. PostgreSQL comes
from tests/server/postgres.py (a missing one fails in CI).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import pwd
import secrets
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.boothauth import booth_auth_text
from server.backup import (
    FORMAT_VERSION,
    DatabaseKind,
    Manifest,
    Member,
    libpq_environment,
    write_archive,
)
from server.backup.schema import head
from server.keyfile import load_or_create_key
from server.storage import migrate
from tests.components import unavailable
from tests.e2e.conftest import REPO, Server, free_port
from tests.server.postgres import create_database, drop_database, stored_rows

pytestmark = pytest.mark.deployment

LOGO = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 20 10">'
    b'<rect width="20" height="10" fill="#004b87"/></svg>'
)


# ---------------------------------------------------------------------------------------------
# Installations and what is in them


@dataclass
class Installation:
    """A server's configuration, data folder and (when started) process."""

    root: Path
    server: Server
    database_url: str | None

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    @property
    def url(self) -> str:
        return self.server.url

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server", "--config", str(self.server.config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=90,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.cli(*args, stdin=stdin)
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stderr}"
        return result.stdout

    def refused(self, *args: str) -> str:
        """The one line a refused command says."""
        result = self.cli("--log-level", "WARNING", *args)
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("videobooth-server: ")
        return lines[0]


def install(root: Path, database_url: str | None = None) -> Installation:
    """A fresh installation: a configuration and an empty data folder, as a package leaves."""
    data_dir = root / "data"
    data_dir.mkdir(parents=True)
    port = free_port()
    lines = [f'data_dir = "{data_dir}"', f"port = {port}"]
    if database_url is not None:
        lines.append(f'database_url = "{database_url}"')
    config = root / "server.toml"
    config.write_text("\n".join(lines) + "\n")
    server = Server(
        url=f"http://127.0.0.1:{port}",
        config=config,
        data_dir=data_dir,
        log=root / "server.log",
        advisor_password=secrets.token_urlsafe(16),
        port=port,
    )
    return Installation(root=root, server=server, database_url=database_url)


def add_people(installation: Installation, admin_password: str) -> None:
    installation.ok(
        "user", "add", "advisor", "--name", "Alex Advisor", "--password-stdin",
        stdin=installation.server.advisor_password + "\n",
    )  # fmt: skip
    installation.ok(
        "user", "add", "admin", "--role", "admin", "--password-stdin", stdin=admin_password + "\n"
    )


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its content: what 'nothing changed'
    compares."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "folder"
        for path in sorted(folder.rglob("*"))
    }


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


@dataclass
class Story:
    """What the first installation holds, to be found again after the restore."""

    advisor_password: str
    booth_id: str
    booth_key: Ed25519PrivateKey
    appointment_id: str
    join_token: str
    join_code: str
    logo: bytes


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def log_in(http: aiohttp.ClientSession, url: str, username: str, password: str) -> int:
    body = {"username": username, "password": password}
    async with http.post(f"{url}/api/v1/auth/login", json=body) as response:
        return response.status


async def booth_headers(url: str, booth_id: str, key: Ed25519PrivateKey) -> dict[str, str]:
    """A signed login for one request, made as the booth makes it (kiosk/identity.py)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/api/v1/booth/challenge", params={"booth": booth_id}) as response,
    ):
        assert response.status == 200, await response.text()
        nonce = (await response.json())["nonce"]
    signature = base64.urlsafe_b64encode(key.sign(booth_auth_text(booth_id, nonce))).decode()
    return {"Authorization": f"Signature booth={booth_id},nonce={nonce},signature={signature}"}


async def booth_status(url: str, booth_id: str, key: Ed25519PrivateKey) -> int:
    headers = await booth_headers(url, booth_id, key)
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.get(f"{url}/api/v1/topics") as response,
    ):
        return response.status


async def populate(installation: Installation, admin_password: str) -> Story:
    """An enrolled booth, an appointment with its code and link, and a logo, made through the
    running server as an administrator and an advisor make them."""
    url = installation.url
    booth_key = Ed25519PrivateKey.generate()
    async with session() as admin:
        assert await log_in(admin, url, "admin", admin_password) == 200
        async with admin.put(
            f"{url}/api/v1/branding/logo", data=LOGO, headers={"Content-Type": "image/svg+xml"}
        ) as response:
            assert response.status == 200, await response.text()
        async with admin.get(f"{url}/api/v1/branding/logo") as response:
            logo = await response.read()
        async with admin.post(f"{url}/api/v1/booths", json={"name": "Branch 1 booth"}) as r:
            assert r.status == 201, await r.text()
            added: dict[str, Any] = await r.json()
    booth_id = added["booth"]["id"]
    enrolment = {
        "token": added["enrolment_token"],
        "public_key": public_hex(booth_key),
        "hardware": {"model": "Raspberry Pi 5", "serial": "10000000cafe"},
    }
    async with session() as http, http.post(f"{url}/api/v1/enrol", json=enrolment) as response:
        assert response.status == 200, await response.text()
    assert await booth_status(url, booth_id, booth_key) == 200

    async with session() as advisor:
        assert await log_in(advisor, url, "advisor", installation.server.advisor_password) == 200
        starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
        booking = {"starts_at": starts_at.isoformat(), "duration_minutes": 60}
        async with advisor.post(f"{url}/api/v1/appointments", json=booking) as response:
            assert response.status == 201, await response.text()
            made: dict[str, Any] = await response.json()
    return Story(
        advisor_password=installation.server.advisor_password,
        booth_id=booth_id,
        booth_key=booth_key,
        appointment_id=made["appointment"]["id"],
        join_token=made["join_link"].rsplit("/", 1)[1],
        join_code=made["join_code"],
        logo=logo,
    )


async def check_restored(url: str, story: Story) -> None:
    """The restored server knows everyone and everything the first one did."""
    async with session() as advisor:
        assert await log_in(advisor, url, "advisor", "not the password") == 401
        assert await log_in(advisor, url, "advisor", story.advisor_password) == 200

    # The booth logs in with the key it enrolled with; another key for its id does not.
    assert await booth_status(url, story.booth_id, story.booth_key) == 200
    assert await booth_status(url, story.booth_id, Ed25519PrivateKey.generate()) == 401

    # The code the citizen was sent opens the appointment at the booth: the code's hash is
    # keyed with server.key, so this also shows the key came back.
    headers = await booth_headers(url, story.booth_id, story.booth_key)
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(f"{url}/api/v1/booth/code-check", json={"code": story.join_code}) as response,
    ):
        assert response.status == 200, await response.text()
        assert await response.json() == {"valid": True}

    # ... and the link opens it from the citizen's own browser.
    async with (
        session() as citizen,
        citizen.post(f"{url}/api/v1/join", json={"token": story.join_token}) as response,
    ):
        assert response.status == 200, await response.text()
        joined = await response.json()
    assert (joined["kind"], joined["appointment_id"]) == ("appointment", story.appointment_id)
    assert joined["advisor_name"] == "Alex Advisor"

    async with session() as http, http.get(f"{url}/api/v1/branding/logo") as response:
        assert response.status == 200
        assert await response.read() == story.logo


def only_archive_in(folder: Path) -> Path:
    """The one file a backup left in ``folder`` (no temporary files beside it), mode 0600."""
    files = list(folder.iterdir())
    assert len(files) == 1, files
    archive = files[0]
    assert archive.name.startswith("videobooth-backup-") and archive.suffix == ".tar"
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    return archive


# ---------------------------------------------------------------------------------------------
# The round trip


@pytest.fixture(params=[DatabaseKind.SQLITE, DatabaseKind.POSTGRESQL], ids=lambda kind: kind.value)
def database_kind(request: pytest.FixtureRequest) -> DatabaseKind:
    kind: DatabaseKind = request.param
    return kind


async def test_backup_of_a_running_server_restores_into_a_fresh_installation(
    tmp_path: Path, database_kind: DatabaseKind, request: pytest.FixtureRequest
) -> None:
    password = secrets.token_urlsafe(12)  # for PostgreSQL: it must not show anywhere
    urls: list[str | None] = [None, None]
    if database_kind is DatabaseKind.POSTGRESQL:
        server: str = request.getfixturevalue("postgres_server")
        urls = [await create_database(server), await create_database(server)]
        urls = [
            url.replace("//postgres@", f"//postgres:{password}@") if url else url for url in urls
        ]
    old = install(tmp_path / "old", urls[0])
    admin_password = secrets.token_urlsafe(16)
    add_people(old, admin_password)
    old.server.start()
    try:
        story = await populate(old, admin_password)
        backups = tmp_path / "backups"
        backups.mkdir()
        made = old.cli("backup", "--output", str(backups))
    finally:
        old.server.stop()
    assert made.returncode == 0, made.stderr
    assert "database: copying" in made.stdout and "backup written:" in made.stdout
    archive = only_archive_in(backups)
    assert password not in made.stdout + made.stderr

    # The old installation is gone: nothing of it can help the new one.
    shutil.rmtree(old.data_dir)
    if urls[0] is not None:
        await drop_database(urls[0].replace(f":{password}@", "@"))

    new = install(tmp_path / "new", urls[1])
    restored = new.cli("restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "checked: every member matches its SHA-256" in restored.stdout
    assert restored.stdout.splitlines()[-1].startswith("restored; start the server")
    assert password not in restored.stdout + restored.stderr
    expected = {"server.key", "videobooth.db"} if urls[1] is None else {"server.key"}
    assert {path.name for path in new.data_dir.iterdir()} == expected
    assert stat.S_IMODE((new.data_dir / "server.key").stat().st_mode) == 0o600

    new.server.start()
    try:
        await check_restored(new.url, story)
    finally:
        new.server.stop()
        if urls[1] is not None:
            await drop_database(urls[1].replace(f":{password}@", "@"))


# ---------------------------------------------------------------------------------------------
# Refusals


def make_source(root: Path, revision: str = "head") -> Installation:
    """An installation with a database at ``revision``, its key and (at head) people."""
    source = install(root)
    asyncio.run(migrate(f"sqlite+aiosqlite:///{source.data_dir / 'videobooth.db'}", revision))
    load_or_create_key(source.data_dir / "server.key")
    if revision == "head":
        add_people(source, secrets.token_urlsafe(16))
    return source


@pytest.fixture(scope="module")
def sqlite_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backup of a SQLite installation with people in it, made once for the module."""
    root = tmp_path_factory.mktemp("backup-source")
    source = make_source(root / "source")
    out = root / "out"
    out.mkdir()
    source.ok("backup", "-o", str(out / "backup.tar"))
    return out / "backup.tar"


def member_offset(archive: Path, name: str) -> tuple[int, int]:
    """Where the member ``name``'s data starts in the archive, and its size."""
    with tarfile.open(archive) as tar:
        info = tar.getmember(name)
        return info.offset_data, info.size


def damaged_copy(archive: Path, into: Path, how: str) -> Path:
    data = bytearray(archive.read_bytes())
    if how == "truncated":
        start, size = member_offset(archive, "database.sqlite3")
        del data[start + size // 2 :]
    else:
        start, size = member_offset(archive, how)
        data[start + size // 2] ^= 0x01  # one bit of one byte, in the middle of the member
    copy = into / f"{how}.tar"
    copy.write_bytes(bytes(data))
    return copy


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("database.sqlite3", "database.sqlite3 does not match its SHA-256 in the manifest"),
        ("server.key", "server.key does not match its SHA-256 in the manifest"),
        ("manifest.json", "manifest.json does not match its SHA-256 in manifest.json.sha256"),
        ("truncated", "it ends early or cannot be read"),
    ],
)
def test_backup_damaged_or_truncated_is_refused_and_nothing_changes(
    tmp_path: Path, sqlite_archive: Path, how: str, said: str
) -> None:
    archive = damaged_copy(sqlite_archive, tmp_path, how)
    target = install(tmp_path / "target")
    before = snapshot(target.root)

    line = target.refused("restore", str(archive))
    assert line.startswith(f"videobooth-server: the backup {archive} is damaged: {said}")
    assert line.endswith("nothing was changed: use another copy of it")
    assert snapshot(target.root) == before

    checked = target.cli("restore", "--check", str(archive))
    assert checked.returncode == 1 and said in checked.stderr


def test_backup_from_a_newer_schema_or_format_is_refused(
    tmp_path: Path, sqlite_archive: Path
) -> None:
    # What a newer server would write: a database at a revision this one does not know.
    with tarfile.open(sqlite_archive) as tar:
        tar.extractall(tmp_path / "members", filter="data")
    database, key = tmp_path / "members" / "database.sqlite3", tmp_path / "members" / "server.key"
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099'")
    connection.close()
    files = {"database.sqlite3": database, "server.key": key}
    members = {name: Member.of(path) for name, path in files.items()}
    newer_schema = tmp_path / "newer-schema.tar"
    write_archive(
        newer_schema,
        Manifest(DatabaseKind.SQLITE, "0099", members, server_version="9.1.0"),
        files,
    )
    newer_format = tmp_path / "newer-format.tar"
    write_archive(
        newer_format,
        Manifest(
            DatabaseKind.SQLITE,
            "0099",
            members,
            server_version="9.1.0",
            format_version=FORMAT_VERSION + 1,
        ),
        files,
    )
    target = install(tmp_path / "target")
    before = snapshot(target.root)

    line = target.refused("restore", str(newer_schema))
    assert line == (
        f"videobooth-server: {newer_schema} holds a database at schema revision 0099 (made by "
        f"Videobooth 9.1.0), newer than this server knows (newest {head()}): restore it with "
        "Videobooth 9.1.0 or newer; nothing was changed"
    )
    line = target.refused("restore", str(newer_format))
    assert line == (
        f"videobooth-server: {newer_format} has archive format {FORMAT_VERSION + 1}, newer than "
        f"this server reads ({FORMAT_VERSION}): restore it with Videobooth 9.1.0 or newer"
    )
    assert snapshot(target.root) == before


def users_in(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT username FROM users ORDER BY username").fetchall()
    connection.close()
    return [row[0] for row in rows]


def test_backup_restore_onto_an_existing_installation_needs_force(
    tmp_path: Path, sqlite_archive: Path
) -> None:
    target = make_source(tmp_path / "target", revision="head")
    target.ok("user", "add", "someone", "--password-stdin", stdin="a long password here\n")
    database = target.data_dir / "videobooth.db"

    # Not even --force while a server runs on it.
    target.server.start()
    try:
        line = target.refused("restore", "--force", str(sqlite_archive))
    finally:
        target.server.stop()
    port = target.server.port
    assert line.startswith(f"videobooth-server: something answers on 127.0.0.1:{port}")
    assert "stop the server" in line

    # A write the old database's log still holds (as after a crash): it must not be replayed
    # into the restored file.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1])\n"
            "c.execute('PRAGMA journal_mode=WAL'); c.execute('PRAGMA wal_autocheckpoint=0')\n"
            "c.execute(\"UPDATE users SET display_name = 'stale'\"); c.commit()\n"
            "os._exit(0)\n",
            str(database),
        ],
        check=True,
    )
    assert Path(f"{database}-wal").stat().st_size > 0
    before = snapshot(target.root)

    line = target.refused("restore", str(sqlite_archive))
    assert line == (
        f"videobooth-server: there is a database at {database}; there is a server key at "
        f"{target.data_dir / 'server.key'}: nothing was changed. To replace what is there with "
        "the backup, stop the server and add --force"
    )
    assert snapshot(target.root) == before
    assert Path(f"{database}-wal").stat().st_size > 0

    target.ok("restore", "--force", str(sqlite_archive))
    assert users_in(database) == ["admin", "advisor"]
    with sqlite3.connect(database) as connection:
        names = connection.execute("SELECT display_name FROM users").fetchall()
    connection.close()
    assert ("stale",) not in names
    with tarfile.open(sqlite_archive) as tar:
        archived_key = tar.extractfile("server.key")
        assert archived_key is not None
        assert (target.data_dir / "server.key").read_bytes() == archived_key.read()
    # Nothing of the old files or the restore's own is left beside the new ones.
    assert {path.name for path in target.data_dir.iterdir()} == {"videobooth.db", "server.key"}


def test_backup_of_an_older_schema_is_migrated_on_restore(tmp_path: Path) -> None:
    source = make_source(tmp_path / "source", revision="0005")
    source.ok("backup", "-o", str(tmp_path / "old.tar"))
    target = install(tmp_path / "target")
    out = target.ok("restore", str(tmp_path / "old.tar"))
    assert f"database: migrating the restored copy from schema 0005 to {head()}" in out
    with sqlite3.connect(target.data_dir / "videobooth.db") as connection:
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    connection.close()
    assert revision == (head(),)


def test_backup_is_never_written_to_standard_output_nor_left_half_written(
    tmp_path: Path,
) -> None:
    source = make_source(tmp_path / "source")
    assert source.refused("backup", "--output", "-") == (
        "videobooth-server: a backup is never written to standard output: name a file or "
        "folder with --output"
    )
    out = tmp_path / "out"
    out.mkdir()
    (source.data_dir / "server.key").unlink()
    line = source.refused("backup", "-o", str(out))
    assert line.startswith(
        f"videobooth-server: there is no server key at {source.data_dir / 'server.key'}"
    )
    assert list(out.iterdir()) == []
    assert source.refused("backup", "-o", f"{out}/missing/") == (
        f"videobooth-server: the folder {out}/missing/ does not exist"
    )


def test_backup_restored_by_root_belongs_to_the_service_user(
    tmp_path: Path, sqlite_archive: Path
) -> None:
    if os.geteuid() != 0:  # CI runs as root: there a missing root is a failure
        unavailable("a restore by root, as an operator runs it, needs root")
    target = install(tmp_path / "target")
    service = pwd.getpwnam("nobody")  # stands in for the package's videobooth account
    os.chown(target.data_dir, service.pw_uid, service.pw_gid)
    target.ok("restore", str(sqlite_archive))
    for name in ("videobooth.db", "server.key"):
        owner = (target.data_dir / name).stat()
        assert (owner.st_uid, owner.st_gid) == (service.pw_uid, service.pw_gid), name


# ---------------------------------------------------------------------------------------------
# PostgreSQL


async def test_backup_restore_into_a_postgresql_database_that_is_not_empty_needs_force(
    tmp_path: Path, postgres_server: str
) -> None:
    source = install(tmp_path / "source", await create_database(postgres_server))
    source.ok("migrate")
    load_or_create_key(source.data_dir / "server.key")
    add_people(source, secrets.token_urlsafe(16))
    archive = tmp_path / "pg.tar"
    source.ok("backup", "-o", str(archive))
    assert source.database_url is not None
    await drop_database(source.database_url)

    # The same backup with a statement that fails near the end of its SQL: psql stops there.
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "members", filter="data")
    dump, key = tmp_path / "members" / "database.sql", tmp_path / "members" / "server.key"
    with dump.open("a") as sql:
        sql.write("SELECT no_such_function();\n")
    files = {"database.sql": dump, "server.key": key}
    members = {name: Member.of(path) for name, path in files.items()}
    failing = tmp_path / "failing.tar"
    write_archive(failing, Manifest(DatabaseKind.POSTGRESQL, head(), members), files)

    target_url = await create_database(postgres_server, migrated=True)
    target = install(tmp_path / "target", target_url)
    target.ok("user", "add", "someone", "--password-stdin", stdin="a long password here\n")
    load_or_create_key(target.data_dir / "server.key")
    before, files_before = await stored_rows(target_url), snapshot(target.root)
    try:
        line = target.refused("restore", str(archive))
        assert line.startswith(f"videobooth-server: the database {target_url} is not empty (")
        assert line.endswith("the backup, stop the server and add --force")
        assert await stored_rows(target_url) == before
        assert snapshot(target.root) == files_before

        # Failing halfway through, with --force: the old tables and the old key stay.
        line = target.refused("restore", "--force", str(failing))
        assert line.startswith(
            f"videobooth-server: psql could not restore into {target_url}, nothing was changed: "
        )
        assert "no_such_function" in line
        assert await stored_rows(target_url) == before
        assert snapshot(target.root) == files_before

        out = target.ok("restore", "--force", str(archive))
        assert "database: restored into" in out
        rows = (await stored_rows(target_url)).decode()
        assert "advisor" in rows and "admin" in rows and "someone" not in rows
        assert (target.data_dir / "server.key").read_bytes() == key.read_bytes()
    finally:
        await drop_database(target_url)


def test_backup_gives_the_postgresql_password_to_its_tools_in_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An operator's own PG* settings must not win over the URL (libpq prefers PGPASSWORD to
    # the password file).
    monkeypatch.setenv("PGPASSWORD", "inherited")
    monkeypatch.setenv("PGHOST", "elsewhere.example")
    password = "p:ss\\word with spaces"
    url = (
        "postgresql+asyncpg://videobooth:p%3Ass%5Cword%20with%20spaces@db.example:5433/vb"
        "?ssl=require"
    )
    env = libpq_environment(url, tmp_path)
    assert not any(password in value for value in env.values())
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGDATABASE"]) == (
        "db.example",
        "5433",
        "videobooth",
        "vb",
    )
    assert env["PGSSLMODE"] == "require"
    passfile = Path(env["PGPASSFILE"])
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    assert passfile.read_text() == "*:*:*:*:p\\:ss\\\\word with spaces\n"
    assert "PGPASSWORD" not in env
