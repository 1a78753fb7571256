"""Recovery after outages: the time from the network (or relay) coming back to fresh media at
each end of a running booth call, against the 1 s goal.

The real stack, as the fault tests run it (tests/e2e/test_faults.py, whose helpers this uses):
the server, coturn, a headless booth with its test-pattern camera reaching both only through
forwarders on loopback that can be cut (tests/e2e/netfault.py), and the advisor in Chromium.
One call goes through: the relay frozen (coturn stopped with SIGSTOP, then continued) for 3, 10
and 30 s, coturn restarted (kill -9 and a new start: every allocation gone), the booth's path
cut for 30 s. A second call runs with a pool of two relays (the server probing them); the relay
it uses is killed (-9), and the time runs from the kill, the other relay being there all along.

Fresh media at the advisor: the first frame the page presents after restoration
(``requestVideoFrameCallback``); at the booth: when it noted media again (the first frame after
a gap, or of a new connection; ``media_resumed_at`` in its status file). One clock.

``python -m bench.recovery [--runs N]`` runs it alone and prints its rows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stack import RELAY_MAX_PORT, RELAY_MIN_PORT, BenchError
from bench.table import Row, row, text_table
from tests.components import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.conftest import (
    BoothProcess,
    Coturn,
    Server,
    launch_booth,
    login_advisor,
    make_server,
    poll,
    start_coturn,
    stop_process,
)
from tests.e2e.netfault import PathCut
from tests.e2e.outages import WATCH_FRAMES, Call, freeze, restart_coturn

GOAL_SECONDS = 1.0


@dataclass(frozen=True)
class Outages:
    """How long each outage lasts."""

    freezes: tuple[int, ...] = (3, 10, 30)
    cut: int = 30


#: A smoke run (``make bench ARGS=--quick``): short outages only.
QUICK = Outages(freezes=(3,), cut=3)
BOOTH_NAME = "Recovery booth"
#: The pool's probing: every second, down after two failures (as the relay pool's test).
POOL_PROBE = "probe_seconds = 1.0\ndown_after_failures = 2\n"


@dataclass
class Recovery:
    """Seconds from restoration to fresh media, per fault and end (None: not back in time)."""

    seconds: dict[str, dict[str, float | None]] = field(default_factory=dict)
    repairs: dict[str, int | None] = field(default_factory=dict)

    def note(self, fault: str, at_advisor: float | None, at_booth: float | None) -> None:
        self.seconds[fault] = {"advisor": at_advisor, "booth": at_booth}


def faults(outages: Outages) -> list[str]:
    return [
        *(f"relay frozen {s} s" for s in outages.freezes),
        "relay restarted",
        f"booth's path cut {outages.cut} s",
        "a relay of the pool lost",
    ]


def _turnserver() -> str:
    binary = shutil.which("turnserver")
    if binary is None:
        raise BenchError("coturn (turnserver) is not installed: apt-get install coturn")
    return binary


@contextlib.asynccontextmanager
async def _chromium() -> AsyncIterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        raise BenchError(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def _call(browser: Any, server: Server, booth: BoothProcess) -> Call:
    """The booth's call, accepted by the advisor, media both ways."""
    page = await login_advisor(browser, server)
    call = Call(page, booth)
    waiting = booth.wait_for_report(lambda s: s.state == "waiting", 40, "the booth to wait")
    call.session_id = waiting.session_id
    await page.get_by_role("button", name=f"Accept call from {BOOTH_NAME}").click(timeout=20_000)
    await poll(
        lambda: page.evaluate("() => document.getElementById('remote-video').dataset.firstFrameAt"),
        30,
        "the booth's video at the advisor",
    )
    await page.evaluate(WATCH_FRAMES)
    booth.wait_for_report(
        lambda s: (s.call or {}).get("video_frames_received", 0) > 30, 20, "media both ways"
    )
    return call


async def _settle(call: Call) -> None:
    await poll(call.in_call, 10, "the call to settle")
    await asyncio.sleep(3)  # media flowing a while before the next fault


