"""Which database schemas this server knows (its Alembic revisions)."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from server.storage.database import alembic_config

from .archive import Manifest
from .errors import NewerBackupError

__all__ = ["head", "upgrade_from"]


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The newest schema revision this server knows."""
    newest = _script().get_current_head()
    assert newest is not None  # the package ships its migrations
    return newest


def upgrade_from(manifest: Manifest, archive: Path) -> str | None:
    """The revision a restored database must be migrated from, or None when it is current;
    :class:`NewerBackupError` for a schema this server does not know (a newer one)."""
    script = _script()
    newest = script.get_current_head()
    revision = manifest.schema_revision
    if revision not in {known.revision for known in script.walk_revisions()}:
        raise NewerBackupError(
            f"{archive} holds a database at schema revision {revision} (made by Videobooth "
            f"{manifest.server_version}), newer than this server knows (newest {newest}): "
            f"restore it with Videobooth {manifest.server_version} or newer; nothing was changed"
        )
    return None if revision == newest else revision
