"""What a booth signs to log in; shared by the booth (signing) and the server (checking)."""

from __future__ import annotations


def booth_auth_text(booth_id: str, nonce: str) -> bytes:
    """The purpose, the booth and the server's one-time nonce, as the signed bytes."""
    return f"videobooth-booth-auth-v1\n{booth_id}\n{nonce}".encode()
