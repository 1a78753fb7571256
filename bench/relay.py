"""Relay capacity: how many concurrent calls one coturn core relays, hence how many cores the
organisation's relays need for 10,000 concurrent citizen calls.

A call here is what a booth <-> advisor call is on the relay when both sides are relay-only
(as booths and browsers are): two TURN allocations on the same coturn, each with a channel
(hence a permission) to the other's relayed address, and media both ways, by default 1.5 Mbit/s
of video as 1,100-byte packets plus 40 kbit/s of audio as 50 packets a second (Opus, 20 ms),
per direction. A packet crosses coturn twice, as in production: client -> allocation A's relay
port -> allocation B's relay port -> the other client.

coturn runs with the configuration the data centre runs (:func:`server.relay.coturn_config`:
``use-auth-secret``, fingerprint, no CLI, ...) on 127.0.0.1, its log thrown away and not
verbose (a verbose coturn logs every allocation and binding and would measure its logging).
Relaying to 127.0.0.1 takes both ``allow-loopback-peers`` and the configuration's
``allowed-peer-ip`` of the relay's own address (its ``denied-peer-ip`` covers 127.0.0.0/8):
without either, ChannelBind is refused (403 Forbidden IP).

The traffic comes from separate worker processes, each holding a share of the calls through
aioice's TURN client (the booths' ICE uses it too); once a channel is bound, a worker writes
ChannelData straight to its socket, because aioice's ``TurnTransport.sendto`` makes a task per
packet and would make the generator the limit.

At each load (5, 10, 20, 40, 80, 160 calls by default), after a warm-up and over a fixed
window: coturn's CPU time (utime + stime of its pid, all its threads), the workers' and the
whole machine's; packets sent and received each way (a packet sent in the window counts as lost
unless it arrives); the one-way delay through the relay, as the workers see it; the datagrams
the kernel dropped for a full receive buffer on coturn's sockets and on the workers' (which of
the two fell behind). The loads stop at the first one with more than 1 % loss, or where the
workers sent less than 99 % of their packets (then the generator, not coturn, is the limit; it
shares the machine's cores with coturn).

cores per call = coturn's CPU seconds / window seconds / calls; calls per core is its inverse.
On 127.0.0.1 the kernel's work to deliver a packet is charged to whoever sent it, so part of
what a network card would charge to the relay host as soft interrupts lands on the workers
here: coturn's own figure is a lower bound of what a relay host spends. The machine's busy
cores over the window are reported beside it.

``python -m bench.relay`` runs it alone; ``./scripts/bench`` runs it as its ``relay`` part;
``tests/server/test_relay_capacity.py`` runs a few calls in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import secrets
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from aioice import stun
from aioice.turn import TurnClientUdpProtocol

from bench.procs import cpu_seconds, percentile
from bench.table import row
from server.relay import RelaySettings, coturn_config
from server.turn import turn_credential
from tests.e2e.conftest import listener_port

REPO = Path(__file__).resolve().parents[1]
#: Apart from the e2e tests' and the other benchmarks' ranges (two ports a call).
RELAY_MIN_PORT, RELAY_MAX_PORT = 49500, 50499
#: The one channel each allocation binds, to the other side of its call.
CHANNEL = 0x4000
#: ChannelData header (channel, length), then the payload's sequence number and send time.
HEADER = struct.Struct("!HHIQ")
STAMP = struct.Struct("!IQ")
#: Allocations live this long unless refreshed (aioice refreshes them); freed at the end.
ALLOCATION_LIFETIME = 300
#: The workers' receive buffer, so that a busy worker does not drop what coturn relayed.
RECEIVE_BUFFER = 4 << 20
#: The one-way delay is kept for one packet in 16 of each direction.
DELAY_SAMPLE = 15
#: Packets still on their way when the window closes may arrive this long after.
DRAIN_SECONDS = 0.5
#: A worker the machine's other work kept off the CPU makes up for up to this many seconds at
#: once, as a sender's pacer does after a stall; the rest is skipped (a send ratio under 1).
CATCH_UP_SECONDS = 0.25
#: The architecture page's estimate (about 280 calls a core), the goal of ``bench/run.py``'s
#: other relay rows.
RELAY_GOAL = "<= 0.0036 (~280 calls/core)"
PLANNED_CALLS = 10_000

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class RelayBenchError(RuntimeError):
    """coturn or a worker could not run; the message says why."""


@dataclass(frozen=True)
class Media:
    """One direction of a call: what a consultation sends. The video's 1.5 Mbit/s lies between
    the booth's starting bitrate (1 Mbit/s) and its ceiling (2.5 Mbit/s, ``kiosk.config``)."""

    video_kbps: float = 1500.0
    audio_kbps: float = 40.0
    #: Video RTP packets are near the path MTU's payload budget.
    video_packet_bytes: int = 1100
    #: Opus sends a packet every 20 ms.
    audio_packets_per_second: float = 50.0

    @property
    def video_packets_per_second(self) -> float:
        return self.video_kbps * 1000 / 8 / self.video_packet_bytes

    @property
    def audio_packet_bytes(self) -> int:
        return max(STAMP.size, round(self.audio_kbps * 1000 / 8 / self.audio_packets_per_second))

    @property
    def packets_per_second(self) -> float:
        return self.video_packets_per_second + self.audio_packets_per_second

    def describe(self) -> str:
        return (
            f"{self.video_kbps:g} kbit/s video as {self.video_packet_bytes}-byte packets "
            f"({self.video_packets_per_second:.0f}/s) + {self.audio_kbps:g} kbit/s audio as "
            f"{self.audio_packet_bytes}-byte packets ({self.audio_packets_per_second:g}/s), "
            "each way"
        )


