"""The server's own secret: a random key in a file beside the data, never in the database.

It keys the hashes of appointment join codes (an 8-digit code is one of only 10**8, so a plain
hash in a stolen database could be reversed by trying them all). Several server processes on
one database must share the file. Losing it only invalidates the codes of appointments not yet
held; their links keep working.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

KEY_BYTES = 32


class KeyFileError(RuntimeError):
    """The key file cannot be read or made; the message says what to do."""


def load_or_create_key(path: Path) -> bytes:
    """The key in ``path``, made (mode 0600) on first use."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    except OSError as exc:
        raise KeyFileError(f"cannot create the server key {path}: {exc.strerror}") from exc
    key = secrets.token_bytes(KEY_BYTES)
    with os.fdopen(fd, "w") as out:
        out.write(key.hex() + "\n")
    log.info("created the server key %s", path)
    return key


def _read(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the server key {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the server key %s is readable by others; run chmod 600 on it", path)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileError(
            f"the server key {path} is damaged (expected {KEY_BYTES * 2} hex digits); restore it "
            "from the backup, or delete it to make a new one (codes already sent stop working)"
        )
    return key
