"""What the cluster load measured on each topology (the single node, the cluster), its rows
for ``bench/run.py``'s table (the cluster's figure beside the single node's), and where the
limit was."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.load.settings import API_GOAL_MS
from bench.procs import percentile
from bench.table import row, text_table

#: A load is kept up with when this share of its set-ups completed at this share of the rate.
KEPT_UP = 0.95
#: A process this busy (cores) is at its limit: a node is one Python event loop, which uses one
#: core at most, and less on a machine whose cores others use too.
SATURATED = 0.75
#: The CPU of each node on its own is under this prefix and the node's id.
NODE = "node:"
#: The CPU groups, in the order they are shown.
GROUPS = ("nodes", "NATS", "PostgreSQL", "HAProxy", "generator", "coordinator", "machine")


@dataclass
class StepResult:
    rate: float
    seconds: float
    attempted: int = 0
    completed: int = 0
    load_seconds: float = 0.0
    setup_ms: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    #: The longest time between two heartbeats of one booth during this load (seconds).
    max_heartbeat_gap: float = 0.0
    errors: list[str] = field(default_factory=list)
    api_ms: list[float] = field(default_factory=list)
    api_failures: list[str] = field(default_factory=list)
    #: Set-ups that waited for a free advisor (the calls before had not ended yet).
    waited_for_advisor: int = 0
    #: HAProxy's log lines of nodes it took out meanwhile (their health check failed).
    marked_down: list[str] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.load_seconds if self.load_seconds else 0.0

    @property
    def kept_up(self) -> bool:
        return (
            self.attempted > 0
            and self.completed >= KEPT_UP * self.attempted
            and self.achieved_rate >= KEPT_UP * self.rate
        )

    def busiest_node(self) -> tuple[str, float]:
        nodes = {k.removeprefix(NODE): v for k, v in self.cpu.items() if k.startswith(NODE)}
        if not nodes:
            return "", 0.0
        name = max(nodes, key=lambda node: nodes[node])
        return name, nodes[name]

    def line(self) -> str:
        cpu = ", ".join(f"{name} {self.cpu[name]:.2f}" for name in GROUPS if name in self.cpu)
        node, cores = self.busiest_node()
        down = f"; HAProxy took nodes out {len(self.marked_down)} times" if self.marked_down else ""
        return (
            f"{self.rate:g}/s for {self.seconds:g} s: {self.completed} of {self.attempted} "
            f"set-ups, {self.achieved_rate:.1f}/s, p50 {percentile(self.setup_ms, 50):.0f} ms, "
            f"p99 {percentile(self.setup_ms, 99):.0f} ms "
            f"({'kept up' if self.kept_up else 'NOT kept up'}; {self.waited_for_advisor} waited "
            f"for an advisor); API p50 "
            f"{percentile(self.api_ms, 50):.0f} ms, p99 {percentile(self.api_ms, 99):.0f} ms; "
            f"CPU cores: {cpu}, busiest node {node} {cores:.2f}{down}"
        )


@dataclass
class PhaseResult:
    """One topology's run: booths connected, memory, the set-ups, the API, CPU."""

    name: str
    nodes: int
    booths: int
    rate: float
    seconds: float
    through: str  # "HAProxy" or "pinned to nodes"
    advisors: int = 0
    booths_connected: int = 0
    booths_not_connected: int = 0
    login_retries: int = 0
    #: Booths refused so often through HAProxy that they logged in at a node directly.
    booths_direct: int = 0
    #: Failures other than a refused login while the booths connected (tried again), by reason.
    connect_failures: dict[str, int] = field(default_factory=dict)
    connect_seconds: float = 0.0
    booths_connected_at_end: int = 0
    booths_online_at_end: int = 0
    advisors_at_end: int = 0
    #: Connections each node held at the end (HAProxy's count, or the workers' pinning).
    per_node: dict[str, int] = field(default_factory=dict)
    rss_before_kib: dict[str, int] = field(default_factory=dict)
    rss_after_kib: dict[str, int] = field(default_factory=dict)
    reference_setup_ms: list[float] = field(default_factory=list)
    load: StepResult | None = None
    negotiated_ms: list[float] = field(default_factory=list)
    waited_for_advisor: int = 0
    steps: list[StepResult] = field(default_factory=list)
    #: Short loads above the main rate, after it: where these cores end when it is kept up.
    beyond: list[StepResult] = field(default_factory=list)
    api_ms: list[float] = field(default_factory=list)
    reference_api_ms: list[float] = field(default_factory=list)
    api_failures: int = 0
    cpu_idle: dict[str, float] = field(default_factory=dict)
    heartbeats: int = 0
    messages_received: int = 0
    nodes_alive: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def per_booth_kib(self) -> float:
        grown = sum(self.rss_after_kib.values()) - sum(self.rss_before_kib.values())
        return grown / max(self.booths_connected, 1)

    @property
    def logins_per_booth(self) -> float:
        tried = self.booths_connected + self.booths_not_connected + self.login_retries
        return tried / max(self.booths_connected, 1)

    @property
    def refused(self) -> int:
        """Messages the server answered with an error (bench/load's clients note each)."""
        return sum("got an error reply" in error for error in self.errors)

    @property
    def kept_up(self) -> bool:
        return (
            self.load is not None
            and self.load.kept_up
            and self.booths_connected_at_end == self.booths
            and self.nodes_alive
        )

    def loads(self) -> list[StepResult]:
        """Every load in the order run: the steps, the main load, the loads beyond it."""
        return [*self.steps, *([self.load] if self.load else []), *self.beyond]

    def highest_kept_up(self) -> float:
        """The highest rate (steps, the load and beyond) this topology kept up with; 0 for
        none."""
        return max((step.rate for step in self.loads() if step.kept_up), default=0.0)

    def setup_ms(self) -> list[float]:
        return self.load.setup_ms if self.load is not None else []

    def cpu_load(self) -> dict[str, float]:
        return self.load.cpu if self.load is not None else {}

    def knee(self) -> StepResult | None:
        """The first load (steps, the load, beyond) not kept up with; else the last one."""
        loads = self.loads()
        return next((step for step in loads if not step.kept_up), loads[-1] if loads else None)

    def limit(self, cpus: int) -> str:
        """Where the limit is, read off the CPU during the first load not kept up with."""
        step = self.knee()
        if step is None or not step.cpu:
            return "no load measured"
        cpu = step.cpu
        machine = cpu.get("machine", 0.0)
        ours = sum(cpu.get(name, 0.0) for name in GROUPS if name != "machine")
        text = (
            f"at {step.rate:g}/s ({'kept up' if step.kept_up else 'the first rate not kept up'}"
            f"): machine busy {machine:.2f} of {cpus} cores (ours {ours:.2f}, others "
            f"{max(machine - ours, 0.0):.2f}); "
        )
        busy = []
        node, cores = step.busiest_node()
        if cores >= SATURATED:
            busy.append(f"{node}'s event loop ({cores:.2f} cores; one process uses one at most)")
        busy += [
            f"{name} ({cpu[name]:.2f} cores)"
            for name in ("NATS", "PostgreSQL", "HAProxy")
            if cpu.get(name, 0.0) >= SATURATED
        ]
        if machine >= 0.9 * cpus:
            busy.append(f"the machine's {cpus} cores, shared by every process")
        if step.waited_for_advisor > 0.1 * step.attempted:
            busy.append(
                f"the {self.advisors} advisors: {step.waited_for_advisor} of {step.attempted} "
                "set-ups waited for one (a call keeps its advisor for its set-up and its hold: "
                "slow set-ups use them all)"
            )
        if busy:
            text += "at its limit: " + "; ".join(busy)
        elif step.kept_up:
            text += "nothing saturated: this rate is within what these cores hold"
        else:
            text += "no process saturated"
        if step.marked_down:
            text += (
                f"; HAProxy took a node out {len(step.marked_down)} times (its health check timed "
                "out: the node's event loop stalled) and closed its sockets"
            )
        return text

    def summary(self, cpus: int) -> list[str]:
        load = self.load
        lines = [
            f"{self.name} ({self.nodes} node{'s' if self.nodes > 1 else ''}, {self.through}): "
            f"{self.booths_connected} of {self.booths} booths connected in "
            f"{self.connect_seconds:.1f} s ({self.login_retries} logins refused and tried "
            f"again, {self.booths_direct} booths then directly at a node, other failures "
            f"{self.connect_failures or 'none'}), "
            f"{self.booths_connected_at_end} connected and {self.booths_online_at_end} online "
            f"at the end; connections per node {self.per_node}",
        ]
        lines += [f"  step {step.line()}" for step in self.steps]
        if load is not None:
            lines.append(f"  load {load.line()}")
        lines += [f"  beyond {step.line()}" for step in self.beyond]
        lines.append(
            f"  {self.waited_for_advisor} set-ups waited for a free advisor; heartbeats "
            f"{self.heartbeats}, longest gap during the load "
            f"{load.max_heartbeat_gap if load else 0.0:.1f} s; API "
            f"{len(self.api_ms)} requests ({self.api_failures} failed); refused messages "
            f"{self.refused}; errors {len(self.errors)}"
        )
        lines.append(f"  limit: {self.limit(cpus)}")
        kept = [step.rate for step in self.loads() if step.kept_up]
        failed = [step.rate for step in self.loads() if not step.kept_up]
        if failed:
            lines.append(
                f"  {self.name} stops keeping up at {min(failed):g} set-ups/s"
                + (f" (kept up at {max(kept):g}/s)" if kept else "")
            )
        elif load is not None:
            lines.append(f"  {self.name} kept up with {self.rate:g} set-ups/s")
        return lines