@dataclass(frozen=True)
class CapacitySettings:
    #: Concurrent calls, one load after the other, each measured alone.
    loads: tuple[int, ...] = (5, 10, 20, 40, 80, 160)
    #: The measured window at each load, after the warm-up.
    seconds: float = 20.0
    warmup: float = 3.0
    #: Traffic generator processes; each holds a share of the calls.
    workers: int = 2
    media: Media = field(default_factory=Media)
    #: How often a worker sends what is due.
    tick: float = 0.005
    #: Stop at a load with more loss than this, or where the workers sent less than
    #: ``min_send_ratio`` of their packets.
    loss_limit: float = 0.01
    min_send_ratio: float = 0.99
    min_port: int = RELAY_MIN_PORT
    max_port: int = RELAY_MAX_PORT

    @property
    def quick(self) -> CapacitySettings:
        """A smoke run: two small loads, short windows."""
        return dataclasses.replace(self, loads=(2, 4), seconds=3.0, warmup=1.0)


@dataclass
class LoadPoint:
    """What one load measured over its window."""

    calls: int
    workers: int
    seconds: float
    coturn_cpu: float
    #: Each worker's CPU seconds over the window.
    worker_cpu: list[float]
    #: The whole machine's busy CPU seconds (everyone's, not only ours).
    machine_cpu: float
    #: Packets caller -> callee and back, sent in the window and of those received.
    sent: tuple[int, int]
    received: tuple[int, int]
    #: The packets the workers should have sent in the window.
    target: float
    skipped: int
    #: Latest a worker's tick ran (its event loop's lag), in ms.
    worker_lag_ms: float
    #: One-way delays through the relay, a sorted sample, in ms.
    delays_ms: list[float]
    #: Datagrams the kernel dropped for a full receive buffer over the window and the drain,
    #: on coturn's sockets (coturn did not keep up) and on the workers' (the generator did not).
    drops_at_coturn: int
    drops_at_generator: int

    @property
    def coturn_cores(self) -> float:
        return self.coturn_cpu / self.seconds

    @property
    def cores_per_call(self) -> float:
        return self.coturn_cores / self.calls

    @property
    def calls_per_core(self) -> float:
        return 1 / self.cores_per_call if self.cores_per_call else float("inf")

    @property
    def generator_cores(self) -> float:
        return sum(self.worker_cpu) / self.seconds

    @property
    def busiest_worker_cores(self) -> float:
        return max(self.worker_cpu, default=0.0) / self.seconds

    @property
    def machine_cores(self) -> float:
        return self.machine_cpu / self.seconds

    @property
    def loss(self) -> float:
        sent = sum(self.sent)
        return 1 - sum(self.received) / sent if sent else 1.0

    @property
    def send_ratio(self) -> float:
        return sum(self.sent) / self.target if self.target else 0.0

    def limit(self, settings: CapacitySettings) -> str:
        """Why this load is past what can be measured here ("" if it is not)."""
        if self.loss > settings.loss_limit:
            return (
                f"{self.calls} calls lost {self.loss:.1%} of the packets (receive buffers "
                f"overflowed {self.drops_at_coturn} times at coturn, "
                f"{self.drops_at_generator} at the workers; machine busy "
                f"{self.machine_cores:.2f} cores)"
            )
        if self.send_ratio < settings.min_send_ratio:
            return (
                f"at {self.calls} calls the generator sent only {self.send_ratio:.1%} of its "
                f"packets (busiest worker {self.busiest_worker_cores:.2f} cores, a worker's "
                f"longest stall {self.worker_lag_ms:.0f} ms; machine busy "
                f"{self.machine_cores:.2f} cores)"
            )
        return ""

    def summary(self) -> dict[str, Any]:
        figures = {
            name: value if math.isfinite(value := getattr(self, name)) else None
            for name in (
                "coturn_cores",
                "cores_per_call",
                "calls_per_core",
                "generator_cores",
                "busiest_worker_cores",
                "machine_cores",
                "loss",
                "send_ratio",
            )
        }
        delays = {
            f"delay_ms_p{p}": percentile(self.delays_ms, p) for p in (50, 99) if self.delays_ms
        }
        fields = dataclasses.asdict(self)
        del fields["delays_ms"]
        return {**fields, **figures, **delays}


