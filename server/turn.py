"""Short-lived TURN credentials in coturn's ``use-auth-secret`` (TURN REST API) scheme.

The username is ``<expiry unix time>:<label>`` and the password is
``base64(HMAC-SHA1(static-auth-secret, username))``. coturn recomputes the password from the
shared secret, so the server never stores per-user relay credentials, and a credential stops
working at its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from protocol import IceServer
from server.config import TurnConfig


def turn_credential(secret: str, username: str) -> str:
    """The password coturn expects for ``username`` under ``static-auth-secret``."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def ice_servers_for(
    turn: TurnConfig | None, label: str, *, now: float | None = None
) -> list[IceServer]:
    """The ICE servers one participant gets: the relay with its own expiring credential."""
    if turn is None:
        return []
    expiry = int(now if now is not None else time.time()) + turn.ttl_seconds
    username = f"{expiry}:{label}"
    return [
        IceServer(
            urls=list(turn.urls),
            username=username,
            credential=turn_credential(turn.secret, username),
        )
    ]