async def _measure(call: Call, result: Recovery, fault: str, restored: float) -> None:
    try:
        at_advisor, at_booth = await call.media_back_after(restored, timeout=40)
    except AssertionError:
        at_advisor, at_booth = None, None
    result.note(fault, at_advisor, at_booth)
    result.repairs[fault] = call.repairs()


async def one_relay(
    workdir: Path,
    browser: Any,
    result: Recovery,
    progress: Callable[[str], None],
    outages: Outages,
) -> None:
    """Freezes, a restart and a cut of the booth's path, on one call through one coturn."""
    turnserver = _turnserver()
    coturn = start_coturn(turnserver, workdir, min_port=RELAY_MIN_PORT, max_port=RELAY_MAX_PORT)
    path = PathCut()
    server: Server | None = None
    booth: BoothProcess | None = None
    try:
        server = make_server(workdir, None)
        with server.config.open("a") as config:
            config.write(
                f'[turn]\nurls = ["turn:127.0.0.1:{path.udp(coturn.port)}?transport=udp"]\n'
                f'secret = "{coturn.secret}"\nttl_seconds = 600\n'
            )
        server.start()
        booth_config = workdir / "booth.toml"
        booth_config.write_text(
            f'server_url = "http://127.0.0.1:{path.tcp(server.port)}"\n'
            f'credential = "{server.add_booth(BOOTH_NAME)}"\n'
            '[camera]\nkind = "test-pattern"\n'
        )
        booth = launch_booth(booth_config, workdir / "booth", "--call")
        call = await _call(browser, server, booth)
        for seconds in outages.freezes:
            progress(f"recovery: relay frozen for {seconds} s ...")
            restored = await asyncio.to_thread(freeze, coturn.process, seconds)
            await _measure(call, result, f"relay frozen {seconds} s", restored)
            await _settle(call)
        progress("recovery: relay restarted ...")
        await asyncio.to_thread(restart_coturn, coturn, turnserver, workdir / "turnserver.conf")
        await _measure(call, result, "relay restarted", time.time())
        await _settle(call)
        progress(f"recovery: the booth's path cut for {outages.cut} s ...")
        path.cut()
        await asyncio.sleep(outages.cut)
        path.restore()
        await _measure(call, result, f"booth's path cut {outages.cut} s", time.time())
        await call.page.context.close()
    finally:
        if booth is not None:
            stop_process(booth.process)
        if server is not None:
            server.stop()
        path.close()
        stop_process(coturn.process)