@dataclass
class CapacityResult:
    settings: CapacitySettings
    points: list[LoadPoint] = field(default_factory=list)
    #: Why the loads stopped before the last one ("" if all ran).
    stopped: str = ""

    @property
    def within_limits(self) -> list[LoadPoint]:
        return [p for p in self.points if not p.limit(self.settings)]

    @property
    def headline(self) -> LoadPoint | None:
        """The largest load measured within the limits: the most calls sharing coturn's fixed
        costs, the least noise from CPU-time ticks."""
        good = self.within_limits
        return good[-1] if good else None

    @property
    def fit(self) -> tuple[float, float] | None:
        """coturn's cores against calls over the loads within the limits, as a straight line:
        (cores per added call, cores at no call); None with fewer than two loads."""
        good = self.within_limits
        if len({p.calls for p in good}) < 2:
            return None
        slope, intercept = statistics.linear_regression(
            [float(p.calls) for p in good], [p.coturn_cores for p in good]
        )
        return slope, intercept

    def rows(self) -> list[dict[str, Any]]:
        """The figures as rows of ``bench/run.py``'s table."""
        if not self.points:
            return []
        first = self.points[0]
        reference_is = f"{first.calls} calls, same run"
        rows = []
        for point in self.points:
            n = f"relay {point.calls} calls"
            rows += [
                row(
                    f"{n}: coturn CPU s/call-s (cores/call), A+V both ways",
                    point.cores_per_call,
                    first.cores_per_call,
                    reference_is,
                    RELAY_GOAL,
                ),
                row(
                    f"{n}: packet loss %",
                    100 * point.loss,
                    100 * self.settings.loss_limit,
                    "the limit of a load",
                    f"<= {100 * self.settings.loss_limit:g} %",
                    ratio=False,
                ),
                row(
                    f"{n}: generator CPU cores ({point.workers} processes)",
                    point.generator_cores,
                    point.coturn_cores,
                    "coturn's cores, same seconds",
                    f"busiest worker {point.busiest_worker_cores:.2f} < 1",
                ),
            ]
        best = self.headline
        if best is not None:
            rows += [
                row(
                    f"relay: calls per coturn core (at {best.calls} calls)",
                    best.calls_per_core,
                    first.calls_per_core,
                    reference_is,
                    ">= 280",
                ),
                row(
                    f"relay: coturn cores for {PLANNED_CALLS:,} calls (at {best.calls} calls)",
                    PLANNED_CALLS * best.cores_per_call,
                    PLANNED_CALLS * first.cores_per_call,
                    reference_is,
                    f"<= {PLANNED_CALLS * 0.0036:g}",
                ),
            ]
            if self.fit is not None:
                rows.append(
                    row(
                        f"relay: coturn cores per added call (line through "
                        f"{len(self.within_limits)} loads)",
                        self.fit[0],
                        best.cores_per_call,
                        f"cores/call at {best.calls} calls",
                        RELAY_GOAL,
                    )
                )
        return rows

    def details(self) -> dict[str, Any]:
        """Everything measured, for the results JSON."""
        best = self.headline
        return {
            "settings": dataclasses.asdict(self.settings),
            "media": self.settings.media.describe(),
            "stopped": self.stopped,
            "calls_per_core": best.calls_per_core if best else None,
            "cores_for_10000_calls": PLANNED_CALLS * best.cores_per_call if best else None,
            "cores_per_added_call": self.fit[0] if self.fit else None,
            "cores_at_no_call": self.fit[1] if self.fit else None,
            "loads": [p.summary() for p in self.points],
        }

    def table(self) -> str:
        """One line per load, for a terminal."""
        lines = [
            f"{'calls':>5} {'coturn':>7} {'cores/call':>10} {'calls/core':>10} {'loss':>7} "
            f"{'sent':>6} {'p99 ms':>7} {'generator':>9} {'busiest':>7} {'machine':>7} "
            f"{'drops c/g':>11}"
        ]
        for p in self.points:
            p99 = percentile(p.delays_ms, 99) if p.delays_ms else 0.0
            lines.append(
                f"{p.calls:>5} {p.coturn_cores:>7.3f} {p.cores_per_call:>10.5f} "
                f"{p.calls_per_core:>10.0f} {p.loss:>7.2%} {p.send_ratio:>6.1%} {p99:>7.1f} "
                f"{p.generator_cores:>9.2f} {p.busiest_worker_cores:>7.2f} "
                f"{p.machine_cores:>7.2f} {f'{p.drops_at_coturn}/{p.drops_at_generator}':>11}"
            )
        lines.append(
            "(cores: CPU seconds per second; generator: all workers; machine: everyone's; "
            "drops: receive-buffer drops at coturn / at the workers)"
        )
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        return "\n".join(lines)


