"""``make bench``: every benchmark of the project, each figure beside a reference measured in
the same run; one table at the end, the results as JSON (``bench/results.json``).

1. Booth CPU per call-second: the booth's packet path (test pattern encoded once by libx264
   ultrafast, aiortc only packetizes) against aiortc's own path (the same raw frames, aiortc
   encodes), same synthetic input, sender measured in its own process; the same with access
   units encoded beforehand (a Pi 4's hardware encoder), sent by the booth's packet sender and
   by aiortc's own RTP loop; and the booth's VP8 path (a peer without H.264: the same pictures
   encoded by libvpx in real-time mode) against the H.264 packet path.
2. Glass-to-glass latency: the stamp's capture time in each frame against the time the receiver
   decoded it, through coturn on 127.0.0.1 (relay-only on both sides), against a direct
   loopback call as the reference.
3. Relay CPU per call-second: coturn's CPU (/proc) while it relays the latency run's call, and
   while it relays a booth <-> Chromium call (video and audio both ways), each against the
   booth's own CPU over the same seconds.
4. Call set-up time: booth request to the first decoded frame at the advisor (Chromium) and at
   the booth, over N consecutive calls on the real stack (server, coturn, booth, Chromium),
   against the same calls made from a citizen's Chromium (walk-in page), in alternating blocks.
5. Server capacity: bench/load/ (500 booths, 50 call set-ups/s), when it is there.
6. Soak (only with --soak-minutes): one booth call held for minutes, every process's memory
   growth against the 50 MB goal.
7. Relay capacity: coturn's CPU per concurrent call (two allocations, 1.5 Mbit/s video and
   40 kbit/s audio each way) at growing loads, against the smallest load's; calls per coturn
   core and the cores 10,000 calls need (bench/relay.py).
8. Cluster capacity: bench/cluster/ (5,000 booths on three nodes behind HAProxy, 100 call
   set-ups/s for 60 s from several generator processes), each figure against one node under
   the same load in the same run; memory per connection and every process's CPU.
9. Advisor -> booth glass-to-glass: the advisor's stamped camera in Chromium to the booth's
   screen, with the booth's marker release and with aiortc's own receiver, against the same
   camera sent to a bare aiortc receiver (bench/from_advisor.py; --latency-seconds each).
10. Recovery: the time from the end of an outage (relay frozen 3/10/30 s, relay restarted, the
   booth's path cut 30 s; a relay of a pool of two lost) to fresh media at the advisor
   (Chromium) and at the booth, on the real stack, against the 1 s goal (bench/recovery.py).

11. Booth -> advisor glass-to-glass on the real path: the booth's test pattern to the
   advisor's page in Chromium (audio on), each presented frame's stamp against its expected
   display time, beside the booth's packet path from a bare aiortc peer to a bare page in the
   same Chromium and coturn (bench/to_advisor.py; --latency-seconds each).

Needs coturn (apt-get install coturn) and Chromium (apt-get install chromium). The machine's
other work shows in the numbers: run on a quiet machine for figures to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.procs import cpu_seconds, percentile  # noqa: E402 - needs the path above
from bench.stack import BenchError, running_stack, start_coturn, turn_credentials  # noqa: E402
from bench.table import Row, row  # noqa: E402
from tests.e2e.conftest import stop_process  # noqa: E402

PEER = [sys.executable, str(REPO / "bench" / "peer.py")]
PARTS = (
    "cpu",
    "latency",
    "to-advisor",
    "from-advisor",
    "setup",
    "load",
    "relay",
    "cluster",
    "recovery",
)


def progress(text: str) -> None:
    print(text, flush=True)


def _line(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise BenchError(f"a benchmark peer exited early (code {process.wait()})")
    result: dict[str, Any] = json.loads(line)
    return result


def _send(process: subprocess.Popen[str], data: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(data) + "\n")
    process.stdin.flush()


def call(
    path: str,
    seconds: float,
    extra: list[str],
    *,
    warmup: float = 3.0,
    watch: int | None = None,
) -> dict[str, Any]:
    """One benchmark call between two aiortc peers; returns the sender's CPU, the receiver's
    latencies and, with ``watch``, that process's CPU seconds over the measured time."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def spawn(*words: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*PEER, *words, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )

    sender, receiver = spawn("sender", "--path", path), spawn("receiver")
    try:
        _send(receiver, _line(sender))
        _send(sender, _line(receiver))
        time.sleep(warmup)
        for peer in (sender, receiver):
            _send(peer, {"measure": True})
        watched = cpu_seconds(watch) if watch is not None else 0.0
        time.sleep(seconds)
        if watch is not None:
            watched = cpu_seconds(watch) - watched
        for peer in (sender, receiver):
            _send(peer, {"stop": True})
        sent, received = _line(sender), _line(receiver)
    finally:
        for peer in (sender, receiver):
            peer.wait(timeout=30)
    return {**sent, **received, "watched_cpu_seconds": watched}