async def pool(
    workdir: Path,
    browser: Any,
    result: Recovery,
    progress: Callable[[str], None],
    outages: Outages,
) -> None:
    """A call through a pool of two relays loses the one it uses (kill -9)."""
    turnserver = _turnserver()
    middle = (RELAY_MIN_PORT + RELAY_MAX_PORT) // 2
    relays: list[tuple[Coturn, tuple[int, int]]] = []
    server: Server | None = None
    booth: BoothProcess | None = None
    try:
        secret = None
        for name, low, high in (("a", RELAY_MIN_PORT, middle), ("b", middle + 1, RELAY_MAX_PORT)):
            directory = workdir / f"relay-{name}"
            directory.mkdir()
            coturn = start_coturn(turnserver, directory, min_port=low, max_port=high, secret=secret)
            secret = coturn.secret
            relays.append((coturn, (low, high)))
        server = make_server(workdir, None)
        with server.config.open("a") as config:
            config.write(f'[turn]\nsecret = "{secret}"\nttl_seconds = 600\n{POOL_PROBE}')
            for n, (coturn, _) in enumerate(relays):
                config.write(f'[[turn.relays]]\nname = "relay-{n}"\nurls = ["{coturn.url}"]\n')
        server.start()
        booth_config = workdir / "booth.toml"
        booth_config.write_text(
            f'server_url = "{server.url}"\ncredential = "{server.add_booth(BOOTH_NAME)}"\n'
            '[camera]\nkind = "test-pattern"\n'
        )
        booth = launch_booth(booth_config, workdir / "booth", "--call")
        call = await _call(browser, server, booth)
        status = booth.wait_for(
            lambda s: s.get("call", {}).get("selected_pair") is not None, 20, "the relay in use"
        )
        port = int(status["call"]["selected_pair"]["local_address"].rsplit(":", 1)[1])
        (used,) = [coturn for coturn, (low, high) in relays if low <= port <= high]
        progress("recovery: the call's relay of the pool killed ...")
        await asyncio.sleep(2)
        os.kill(used.process.pid, signal.SIGKILL)
        killed = time.time()
        used.process.wait(10)

        async def at_advisor() -> float | None:
            at = await call.advisor_resumed_at()
            return at - killed if at > killed else None

        fault = "a relay of the pool lost"
        try:
            advisor = await poll(at_advisor, 40, "the booth's video at the advisor again")
            status = booth.wait_for(
                lambda s: (s.get("call", {}).get("media_resumed_at") or 0) > killed,
                40,
                "the advisor's media at the booth again",
            )
            result.note(fault, advisor, status["call"]["media_resumed_at"] - killed)
        except AssertionError:
            result.note(fault, None, None)
        result.repairs[fault] = call.repairs()
        await call.page.context.close()
    finally:
        if booth is not None:
            stop_process(booth.process)
        if server is not None:
            server.stop()
        for coturn, _ in relays:
            stop_process(coturn.process)


async def measure(
    progress: Callable[[str], None] = print, runs: int = 1, outages: Outages = Outages()
) -> list[Recovery]:
    """``runs`` rounds of every fault, each on a fresh stack."""
    results = []
    async with _chromium() as browser:
        for number in range(runs):
            result = Recovery()
            for part in (one_relay, pool):
                with tempfile.TemporaryDirectory(prefix="bench-recovery-") as workdir:
                    await part(Path(workdir), browser, result, progress, outages)
            progress(f"recovery: round {number + 1} of {runs} done")
            results.append(result)
    return results


def rows(results: list[Recovery], outages: Outages = Outages()) -> list[Row]:
    """One row per fault and end: the median over the rounds (infinite when a round's media did
    not come back), the 1 s goal as the reference."""
    table = []
    for fault in faults(outages):
        for end in ("advisor", "booth"):
            times = [r.seconds.get(fault, {}).get(end) for r in results]
            known = [t for t in times if t is not None]
            value = statistics.median(known) if len(known) == len(times) else float("inf")
            spread = f", {min(known):.2f}-{max(known):.2f} s" if len(known) > 1 else ""
            since = "the kill" if "pool" in fault else "restoration"
            table.append(
                row(
                    f"recovery s, {fault}: {since} -> fresh media at the {end}"
                    + (f" (median of {len(times)}{spread})" if len(times) > 1 else ""),
                    value,
                    GOAL_SECONDS,
                    "the goal",
                    f"<= {GOAL_SECONDS:g} s",
                    ratio=False,
                )
            )
    return table


def details(results: list[Recovery]) -> dict[str, Any]:
    return {
        "rounds": [{"seconds": r.seconds, "repairs": r.repairs} for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__)
    parser.add_argument("--runs", type=int, default=1, help="rounds of every fault (default 1)")
    parser.add_argument("--quick", action="store_true", help="3 s outages only")
    args = parser.parse_args(argv)
    outages = QUICK if args.quick else Outages()
    try:
        results = asyncio.run(measure(runs=args.runs, outages=outages))
    except (BenchError, AssertionError) as exc:
        print(f"bench.recovery: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    table = rows(results, outages)
    goals = {f"{r['figure']}": r["value"] <= GOAL_SECONDS for r in table}
    for line in text_table(table, goals, reference="goal"):
        print(line)
    for number, result in enumerate(results, 1):
        print(f"round {number}: {result.seconds} repairs {result.repairs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