# ---------------------------------------------------------------- coturn


@dataclass
class Relay:
    """A running coturn."""

    port: int
    secret: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _answers_stun(port: int) -> bool:
    """Whether something on 127.0.0.1:``port`` answers a STUN Binding request."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(bytes(request), ("127.0.0.1", port))
        try:
            data = sock.recv(2048)
        except (TimeoutError, ConnectionRefusedError):
            return False
    try:
        return stun.parse_message(data).transaction_id == request.transaction_id
    except ValueError:
        return False


def start_relay(
    workdir: Path, *, min_port: int = RELAY_MIN_PORT, max_port: int = RELAY_MAX_PORT
) -> Relay:
    """coturn as the data centre runs it, on 127.0.0.1, relaying to 127.0.0.1 allowed and
    logging nothing (its log goes to /dev/null, nothing to standard output, not verbose)."""
    binary = shutil.which("turnserver")
    if binary is None:
        raise RelayBenchError("coturn (turnserver) is not installed: apt-get install coturn")
    # Below the ephemeral ports: coturn listens on TCP too, and a port some client's outgoing
    # connection took meanwhile keeps it answering nothing for a minute.
    port, secret = listener_port(), secrets.token_hex(24)
    settings = RelaySettings(
        secret=secret,
        port=port,
        realm="videobooth.bench",
        min_port=min_port,
        max_port=max_port,
        allow_loopback=True,
        log_file=Path(os.devnull),
        pid_file=workdir / "turnserver.pid",
        verbose=False,
    )
    conf = workdir / "turnserver.conf"
    conf.write_text(coturn_config(settings) + "no-stdout-log\n")
    process = subprocess.Popen(
        [binary, "-c", str(conf), "--no-cli"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    relay = Relay(port=port, secret=secret, process=process)
    deadline = time.monotonic() + 10
    while not _answers_stun(port):
        if process.poll() is not None or time.monotonic() > deadline:
            relay.stop()
            raise RelayBenchError(
                f"coturn did not answer on 127.0.0.1:{port} (code {process.poll()})"
            )
    return relay


# ---------------------------------------------------------------- the traffic workers


class _Allocation(TurnClientUdpProtocol):
    """One participant's allocation; hands the media arriving on its channel to ``incoming``
    without aioice's per-packet demultiplexing."""

    def __init__(self, server: tuple[str, int], username: str, password: str) -> None:
        super().__init__(server, username, password, ALLOCATION_LIFETIME, ALLOCATION_LIFETIME)
        self.incoming: _Direction | None = None

    def datagram_received(self, data: bytes | str, addr: tuple[str, int]) -> None:
        incoming = self.incoming
        # ChannelData (the media) starts 0b01, STUN (aioice's transactions) 0b00.
        if incoming and isinstance(data, bytes) and len(data) >= HEADER.size and data[0] >= 0x40:
            incoming.arrived(data)
            return
        super().datagram_received(data, addr)