# ------------------------------------------------------------------ the benchmarks


def booth_cpu(seconds: float) -> tuple[list[Row], dict[str, Any]]:
    """The booth's packet paths against aiortc's encoder; also returns the packet path's run
    (a direct loopback call: the latency's reference)."""
    progress(f"booth CPU: packet path, {seconds:g} s ...")
    packets = call("packets", seconds, [])
    progress(f"booth CPU: aiortc's own encoder, {seconds:g} s ...")
    reference = call("aiortc", seconds, [])
    progress(f"booth CPU: pre-encoded packets (hardware encoder), {seconds:g} s ...")
    replay = call("replay", seconds, [])
    progress(f"booth CPU: the same packets through aiortc's own RTP loop, {seconds:g} s ...")
    replay_aiortc = call("replay-aiortc", seconds, [])
    progress(f"booth CPU: VP8 path (libvpx, a peer without H.264), {seconds:g} s ...")
    vp8 = call("vp8", seconds, [])
    if not vp8["frames"]:
        raise BenchError("the VP8 path's receiver decoded no frame")
    theirs = reference["cpu_seconds"] / reference["seconds"]
    rows = [
        row(
            f"booth CPU s/call-s, packet path, {label}",
            run["cpu_seconds"] / run["seconds"],
            theirs,
            "aiortc encodes the same frames",
            goal,
        )
        for label, run, goal in (
            ("x264 on the booth's CPU", packets, "ratio <= 0.25"),
            ("hardware-encoded (Pi 4)", replay, "ratio <= 0.10"),
            ("hardware-encoded, aiortc's RTP loop", replay_aiortc, "measured"),
        )
    ]
    rows.append(
        row(
            "booth CPU s/call-s, VP8 path (libvpx real-time, Firefox ESR)",
            vp8["cpu_seconds"] / vp8["seconds"],
            packets["cpu_seconds"] / packets["seconds"],
            "the H.264 packet path, x264, same picture",
            "measured",
        )
    )
    return rows, packets


