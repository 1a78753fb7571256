"""Adaptive quality: the encoder's bitrate, then its resolution, follow the receivers' reports.

The booth sends pre-encoded packets, so aiortc's own bandwidth handling reaches no encoder.
Receivers' RTCP reports do reach the sender: receiver reports (fraction lost, and the round
trip from sender-report timing) and REMB (the receiver's estimate of the bandwidth). This
controller reads them from every peer of the call, and because the booth encodes once for all
peers, it follows the worst one.

The policy is the loss-based half of Google Congestion Control, in coarse steps (each change
reopens x264, which costs an IDR): above 10 % loss back off in proportion to the loss, below
2 % probe up by 8 %, never above a receiver's REMB. When the bitrate sits at its floor and
loss persists, the resolution steps down (scales 1, 3/4, 1/2 of the camera's size: 1280x720
-> 960x540 -> 640x360) while the frame rate stays where it is: sign language needs at least
20 fps more than it needs pixels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

from kiosk.media.source import VideoSource

log = logging.getLogger(__name__)

HIGH_LOSS = 0.10
LOW_LOSS = 0.02
PROBE_UP = 1.08
#: Applied changes smaller than this are not worth the IDR they cost.
MIN_CHANGE = 0.10
MIN_SECONDS_BETWEEN_CHANGES = 2.0
#: Intervals of heavy loss at the floor bitrate before the resolution steps down.
STEP_DOWN_AFTER = 3
#: Intervals of clean delivery near the ceiling before the resolution steps back up.
STEP_UP_AFTER = 10

#: Resolution steps as fractions of the camera's size (the aspect ratio is kept).
DEFAULT_SCALES: tuple[float, ...] = (1.0, 0.75, 0.5)


def profiles_for(width: int, height: int, scales: tuple[float, ...]) -> tuple[tuple[int, int], ...]:
    """Even frame sizes for each scale of ``width`` x ``height`` (H.264 4:2:0 needs even)."""
    return tuple((int(width * s) // 2 * 2, int(height * s) // 2 * 2) for s in scales)


@dataclass
class PeerFeedback:
    """The latest report of one receiver."""

    loss: float = 0.0
    rtt: float | None = None
    remb: int | None = None
    reports: int = 0
    #: ``reports`` at the last tick: a receiver that sent none since is not heard from.
    reports_seen: int = 0
    worst_loss: float = 0.0
    #: Packets the receiver asked to have sent again (NACK), and sent, since the last tick.
    nacked: int = 0
    sent_mark: int = 0


@dataclass
class Decision:
    bitrate: int
    profile: int
    reason: str


@dataclass
class RatePolicy:
    """The decision step, pure: no clock, no I/O (tested on its own)."""

    min_bitrate: int
    max_bitrate: int
    profiles: tuple[tuple[int, int], ...]
    bitrate: float
    profile: int = 0
    _bad: int = field(default=0, repr=False)
    _good: int = field(default=0, repr=False)

    def step(self, loss: float, remb: int | None) -> Decision:
        """One interval's decision from the worst loss and the lowest REMB of all receivers."""
        reason = "hold"
        if loss > HIGH_LOSS:
            self.bitrate *= 1 - 0.5 * loss
            reason = f"loss {loss:.0%}: back off"
            self._good = 0
            self._bad = self._bad + 1 if self.bitrate <= self.min_bitrate else 0
        elif loss < LOW_LOSS:
            self.bitrate *= PROBE_UP
            reason = "clean: probe up"
            self._bad = 0
            self._good = self._good + 1 if self.bitrate >= 0.9 * self.max_bitrate else 0
        else:
            self._bad = self._good = 0
        if remb is not None and self.bitrate > remb:
            self.bitrate = float(remb)
            reason += f", capped by REMB {remb // 1000} kbit/s"
        self.bitrate = min(max(self.bitrate, self.min_bitrate), self.max_bitrate)
        if self._bad >= STEP_DOWN_AFTER and self.profile + 1 < len(self.profiles):
            self.profile += 1
            self._bad = 0
            # Same bits, fewer pixels: each pixel gets more of them.
            reason = "loss at the floor bitrate: resolution down"
        elif self._good >= STEP_UP_AFTER and self.profile > 0:
            self.profile -= 1
            self._good = 0
            reason = "clean at the ceiling: resolution up"
        return Decision(bitrate=int(self.bitrate), profile=self.profile, reason=reason)


