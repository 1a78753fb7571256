"""PostgreSQL: ``pg_dump``'s plain SQL (without owners and privileges, so another role can
load it into another database), restored with ``psql`` in one transaction into an empty
database, or with ``force`` into one whose tables are dropped in that same transaction.

The tools get the connection from ``database_url`` in their environment and the password in a
private password file: never on a command line, which anyone on the machine may list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from server.storage import StorageError, migrate
from server.storage.database import create_engine

from . import schema
from .archive import DatabaseKind
from .base import Progress
from .errors import BackupError

__all__ = ["PostgresDatabase", "dump_revision", "libpq_environment"]

log = logging.getLogger(__name__)

#: URL query parameters (asyncpg's and libpq's names) and the libpq variables they become.
_LIBPQ_PARAMETERS = {
    "host": "PGHOST",
    "port": "PGPORT",
    "ssl": "PGSSLMODE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}

_REVISION_COPY = "COPY public.alembic_version (version_num) FROM stdin;"

#: What a restore replaces: the relations in schema public, where the migrations put
#: everything. Checked again inside the restoring transaction.
_RELATIONS = (
    "SELECT c.relname AS name, c.relkind AS kind FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
)
_REFUSE_NON_EMPTY = f"""
DO $videobooth$
BEGIN
  IF EXISTS ({_RELATIONS}) THEN
    RAISE EXCEPTION 'the database is not empty any more; nothing was restored';
  END IF;
END
$videobooth$;
"""
_CLEAR = f"""
DO $videobooth$
DECLARE
  item record;
BEGIN
  FOR item IN {_RELATIONS} LOOP
    EXECUTE format(
      CASE item.kind
        WHEN 'v' THEN 'DROP VIEW IF EXISTS public.%I CASCADE'
        WHEN 'm' THEN 'DROP MATERIALIZED VIEW IF EXISTS public.%I CASCADE'
        WHEN 'S' THEN 'DROP SEQUENCE IF EXISTS public.%I CASCADE'
        WHEN 'f' THEN 'DROP FOREIGN TABLE IF EXISTS public.%I CASCADE'
        ELSE 'DROP TABLE IF EXISTS public.%I CASCADE'
      END, item.name);
  END LOOP;
  FOR item IN SELECT t.typname AS name FROM pg_catalog.pg_type t
      JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
      WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') LOOP
    EXECUTE format('DROP TYPE IF EXISTS public.%I CASCADE', item.name);
  END LOOP;