def latency_and_relay(
    seconds: float, direct: dict[str, Any] | None
) -> tuple[list[Row], dict[str, float]]:
    """Glass-to-glass through coturn (against ``direct``, a loopback call's result, or one run
    now) and coturn's CPU over the same call."""
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        coturn = start_coturn(Path(workdir))
        try:
            user, password = turn_credentials(coturn)
            turn = ["--turn", coturn.url, "--turn-user", user, "--turn-pass", password]
            progress(f"latency and relay CPU through coturn, {seconds:g} s ...")
            relayed = call("packets", seconds, turn, watch=coturn.process.pid)
            if direct is None:
                progress(f"latency, direct loopback reference, {seconds:g} s ...")
                direct = call("packets", seconds, [])
        finally:
            stop_process(coturn.process)
    latencies, direct_latencies = relayed["latencies_ms"], direct["latencies_ms"]
    if not latencies or not direct_latencies:
        raise BenchError("no frame with a readable stamp arrived: the latency run is broken")
    rows = [
        row(
            f"glass-to-glass p{p} ms, via coturn",
            percentile(latencies, p),
            percentile(direct_latencies, p),
            "direct loopback, no relay",
            goal,
        )
        for p, goal in ((50, "<= 80 ms"), (95, ""), (99, "<= 150 ms"))
    ]
    rows.append(
        row(
            "frames measured via coturn (unreadable stamps)",
            len(latencies),
            relayed["unreadable"],
            "unreadable",
            f">= {seconds:g} s of frames",
            ratio=False,
        )
    )
    rows.append(
        row(
            "relay CPU s/call-s, coturn, aiortc call, video one way",
            relayed["watched_cpu_seconds"] / relayed["seconds"],
            relayed["cpu_seconds"] / relayed["seconds"],
            "the booth's packet path, same call",
            "<= 0.0036 (~280 calls/core)",
        )
    )
    return rows, {"p50": percentile(latencies, 50), "mean": statistics.mean(latencies)}