class RateController:
    """Watches the senders of one call and steers the shared source."""

    def __init__(
        self,
        *,
        source: VideoSource,
        min_bitrate: int = 300_000,
        max_bitrate: int = 2_500_000,
        scales: tuple[float, ...] = DEFAULT_SCALES,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._profiles = profiles_for(source.width, source.height, scales)
        start = min(max(source.bitrate, min_bitrate), max_bitrate)
        self.policy = RatePolicy(
            min_bitrate=min_bitrate,
            max_bitrate=max_bitrate,
            profiles=self._profiles,
            bitrate=float(start),
        )
        self._source = source
        self._interval = interval
        self._clock = clock
        self._peers: dict[int, PeerFeedback] = {}
        self._senders: dict[int, Any] = {}
        self._last_change = -1e9
        self._task: asyncio.Task[None] | None = None
        self.decisions: list[Decision] = []
        source.set_resolution(*self._profiles[0])
        source.bitrate = start

    def watch(self, sender: Any) -> None:
        """Read the RTCP that ``sender`` receives (receiver reports and REMB).

        aiortc handles RTCP in the private ``RTCRtpSender._handle_rtcp_packet``; it is wrapped
        on this sender instance (aiortc is pinned), the original still runs first.
        """
        feedback = self._peers.setdefault(id(sender), PeerFeedback())
        self._senders[id(sender)] = sender
        original = sender._handle_rtcp_packet

        async def handle_rtcp_packet(packet: Any) -> None:
            await original(packet)
            ssrc = sender._ssrc
            if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
                for report in packet.reports:
                    if report.ssrc == ssrc:
                        feedback.loss = report.fraction_lost / 256
                        feedback.rtt = getattr(sender, "_RTCRtpSender__rtt", None)
                        feedback.reports += 1
            elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                feedback.nacked += len(packet.lost)
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                with contextlib.suppress(ValueError):
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                    if ssrc in ssrcs:
                        feedback.remb = bitrate

        sender._handle_rtcp_packet = handle_rtcp_packet

    def forget(self, sender: Any) -> None:
        self._peers.pop(id(sender), None)
        self._senders.pop(id(sender), None)

    def _interval_loss(self, key: int, feedback: PeerFeedback) -> float:
        """The worse of the receiver's reported loss and the share of packets it NACKed.

        Retransmissions repair most loss before the receiver reports it, but the path is
        lossy all the same, and every repair costs bandwidth and delay.
        """
        sent_total = getattr(self._senders.get(key), "_RTCRtpSender__packet_count", 0)
        sent = sent_total - feedback.sent_mark
        feedback.sent_mark = sent_total
        nack_loss = min(1.0, feedback.nacked / sent) if sent > 0 else 0.0
        feedback.nacked = 0
        loss = max(feedback.loss, nack_loss)
        feedback.worst_loss = max(feedback.worst_loss, loss)
        return loss

    def tick(self) -> Decision | None:
        """One control interval: decide from all receivers, apply if worth an IDR."""
        reporting = {k: p for k, p in self._peers.items() if p.reports}
        # A receiver that went quiet (the path is down) says nothing about the bandwidth:
        # hold everything until it reports again, rather than read silence as a clean line.
        silent = [p for p in reporting.values() if p.reports == p.reports_seen]
        for peer in reporting.values():
            peer.reports_seen = peer.reports
        if not reporting or silent:
            return None
        loss = max(self._interval_loss(k, p) for k, p in reporting.items())
        rembs = [p.remb for p in reporting.values() if p.remb is not None]
        decision = self.policy.step(loss, min(rembs) if rembs else None)
        now = self._clock()
        width, height = self._profiles[decision.profile]
        current = self._source.bitrate
        resolution_changed = (width, height) != (self._source.width, self._source.height)
        big_enough = abs(decision.bitrate - current) >= MIN_CHANGE * current
        if resolution_changed or (
            big_enough and now - self._last_change >= MIN_SECONDS_BETWEEN_CHANGES
        ):
            if resolution_changed:
                self._source.set_resolution(width, height)
            self._source.bitrate = decision.bitrate
            self._last_change = now
            self.decisions.append(decision)
            log.info(
                "video %dx%d at %d kbit/s (%s)",
                width,
                height,
                decision.bitrate // 1000,
                decision.reason,
            )
        return decision

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.tick()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="rate-control")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