class _Direction:
    """One direction of a call: ``sender``'s allocation sends to the other's relayed address
    through its channel; the other allocation counts what arrives."""

    def __init__(self, sender: _Allocation, receiver: _Allocation) -> None:
        self.sender = sender
        receiver.incoming = self
        self.seq = 0
        #: The window: sequence numbers from ``first`` up to, not including, ``last``.
        self.first: int | None = None
        self.last: int | None = None
        self.received = 0
        self.delays_ns: list[int] = []

    def send(self, filler: bytes) -> None:
        size = STAMP.size + len(filler)
        self.sender.transport.sendto(
            HEADER.pack(CHANNEL, size, self.seq, time.monotonic_ns()) + filler
        )
        self.seq += 1

    def arrived(self, data: bytes) -> None:
        seq, sent_ns = STAMP.unpack_from(data, 4)
        if self.first is not None and seq >= self.first and (self.last is None or seq < self.last):
            self.received += 1
            if not seq & DELAY_SAMPLE:
                self.delays_ns.append(time.monotonic_ns() - sent_ns)


async def _allocate(server: tuple[str, int], secret: str, name: str) -> _Allocation:
    loop = asyncio.get_running_loop()
    username = f"{int(time.time()) + 3600}:{name}"
    password = turn_credential(secret, username)
    transport, allocation = await loop.create_datagram_endpoint(
        lambda: _Allocation(server, username, password), remote_addr=server
    )
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    try:
        await allocation.connect()
    except BaseException:
        transport.close()
        raise
    assert isinstance(allocation, _Allocation)
    return allocation


