"""The service's figures for Prometheus at ``/metrics``, for a bearer of ``metrics_token``.

Rendered by prometheus_client from collectors that read the live state when scraped: the booths
by state and their platform faults (:class:`~server.fleet_health.FleetMonitor`), calls,
queues, connections and refusals (the switchboard's :class:`~server.switchboard.Figures`), and
the relays up or down (:class:`~server.relay_pool.RelayPool`), and the outbox of mails and
webhooks by kind and state. Each
application has its own registry, so that several servers in one process keep theirs apart.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from protocol import BoothHealth
from server.cluster import BusState
from server.fleet_health import FleetMonitor, FleetState
from server.http import problem
from server.keys import BUS, CONFIG, DATABASE, MEMBERSHIP, SHARED_CALLS, SWITCHBOARD
from server.relay_pool import RelayPool, RelayState
from server.storage import (
    OUTBOX_KINDS,
    OUTBOX_STATES,
    Database,
    OutboxFigure,
    list_booths,
    list_topics,
    outbox_figures,
)
from server.switchboard import Figures

#: Platform faults counted among the online booths, by the health field that says so.
PLATFORM_FAULTS: dict[str, Callable[[BoothHealth], bool]] = {
    "clock_not_set": lambda h: h.clock_synchronised is False,
    "lights": lambda h: h.lights_ok is False,
    "audio": lambda h: h.audio_problem is not None,
}


@dataclass(frozen=True)
class Inventory:
    """What ``/metrics`` counts from the database, read again before every scrape: the
    enrolled booths that are not revoked, and the names of the active topics (every one has a
    line, waiting or not, so that a queue's series never disappears)."""

    booth_ids: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    #: The outbox by kind and state, and how old its oldest message is (seconds).
    outbox: tuple[tuple[OutboxFigure, float | None], ...] = ()

    @classmethod
    async def load(cls, db: Database) -> Inventory:
        booths = await list_booths(db, include_revoked=False)
        topics = await list_topics(db, include_inactive=False)
        return cls(
            # Added, not enrolled yet: it cannot be online, nor is it missed.
            booth_ids=tuple(
                b.id for b in booths if b.public_key is not None or b.secret_hash is not None
            ),
            topics=tuple(t.name for t in topics),
            outbox=tuple(
                (f, None if f.oldest is None else (db.now() - f.oldest).total_seconds())
                for f in await outbox_figures(db)
            ),
        )


class FleetCollector(Collector):
    """The booths by state and their platform faults, from the monitor's live sightings."""

    def __init__(self, monitor: FleetMonitor, inventory: Callable[[], Inventory]) -> None:
        self._monitor = monitor
        self._inventory = inventory

    def collect(self) -> Iterable[Metric]:
        booths = dict.fromkeys(FleetState, 0)
        faults = dict.fromkeys(PLATFORM_FAULTS, 0)
        for booth_id in self._inventory().booth_ids:
            seen = self._monitor.sighting(booth_id)
            booths[self._monitor.state_of(booth_id, seen)] += 1
            if seen.online and seen.health is not None:
                for fault, found in PLATFORM_FAULTS.items():
                    faults[fault] += found(seen.health)
        by_state = GaugeMetricFamily(
            "videobooth_booths",
            "Booths by state (revoked booths and those not enrolled yet are not counted).",
            labels=["state"],
        )
        for state, n in booths.items():
            by_state.add_metric([state.value], n)
        yield by_state
        platform = GaugeMetricFamily(
            "videobooth_booth_platform_faults",
            "Online booths whose clock is not set, whose lights do not read back, or whose "
            "microphone or loudspeaker does not open.",
            labels=["fault"],
        )
        for fault, n in faults.items():
            platform.add_metric([fault], n)
        yield platform


class SignallingCollector(Collector):
    """Calls, queues, connections and refusals, from the switchboard's live figures."""

    def __init__(self, figures: Callable[[], Figures], inventory: Callable[[], Inventory]) -> None:
        self._figures = figures
        self._inventory = inventory

    def collect(self) -> Iterable[Metric]:
        figures = self._figures()
        yield GaugeMetricFamily(
            "videobooth_active_calls", "Calls in progress.", value=figures.active_calls
        )
        waiting = dict.fromkeys(self._inventory().topics, 0)
        waiting.setdefault("none", 0)
        for queue, n in figures.waiting.items():
            waiting[queue] = waiting.get(queue, 0) + n
        queues = GaugeMetricFamily(
            "videobooth_waiting_calls",
            "Calls waiting for an advisor, by topic ('appointment': appointment lobbies).",
            labels=["topic"],
        )
        for topic, n in sorted(waiting.items()):
            queues.add_metric([topic], n)
        yield queues
        yield CounterMetricFamily(
            "videobooth_signalling_errors",
            "Signalling messages refused with an error reply since the server started.",
            value=figures.signalling_errors,
        )
        yield CounterMetricFamily(
            "videobooth_resumes",
            "Calls or waits taken up again after a lost connection since the server started.",
            value=figures.resumes,
        )
        yield GaugeMetricFamily(
            "videobooth_participants_away",
            "Participants of calls whose connection is lost for the moment.",
            value=figures.participants_away,
        )
        connections = GaugeMetricFamily(
            "videobooth_connections", "Signalling connections open now, by role.", labels=["role"]
        )
        for role, n in figures.connections.items():
            connections.add_metric([role.value], n)
        yield connections


class RelayCollector(Collector):
    """Each relay of the pool up or down, as the last probes found it (a line for every state,
    1 for the relay's own, so that a series never disappears)."""

    def __init__(self, pool: RelayPool) -> None:
        self._pool = pool

    def collect(self) -> Iterable[Metric]:
        relays = GaugeMetricFamily(
            "videobooth_relays",
            "TURN relays of the pool by state (down: the last probes could not allocate; a "
            "relay that is down is not handed out while another is up).",
            labels=["relay", "state"],
        )
        for name, current in self._pool.states().items():
            for state in RelayState:
                relays.add_metric([name, state.value], 1 if state is current else 0)
        yield relays


class OutboxCollector(Collector):
    """The outbox (mails, webhooks) by kind and state, and the age of its oldest pending
    message: mail or webhooks not getting through show as a growing count or age."""

    def __init__(self, inventory: Callable[[], Inventory]) -> None:
        self._inventory = inventory

    def collect(self) -> Iterable[Metric]:
        counts = {(k, s): 0 for k in OUTBOX_KINDS for s in OUTBOX_STATES}
        oldest = dict.fromkeys(OUTBOX_KINDS, 0.0)
        for figure, waited in self._inventory().outbox:
            counts[figure.kind, figure.state] = figure.count
            if figure.state == "pending" and waited is not None:
                oldest[figure.kind] = max(0.0, waited)
        messages = GaugeMetricFamily(
            "videobooth_outbox_messages",
            "Messages in the outbox by kind and state (sent ones are kept a while, then purged).",
            labels=["kind", "state"],
        )
        for (kind, state), count in counts.items():
            messages.add_metric([kind, state], count)
        yield messages
        age = GaugeMetricFamily(
            "videobooth_outbox_oldest_pending_seconds",
            "How long the oldest pending message of a kind has waited (0: none pending).",
            labels=["kind"],
        )
        for kind, seconds in oldest.items():
            age.add_metric([kind], seconds)
        yield age


class ClusterCollector(Collector):
    """The bus to the other nodes and, in a cluster, the nodes this one hears."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterable[Metric]:
        bus = self._app.get(BUS)
        if bus is not None:
            yield GaugeMetricFamily(
                "videobooth_bus_connected",
                "1 when this node's bus to the others is connected (always, for one process).",
                value=1 if bus.state is BusState.CONNECTED else 0,
            )
        membership = self._app.get(MEMBERSHIP)
        if membership is not None:
            yield GaugeMetricFamily(
                "videobooth_cluster_nodes",
                "Server nodes this node hears on the bus, itself included.",
                value=len(membership.alive()),
            )
        shared = self._app.get(SHARED_CALLS)
        if shared is None:
            return
        done = shared.figures
        yield GaugeMetricFamily(
            "videobooth_cluster_others_waiting",
            "Waiting calls other nodes carry, as this node shows them to its advisors.",
            value=len(shared.others()),
        )
        for name, text, value in (
            (
                "forwarded",
                "Messages of participants here passed on to other nodes.",
                done.forwarded,
            ),
            ("delivered", "Messages from other nodes handed to participants here.", done.delivered),
            ("taken_over", "Calls taken over from a node that died.", done.taken_over),
            (
                "resumed_elsewhere",
                "Participants here that took up a call another node carries.",
                done.resumed_elsewhere,
            ),
        ):
            yield CounterMetricFamily(f"videobooth_cluster_{name}", text, value=value)
        accepts = CounterMetricFamily(
            "videobooth_cluster_accepts",
            "Accepts made on this node: won the caller, or lost it to another advisor.",
            labels=["outcome"],
        )
        accepts.add_metric(["won"], done.accepts_won)
        accepts.add_metric(["lost"], done.accepts_lost)
        yield accepts


class Metrics:
    """One application's figures: its own registry (not the process-wide one, so that several
    servers in one process, as in the tests, keep theirs apart) with collectors that read the
    live state when scraped."""

    def __init__(
        self, app: web.Application, monitor: FleetMonitor, relays: RelayPool | None = None
    ) -> None:
        self._inventory = Inventory()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(FleetCollector(monitor, lambda: self._inventory))
        self.registry.register(
            SignallingCollector(lambda: app[SWITCHBOARD].figures(), lambda: self._inventory)
        )
        if relays is not None:
            self.registry.register(RelayCollector(relays))
        self.registry.register(ClusterCollector(app))
        self.registry.register(OutboxCollector(lambda: self._inventory))

    async def render(self, db: Database) -> bytes:
        """The figures in Prometheus' text format, the database's part read first."""
        inventory = await Inventory.load(db)
        # Nothing awaits between here and the end: the collectors see this inventory.
        self._inventory = inventory
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)


async def metrics(request: web.Request) -> web.StreamResponse:
    """``GET /metrics``: the service's figures in Prometheus' text format, for a bearer of the
    configured ``metrics_token`` (none configured: there is no such page)."""
    token = request.app[CONFIG].metrics_token
    if token is None:
        raise web.HTTPNotFound()
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        refusal = problem(401, "Unauthorized", "send Authorization: Bearer <metrics_token>")
        refusal.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refusal
    body = await request.app[METRICS].render(request.app[DATABASE])
    response = web.Response(body=body)
    # The classic text format, which generate_latest writes (not the newer default type).
    response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    response.headers["Cache-Control"] = "no-store"
    return response


def install(
    app: web.Application, monitor: FleetMonitor, *, relays: RelayPool | None = None
) -> None:
    """Serve ``/metrics`` for ``app``, counting the booths of ``monitor`` and the relays of
    ``relays``."""
    app[METRICS] = Metrics(app, monitor, relays)
    app.router.add_get("/metrics", metrics)