@dataclass
class ClusterResult:
    single: PhaseResult | None
    cluster: PhaseResult
    cpus: int

    def rows(self) -> list[dict[str, Any]]:
        """The cluster's figures beside the single node's (same generator, same run)."""
        c, s = self.cluster, self.single
        ref = f"one node, same run ({s.booths} booths, {s.rate:g}/s)" if s else "no single node"
        head = f"cluster {c.nodes} nodes"

        def pair(figure: str, value: float, single: float, goal: str = "") -> dict[str, Any]:
            return row(f"{head}: {figure}", value, single if s else 0.0, ref, goal)

        def of(phase: PhaseResult | None, read: Any) -> float:
            return float(read(phase)) if phase is not None else 0.0

        rows = [
            pair(
                f"booths connected at the end (of {c.booths})",
                c.booths_connected_at_end,
                of(s, lambda p: p.booths_connected_at_end),
                f"all {c.booths}",
            ),
            pair(
                "booths online in the fleet view at the end",
                c.booths_online_at_end,
                of(s, lambda p: p.booths_online_at_end),
                f"all {c.booths}",
            ),
            pair(
                "call set-ups completed per second",
                c.load.achieved_rate if c.load else 0.0,
                of(s, lambda p: p.load.achieved_rate if p.load else 0.0),
                f">= {c.rate * KEPT_UP:g}/s",
            ),
        ]
        if c.steps or c.beyond:
            rows.append(
                pair(
                    "highest set-up rate kept up (steps, the load, beyond), /s",
                    c.highest_kept_up(),
                    of(s, lambda p: p.highest_kept_up()),
                    f"{c.rate:g}/s",
                )
            )
        rows.append(
            pair(
                "booth logins per booth connected (more: logins refused)",
                c.logins_per_booth,
                of(s, lambda p: p.logins_per_booth),
                "1",
            )
        )
        for p in (50, 99):
            rows.append(
                pair(
                    f"call set-up p{p} ms (request -> call_started)",
                    percentile(c.setup_ms(), p),
                    of(s, lambda phase, p=p: percentile(phase.setup_ms(), p)),
                )
            )
        for p in (50, 99):
            rows.append(
                pair(
                    f"API p{p} ms (probe through HAProxy)",
                    percentile(c.api_ms, p),
                    of(s, lambda phase, p=p: percentile(phase.api_ms, p)),
                    f"<= {API_GOAL_MS:g} ms" if p == 99 else "",
                )
            )
        rows.append(
            pair(
                "node memory per connected booth, KiB (VmRSS)",
                c.per_booth_kib,
                of(s, lambda p: p.per_booth_kib),
                "measured",
            )
        )
        rows.append(
            pair(
                f"nodes' RSS with {c.booths_connected} booths, MiB (all nodes)",
                sum(c.rss_after_kib.values()) / 1024,
                of(s, lambda p: sum(p.rss_after_kib.values()) / 1024),
            )
        )
        for name in GROUPS:
            if name in c.cpu_load():
                rows.append(
                    pair(
                        f"CPU during the set-ups, cores: {name}",
                        c.cpu_load()[name],
                        of(s, lambda p, name=name: p.cpu_load().get(name, 0.0)),
                        f"of {self.cpus} cores" if name == "machine" else "",
                    )
                )
        return rows

    def goals(self) -> dict[str, bool]:
        c = self.cluster
        return {
            f"all {c.booths} booths connected and online on {c.nodes} nodes": (
                c.booths_connected_at_end == c.booths and c.booths_online_at_end == c.booths
            ),
            f"{c.rate:g} set-ups/s (>= 95 %)": c.load is not None and c.load.kept_up,
            f"API p99 <= {API_GOAL_MS:g} ms": percentile(c.api_ms, 99) <= API_GOAL_MS,
            "no refused message, nodes up, no unexpected errors": (c.nodes_alive and not c.errors),
        }

    def table(self) -> str:
        lines = text_table(self.rows(), self.goals(), reference="single")
        for phase in (self.single, self.cluster):
            if phase is not None:
                lines += phase.summary(self.cpus)
                lines += [f"  error: {error}" for error in phase.errors[:10]]
                if len(phase.errors) > 10:
                    lines.append(f"  ... and {len(phase.errors) - 10} more errors")
        return "\n".join(lines)
