"""``videobooth-booth``: run a booth (headless or in a window) against a server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from kiosk.app import Booth
from kiosk.config import BoothConfigError, DisplayMode, load_config
from kiosk.flow import State, pin_digest
from kiosk.hardware import open_hardware
from kiosk.systemd import Notifier
from kiosk.ui import Display, Screen, open_display

log = logging.getLogger("kiosk")

HEADLINES = {
    State.OFFLINE: "No connection to the server - retrying",
    State.IDLE: "Ready - press space or click to call an advisor",
    State.WAITING: "Waiting for an advisor...",
    State.IN_CALL: "In call - press Esc to hang up",
    State.ENDED: "The call has ended. Nothing was stored.",
    State.OUT_OF_SERVICE: "Out of service",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="videobooth-booth",
        description="Run a Videobooth booth: connects to the server, asks for an advisor and "
        "streams the test-pattern camera.",
    )
    parser.add_argument("--config", type=Path, help="the booth's TOML file")
    parser.add_argument(
        "--pin-digest",
        action="store_true",
        help="read a technician PIN from standard input and print the digest for the config",
    )
    parser.add_argument("--call", action="store_true", help="ask for an advisor on start")
    parser.add_argument(
        "--repeat-call", action="store_true", help="ask again after every call (demo)"
    )
    parser.add_argument(
        "--display", choices=[m.value for m in DisplayMode], help="override the display mode"
    )
    parser.add_argument("--status-file", type=Path, help="write live status JSON here")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    return parser.parse_args(argv)


async def _drive_display(booth: Booth, display: Display) -> None:
    while True:
        for action in display.poll():
            if action == "quit":
                booth.stop()
            elif action == "call":
                booth.request_call()
            elif action == "hangup":
                await booth.hang_up()
        call = booth.call
        display.draw(
            Screen(
                state=str(booth.state),
                headline=HEADLINES.get(booth.state, str(booth.state)),
                remote_video=call.received.newest_video if call else None,
                self_view=booth.fanout.source.latest_preview if booth.fanout else None,
            )
        )
        await asyncio.sleep(1 / 20)


async def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except BoothConfigError as exc:
        print(f"videobooth-booth: {exc}", file=sys.stderr)
        return 2
    config = config.with_overrides(
        call_on_start=True if args.call or args.repeat_call else None,
        repeat_calls=True if args.repeat_call else None,
        display=DisplayMode(args.display) if args.display else None,
        status_file=args.status_file,
    )
    notifier = Notifier.from_environ(os.environ)
    hardware = await open_hardware(config.hardware)

    def tell_systemd(state: State) -> None:
        notifier.status(f"booth {state}")

    booth = Booth(config, hardware=hardware, on_state=tell_systemd)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, booth.stop)
    display = open_display(config.display)
    drawer = asyncio.create_task(_drive_display(booth, display))
    # The watchdog is fed from this loop: if the loop hangs, systemd restarts the booth.
    watchdog = asyncio.create_task(notifier.watchdog_task())
    log.info("booth starting against %s", config.server_url)
    notifier.ready()
    try:
        await booth.run()
    finally:
        notifier.stopping()
        for task in (drawer, watchdog):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        display.close()
        await hardware.close()
    log.info("booth stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pin_digest:
        pin = sys.stdin.readline().strip()
        if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
            print("videobooth-booth: a PIN is 4 to 12 digits", file=sys.stderr)
            return 2
        print(pin_digest(pin))
        return 0
    if args.config is None:
        print("videobooth-booth: --config is required", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aioice and aiortc are chatty at INFO; their warnings still show.
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
