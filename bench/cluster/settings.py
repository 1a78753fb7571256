"""The cluster load's settings: how many booths, how fast, on how many nodes, from how many
load generator processes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bench.load.settings import BOOTH_HEARTBEAT_SECONDS, LoadSettings


@dataclass(frozen=True)
class ClusterSettings:
    booths: int = 5000
    #: Enough to take 100 calls a second that each keep an advisor for about half a second.
    advisors: int = 150
    #: Call set-ups started per second across the cluster, and for how long.
    rate: float = 100.0
    seconds: float = 60.0
    #: API requests per second from the probe process (through HAProxy).
    api_rate: float = 20.0
    api_reference_seconds: float = 5.0
    #: Server nodes of the cluster; the single node (the reference) runs first unless False.
    nodes: int = 3
    single: bool = True
    #: Load generator processes, each holding its share of the booths and advisors and setting
    #: up its share of the calls. A multiple of ``nodes`` for ``pin``.
    workers: int = 3
    #: Each worker connects its booths and advisors to one node directly (worker i to node
    #: i mod nodes), so every call stays on one node; False: everything through HAProxy.
    pin: bool = False
    #: HAProxy's balancing: ``roundrobin`` as the cluster tests', or ``leastconn`` as
    #: production's configuration.
    balance: str = "roundrobin"
    #: HAProxy's health checks: ``production`` as server.proxy's defaults (every 2 s, a node is
    #: out after 3 failures), or ``tests`` as the cluster tests' (every 250 ms, out after 2, to
    #: see failover quickly): a node whose event loop stalls for half a second under load is
    #: taken out with those, and all its sockets are closed (``on-marked-down
    #: shutdown-sessions``).
    checks: str = "production"
    #: Short loads at these rates (set-ups/s) before the main one, on each topology: where it
    #: stops keeping up.
    steps: tuple[float, ...] = (25.0, 50.0, 75.0)
    #: Short loads at these rates after the main one: where these cores end when the main
    #: rate is kept up (the bench prints the limit at the first rate not kept up).
    beyond: tuple[float, ...] = (150.0, 200.0)
    step_seconds: float = 10.0
    #: Calls set up one at a time on the quiet cluster (the reference for set-up latency).
    reference_setups: int = 20
    hold_seconds: float = 0.3
    #: Booths connecting at once, per worker.
    connect_parallel: int = 25
    #: The nodes' ``heartbeat_seconds``: how often booths heartbeat (they follow the server).
    heartbeat_seconds: float = BOOTH_HEARTBEAT_SECONDS

    def __post_init__(self) -> None:
        if self.pin and self.workers % self.nodes:
            raise ValueError(f"--pin needs workers in multiples of {self.nodes} nodes")
        if self.workers < 1 or self.booths < self.workers or self.advisors < self.workers:
            raise ValueError("every worker needs at least one booth and one advisor")

    def for_worker(self, rate: float, seconds: float) -> LoadSettings:
        """bench.load's settings for one worker's share (``rate`` is the worker's own)."""
        return dataclasses.replace(
            LoadSettings(),
            booths=self.booths // self.workers,
            advisors=self.advisors // self.workers,
            rate=rate,
            seconds=seconds,
            api_rate=self.api_rate,
            reference_setups=self.reference_setups,
            hold_seconds=self.hold_seconds,
            connect_parallel=self.connect_parallel,
            heartbeat_seconds=self.heartbeat_seconds,
        )

    def accounts(self) -> LoadSettings:
        """bench.load's settings for :func:`bench.load.clients.populate` (all the accounts)."""
        return dataclasses.replace(LoadSettings(), booths=self.booths, advisors=self.advisors)


#: ``make bench --quick`` and the CI smoke test.
QUICK = ClusterSettings(
    booths=300,
    advisors=30,
    rate=10.0,
    seconds=5.0,
    api_reference_seconds=2.0,
    reference_setups=5,
    steps=(),
    beyond=(),
    heartbeat_seconds=5.0,
)