async def _open_call(
    server: tuple[str, int], secret: str, name: str
) -> tuple[_Allocation, _Allocation]:
    """Two allocations, each with a channel (and so a permission) to the other."""
    a, b = await asyncio.gather(
        _allocate(server, secret, f"{name}-caller"), _allocate(server, secret, f"{name}-callee")
    )
    assert a.relayed_address is not None
    assert b.relayed_address is not None
    await asyncio.gather(
        a.channel_bind(CHANNEL, b.relayed_address), b.channel_bind(CHANNEL, a.relayed_address)
    )
    return a, b


class _Pacer:
    """Sends what is due on every direction each tick; keeps the window's books."""

    def __init__(self, directions: list[_Direction], media: Media, tick: float) -> None:
        self.directions = directions
        self.media = media
        self.tick = tick
        self.video = bytes(media.video_packet_bytes - STAMP.size)
        self.audio = bytes(media.audio_packet_bytes - STAMP.size)
        self.skipped = 0
        self.lag = 0.0
        self.window: list[float] = []
        self._measuring = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        ticks = 0
        done_video = done_audio = 0
        cap_video = max(1, round(CATCH_UP_SECONDS * self.media.video_packets_per_second))
        cap_audio = max(1, round(CATCH_UP_SECONDS * self.media.audio_packets_per_second))
        while True:
            ticks += 1
            delay = start + ticks * self.tick - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif self._measuring:
                self.lag = max(self.lag, -delay)
            elapsed = loop.time() - start
            video = int(elapsed * self.media.video_packets_per_second) - done_video
            audio = int(elapsed * self.media.audio_packets_per_second) - done_audio
            done_video, done_audio = done_video + video, done_audio + audio
            if video > cap_video or audio > cap_audio:
                if self._measuring:
                    self.skipped += len(self.directions) * (
                        max(0, video - cap_video) + max(0, audio - cap_audio)
                    )
                video, audio = min(video, cap_video), min(audio, cap_audio)
            for direction in self.directions:
                for _ in range(video):
                    direction.send(self.video)
                for _ in range(audio):
                    direction.send(self.audio)

    def open_window(self) -> None:
        for direction in self.directions:
            direction.first = direction.seq
        self.window = [time.monotonic()]
        self._measuring = True

    def close_window(self) -> None:
        for direction in self.directions:
            direction.last = direction.seq
        self.window.append(time.monotonic())
        self._measuring = False

    def report(self) -> dict[str, Any]:
        forward, back = self.directions[0::2], self.directions[1::2]

        def sent(directions: list[_Direction]) -> int:
            return sum((d.last or 0) - (d.first or 0) for d in directions)

        delays = sorted(ns for d in self.directions for ns in d.delays_ns)
        step = max(1, len(delays) // 5000)
        seconds = self.window[1] - self.window[0]
        return {
            "sent": [sent(forward), sent(back)],
            "received": [sum(d.received for d in forward), sum(d.received for d in back)],
            "target": seconds * self.media.packets_per_second * len(self.directions),
            "skipped": self.skipped,
            "lag_ms": 1000 * self.lag,
            "delays_ms": [ns / 1e6 for ns in delays[::step]],
        }


async def _worker() -> None:
    """A worker process: a job (JSON) on stdin; open its calls and send; say ``ready``; a line
    on stdin opens the measured window, the next closes it; then print what it counted (JSON)
    and, at the next line or the end of stdin, free the allocations."""
    loop = asyncio.get_running_loop()
    job = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    server = (job["host"], int(job["port"]))
    try:
        calls = await asyncio.gather(
            *(
                _open_call(server, job["secret"], f"{job['name']}-{n}")
                for n in range(int(job["calls"]))
            )
        )
    except (OSError, ConnectionError, stun.TransactionError) as exc:
        print(json.dumps({"error": f"opening the calls: {exc!r}"}), flush=True)
        return
    allocations = [allocation for call in calls for allocation in call]
    directions = [direction for a, b in calls for direction in (_Direction(a, b), _Direction(b, a))]
    pacer = _Pacer(directions, Media(**job["media"]), float(job["tick"]))
    pacing = asyncio.create_task(pacer.run())
    print(json.dumps({"ready": len(allocations)}), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    pacer.open_window()
    await loop.run_in_executor(None, sys.stdin.readline)
    pacer.close_window()
    await asyncio.sleep(DRAIN_SECONDS)
    pacing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pacing
    print(json.dumps(pacer.report()), flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # until the drops are counted
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(a.delete() for a in allocations)), timeout=5)


# ---------------------------------------------------------------- one load, all loads


def _machine_busy_seconds() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq + times.steal)


