"""Short-lived TURN credentials in coturn's ``use-auth-secret`` (TURN REST API) scheme, and
which relays of the pool a participant gets.

The username is ``<expiry unix time>:<label>`` and the password is
``base64(HMAC-SHA1(static-auth-secret, username))``. coturn recomputes the password from the
shared secret, so the server never stores per-user relay credentials, and a credential stops
working at its expiry. Every relay of the pool shares the secret, so one credential works on
each of them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Collection

from protocol import IceServer
from server.config import RelayConfig, TurnConfig

log = logging.getLogger(__name__)

#: Relays a participant gets when the pool has that many up: the first carries the call, the
#: second is there when the first fails (a browser gathers from both).
RELAYS_PER_PARTICIPANT = 2


def turn_credential(secret: str, username: str) -> str:
    """The password coturn expects for ``username`` under ``static-auth-secret``."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _weight(key: str, relay: RelayConfig) -> bytes:
    return hashlib.sha256(f"{key}\0{relay.name}".encode()).digest()


def relay_order(
    pool: tuple[RelayConfig, ...], key: str, *, down: Collection[str] = ()
) -> list[RelayConfig]:
    """The relays for ``key`` (a call's session), the preferred first.

    Rendezvous hashing: calls spread evenly over the pool, every participant of one call gets
    the same order (both ends prefer the same relay), and a relay that goes down moves only the
    calls that preferred it. Relays in ``down`` are left out, unless every relay is down: then
    all of them, in case a probe was wrong.
    """
    ranked = sorted(pool, key=lambda relay: _weight(key, relay), reverse=True)
    up = [relay for relay in ranked if relay.name not in down]
    if up:
        return up
    log.warning(
        "every relay is down (%s): handing out all of them",
        ", ".join(relay.name for relay in pool),
    )
    return ranked


def ice_servers_for(
    turn: TurnConfig | None,
    label: str,
    *,
    now: float | None = None,
    spread_by: str | None = None,
    down: Collection[str] = (),
) -> list[IceServer]:
    """The ICE servers one participant gets: up to :data:`RELAYS_PER_PARTICIPANT` relays of
    the pool that are not ``down``, in the order :func:`relay_order` gives for ``spread_by``
    (default: ``label``), each with the participant's own expiring credential."""
    if turn is None:
        return []
    expiry = int(now if now is not None else time.time()) + turn.ttl_seconds
    username = f"{expiry}:{label}"
    credential = turn_credential(turn.secret, username)
    relays = relay_order(turn.pool, spread_by or label, down=down)
    return [
        IceServer(urls=list(relay.urls), username=username, credential=credential)
        for relay in relays[:RELAYS_PER_PARTICIPANT]
    ]
