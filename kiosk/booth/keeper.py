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

from kiosk.booth.relayprobe import RelayAddress, RelayWatch, relay_address
from kiosk.identity import ServerAccess
from kiosk.link import LinkState, ServerLink
from kiosk.peerlink import PeerLink
from kiosk.technician import measure_round_trip
from protocol import Hangup, HangupReason, IceServer, Resume, Resumed

log = logging.getLogger(__name__)

#: A new peer connection that is not connected after this long counts as broken.
SETUP_SECONDS = 15.0
#: Media silent this long makes the call "interrupted" on the screens (Chrome's "disconnected").
MEDIA_SILENCE_SECONDS = 3.0
#: Media silent this long makes the booth ask the call's relays, every
#: :data:`~kiosk.booth.relayprobe.PROBE_SECONDS`, whether they answer (audio alone comes every
#: 20 ms: this is no jitter).
PROBE_AFTER_SECONDS = 0.4
#: The relay answers but the media stays silent this long: the old path will not heal (its
#: allocation is gone with a restarted relay, or ICE gave up) and the replacement, prepared as
#: soon as the relay answered, takes over ...
HEAL_GRACE_SECONDS = 0.3
#: ... or this long when the relay was gone and is back: a path that heals after an outage
#: carries media again within a few round trips (0.1 to 0.4 s measured on a loaded machine,
#: the browser checking its path first).
RETURN_GRACE_SECONDS = 0.5
#: A connection made anew gets this long to connect before it is made anew again; sooner when
#: its relay went away after it was made and is back (it was made against nothing).
REPAIR_RETRY_SECONDS = 5.0
#: Without a relay to probe (no TURN): a path that does not heal within this long after the
#: server answered is made anew.
REPAIR_CONFIRM_SECONDS = 2.0
#: Without a relay to probe, media silent this long makes the booth look into it.
NO_RELAY_SILENCE_SECONDS = MEDIA_SILENCE_SECONDS
WATCH_SECONDS = 0.1


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


class RepairStep(StrEnum):
    #: Make the replacement connection (candidates gathered, offer made) without sending it.
    PREPARE = "prepare"
    #: Put the replacement (the prepared one, or one made now) in place of the broken one.
    SWITCH = "switch"
    #: The old path carries media again: drop a prepared replacement, and send a key frame at
    #: once (the other side's decoder lost its reference; waiting for it to ask costs a second).
    HEALED = "healed"


@dataclass(frozen=True)
class Repair:
    """A step in making the peer connection with ``participant_id`` anew (its path did not
    heal); ``relay_turn``: which of the call's relays goes first (:attr:`PeerLink.relay_turn`),
    None for the one after the broken connection's."""

    participant_id: str
    step: RepairStep = RepairStep.SWITCH
    relay_turn: int | None = None
    #: Since when the old connection's media is silent: media since then (it came while the
    #: switch waited its turn) means the old path healed after all.
    silent_since: float | None = None