async def on_the_stack(args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    """Set-up time, relay CPU of a real call and the soak, on one running stack."""
    from bench.setup_time import set_up_times
    from bench.soak import GROWTH_GOAL_MB, soak

    rows: list[Row] = []
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        async with running_stack(Path(workdir)) as stack:
            await stack.login_advisor()
            if "setup" not in args.skip:
                progress(f"call set-up: {args.calls} booth and {args.calls} citizen calls ...")
                booth, citizen, held = await set_up_times(
                    stack, args.calls, hold_seconds=args.hold_seconds, progress=progress
                )
                for side, ours, theirs, caller in (
                    ("advisor", booth.at_advisor, citizen.at_advisor, "advisor"),
                    ("booth", booth.at_caller, citizen.at_caller, "citizen"),
                ):
                    for p in (50, 95):
                        rows.append(
                            row(
                                f"call set-up p{p} s ({len(ours)} calls), booth request -> "
                                f"1st frame at {side}",
                                percentile(ours, p),
                                percentile(theirs, p),
                                f"citizen's Chromium calls, 1st frame at {caller}",
                            )
                        )
                details["setup_seconds"] = {
                    "booth": vars(booth),
                    "citizen": vars(citizen),
                    "advisor_accept_click_to_first_frame_p50": {
                        "booth": percentile(booth.accept_to_advisor, 50),
                        "citizen": percentile(citizen.accept_to_advisor, 50),
                    },
                }
                if held is not None:
                    rows.append(
                        row(
                            "relay CPU s/call-s, coturn, booth <-> Chromium, A+V both ways",
                            held.coturn_cpu / held.seconds,
                            held.booth_cpu / held.seconds,
                            "the booth process, same call",
                            "<= 0.0036 (~280 calls/core)",
                        )
                    )
                    details["held_call"] = vars(held)
            if args.soak_minutes > 0:
                progress(f"soak: one booth call for {args.soak_minutes:g} min ...")
                result = await soak(
                    stack, args.soak_minutes, interval=args.soak_interval, progress=progress
                )
                minutes = f"soak {args.soak_minutes:g} min"
                rows += [
                    row(
                        f"{minutes}: RSS growth MB, {name} ({result.start_mb(name):.0f} MB)",
                        result.growth_mb(name),
                        result.settled_growth_mb(name),
                        f"growth after the first {result.warmup_minutes:g} min",
                        f"<= {GROWTH_GOAL_MB:g} MB",
                        ratio=False,
                    )
                    for name in result.samples
                ]
                rows.append(
                    row(
                        f"{minutes}: call still up at the end (1 = yes)",
                        float(result.call_survived),
                        1.0,
                        "a call that lasts",
                        "1",
                        ratio=False,
                    )
                )
                details["soak_rss_bytes"] = {
                    "interval_seconds": result.interval,
                    "samples": result.samples,
                }
    return rows, details


def server_capacity(quick: bool) -> list[Row]:
    """bench.load's rows: one server, 500 booths, 50 call set-ups a second (a tenth of
    that with ``quick``)."""
    try:
        from bench.load import LoadSettings, bench_rows
    except ModuleNotFoundError as exc:
        if exc.name != "bench.load":
            raise
        progress("server capacity: bench/load is not there: skipped")
        return []
    settings = LoadSettings()
    if quick:
        settings = dataclasses.replace(settings, booths=50, advisors=10, rate=5.0, seconds=5.0)
    progress(f"server capacity: {settings.booths} booths, {settings.rate:g} call set-ups/s ...")
    return bench_rows(settings, progress=progress)


def relay_capacity(quick: bool) -> tuple[list[Row], dict[str, Any]]:
    """bench.relay's rows and details: calls through one coturn at 5 to 160 concurrent calls
    (2 and 4 with ``quick``), up to the first load with loss or a generator that fell behind."""
    from bench.relay import CapacitySettings, RelayBenchError, measure

    settings = CapacitySettings()
    if quick:
        settings = settings.quick
    progress(f"relay capacity: {settings.media.describe()} ...")
    try:
        result = measure(settings, progress=progress)
    except RelayBenchError as exc:
        raise BenchError(str(exc)) from exc
    return result.rows(), result.details()


def cluster_capacity(quick: bool, pin: bool) -> tuple[list[Row], dict[str, Any]]:
    """bench.cluster's rows (the cluster's figures, the single node's as the reference) and
    its summary: 5,000 booths, 100 set-ups/s for 60 s (300 booths, 10/s for 5 s with
    ``quick``); ``pin``: each generator process's clients straight to one node."""
    from bench.cluster import QUICK, ClusterSettings, ClusterUnavailableError, run_cluster

    settings = dataclasses.replace(QUICK if quick else ClusterSettings(), pin=pin)
    progress(
        f"cluster capacity: {settings.booths} booths, {settings.rate:g} call set-ups/s for "
        f"{settings.seconds:g} s, one node and then {settings.nodes} ..."
    )
    try:
        result = asyncio.run(run_cluster(settings, progress=progress))
    except ClusterUnavailableError as exc:
        progress(f"cluster capacity: {exc}: skipped")
        return [], {}
    summary = [
        line
        for phase in (result.single, result.cluster)
        if phase is not None
        for line in phase.summary(result.cpus)
    ]
    return result.rows(), {
        "summary": summary,
        "goals": result.goals(),
        "errors": result.cluster.errors[:50],
    }


def recovery(quick: bool) -> tuple[list[Row], dict[str, Any]]:
    """bench.recovery's rows (one per fault and end, the 1 s goal beside) and every time."""
    from bench import recovery as outages

    settings = outages.QUICK if quick else outages.Outages()
    progress("recovery: outages of a running booth call ...")
    results = asyncio.run(outages.measure(progress=progress, outages=settings))
    return outages.rows(results, settings), outages.details(results)


# ------------------------------------------------------------------ command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./scripts/bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of everything in about two minutes (3 calls, short media runs); "
        "written to bench/results-quick.json unless --output is given",
    )
    parser.add_argument("--cpu-seconds", type=float, help="per booth CPU run (default 20)")
    parser.add_argument(
        "--latency-seconds",
        type=float,
        help="latency run, and each path of the advisor -> booth run (default 60)",
    )
    parser.add_argument("--calls", type=int, help="calls per set-up series (default 20)")
    parser.add_argument(
        "--hold-seconds", type=float, help="the relay CPU call's length (default 20)"
    )
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=0.0,
        help="hold one booth call this long and report memory growth (default 0: no soak)",
    )
    parser.add_argument(
        "--soak-interval", type=float, default=10.0, help="seconds between memory samples"
    )
    parser.add_argument(
        "--skip", nargs="+", choices=PARTS, default=[], help="leave these benchmarks out"
    )
    parser.add_argument(
        "--cluster-pin",
        action="store_true",
        help="the cluster part connects each generator process to one node, not via HAProxy",
    )
    parser.add_argument("--output", type=Path, help="the JSON file (default bench/results.json)")
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print the results in the JSON file as a Markdown table (for the README) and exit",
    )
    args = parser.parse_args(argv)
    full = {"cpu_seconds": 20.0, "latency_seconds": 60.0, "calls": 20, "hold_seconds": 20.0}
    quick = {"cpu_seconds": 3.0, "latency_seconds": 5.0, "calls": 3, "hold_seconds": 5.0}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.output is None:
        args.output = REPO / "bench" / ("results-quick.json" if args.quick else "results.json")
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    return args


