"""The booth's side of a rollout: an offer from the server is downloaded while the booth is
idle (paused during a visit: the call needs the bandwidth), installed when the booth is idle
and inside its maintenance window (the booth is out of service meanwhile, so no visit starts),
then the booth restarts into the new slot. After a start, once the booth is READY and its
self-test passed, the running slot is marked good; until then the boot loader would go back
to the old one.

Every step is reported to the server (:class:`Report`), which shows it on the fleet pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .download import Bundle
from .errors import UpdateError
from .installer import Installer

__all__ = ["Maintenance", "Offer", "Phase", "Report", "Updater"]

log = logging.getLogger(__name__)


class Phase(StrEnum):
    #: Offered; waiting to be idle (or inside the window) to go on.
    WAITING = "waiting"
    DOWNLOADING = "downloading"
    INSTALLING = "installing"
    REBOOTING = "rebooting"
    FAILED = "failed"


@dataclass(frozen=True)
class Offer:
    """The server offers ``version`` of rollout ``rollout_id``."""

    rollout_id: str
    version: str
    bundle: Bundle


@dataclass(frozen=True)
class Report:
    rollout_id: str
    phase: Phase
    percent: int = 0
    detail: str = ""


class Maintenance:
    """How the updater asks the booth to be left alone: ``begin`` puts an idle booth out of
    service for the update (False when it is not idle: a visit goes first), ``end`` gives it
    back (after a failed install; a successful one restarts the booth)."""

    def __init__(self, begin: Callable[[], bool], end: Callable[[], None]) -> None:
        self.begin = begin
        self.end = end


class Updater:
    def __init__(
        self,
        *,
        installer: Installer,
        fetch: Callable[[Bundle], Awaitable[Path]],
        is_idle: Callable[[], bool],
        window_open: Callable[[], bool],
        maintenance: Maintenance,
        report: Callable[[Report], None],
        reboot: Callable[[], Awaitable[None]],
        still_wanted: Callable[[Offer], Awaitable[bool | None]] | None = None,
        poll_seconds: float = 5.0,
    ) -> None:
        self._installer = installer
        self._fetch = fetch
        self._is_idle = is_idle
        self._window_open = window_open
        self._maintenance = maintenance
        self._report = report
        self._reboot = reboot
        self._still_wanted = still_wanted
        self._poll = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.offer: Offer | None = None
        self.phase: Phase | None = None

    def take(self, offer: Offer) -> None:
        """An offer from the server: work on it (a newer offer replaces an older one; the same
        offer again, after a reconnect, changes nothing)."""
        if self.offer == offer and self._task is not None and not self._task.done():
            return
        self._stop()
        self.offer = offer
        self._task = asyncio.get_running_loop().create_task(
            self._run(offer), name=f"update-{offer.version}"
        )

    def withdraw(self, rollout_id: str) -> None:
        """The rollout was paused or cancelled: stop unless installing (RAUC finishes an
        installation it began; the new slot is only tried after a restart)."""
        offer = self.offer
        if (
            offer is not None
            and offer.rollout_id == rollout_id
            and self.phase is not Phase.INSTALLING
        ):
            self._stop()
            self.offer = None

    def _stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _say(self, offer: Offer, phase: Phase, percent: int = 0, detail: str = "") -> None:
        if phase is not self.phase:
            log.info("update to %s: %s -> %s %s", offer.version, self.phase, phase, detail)
        self.phase = phase
        self._report(Report(offer.rollout_id, phase, percent, detail))

    async def _until(self, offer: Offer, ready: Callable[[], bool], why: str) -> None:
        if not ready() and self.phase is not Phase.WAITING:
            self._say(offer, Phase.WAITING, detail=why)
        while not ready():
            # Woken by the booth when its state changes; the window opens by the clock.
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._poll)

    def nudge(self) -> None:
        """The booth's state changed (a visit began or ended): look again now."""
        self._changed.set()

    async def _run(self, offer: Offer) -> None:
        try:
            path = await self._download(offer)
            while True:
                await self._until(
                    offer,
                    lambda: self._is_idle() and self._window_open(),
                    "until the booth is idle inside its maintenance window",
                )
                # Asked just before: a pause or cancel on another server node may not have
                # reached this booth.
                wanted = True if self._still_wanted is None else await self._still_wanted(offer)
                if wanted is None:  # the server cannot be asked now: ask again later
                    await asyncio.sleep(self._poll)
                    continue
                if not wanted:
                    self._say(offer, Phase.WAITING, detail="the rollout was paused or cancelled")
                    self.offer = None
                    return
                if self._maintenance.begin():
                    break
            try:
                self._say(offer, Phase.INSTALLING)
                await self._installer.install(
                    path, lambda percent, what: self._say(offer, Phase.INSTALLING, percent, what)
                )
            except BaseException:
                self._maintenance.end()
                raise
            self._say(offer, Phase.REBOOTING, 100)
            await self._reboot()
        except asyncio.CancelledError:
            raise
        except UpdateError as exc:
            self._say(offer, Phase.FAILED, detail=str(exc))
        except Exception as exc:
            log.exception("update to %s failed", offer.version)
            self._say(offer, Phase.FAILED, detail=f"unexpected error: {exc}")

    async def _download(self, offer: Offer) -> Path:
        """Fetch the bundle while the booth is idle; a visit pauses it (the part so far is
        kept) and it goes on afterwards."""
        while True:
            await self._until(offer, self._is_idle, "until the booth is idle to download")
            self._say(offer, Phase.DOWNLOADING)
            fetching = asyncio.ensure_future(self._fetch(offer.bundle))
            while not fetching.done():
                self._changed.clear()
                changed = asyncio.ensure_future(self._changed.wait())
                await asyncio.wait(
                    {fetching, changed}, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED
                )
                changed.cancel()
                if not fetching.done() and not self._is_idle():
                    fetching.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fetching
                    self._say(offer, Phase.WAITING, detail="download paused for a visit")
                    break
            if fetching.done() and not fetching.cancelled():
                return fetching.result()

    async def confirm(self) -> bool:
        """The booth is READY and its self-test passed: keep the running slot (mark it good if
        it is on trial). Returns whether it had to be marked."""
        slots = await self._installer.slots()
        if slots.booted_good:
            return False
        await self._installer.mark_good()
        log.info("slot %s marked good (version %s)", slots.booted, slots.booted_version)
        return True