@dataclass
class _Outage:
    """One leg's media silent since ``since``, and what was done about it."""

    since: float
    #: The leg was still being set up (a connection made anew, no media through it yet).
    setting_up: bool = False
    prepared: int | None = None
    #: When the replacement was asked for (None: not yet).
    switched_at: float | None = None


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
        relays: RelayWatch | None = None,
        clock: Callable[[], float] = time.monotonic,
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
        #: The call's relays, asked while a leg's media is silent.
        self._relays = relays or RelayWatch()
        self._clock = clock
        # A relay that answers again is acted on at once, not at the next tick.
        self._relays.on_change = lambda: self._check(self._clock())
        self._outages: dict[PeerLink, _Outage] = {}
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
        self._server_seen_at = self._clock()
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
        await self._relays.close()
        self._outages = {}
        self._link.urgent = False
        self.resume_token = None
        self.ice_servers = None
        self.away = set()
        self.trouble_since = None
        self._set_state(Recovery.IDLE)

    async def _watch_media(self) -> None:
        """Keep the call up without the citizen: a path that heals by itself (a short outage)
        is left alone; media that stops while its relay answers (a relay restarted, a path
        that will not come back) gets a new peer connection, prepared while the old one is
        given a moment to heal; a relay that stops answering is asked a few times a second
        until it (or another relay of the call) answers again; a call broken for longer than
        ``reconnect_limit_seconds`` ends with a clear message."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            self._check(self._clock())

    def _check(self, now: float) -> None:
        troubled = self._link.state is not LinkState.ONLINE
        legs = self._legs()
        self._outages = {leg: o for leg, o in self._outages.items() if leg in legs}
        for leg in legs:
            if self._check_leg(leg, now):
                troubled = True
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
            self.trouble_since = now  # once, not every tick until it is handled

    def _check_leg(self, leg: PeerLink, now: float) -> bool:
        """Look after one peer connection; whether it is broken for the screens."""
        failed = leg.pc.connectionState in ("failed", "closed")
        seen_at = leg.media_seen_at()
        # Connected is not enough: a connection made anew is set up once media comes through.
        heard = leg.received.last_at is not None
        setting_up = not failed and (leg.connected_at is None or not heard)
        if setting_up:
            silent_since = leg.created_at
            troubled = now - silent_since >= SETUP_SECONDS
            if not leg.restart and not troubled:
                return False  # the call's first connection: still being set up
        else:
            silent_since = max(seen_at, leg.connected_at or 0.0)
            troubled = failed or now - silent_since >= MEDIA_SILENCE_SECONDS
        peer = leg.peer.participant_id
        if not failed and now - silent_since < PROBE_AFTER_SECONDS:
            outage = self._outages.pop(leg, None)
            if outage is not None and outage.switched_at is None and not outage.setting_up:
                log.info("session %s: the path to %s healed", leg.session_id, leg.peer.name)
                self._post(Repair(peer, RepairStep.HEALED))
            return troubled
        servers = self.ice_servers or leg.started.ice_servers
        order = _relay_order(servers, leg)
        if not order:
            self._check_without_relays(leg, now, silent_since, failed)
            return troubled
        outage = self._outages.get(leg)
        if outage is None or (outage.since != silent_since and not setting_up):
            outage = self._outages[leg] = _Outage(since=silent_since, setting_up=setting_up)
        if outage.switched_at is not None:
            if now - outage.switched_at < REPAIR_RETRY_SECONDS:
                return troubled  # the replacement is on its way
            outage.switched_at = outage.prepared = None  # it never came: again
        self._relays.want([relay for _, relay in order], now)
        choice = self._choose(order, outage.since)
        if choice is None:
            return troubled  # nothing answers: keep asking
        turn, relay = choice
        if self._link.state is not LinkState.ONLINE:
            self._link.retry_now()  # a relay answers: the network is back, and so is the server
        # Nothing can be signalled while the link is down or the other side is away.
        can_signal = self._link.state is LinkState.ONLINE and peer not in self.away
        switch = can_signal and self._switch_now(leg, outage, relay, order[0][1], now)
        # A broken path gets its replacement ready at once; a connection still being set up
        # only when it is given up (it is the replacement).
        if outage.prepared != turn and (switch or not setting_up):
            outage.prepared = turn
            self._post(Repair(peer, RepairStep.PREPARE, turn))
        if switch:
            outage.switched_at = now
            since = None if failed else outage.since
            self._post(Repair(peer, RepairStep.SWITCH, turn, silent_since=since))
        return troubled

    def _switch_now(
        self, leg: PeerLink, outage: _Outage, relay: RelayAddress, own: RelayAddress, now: float
    ) -> bool:
        """Whether the replacement through ``relay`` (which answers) takes over now."""
        failed = leg.pc.connectionState in ("failed", "closed")
        health = self._relays.health(relay)
        assert health.up_since is not None  # it was chosen for answering
        if failed or relay != own:
            return True  # nothing to wait for: ICE gave up, or the relay is gone
        if outage.setting_up:
            # Made while the relay was away (or it went away since): nothing will come of it.
            went_away = health.gone_at is not None and health.gone_at > leg.created_at
            return went_away or now - leg.created_at >= REPAIR_RETRY_SECONDS
        back = max(health.up_since, outage.since + PROBE_AFTER_SECONDS)
        returned = health.gone_at is not None and health.gone_at > outage.since
        return now - back >= (RETURN_GRACE_SECONDS if returned else HEAL_GRACE_SECONDS)

    def _choose(
        self, order: list[tuple[int, RelayAddress]], since: float
    ) -> tuple[int, RelayAddress] | None:
        """The relay a new connection should go through: the leg's own while it answers, else
        the first other that answers once the own one is gone; None while nothing answers (or
        the own one's fate is not known yet). Only answers since the media stopped count."""
        own_turn, own = order[0]
        health = self._relays.health(own)
        if own_turn >= 0:  # still handed out
            if health.answers_since(since):
                return order[0]
            if not health.gone:
                return None
        for turn, relay in order[1:]:
            if self._relays.health(relay).answers_since(since):
                return turn, relay
        return None

    def _check_without_relays(
        self, leg: PeerLink, now: float, silent_since: float, failed: bool
    ) -> None:
        """No relay to ask (the call has no TURN server): the server answering after the media
        stopped tells a broken media path from a network that is down as a whole."""
        if not failed and now - silent_since < NO_RELAY_SILENCE_SECONDS:
            return
        peer = leg.peer.participant_id
        if self._link.state is not LinkState.ONLINE or peer in self.away:
            return  # nothing can be signalled now; the path may heal meanwhile
        if leg.restart and now - leg.created_at < REPAIR_RETRY_SECONDS:
            return  # a connection made anew gets its time
        answered = self._server_seen_at > silent_since
        if failed or (answered and now - self._server_seen_at >= REPAIR_CONFIRM_SECONDS):
            outage = self._outages.setdefault(leg, _Outage(since=silent_since))
            if outage.switched_at is None:
                outage.switched_at = now
                self._post(Repair(peer))
        elif not answered:
            self._probe_server()

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
                self._server_seen_at = self._clock()

        self._probe = asyncio.get_running_loop().create_task(probe(), name="server-probe")


def _relay_order(servers: list[IceServer], leg: PeerLink) -> list[tuple[int, RelayAddress]]:
    """The relays a connection made anew for ``leg`` could go through, as (relay turn,
    address): the leg's own relay first (the one it was made with), then the others of the
    call's ICE servers in their order after it. Empty when none can be probed."""
    made_with = leg.started.ice_servers
    own = relay_address(made_with[leg.relay_turn % len(made_with)]) if made_with else None
    probed = [(turn, relay_address(server)) for turn, server in enumerate(servers)]
    known = [(turn, relay) for turn, relay in probed if relay is not None]
    if own is None:
        return []
    start = next((n for n, (_, relay) in enumerate(known) if relay == own), None)
    if start is None:  # no longer handed out (the server found it down): asked, never chosen
        return [(-1, own), *known]
    return known[start:] + known[:start]
