"""Live call statistics: what the booth sends and receives, sampled every few seconds.

The figures go to the server, which relays them to the advisor's call view, and into the
booth's status report. Rates are differences between two samples of aiortc's counters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocol import CallStats, MediaDirection

if TYPE_CHECKING:
    from kiosk.peerlink import PeerLink

VIDEO_CLOCK_RATE = 90_000


@dataclass
class _Counters:
    at: float
    bytes_sent: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    packets_received: int = 0
    packets_lost: int = 0


class CallStatsSampler:
    """Turns aiortc's cumulative counters of one call into per-interval figures."""

    def __init__(self, call: PeerLink) -> None:
        self._call = call
        self._last: _Counters | None = None

    async def sample(self) -> CallStats:
        call = self._call
        now = time.monotonic()
        report = await call.pc.getStats()
        counters = _Counters(
            at=now,
            frames_sent=call.video_track.frames_sent,
            frames_received=call.received.video_frames,
        )
        sent: dict[str, float | int | None] = {}
        received: dict[str, float | int | None] = {}
        for stat in report.values():
            kind = getattr(stat, "kind", None)
            if kind != "video":
                continue
            if stat.type == "outbound-rtp":
                counters.bytes_sent = stat.bytesSent
            elif stat.type == "remote-inbound-rtp":
                # aiortc reports RTCP's 8-bit fraction (0-255) as is.
                sent["loss_pct"] = round(stat.fractionLost / 256 * 100, 1)
                if stat.roundTripTime is not None:
                    sent["rtt_ms"] = round(stat.roundTripTime * 1000, 1)
            elif stat.type == "inbound-rtp":
                counters.packets_received = stat.packetsReceived
                counters.packets_lost = max(0, stat.packetsLost)
                received["jitter_ms"] = round(stat.jitter / VIDEO_CLOCK_RATE * 1000, 1)
        source = call.video_track.source
        sent["width"], sent["height"] = source.width, source.height
        frame = call.received.newest_video
        if frame is not None:
            received["width"], received["height"] = frame.width, frame.height
        last, self._last = self._last, counters
        if last is not None and now > last.at:
            seconds = now - last.at
            sent["bitrate_kbps"] = round(
                (counters.bytes_sent - last.bytes_sent) * 8 / seconds / 1000, 1
            )
            sent["fps"] = round((counters.frames_sent - last.frames_sent) / seconds, 1)
            received["fps"] = round((counters.frames_received - last.frames_received) / seconds, 1)
            got = counters.packets_received - last.packets_received
            lost = counters.packets_lost - last.packets_lost
            if got + lost > 0:
                received["loss_pct"] = round(max(0, lost) / (got + lost) * 100, 1)
        return CallStats(
            session_id=call.session_id,
            sent=MediaDirection.model_validate(sent),
            received=MediaDirection.model_validate(received),
        )
