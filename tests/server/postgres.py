"""A throwaway PostgreSQL for storage tests: a cluster of its own, one database per test.

The session fixture ``postgres_server`` runs ``initdb`` into a temporary folder (as the
``postgres`` account when the tests run as root: ``initdb`` refuses root), starts the cluster
on a free port of 127.0.0.1 and removes it at the end of the session. The binaries come from
``pg_config --bindir`` or ``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql`` package).

``VIDEOBOOTH_TEST_POSTGRES_URL`` (``postgresql+asyncpg://user@host:port``) points the tests at
an existing server instead. Without either, the tests are skipped with the reason, except in CI,
where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from server.storage import migrate
from tests.components import require, unavailable

ENV_URL = "VIDEOBOOTH_TEST_POSTGRES_URL"
WHY = "PostgreSQL for the storage tests (package postgresql)"

# Per server URL: a database migrated to the newest schema, cloned for each test that wants one.
_templates: dict[str, str] = {}


def _bindir() -> str:
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found and os.access(os.path.join(found, "initdb"), os.X_OK):
            return found
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: (len(path), path),  # 9.6 < 15 < 16: the newest last
    )
    initdb = os.path.join(versions[-1], "initdb") if versions else "initdb"
    return os.path.dirname(require(initdb, WHY))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(name: str, command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        unavailable(f"{name} could not start PostgreSQL for the storage tests: {output}")


#: How to restart each PostgreSQL this session started. ``-m fast``: its connections are cut at
#: once, but what was committed is kept (the tests' server runs without fsync and synchronous
#: commits, so a crash, ``-m immediate``, would lose the last commits, as it would anywhere
#: configured so).
_restarts: dict[str, list[str]] = {}


def restart_postgres(url: str) -> None:
    """Restart the PostgreSQL serving ``url``, cutting every connection (only one this session
    started; with an external server a test that needs this is skipped, and fails in CI)."""
    server = next((s for s in _restarts if url.startswith(s + "/") or url == s), None)
    if server is None:
        unavailable("PostgreSQL is external to the tests: it cannot be restarted here")
    # Its output goes to its log: a pipe here would be held open by the server it starts.
    subprocess.run(
        _restarts[server], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL of a running PostgreSQL, started for this test session when needed."""
    if os.environ.get(ENV_URL):
        server = os.environ[ENV_URL].rstrip("/")
        yield server
        _drop_template(server)
        return
    bindir = _bindir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: the cluster belongs to the postgres account.
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            unavailable(f"running as root and there is no postgres account ({WHY})")
        as_user = [require("runuser", "to run initdb as the postgres account"), "-u", "postgres"]
        as_user.append("--")
    workdir = tempfile.mkdtemp(prefix="videobooth-pg-")
    data, port = os.path.join(workdir, "data"), _free_port()
    pg_ctl = [*as_user, f"{bindir}/pg_ctl", "-D", data]
    try:
        if as_user:
            shutil.chown(workdir, user="postgres")
        _run("initdb", [*as_user, f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres"])
        options = (
            f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        _run("pg_ctl", [*pg_ctl, "-o", options, "-l", os.path.join(workdir, "log"), "-w", "start"])
        server = f"postgresql+asyncpg://postgres@127.0.0.1:{port}"
        log = os.path.join(workdir, "log")
        _restarts[server] = [*pg_ctl, "-o", options, "-l", log, "-m", "fast", "-w", "restart"]
        yield server
        _templates.pop(server, None)
        _restarts.pop(server, None)
    finally:
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


async def create_database(server: str, *, migrated: bool = False) -> str:
    """A new database on ``server`` for one test; its URL.

    It is empty, or with ``migrated`` already at the newest schema (a copy of a template
    migrated once per session, which is much faster than migrating each one).
    """
    template = ""
    if migrated:
        if server not in _templates:
            _templates[server] = await _create(server, "")
            await migrate(f"{server}/{_templates[server]}")
        template = _templates[server]
    return f"{server}/{await _create(server, template)}"


async def _create(server: str, template: str) -> str:
    import asyncpg

    name = f"t_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(_admin_dsn(server))
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await connection.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await connection.close()
    return name


async def drop_database(url: str) -> None:
    import asyncpg

    server, _, name = url.rpartition("/")
    connection = await asyncpg.connect(_admin_dsn(server))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _drop_template(server: str) -> None:
    template = _templates.pop(server, None)
    if template:
        asyncio.run(drop_database(f"{server}/{template}"))


async def stored_rows(url: str) -> bytes:
    """Every row of every table in the database at ``url`` as text: what PostgreSQL stores."""
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tables = await connection.fetch(
            "SELECT quote_ident(table_name) AS name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        rows = []
        for table in tables:
            # The name comes from the catalogue, quoted by quote_ident.
            query = f"SELECT t::text AS row FROM {table['name']} t"  # noqa: S608
            rows += await connection.fetch(query)
    finally:
        await connection.close()
    return "\n".join(row["row"] for row in rows).encode()


def _admin_dsn(server: str) -> str:
    return server.replace("postgresql+asyncpg", "postgresql") + "/postgres"