def table(rows: list[Row], *, markdown: bool = False) -> str:
    """The rows aligned for a terminal, or as a Markdown table for the README."""
    width = max([len(r["figure"]) for r in rows] + [6])
    if markdown:
        lines = [
            "| figure | value | reference (same run) | ratio | goal |",
            "|---|---|---|---|---|",
        ]
    else:
        lines = [
            f"{'figure':{width}} {'value':>9} {'reference':>9} {'ratio':>6}  goal; reference is"
        ]
    for r in rows:
        value, reference = _number(r["value"]), _number(r["reference"])
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        if markdown:
            lines.append(
                f"| {r['figure']} | {value} | {reference} ({r['reference_is']}) | {ratio} "
                f"| {r['goal'] or '-'} |"
            )
        else:
            lines.append(
                f"{r['figure']:{width}} {value:>9} {reference:>9} {ratio:>6}  "
                f"{r['goal'] or '-'}; {r['reference_is']}"
            )
    return "\n".join(lines)


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4f}" if abs(value) < 0.1 else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.markdown:
        saved = json.loads(args.output.read_text())
        print(f"`{saved['command']}`, {saved['when']}:\n")
        print(table(saved["rows"], markdown=True))
        return 0
    command = shlex.join(["./scripts/bench", *(sys.argv[1:] if argv is None else argv)])
    started = time.monotonic()
    rows: list[Row] = []
    details: dict[str, Any] = {}
    try:
        direct = None
        if "cpu" not in args.skip:
            cpu_rows, direct = booth_cpu(args.cpu_seconds)
            rows += cpu_rows
        if "latency" not in args.skip:
            latency_rows, details["latency_ms"] = latency_and_relay(args.latency_seconds, direct)
            rows += latency_rows
        if "to-advisor" not in args.skip:
            from bench.to_advisor import to_advisor

            to_rows, details["to_advisor"] = to_advisor(args.latency_seconds, progress)
            rows += to_rows
        if "from-advisor" not in args.skip:
            from bench.from_advisor import from_advisor

            advisor_rows, details["from_advisor"] = from_advisor(args.latency_seconds, progress)
            rows += advisor_rows
        if "setup" not in args.skip or args.soak_minutes > 0:
            stack_rows, stack_details = asyncio.run(on_the_stack(args))
            rows += stack_rows
            details.update(stack_details)
        if "recovery" not in args.skip:
            recovery_rows, details["recovery"] = recovery(args.quick)
            rows += recovery_rows
        if "load" not in args.skip:
            rows += server_capacity(args.quick)
        if "relay" not in args.skip:
            relay_rows, details["relay_capacity"] = relay_capacity(args.quick)
            rows += relay_rows
        if "cluster" not in args.skip:
            cluster_rows, details["cluster_capacity"] = cluster_capacity(
                args.quick, args.cluster_pin
            )
            rows += cluster_rows
    except (BenchError, AssertionError) as exc:
        print(f"bench: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    print()
    print(table(rows))
    result = {
        "command": command,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_average": os.getloadavg(),
        },
        "rows": rows,
        **details,
    }
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{command}: written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