def _socket_drops(pids: list[int]) -> int:
    """Datagrams the kernel dropped on the UDP sockets of ``pids`` for a full receive buffer:
    /proc/net/udp's ``drops`` of the sockets among the processes' open files."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[len("socket:[") : -1])
    total = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:  # sl, local, remote, st, queues, timer, retrnsmt, uid, timeout
            total += int(fields[-1])
    return total


class _Worker:
    """A worker process and its line protocol."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.relay", "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.say(job)

    @property
    def pid(self) -> int:
        return self.process.pid

    def say(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def hear(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RelayBenchError(f"a traffic worker exited early (code {self.process.wait()})")
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            raise RelayBenchError(f"a traffic worker failed: {message['error']}")
        return message

    def close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def _workers(jobs: list[dict[str, Any]]) -> Iterator[list[_Worker]]:
    workers: list[_Worker] = []
    try:
        for job in jobs:
            workers.append(_Worker(job))
        yield workers
    finally:
        for worker in workers:
            worker.close()


def measure_load(relay: Relay, settings: CapacitySettings, calls: int) -> LoadPoint:
    """``calls`` concurrent calls through ``relay``, shared among the workers, measured over
    ``settings.seconds`` after ``settings.warmup``."""
    count = max(1, min(settings.workers, calls))
    shares = [calls // count + (1 if n < calls % count else 0) for n in range(count)]
    jobs = [
        {
            "host": "127.0.0.1",
            "port": relay.port,
            "secret": relay.secret,
            "name": f"load{calls}-w{n}",
            "calls": share,
            "media": dataclasses.asdict(settings.media),
            "tick": settings.tick,
        }
        for n, share in enumerate(shares)
    ]
    with _workers(jobs) as workers:
        for worker in workers:
            worker.hear()  # ready
        time.sleep(settings.warmup)
        pid = relay.process.pid
        pids = [worker.pid for worker in workers]
        drops = (_socket_drops([pid]), _socket_drops(pids))
        coturn, machine = cpu_seconds(pid), _machine_busy_seconds()
        generator = [cpu_seconds(worker_pid) for worker_pid in pids]
        began = time.monotonic()
        for worker in workers:
            worker.say({"measure": True})
        time.sleep(settings.seconds)
        for worker in workers:
            worker.say({"stop": True})
        seconds = time.monotonic() - began
        coturn = cpu_seconds(pid) - coturn
        machine = _machine_busy_seconds() - machine
        generator = [
            cpu_seconds(w.pid) - before for w, before in zip(workers, generator, strict=True)
        ]
        reports = [worker.hear() for worker in workers]
        # The workers' sockets stay open until they hear from us again.
        drops = (_socket_drops([pid]) - drops[0], _socket_drops(pids) - drops[1])
    return LoadPoint(
        calls=calls,
        workers=count,
        seconds=seconds,
        coturn_cpu=coturn,
        worker_cpu=generator,
        machine_cpu=machine,
        sent=(sum(r["sent"][0] for r in reports), sum(r["sent"][1] for r in reports)),
        received=(
            sum(r["received"][0] for r in reports),
            sum(r["received"][1] for r in reports),
        ),
        target=sum(r["target"] for r in reports),
        skipped=sum(r["skipped"] for r in reports),
        worker_lag_ms=max(r["lag_ms"] for r in reports),
        delays_ms=sorted(ms for r in reports for ms in r["delays_ms"]),
        drops_at_coturn=drops[0],
        drops_at_generator=drops[1],
    )


def measure(
    settings: CapacitySettings | None = None,
    *,
    workdir: Path | None = None,
    progress: Progress = _quiet,
) -> CapacityResult:
    """Start coturn, run the loads one after the other up to the first past the limits, stop
    coturn."""
    settings = settings or CapacitySettings()
    if 2 * max(settings.loads, default=0) > settings.max_port - settings.min_port + 1:
        raise RelayBenchError("the relay port range is too small for the largest load")
    result = CapacityResult(settings)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vb-relay-")))
        relay = start_relay(workdir, min_port=settings.min_port, max_port=settings.max_port)
        stack.callback(relay.stop)
        for calls in settings.loads:
            progress(
                f"relay: {calls} calls through coturn (pid {relay.process.pid}), "
                f"{settings.warmup:g} s + {settings.seconds:g} s ..."
            )
            point = measure_load(relay, settings, calls)
            result.points.append(point)
            progress(
                f"relay: {calls} calls: coturn {point.coturn_cores:.3f} cores "
                f"({point.cores_per_call:.5f}/call), loss {point.loss:.2%}, sent "
                f"{point.send_ratio:.1%}, generator {point.generator_cores:.2f} cores"
            )
            result.stopped = point.limit(settings)
            if result.stopped:
                break
            if relay.process.poll() is not None:
                raise RelayBenchError(f"coturn exited (code {relay.process.poll()})")
    return result


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay",
        description="Relay calls through a real coturn at growing loads and measure coturn's "
        "CPU per call, the loss and the traffic generator's own CPU.",
    )
    defaults = CapacitySettings()
    media = defaults.media
    parser.add_argument(
        "--calls",
        type=int,
        nargs="+",
        default=list(defaults.loads),
        help="loads (5 10 20 40 80 160)",
    )
    parser.add_argument(
        "--seconds", type=float, default=defaults.seconds, help="window per load (20 s)"
    )
    parser.add_argument("--warmup", type=float, default=defaults.warmup, help="(3 s)")
    parser.add_argument(
        "--workers", type=int, default=defaults.workers, help="generator processes (2)"
    )
    parser.add_argument("--video-kbps", type=float, default=media.video_kbps, help="(1500)")
    parser.add_argument("--audio-kbps", type=float, default=media.audio_kbps, help="(40)")
    parser.add_argument(
        "--packet-bytes", type=int, default=media.video_packet_bytes, help="video (1100)"
    )
    parser.add_argument("--quick", action="store_true", help="2 and 4 calls, 3 s each")
    parser.add_argument("--json", type=Path, help="also write the details here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        asyncio.run(_worker())
        return 0

    settings = CapacitySettings(
        loads=tuple(args.calls),
        seconds=args.seconds,
        warmup=args.warmup,
        workers=args.workers,
        media=Media(
            video_kbps=args.video_kbps,
            audio_kbps=args.audio_kbps,
            video_packet_bytes=args.packet_bytes,
        ),
    )
    if args.quick:
        settings = settings.quick
    print(f"each call: {settings.media.describe()}", flush=True)
    try:
        result = measure(settings, progress=lambda text: print(text, flush=True))
    except RelayBenchError as exc:
        print(f"bench.relay: {exc}", file=sys.stderr)
        return 1
    print(result.table())
    details = result.details()
    if details["calls_per_core"] is not None:
        print(
            f"calls per coturn core: {details['calls_per_core']:.0f}; coturn cores for "
            f"{PLANNED_CALLS:,} calls: {details['cores_for_10000_calls']:.1f}"
        )
    if details["cores_per_added_call"] is not None:
        print(
            f"coturn cores = {details['cores_at_no_call']:.4f} + "
            f"{details['cores_per_added_call']:.5f} x calls (line through the loads within "
            "the limits)"
        )
    if args.json:
        args.json.write_text(json.dumps({"rows": result.rows(), **details}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
