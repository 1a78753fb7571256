"""Server load: one server process holds 500 connected booths while it sets up 50 calls a second.

What it does, in order, against a real ``python -m server`` on a fresh temporary data directory:

1. Stores 500 enrolled booths (each its own Ed25519 key, enrolled with a one-time token as the
   fleet does), advisors and one administrator, before the server starts.
2. Logs the advisors in and opens their WebSockets; measures the API's latency on the idle
   server (the reference) and the server's resident memory (VmRSS).
3. Connects the 500 booths the way a booth does (a fresh signed nonce, ``GET /api/v1/ws``) from
   this one process, each sending heartbeats with health at the booth's interval; measures the
   memory again: the difference per booth is the memory of an idle booth.
4. Sets up calls one at a time (the reference), then ``--rate`` a second for ``--seconds``: a
   booth asks for an advisor, the advisor sees it in its queue and accepts, both exchange an
   offer, an answer and ICE candidates through the server, and one of them hangs up. Meanwhile
   a separate small process calls the advisors' API at a steady rate (so the load generator's
   own busy event loop does not count as server latency).
5. Checks that the server is up, logged no error, that every booth is still connected and
   online in the fleet view, and that no message was refused.

``python -m bench.load`` prints the figures; :func:`bench_rows`
returns them in the shape of ``bench/run.py``'s table; ``tests/server/test_load.py`` runs it in
CI. Set-up latencies are measured by the load generator, which shares the machine's cores with
the server: they include its own scheduling delay.

The package: :mod:`.settings` (what to run), :mod:`.server` (the server and the API probe
processes), :mod:`.clients` (accounts, booths, advisors), :mod:`.session` (one run),
:mod:`.result` (figures, table, goals); this module runs it all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.load.clients import populate
from bench.load.result import LoadResult
from bench.load.server import ApiProbe, ServerProcess, _free_port, _probe, rss_kib
from bench.load.session import Run
from bench.load.settings import PASSWORD, LoadSettings, Progress, _quiet, timed_progress
from bench.procs import cpu_seconds

__all__ = ["LoadResult", "LoadSettings", "bench_rows", "main", "run_load"]

# ---------------------------------------------------------------- the whole run


async def run_load(
    settings: LoadSettings | None = None,
    *,
    workdir: Path | None = None,
    progress: Progress = _quiet,
) -> LoadResult:
    """Run the load against a fresh server in ``workdir`` (default: a temporary folder)."""
    settings = settings or LoadSettings()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vb-load-")))
        return await _run(settings, workdir, progress)
    raise AssertionError("unreachable")  # pragma: no cover - for mypy's return check


async def _run(settings: LoadSettings, workdir: Path, progress: Progress) -> LoadResult:
    server = ServerProcess(
        data_dir=workdir / "server-data",
        port=_free_port(),
        log=workdir / "server.log",
        heartbeat_seconds=settings.heartbeat_seconds,
    )
    server.data_dir.mkdir(parents=True, exist_ok=True)
    progress(f"preparing {settings.booths} booths and {settings.advisors} advisors ...")
    accounts = await populate(server.database_url, settings, progress)
    run = Run(settings, server, progress)
    result = run.result
    connector = aiohttp.TCPConnector(limit=0)
    beating: asyncio.Task[None] | None = None
    async with aiohttp.ClientSession(connector=connector) as http:
        try:
            await server.start(http)
            progress(f"server pid {server.pid} on {server.url}; connecting the advisors ...")
            await run.connect_advisors(accounts.advisor_sessions)
            progress(f"API on the idle server, {settings.api_reference_seconds:g} s ...")
            idle = ApiProbe(server.url, settings.api_rate, settings.api_reference_seconds)
            await idle.start()
            samples, failures = await idle.run()
            result.reference_api_ms = [ms for _, ms in samples]
            result.errors += [f"API (idle): {f}" for f in failures]
            await asyncio.sleep(1.0)
            result.baseline_rss_kib = rss_kib(server.pid)
            progress(f"connecting {settings.booths} booths ...")
            connected_at = time.monotonic()
            # Each booth beats once it is connected, then every interval.
            beating = asyncio.create_task(run.heartbeats(), name="heartbeats")
            await run.connect_booths(http, accounts.booths)
            progress(
                f"  {result.booths_connected} connected in "
                f"{time.monotonic() - connected_at:.1f} s; heartbeats every "
                f"{settings.heartbeat_seconds:g} s"
            )
            # A full heartbeat round, so every booth has reported its health once more.
            cpu_before = cpu_seconds(server.pid)
            await asyncio.sleep(settings.heartbeat_seconds + 1.0)
            result.server_cpu_idle = (cpu_seconds(server.pid) - cpu_before) / (
                settings.heartbeat_seconds + 1.0
            )
            result.booths_rss_kib = rss_kib(server.pid)
            result.max_heartbeat_gap = 0.0  # from here on: the gaps of connected booths
            progress(
                f"  server RSS {result.baseline_rss_kib / 1024:.1f} -> "
                f"{result.booths_rss_kib / 1024:.1f} MiB: {result.per_booth_kib:.1f} KiB a booth"
            )
            progress(f"{settings.reference_setups} set-ups one at a time ...")
            await run.reference_calls()
            progress(f"{settings.rate:g} set-ups a second for {settings.seconds:g} s ...")
            loaded = ApiProbe(server.url, settings.api_rate, settings.seconds)
            await loaded.start()
            probe = asyncio.create_task(loaded.run())
            cpu_before, cpu_at = cpu_seconds(server.pid), time.monotonic()
            await run.load()
            result.server_cpu_load = (cpu_seconds(server.pid) - cpu_before) / (
                time.monotonic() - cpu_at
            )
            samples, failures = await probe
            for path, ms in samples:
                result.api_ms.append(ms)
                result.api_by_path.setdefault(path, []).append(ms)
            result.api_failures = len(failures)
            result.errors += [f"API: {f}" for f in failures]
            progress(
                f"  {result.completed} of {result.attempted} set-ups completed "
                f"({result.achieved_rate:.1f}/s)"
            )
            await _check_fleet(run, http)
            result.booths_connected_at_end = sum(not b.ws.closed for b in run.booths)
            result.server_alive = server.alive
        finally:
            run.stopping = True
            if beating is not None:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
            await run.close()
            server.stop()
    result.errors += [f"server log: {line}" for line in server.logged_errors()]
    return result


async def _check_fleet(run: Run, http: aiohttp.ClientSession) -> None:
    """The administrators' fleet view: every booth online (heartbeats arrived in time)."""
    url = run.server.url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as admin:
        async with admin.post(
            f"{url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        ) as response:
            if response.status != 200:
                run.error(f"the administrator cannot log in: HTTP {response.status}")
                return
        async with admin.get(f"{url}/api/v1/fleet") as response:
            fleet = await response.json()
    online = [b for b in fleet["booths"] if b["online"]]
    run.result.booths_online_at_end = len(online)


# ---------------------------------------------------------------- entry points


def bench_rows(
    settings: LoadSettings | None = None, progress: Progress = print
) -> list[dict[str, Any]]:
    """Run the load and return its rows for ``bench/run.py``'s table."""
    result = asyncio.run(run_load(settings, progress=progress))
    return result.rows()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=(
            "Start a server, connect booths and advisors to it, set up calls at a steady rate "
            "and measure memory per booth, set-up latency and API latency."
        ),
    )
    defaults = LoadSettings()
    parser.add_argument("--booths", type=int, default=defaults.booths, help="booths (500)")
    parser.add_argument("--advisors", type=int, default=defaults.advisors, help="advisors (60)")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="set-ups/s (50)")
    parser.add_argument(
        "--seconds", type=float, default=defaults.seconds, help="length of the load (20 s)"
    )
    parser.add_argument(
        "--api-rate", type=float, default=defaults.api_rate, help="API requests/s (20)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows and figures here")
    parser.add_argument("--keep", type=Path, help="keep the server's data and log in this folder")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.probe:  # the API probe process: a job on stdin, the samples on stdout
        asyncio.run(_probe())
        return 0

    settings = LoadSettings(
        booths=args.booths,
        advisors=args.advisors,
        rate=args.rate,
        seconds=args.seconds,
        api_rate=args.api_rate,
    )
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    try:
        result = asyncio.run(run_load(settings, workdir=args.keep, progress=timed_progress()))
    except (RuntimeError, OSError) as exc:
        print(f"bench.load: {exc}", file=sys.stderr)
        return 1
    print()
    print(result.table())
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "command": "python -m bench.load " + " ".join(argv or sys.argv[1:]),
                    "rows": result.rows(),
                    "goals": result.goals(),
                    "errors": result.errors,
                },
                indent=1,
            )
            + "\n"
        )
    return 0 if all(result.goals().values()) else 1
