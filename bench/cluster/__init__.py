"""Cluster load: 5,000 booths across three server nodes behind HAProxy while 100 calls a second
are set up, against one node under the same load in the same run.

What it does, in order, against real processes (everything on 127.0.0.1):

1. Starts PostgreSQL, nats-server (``tests/server/postgres.py``, ``tests/cluster/
   natsserver.py``) and stores the booths (each its own Ed25519 key, enrolled), advisors, an
   administrator and the API probe's account once, with bench/load's :func:`populate`.
2. For each topology, the single node first (the reference), then the cluster: starts the
   nodes and HAProxy in front (``tests/cluster/nodes.py``'s :func:`start_cluster`, round
   robin), then several load generator processes (:mod:`.worker`), each with its share of the
   booths and advisors. The advisors connect; the API is measured on the quiet nodes; the
   nodes' VmRSS is read before and after the booths connect (signed logins, heartbeats with
   health at the booth's interval): the growth divided by the booths is the memory of a
   connection.
3. Sets up calls one at a time (the set-up reference), then, with ``steps``, short loads at
   those rates, then ``rate`` set-ups a second for ``seconds`` (then, with ``beyond``, short
   loads above it), the workers' shares interleaved: a booth asks for an advisor, the
   advisor accepts, offer, answer and candidates are exchanged, one of them hangs up
   (bench/load's exchange). Meanwhile bench/load's probe
   process calls the advisors' API through HAProxy at a steady rate, and every process's CPU is
   read from /proc: the nodes, NATS, PostgreSQL, HAProxy, the generator and the machine.
4. Checks every booth is still connected and online in the fleet view, that no message was
   refused and no node logged an error; says where the limit was.

By default every client goes through HAProxy (round robin), where a booth's challenge and its
login may reach different nodes: a login refused is counted, tried again with a fresh nonce,
and after 20 refusals in a row made at a node directly (counted too; none since the nodes share
their nonces). ``pin`` connects each worker's clients straight to one node, so each node serves
its own booths' calls (for a server whose advisors see only their own node's callers).

HAProxy checks the nodes as production does (every 2 s, out after 3 failures), not as the
cluster tests do (250 ms): with those a node whose event loop stalls under the load is taken out
and every socket on it closed. The full run (5,000 booths, steps at 25, 50 and 75/s, then 100/s
for 60 s, then 150 and 200/s for 10 s each to find where these cores end, on both topologies)
takes about nine minutes on two cores.

``python -m bench.cluster`` prints the figures; ``bench/run.py`` puts :meth:`ClusterResult.rows`
in its table (the cluster's figure, the single node's as the reference);
``tests/cluster/test_cluster_load.py`` runs a small one in CI. The package: :mod:`.settings`,
:mod:`.worker` (a load generator process), :mod:`.stack` (the processes and their CPU),
:mod:`.result` (figures, table, the limit); this module runs it all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

from bench.cluster.result import NODE, ClusterResult, PhaseResult, StepResult
from bench.cluster.settings import QUICK, ClusterSettings
from bench.cluster.stack import (
    ClusterUnavailableError,
    CpuWatch,
    create_database,
    fleet_online,
    health_checks,
    marked_down,
    node_errors,
    postgres,
    postgres_pids,
    unavailable_is_an_error,
)
from bench.cluster.worker import main as worker_main
from bench.load.clients import Accounts, populate
from bench.load.server import ApiProbe, rss_kib
from bench.load.settings import REPO, Progress, _quiet, timed_progress
from tests.cluster.haproxy import BINARY, WHY
from tests.cluster.natsserver import NatsServer, running_nats_server
from tests.cluster.nodes import Cluster, NatsAccess, start_cluster
from tests.components import require

__all__ = [
    "QUICK",
    "ClusterResult",
    "ClusterSettings",
    "ClusterUnavailableError",
    "main",
    "run_cluster",
    "run_phase",
]

#: Answers from a worker are one JSON line each, the set-up times of a whole load among them.
LINE_LIMIT = 64 * 1024 * 1024


# ---------------------------------------------------------------- the load generator


class Worker:
    """One load generator process (:mod:`bench.cluster.worker`) and its command line."""

    def __init__(self, index: int, process: asyncio.subprocess.Process) -> None:
        self.index = index
        self.process = process

    @classmethod
    async def start(cls, index: int, job: dict[str, Any]) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.cluster",
            "--worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO,
            limit=LINE_LIMIT,
        )
        worker = cls(index, process)
        await worker.tell(job)
        return worker

    @property
    def pid(self) -> int:
        return self.process.pid

    async def tell(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    async def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        await self.tell(command)
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            code = await self.process.wait()
            raise RuntimeError(f"load worker {self.index} exited (code {code}) at {command}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        """Close its input (it ends by itself after ``finish``); kill it by its pid if not."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout=20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def ask_all(workers: Sequence[Worker], command: dict[str, Any]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(w.ask(command) for w in workers)))


