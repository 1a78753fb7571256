"""``videobooth-booth``: run a booth (headless or in a window) against a server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from kiosk.booth import Booth
from kiosk.config import BoothConfigError, DisplayMode, load_config
from kiosk.flow import Event, State, pin_digest
from kiosk.hardware import open_hardware
from kiosk.ui import Action, Display, HeadlessDisplay, Screen, open_display
from protocol.systemd import Notifier, configure_logging

log = logging.getLogger("kiosk")

#: How often the screen is drawn, and taps looked for, when no video arrives (the
#: self-view); a frame of the call's stage is drawn as it arrives.
DISPLAY_FPS = 30
#: How often a screen without video is looked at, and drawn if it changed (the idle screen's
#: ring, pulsing once when it comes): drawn 30 times a second, the idle booth took 4.2 % of a
#: core on the test machine, 10 times 2.4 % (SDL's dummy driver; a panel adds a texture upload
#: per drawing, and without a GPU, as under emulation, Mesa's software renderer took both
#: cores). A tap, a key or a new state is drawn at once.
STILL_FPS = 10


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
    parser.add_argument(
        "--glass-log",
        type=Path,
        help="benchmarks: for each new frame of the advisor's video drawn on the screen, write "
        "a line here (the time, and the frame number and capture time its stamp says); needs "
        "a display (--display window, SDL_VIDEODRIVER=dummy without a screen)",
    )
    return parser.parse_args(argv)


def _act(booth: Booth, action: Action, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    """Carry out a display's action (one that is not a step of the flow)."""
    match action:
        case Action.QUIT:
            booth.stop()
        case Action.CALL:
            booth.request_call()
        case Action.MUTE:
            booth.toggle_mute()
        case Action.CAMERA:
            booth.toggle_camera()
        case Action.VOLUME_UP:
            booth.change_volume(0.1)
        case Action.VOLUME_DOWN:
            booth.change_volume(-0.1)
        case Action.PIN:
            booth.toggle_pin()
        case Action.REPEAT:
            booth.repeat_prompt()
        case Action.TONE:
            spawn(booth.play_test_tone())
        case Action.NETWORK_CHECK:
            spawn(booth.run_network_check())
        case Action.RESTART:
            booth.restart()


async def drive_display(booth: Booth, display: Display, glass_log: Path | None = None) -> None:
    """Draw the booth's screen and hand the display's taps to the booth, until cancelled;
    with ``glass_log``, each new frame of the advisor drawn is logged there (kiosk.ui.glass)."""
    headless = isinstance(display, HeadlessDisplay)
    glass = None
    if not headless:  # pygame only where there is a screen
        from kiosk.ui.booth_view import FrameCache, stage_frame, theme_for, view_of
        from kiosk.ui.glass import GlassLog
        from kiosk.ui.window import WindowDisplay

        frames = FrameCache()
        glass = GlassLog(glass_log) if glass_log is not None else None
    elif glass_log is not None:
        log.warning("a headless booth draws nothing: no glass log (--display window)")
    themed_for: object = None
    background: set[asyncio.Task[None]] = set()

    def spawn(work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        background.add(task)
        task.add_done_callback(background.discard)

    loop = asyncio.get_running_loop()
    next_frame, on_stage, drawn_state = loop.time(), None, None
    shown: object = None  # what a still screen on the panel was drawn from
    arrived = booth.media.video_arrived
    while True:
        touched = False
        for item in display.poll():
            touched = True
            if isinstance(item, Event):
                booth.post(item)
            else:
                _act(booth, item, spawn)
        if headless:
            await asyncio.sleep(1 / 4)
            continue
        # Drawn the moment a video frame of the stage arrives (the receiver sets ``arrived``),
        # and DISPLAY_FPS times a second without one (STILL_FPS with no video on the screen):
        # drawing on a schedule of its own would miss frames that arrive two between drawings
        # (the network delivers in bursts) and hold each one up to a drawing's interval; a
        # sign-language interpreter needs every one of at least 20 a second (EN 301 549).
        arrived.clear()
        newest = stage_frame(booth)
        now = loop.time()
        if newest is on_stage and now < next_frame and not touched and booth.state is drawn_state:
            with contextlib.suppress(TimeoutError):
                # Taps are looked for DISPLAY_FPS times a second even while nothing is drawn.
                await asyncio.wait_for(arrived.wait(), min(next_frame - now, 1 / DISPLAY_FPS))
            continue
        on_stage, drawn_state, started = newest, booth.state, now
        if themed_for is not booth.info and isinstance(display, WindowDisplay):
            themed_for = booth.info
            display.set_theme(theme_for(booth.info))
        boxes = display.screens.video_boxes() if isinstance(display, WindowDisplay) else None
        view = view_of(booth, frames, boxes)
        still = view.remote_frame is None and view.self_view is None
        still = still and all(tile.frame is None for tile in view.others)
        next_frame = started + 1 / (STILL_FPS if still else DISPLAY_FPS)
        # A screen without video that would look as the one shown is not drawn again: the
        # drawing and the panel's texture upload cost the same for an unchanged picture.
        picture = None
        if still and isinstance(display, WindowDisplay):
            picture = display.screens.picture(view)
            if picture == shown and not touched and not display.stale:
                continue
        display.draw(Screen(state=str(booth.state), headline="", view=view))
        shown = picture
        if glass is not None and isinstance(display, WindowDisplay):
            glass.drawn(display.screens.placed)
        await asyncio.sleep(0)  # the media's turn: drawing took the loop for a while


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
    drawer = asyncio.create_task(drive_display(booth, display, args.glass_log))
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
    return booth.exit_code


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
    configure_logging(args.log_level)
    # aioice and aiortc are chatty at INFO; their warnings still show.
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