END
$videobooth$;
"""  # noqa: S608 (constant text, no input in it)


class PostgresDatabase:
    """The PostgreSQL database of ``database_url``."""

    kind = DatabaseKind.POSTGRESQL

    def __init__(self, url: str, parsed: URL) -> None:
        self.url = url
        self.where = parsed.render_as_string(hide_password=True)

    async def dump(self, into: Path) -> str:
        pg_dump = _tool("pg_dump")
        with _private_folder() as private:
            failure = await _run_tool(
                [
                    pg_dump,
                    "--format=plain",
                    "--no-owner",
                    "--no-privileges",
                    "--no-tablespaces",
                    "--no-publications",
                    "--no-subscriptions",
                    "--no-security-labels",
                    f"--file={into}",
                ],
                libpq_environment(self.url, private),
            )
        if failure:
            raise BackupError(f"pg_dump could not back up {self.where}: {failure}")
        return dump_revision(into)

    async def existing(self) -> str | None:
        engine = create_engine(self.url)
        try:
            async with engine.connect() as connection:
                query = text(f"SELECT count(*) FROM ({_RELATIONS}) AS r")  # noqa: S608
                count = (await connection.execute(query)).scalar_one()
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise BackupError(f"cannot reach the database {self.where}: {reason}") from None
        finally:
            await engine.dispose()
        if not count:
            return None
        return f"the database {self.where} is not empty ({count} tables, views or sequences)"

    def workdir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="videobooth-restore-"))

    async def stage(self, copy: Path, upgrade_from: str | None, progress: Progress) -> None:
        return None

    async def install(self, copy: Path, *, replace: bool, progress: Progress) -> None:
        psql = _tool("psql")
        before = copy.with_name("before.sql")
        before.write_text(_CLEAR if replace else _REFUSE_NON_EMPTY, encoding="utf-8")
        progress(f"database: loading into {self.where} (psql, one transaction)")
        with _private_folder() as private:
            failure = await _run_tool(
                [
                    psql,
                    "--no-psqlrc",
                    "--quiet",
                    "--single-transaction",
                    "--set=ON_ERROR_STOP=1",
                    f"--file={before}",
                    f"--file={copy}",
                ],
                libpq_environment(self.url, private),
            )
        if failure:
            raise BackupError(
                f"psql could not restore into {self.where}, nothing was changed: {failure}"
            )
        progress(f"database: restored into {self.where}")

    async def finish(self, upgrade_from: str | None, progress: Progress) -> None:
        if upgrade_from is None:
            return
        progress(f"database: migrating from schema {upgrade_from} to {schema.head()}")
        try:
            await migrate(self.url)
        except StorageError as exc:
            raise BackupError(
                f"the backup is restored at schema {upgrade_from}, but migrating it failed: "
                f"{exc}; run videobooth-server migrate once that is fixed"
            ) from None


def dump_revision(copy: Path) -> str:
    """The schema revision in a plain dump (the row of its table alembic_version)."""
    try:
        with copy.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if line.rstrip("\n") == _REVISION_COPY:
                    value = next(lines, "\\.").rstrip("\n")
                    if value != "\\.":
                        return value
                    break
    except OSError as exc:
        raise BackupError(f"cannot read the database dump: {exc.strerror or exc}") from None
    raise BackupError(
        "the dump has no schema revision (table alembic_version): run videobooth-server "
        "migrate on the database first"
    )


def libpq_environment(url: str, private: Path) -> dict[str, str]:
    """The environment that points ``pg_dump`` and ``psql`` at the database of ``url``.

    The password goes into a password file in the folder ``private`` (mode 0600), named by
    ``PGPASSFILE``: never onto a command line or into the environment. Inherited ``PG*``
    variables are dropped (an operator's ``PGPASSWORD`` would win over the file), so the URL
    alone says where to connect.
    """
    parsed = make_url(url)
    env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    env["PGAPPNAME"] = "videobooth-backup"
    env["PGCONNECT_TIMEOUT"] = "15"
    if parsed.host:
        env["PGHOST"] = parsed.host
    if parsed.port:
        env["PGPORT"] = str(parsed.port)
    if parsed.username:
        env["PGUSER"] = parsed.username
    if parsed.database:
        env["PGDATABASE"] = parsed.database
    for name, value in parsed.query.items():
        variable = _LIBPQ_PARAMETERS.get(name)
        if variable is None:
            log.debug("database_url parameter %s is not passed to the PostgreSQL tools", name)
            continue
        value = value if isinstance(value, str) else value[0]
        env[variable] = {"true": "require", "false": "disable"}.get(value, value)
    passfile = private / "pgpass"
    password = parsed.password or ""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        if password:
            out.write(f"*:*:*:*:{escaped}\n")
    env["PGPASSFILE"] = str(passfile)
    return env


@contextlib.contextmanager
def _private_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="videobooth-pg-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed: install the Debian package postgresql-client (the "
            "PostgreSQL server's major version or newer)"
        )
    return found


async def _run_tool(command: list[str], env: Mapping[str, str]) -> str:
    """Run a PostgreSQL tool; the first error line of its output if it fails, else ''."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    _, stderr = await process.communicate()
    if process.returncode == 0:
        return ""
    lines = stderr.decode(errors="replace").splitlines()
    errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
    return (errors or lines or [f"exit status {process.returncode}"])[0].strip()
