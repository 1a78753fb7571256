"""A throwaway PostgreSQL for storage tests: a cluster of its own, one database per test.

``VIDEOBOOTH_TEST_POSTGRES_URL`` (``postgresql+asyncpg://user@host:port``) points the tests at
an existing server instead. Without either, the tests are skipped with the reason, except in CI,
where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from tests.components import require

ENV_URL = "VIDEOBOOTH_TEST_POSTGRES_URL"


def _bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    initdb = os.path.join(found[-1], "initdb") if found else "initdb"
    return os.path.dirname(require(initdb, "PostgreSQL for the storage tests (package postgresql)"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL of a running PostgreSQL, started for this test session when needed."""
    if os.environ.get(ENV_URL):
        yield os.environ[ENV_URL].rstrip("/")
        return
    bindir = _bindir()
    workdir = tempfile.mkdtemp(prefix="videobooth-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: the cluster belongs to the postgres account.
        shutil.chown(workdir, user="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(workdir, "data"), _free_port()
    subprocess.run(
        [*as_user, f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *as_user,
            f"{bindir}/pg_ctl",
            "-D",
            data,
            "-o",
            options,
            "-l",
            os.path.join(workdir, "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


async def create_database(server: str) -> str:
    """A new, empty database on ``server`` for one test; its URL."""
    import asyncpg

    name = f"t_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(_admin_dsn(server))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return f"{server}/{name}"


async def drop_database(url: str) -> None:
    import asyncpg

    server, _, name = url.rpartition("/")
    connection = await asyncpg.connect(_admin_dsn(server))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _admin_dsn(server: str) -> str:
    return server.replace("postgresql+asyncpg", "postgresql") + "/postgres"