# ---------------------------------------------------------------- one topology


class Phase:
    """One topology under load: the single node, or the cluster."""

    def __init__(
        self,
        name: str,
        cluster: Cluster,
        settings: ClusterSettings,
        accounts: Accounts,
        postgres_url: str,
        nats_pid: int | None,
        progress: Progress,
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self.accounts = accounts
        self.progress = progress
        self.result = PhaseResult(
            name=name,
            nodes=len(cluster.nodes),
            booths=settings.booths,
            rate=settings.rate,
            seconds=settings.seconds,
            through="pinned to nodes" if settings.pin else "through HAProxy",
            advisors=settings.advisors,
        )
        self.workers: list[Worker] = []
        nodes = [node.process.pid for node in cluster.nodes if node.process is not None]
        self.node_pids = nodes
        each = {
            f"{NODE}{node.node_id}": (lambda pid=node.process.pid: [pid])
            for node in cluster.nodes
            if node.process is not None
        }
        self.cpu = CpuWatch(
            {
                **each,
                "nodes": lambda: nodes,
                "NATS": lambda: [nats_pid] if nats_pid is not None else [],
                "PostgreSQL": lambda: postgres_pids(postgres_url),
                "HAProxy": lambda: [cluster.haproxy.process.pid],
                "generator": lambda: [w.pid for w in self.workers],
                "coordinator": lambda: [os.getpid()],
            }
        )

    def url_for(self, worker: int) -> str:
        if self.settings.pin:
            return self.cluster.nodes[worker % len(self.cluster.nodes)].url
        return self.cluster.url

    def rss(self) -> dict[str, int]:
        return {
            node.node_id: rss_kib(node.process.pid)
            for node in self.cluster.nodes
            if node.process is not None
        }

    async def start_workers(self) -> None:
        s, count = self.settings, self.settings.workers
        booths = self.accounts.booths
        for index in range(count):
            job = {
                "url": self.url_for(index),
                "nodes": [] if s.pin else [node.url for node in self.cluster.nodes],
                "settings": asdict(s.for_worker(s.rate / count, s.seconds)),
                "booths": [
                    [b.booth_id, b.name, b.key.private_bytes_raw().hex()]
                    for b in booths[index::count]
                ],
                "advisor_sessions": self.accounts.advisor_sessions[index::count],
            }
            self.workers.append(await Worker.start(index, job))

    async def load(self, rate: float, seconds: float) -> StepResult:
        """``rate`` set-ups a second for ``seconds``, the workers' shares interleaved, the API
        probed meanwhile from its own process."""
        count = len(self.workers)
        total = int(rate * seconds)
        step = StepResult(rate=rate, seconds=seconds)
        probe = ApiProbe(self.cluster.url, self.settings.api_rate, seconds)
        await probe.start()
        probing = asyncio.create_task(probe.run())
        start = time.time() + 0.5
        commands = []
        for index in range(count):
            mine = len(range(index, total, count))
            share = rate / count
            commands.append(
                {
                    "do": "load",
                    "rate": share,
                    # The worker starts int(rate * seconds) set-ups: exactly ``mine``.
                    "seconds": (mine + 0.5) / share,
                    "start": start + index / rate,
                }
            )
        down_before = len(marked_down(self.cluster))
        self.cpu.start()
        began = time.monotonic()
        answers = await asyncio.gather(
            *(w.ask(c) for w, c in zip(self.workers, commands, strict=True))
        )
        step.cpu = self.cpu.cores(time.monotonic() - began)
        for index, answer in enumerate(answers):
            step.attempted += answer["attempted"]
            step.completed += answer["completed"]
            step.setup_ms += answer["setup_ms"]
            self.result.negotiated_ms += answer["negotiated_ms"]
            self.result.waited_for_advisor += answer["waited_for_advisor"]
            step.waited_for_advisor += answer["waited_for_advisor"]
            step.max_heartbeat_gap = max(step.max_heartbeat_gap, answer["max_heartbeat_gap"])
            step.errors += answer["errors"]
            # From the first request to the last call set up, at least the requests' spread.
            step.load_seconds = max(step.load_seconds, answer["last_done"] + index / rate)
        step.load_seconds = max(step.load_seconds, total / rate)
        samples, failures = await probing
        step.api_ms = [ms for _, ms in samples]
        step.api_failures = [f"API at {rate:g}/s: {failure}" for failure in failures]
        step.marked_down = marked_down(self.cluster)[down_before:]
        return step

    async def run(self, http: aiohttp.ClientSession) -> PhaseResult:
        s, result, say = self.settings, self.result, self.progress
        cluster = self.cluster
        try:
            await self.start_workers()
            await ask_all(self.workers, {"do": "advisors"})
            say(f"  {s.advisors} advisors connected; API on the quiet nodes ...")
            idle = ApiProbe(cluster.url, s.api_rate, s.api_reference_seconds)
            await idle.start()
            samples, failures = await idle.run()
            result.reference_api_ms = [ms for _, ms in samples]
            result.errors += [f"API (idle): {f}" for f in failures]
            await asyncio.sleep(1.0)
            result.rss_before_kib = self.rss()
            say(f"  connecting {s.booths} booths from {s.workers} workers ...")
            answers = await ask_all(self.workers, {"do": "booths"})
            result.booths_connected = sum(a["connected"] for a in answers)
            result.booths_not_connected = sum(a["not_connected"] for a in answers)
            result.login_retries = sum(a["login_retries"] for a in answers)
            result.booths_direct = sum(a["direct"] for a in answers)
            for answer in answers:
                for reason, count in answer["connect_failures"].items():
                    known = result.connect_failures.get(reason, 0)
                    result.connect_failures[reason] = known + count
            result.connect_seconds = max(a["seconds"] for a in answers)
            say(
                f"  {result.booths_connected} connected in {result.connect_seconds:.1f} s "
                f"({result.login_retries} logins refused and tried again, {result.booths_direct} "
                "booths then logged in at a node directly, "
                f"{result.booths_not_connected} not connected, other failures tried again: "
                f"{result.connect_failures or 'none'}); two heartbeat rounds ..."
            )
            # Two heartbeat rounds: booths that connected during a round beat next in the one
            # after it; from then on every booth beats once an interval.
            wait = 2 * s.for_worker(s.rate, s.seconds).heartbeat_seconds + 1.0
            self.cpu.start()
            await asyncio.sleep(wait)
            result.cpu_idle = self.cpu.cores(wait)
            result.rss_after_kib = self.rss()
            say(
                f"  nodes' RSS {sum(result.rss_before_kib.values()) / 1024:.1f} -> "
                f"{sum(result.rss_after_kib.values()) / 1024:.1f} MiB: "
                f"{result.per_booth_kib:.1f} KiB a booth; idle CPU "
                + ", ".join(f"{k} {v:.2f}" for k, v in result.cpu_idle.items() if NODE not in k)
            )
            if s.reference_setups:
                say(f"  {s.reference_setups} set-ups one at a time ...")
                answer = await self.workers[0].ask({"do": "reference", "count": s.reference_setups})
                result.reference_setup_ms = answer["setup_ms"]
            for rate in s.steps:
                say(f"  step: {rate:g} set-ups/s for {s.step_seconds:g} s ...")
                result.steps.append(await self.load(rate, s.step_seconds))
                say(f"    {result.steps[-1].line()}")
            say(f"  {s.rate:g} set-ups/s for {s.seconds:g} s, the API probed meanwhile ...")
            result.load = await self.load(s.rate, s.seconds)
            result.api_ms = result.load.api_ms
            result.api_failures = len(result.load.api_failures)
            say(f"    {result.load.line()}")
            for rate in s.beyond:
                say(f"  beyond: {rate:g} set-ups/s for {s.step_seconds:g} s ...")
                result.beyond.append(await self.load(rate, s.step_seconds))
                say(f"    {result.beyond[-1].line()}")
            result.booths_online_at_end = await fleet_online(cluster, http)
            if not s.pin:
                result.per_node = cluster.haproxy.current()
            answers = await ask_all(self.workers, {"do": "finish"})
            result.booths_connected_at_end = sum(a["connected_at_end"] for a in answers)
            result.advisors_at_end = sum(a["advisors_at_end"] for a in answers)
            result.heartbeats = sum(a["heartbeats"] for a in answers)
            result.messages_received = sum(a["messages_received"] for a in answers)
            result.errors += [e for a in answers for e in a["errors"]]
            if s.pin:
                for index, answer in enumerate(answers):
                    node = cluster.nodes[index % len(cluster.nodes)].node_id
                    result.per_node[node] = result.per_node.get(node, 0) + (
                        answer["connected_at_end"] + answer["advisors_at_end"]
                    )
            result.nodes_alive = all(node.running for node in cluster.nodes)
            for step in [*result.steps, result.load]:
                result.errors += step.api_failures
                result.errors += [
                    f"HAProxy at {step.rate:g}/s: {line}" for line in step.marked_down
                ]
        finally:
            for worker in self.workers:
                await worker.stop()
        result.errors += node_errors(cluster)
        return result


async def run_phase(
    name: str,
    cluster: Cluster,
    settings: ClusterSettings,
    accounts: Accounts,
    *,
    postgres_url: str,
    nats_pid: int | None,
    progress: Progress = _quiet,
) -> PhaseResult:
    """The load on a running ``cluster`` (its database holding ``accounts``, from
    :func:`populate`); ``postgres_url`` and ``nats_pid`` name the processes whose CPU is read."""
    phase = Phase(name, cluster, settings, accounts, postgres_url, nats_pid, progress)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        return await phase.run(http)


# ---------------------------------------------------------------- the whole run


async def run_cluster(
    settings: ClusterSettings | None = None,
    *,
    workdir: Path | None = None,
    progress: Progress = _quiet,
) -> ClusterResult:
    """Run the load on one node, then on the cluster, in ``workdir`` (default: a temporary
    folder); raises :class:`ClusterUnavailableError` without HAProxy, nats-server or
    PostgreSQL."""
    settings = settings or ClusterSettings()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vb-cluster-")))
        with unavailable_is_an_error():
            haproxy = require(BINARY, WHY)
        server = stack.enter_context(postgres())
        with unavailable_is_an_error():
            nats = stack.enter_context(running_nats_server(_folder(workdir / "nats")))
        return await _run(settings, workdir, server, haproxy, nats, progress)
    raise AssertionError("unreachable")  # pragma: no cover - for mypy's return check


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _run(
    settings: ClusterSettings,
    workdir: Path,
    server: str,
    haproxy: str,
    nats: NatsServer,
    progress: Progress,
) -> ClusterResult:
    database = await create_database(server)
    progress(f"preparing {settings.booths} booths and {settings.advisors} advisors ...")
    accounts = await populate(database, settings.accounts(), _every_thousand(progress))
    access = NatsAccess(urls=(nats.url,), token_file=nats.token_file)
    topologies = [("single node", 1)] if settings.single else []
    topologies.append((f"{settings.nodes} nodes", settings.nodes))
    phases: list[PhaseResult] = []
    for name, count in topologies:
        progress(f"{name}: starting {count} node(s) and HAProxy ...")
        with (
            health_checks(settings.checks),
            start_cluster(
                _folder(workdir / name.replace(" ", "-")),
                haproxy_binary=haproxy,
                database_url=database,
                nats=access,
                count=count,
                settings={"heartbeat_seconds": settings.heartbeat_seconds},
                balance=settings.balance,
            ) as cluster,
        ):
            phases.append(
                await run_phase(
                    name,
                    cluster,
                    settings,
                    accounts,
                    postgres_url=server,
                    nats_pid=nats.pid,
                    progress=progress,
                )
            )
        for line in phases[-1].summary(os.cpu_count() or 1):
            progress(line)
    single = phases[0] if settings.single else None
    return ClusterResult(single=single, cluster=phases[-1], cpus=os.cpu_count() or 1)


def _every_thousand(progress: Progress) -> Progress:
    """populate's progress with a line every thousand booths, not every hundred."""

    def say(text: str) -> None:
        count = text.split()[0]
        if "booths enrolled" not in text or (count.isdigit() and int(count) % 1000 == 0):
            progress(text)

    return say


# ---------------------------------------------------------------- entry points


def _rates(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster",
        description=(
            "Start PostgreSQL, NATS, one node and then a cluster of nodes behind HAProxy; "
            "connect booths and advisors from several load generator processes, set up calls "
            "at a steady rate and compare the cluster's figures with the single node's."
        ),
    )
    d = ClusterSettings()
    parser.add_argument("--booths", type=int, help="booths (5000)")
    parser.add_argument("--advisors", type=int, help="advisors (150)")
    parser.add_argument("--rate", type=float, help="set-ups/s (100)")
    parser.add_argument("--seconds", type=float, help="the load's length (60)")
    parser.add_argument("--api-rate", type=float, help="API requests/s (20)")
    parser.add_argument("--nodes", type=int, help="nodes of the cluster (3)")
    parser.add_argument("--workers", type=int, help="generator processes (3)")
    parser.add_argument(
        "--heartbeat-seconds",
        type=float,
        help="the nodes' heartbeat_seconds, which booths follow (15; 5 with --quick)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="connect each worker's clients straight to one node, not through HAProxy",
    )
    parser.add_argument(
        "--balance",
        choices=("roundrobin", "leastconn"),
        default=d.balance,
        help="HAProxy's balancing (roundrobin)",
    )
    parser.add_argument(
        "--checks",
        choices=("production", "tests"),
        default=d.checks,
        help="HAProxy's health checks: production's (every 2 s, out after 3 failures) or the "
        "cluster tests' (every 250 ms, out after 2)",
    )
    parser.add_argument(
        "--steps",
        type=_rates,
        help="short loads first at these rates (25,50,75; none with --quick; '' for none)",
    )
    parser.add_argument(
        "--beyond",
        type=_rates,
        help="short loads after the main one at these rates (150,200; none with --quick)",
    )
    parser.add_argument(
        "--step-seconds", type=float, default=d.step_seconds, help="each step's length (10)"
    )
    parser.add_argument("--no-single", action="store_true", help="leave out the single node")
    parser.add_argument("--quick", action="store_true", help="300 booths, 10/s for 5 s")
    parser.add_argument("--json", type=Path, help="also write the rows and figures here")
    parser.add_argument("--keep", type=Path, help="keep the nodes' data and logs in this folder")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:  # a load generator process: a job and commands on stdin
        worker_main()
        return 0

    base = QUICK if args.quick else d
    given = {
        name: getattr(args, name)
        for name in (
            "booths",
            "advisors",
            "rate",
            "seconds",
            "api_rate",
            "nodes",
            "workers",
            "heartbeat_seconds",
        )
        if getattr(args, name) is not None
    }
    try:
        settings = ClusterSettings(
            **{
                **asdict(base),
                **given,
                "pin": args.pin,
                "balance": args.balance,
                "checks": args.checks,
                "steps": base.steps if args.steps is None else args.steps,
                "beyond": base.beyond if args.beyond is None else args.beyond,
                "step_seconds": args.step_seconds,
                "single": not args.no_single,
            }
        )
    except ValueError as exc:
        parser.error(str(exc))
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    try:
        result = asyncio.run(run_cluster(settings, workdir=args.keep, progress=timed_progress()))
    except (RuntimeError, OSError) as exc:
        print(f"bench.cluster: {exc}", file=sys.stderr)
        return 1
    print()
    print(result.table())
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "command": "python -m bench.cluster " + " ".join(argv or sys.argv[1:]),
                    "rows": result.rows(),
                    "goals": result.goals(),
                    "summary": [
                        line
                        for phase in (result.single, result.cluster)
                        if phase is not None
                        for line in phase.summary(result.cpus)
                    ],
                    "errors": result.cluster.errors,
                },
                indent=1,
            )
            + "\n"
        )
    return 0 if all(result.goals().values()) else 1
