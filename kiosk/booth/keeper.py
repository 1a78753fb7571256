"""Keeping a wait or a call up without the citizen: resume after the link comes back, repair a
media path that does not heal, end the call when it stays broken too long.

The keeper's :class:`Recovery` state changes in one place (:meth:`ConnectionKeeper._set_state`),
which logs ``old -> new`` as aiortc does for a peer connection's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from kiosk.identity import ServerAccess
from kiosk.link import LinkState, ServerLink
from kiosk.peerlink import PeerLink
from kiosk.technician import measure_round_trip
from protocol import Hangup, HangupReason, IceServer, Resume, Resumed

log = logging.getLogger(__name__)

#: A new peer connection that is not connected after this long counts as broken.
SETUP_SECONDS = 15.0
#: Media silent this long makes the booth look into it (Chrome calls this "disconnected").
MEDIA_SILENCE_SECONDS = 3.0
#: A path that does not heal within this long after the server answered is made anew.
REPAIR_CONFIRM_SECONDS = 2.0
#: A connection made anew gets this long before it is made anew again.
REPAIR_RETRY_SECONDS = 10.0
WATCH_SECONDS = 0.5


class Recovery(StrEnum):
    """Where the keeper is with the booth's wait or call."""

    #: No wait or call to keep.
    IDLE = "idle"
    #: A wait or a call, and its connections work.
    STEADY = "steady"
    #: The link or a media path is broken; the keeper resumes and repairs.
    INTERRUPTED = "interrupted"
    #: Broken past the reconnect limit: the call is being ended.
    GIVEN_UP = "given_up"


@dataclass(frozen=True)
class Repair:
    """Make the peer connection with ``participant_id`` anew (its path did not heal)."""

    participant_id: str


class ConnectionKeeper:
    """Watches the link and the call's peer connections while a wait or a call runs."""

    def __init__(
        self,
        *,
        link: ServerLink,
        access: ServerAccess,
        session_id: Callable[[], str | None],
        legs: Callable[[], list[PeerLink]],
        post: Callable[[Repair | Hangup], None],
        reconnect_limit_seconds: float,
    ) -> None:
        self._link = link
        self._access = access
        self._session_id = session_id
        self._legs = legs
        self._post = post
        self._limit = reconnect_limit_seconds
        self._state = Recovery.IDLE
        #: Takes the call (or the wait) up again after the link to the server was lost.
        self.resume_token: str | None = None
        #: Relay credentials from the latest resume, for connections made anew.
        self.ice_servers: list[IceServer] | None = None
        #: Participants whose own connection to the server is lost for the moment.
        self.away: set[str] = set()
        #: Since when the call's connection is broken (None: it is not); the call ends
        #: after ``reconnect_limit_seconds`` of it.
        self.trouble_since: float | None = None
        self._server_seen_at = 0.0
        self._probe: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def state(self) -> Recovery:
        return self._state

    def _set_state(self, state: Recovery) -> None:
        if state is not self._state:
            log.info("session %s: recovery %s -> %s", self._session_id(), self._state, state)
            self._state = state

    @property
    def reconnecting(self) -> bool:
        """The call's connection is broken for the moment (the screens say so)."""
        return self._session_id() is not None and (
            self._link.state is not LinkState.ONLINE or self.trouble_since is not None
        )

    def keep(self, resume_token: str | None) -> None:
        """A wait (or a call) to keep up: the link comes back at once, and is watched."""
        if resume_token is not None:
            self.resume_token = resume_token
        self._link.urgent = True
        self.watch()

    def watch(self) -> None:
        if self._state is Recovery.IDLE:
            self._set_state(Recovery.STEADY)
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(
                self._watch_media(), name="media-watchdog"
            )

    def link_up(self) -> None:
        """The link is back: take the wait or call up again, before anything else is sent."""
        self._server_seen_at = time.monotonic()
        session_id = self._session_id()
        if session_id is not None and self.resume_token is not None:
            log.info("session %s: taking the call up again", session_id)
            self._link.send(Resume(id="resume", session_id=session_id, token=self.resume_token))

    def resumed(self, message: Resumed) -> None:
        self.away = set(message.away)
        if message.ice_servers:
            self.ice_servers = message.ice_servers
        log.info("session %s: resumed (%d away)", message.session_id, len(self.away))

    async def stop(self) -> None:
        """The wait or call is over: forget everything about keeping it."""
        for task in (self._watchdog, self._probe):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._watchdog = self._probe = None
        self._link.urgent = False
        self.resume_token = None
        self.ice_servers = None
        self.away = set()
        self.trouble_since = None
        self._set_state(Recovery.IDLE)

    async def _watch_media(self) -> None:
        """Keep the call up without the citizen: a path that heals by itself (a short outage)
        is left alone; media that stops while the server still answers (a relay restarted, a
        path that will not come back) gets a new peer connection; a call broken for longer
        than ``reconnect_limit_seconds`` ends with a clear message."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            self._check(time.monotonic())

    def _check(self, now: float) -> None:
        troubled = self._link.state is not LinkState.ONLINE
        for leg in self._legs():
            failed = leg.pc.connectionState == "failed"
            if leg.connected_at is None and not failed:
                if now - leg.created_at < SETUP_SECONDS:
                    continue  # still being set up
                silent_since = leg.created_at
            else:
                silent_since = max(leg.media_seen_at(), leg.connected_at or 0.0)
            if not failed and now - silent_since < MEDIA_SILENCE_SECONDS:
                continue
            troubled = True
            peer = leg.peer.participant_id
            if self._link.state is not LinkState.ONLINE or peer in self.away:
                continue  # nothing can be signalled now; the path may heal meanwhile
            if leg.restart and now - leg.created_at < REPAIR_RETRY_SECONDS:
                continue  # a connection made anew gets its time
            # The server answering after the media stopped tells a broken media path from
            # a network that is down as a whole (which heals, or ends in failed).
            answered = self._server_seen_at > silent_since
            if failed or (answered and now - self._server_seen_at >= REPAIR_CONFIRM_SECONDS):
                self._post(Repair(peer))
            elif not answered:
                self._probe_server()
        session_id = self._session_id()
        if not troubled:
            self.trouble_since = None
            self._set_state(Recovery.STEADY)
        elif self.trouble_since is None:
            self.trouble_since = now
            log.warning("session %s: connection interrupted", session_id)
            self._set_state(Recovery.INTERRUPTED)
        elif now - self.trouble_since >= self._limit:
            log.error(
                "session %s: connection not back after %.0f s; ending the call",
                session_id,
                now - self.trouble_since,
            )
            self._set_state(Recovery.GIVEN_UP)
            if session_id is not None:
                self._link.send(Hangup(session_id=session_id, reason=HangupReason.CONNECTION_LOST))
            self._post(Hangup(session_id="local", reason=HangupReason.CONNECTION_LOST))
            self.trouble_since = now  # once, not every half second until it is handled

    def _probe_server(self) -> None:
        if self._probe is not None and not self._probe.done():
            return

        async def probe() -> None:
            try:
                async with asyncio.timeout(2.0):
                    answered = await measure_round_trip(self._access) is not None
            except TimeoutError:
                answered = False
            if answered:
                self._server_seen_at = time.monotonic()

        self._probe = asyncio.get_running_loop().create_task(probe(), name="server-probe")
