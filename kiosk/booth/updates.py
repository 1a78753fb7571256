"""The booth's updates as the rest of the booth sees them: offers from the server handed to the
updater (:mod:`kiosk.updates`), its progress sent back, the booth out of service while RAUC
writes, a restart of the machine afterwards, and, after a start on a slot on trial, the slot
kept once the booth reached its server and passed its self-test (or the machine restarted, so
that the boot loader counts the failed start and goes back to the old slot)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from kiosk import flow as booth_flow
from kiosk.config import BoothConfig
from kiosk.flow import Flow, State
from kiosk.identity import ServerAccess
from kiosk.updates import (
    Bundle,
    Download,
    FakeInstaller,
    Installer,
    RaucInstaller,
    Slots,
    UpdateError,
)
from kiosk.updates.updater import Maintenance, Offer, Report, Updater
from protocol import Message, UpdateOffer, UpdateProgress, UpdateWithdrawn
from protocol.window import MaintenanceWindow, WindowError, zone

__all__ = ["BoothUpdates", "choose_installer"]

log = logging.getLogger(__name__)

RAUC_SYSTEM_CONF = Path("/etc/rauc/system.conf")
#: Why the booth is out of service while it installs (the flow keeps it).
UPDATING = "updating"
#: A slot on trial is judged by its self-test, tried this many times this far apart before it
#: counts as failed: right after a start a device may still be starting (PipeWire's echo
#: canceller after a cold boot: no sound from the microphone for the first seconds), and a
#: slot is not given up for that.
TRIAL_SELF_TESTS = 4
TRIAL_SELF_TEST_PAUSE_SECONDS = 20.0


def choose_installer(
    config: BoothConfig, *, system_conf: Path = RAUC_SYSTEM_CONF
) -> Installer | None:
    """The installer the configuration names; "auto": RAUC where the image set it up."""
    choice = config.updates
    if choice == "auto":
        choice = "rauc" if system_conf.exists() else "off"
    log.info("updates: %s", choice)
    if choice == "rauc":
        folder = config.update_dir or config.identity_dir / "updates"
        return RaucInstaller(trial=folder / "trial")
    if choice == "fake":
        return FakeInstaller()
    return None


class BoothUpdates:
    def __init__(
        self,
        *,
        config: BoothConfig,
        installer: Installer | None,
        access: ServerAccess,
        flow: Flow,
        post: Callable[[booth_flow.Event], None],
        send: Callable[[Message], bool],
        self_test: Callable[[], Awaitable[dict[str, bool | None]]],
        restart_machine: Callable[[], None],
        on_slots: Callable[[Slots], None],
    ) -> None:
        self._installer = installer
        self._access = access
        self._flow = flow
        self._post = post
        self._send = send
        self._self_test = self_test
        self._restart_machine = restart_machine
        self._on_slots = on_slots
        self._folder = config.update_dir or config.identity_dir / "updates"
        self._window: tuple[MaintenanceWindow, str] | None = None
        self._confirmed = False
        self.updater: Updater | None = None
        if installer is not None:
            self.updater = Updater(
                installer=installer,
                fetch=self._fetch,
                is_idle=self._is_idle,
                window_open=self._window_open,
                maintenance=Maintenance(self._begin, self._end),
                report=self._report,
                reboot=self._reboot,
                still_wanted=self._still_wanted,
            )

    # ------------------------------------------------------------ from the server

    def offered(self, message: UpdateOffer) -> None:
        if self.updater is None:
            self._send(
                UpdateProgress(
                    rollout_id=message.rollout_id,
                    phase="failed",
                    detail="this booth does not install updates (no A/B root slots)",
                )
            )
            return
        try:
            self._window = (MaintenanceWindow.parse(message.window), message.timezone)
            zone(message.timezone)
        except WindowError as exc:
            self._send(
                UpdateProgress(rollout_id=message.rollout_id, phase="failed", detail=str(exc))
            )
            return
        url = self._access.base + message.path
        self.updater.take(
            Offer(
                rollout_id=message.rollout_id,
                version=message.version,
                bundle=Bundle(url=url, size=message.size, sha256=message.sha256),
            )
        )

    def withdrawn(self, message: UpdateWithdrawn) -> None:
        if self.updater is not None:
            self.updater.withdraw(message.rollout_id)

    def flow_changed(self) -> None:
        if self.updater is not None:
            self.updater.nudge()

    # ------------------------------------------------------------ for the updater

    def _is_idle(self) -> bool:
        return self._flow.state is State.IDLE and not self._flow.busy

    def _window_open(self) -> bool:
        if self._window is None:
            return False
        window, tz = self._window
        return window.is_open(datetime.now(UTC), zone(tz))

    def _begin(self) -> bool:
        """Out of service for the installation, if the booth is idle now."""
        if not self._is_idle():
            return False
        self._post(booth_flow.OutOfService(reason=UPDATING))
        return True

    def _end(self) -> None:
        if self._flow.service_reason == UPDATING:
            self._post(booth_flow.BackInService())

    async def _fetch(self, bundle: Bundle) -> Path:
        async with self._access.session() as http:
            return await Download(
                bundle, self._folder, http=http, headers=self._access.headers
            ).run()

    async def _still_wanted(self, offer: Offer) -> bool | None:
        """Whether the rollout still wants this booth to install (asked just before); None
        when the server cannot say now."""
        path = f"/api/v1/updates/rollouts/{offer.rollout_id}/still"
        try:
            async with self._access.session() as http:
                response = await self._access.get(http, path)
                async with response:
                    if response.status == 404:
                        return False  # the rollout is gone, or no longer has this booth
                    if response.status != 200:
                        log.warning("updates: the server answered %d to %s", response.status, path)
                        return None
                    answer = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("updates: cannot ask the server whether to install: %s", exc)
            return None
        return bool(answer.get("install"))

    def _report(self, report: Report) -> None:
        self._send(
            UpdateProgress(
                rollout_id=report.rollout_id,
                phase=report.phase.value,
                percent=max(0, min(report.percent, 100)),
                detail=report.detail[:500],
            )
        )

    async def _reboot(self) -> None:
        await asyncio.sleep(1.0)  # the last report goes out first
        self._restart_machine()

    # ------------------------------------------------------------ after a start

    async def confirm(self) -> None:
        """The booth reached its server: if it runs from a slot on trial, keep the slot when
        the self-test passes; else restart, so that the boot loader counts a failed start."""
        if self._installer is None or self._confirmed:
            return
        self._confirmed = True
        try:
            slots = await self._installer.slots()
        except UpdateError as exc:
            log.warning("updates: cannot read the slots: %s", exc)
            return
        self._on_slots(slots)
        if slots.booted_good:
            # Not on trial: marked good again all the same, as every start took one of the
            # slot's tries (a failing self-test here is the hardware's, not the slot's).
            try:
                await self._installer.mark_good()
            except UpdateError as exc:
                log.error("updates: slot %s could not be marked good: %s", slots.booted, exc)
            return
        failed = await self._trial_self_test(slots.booted)
        if failed:
            log.error(
                "slot %s on trial failed its self-test (%s): restarting, the boot loader goes "
                "back to the old slot once its tries are used",
                slots.booted,
                ", ".join(failed),
            )
            self._restart_machine()
            return
        assert self.updater is not None
        try:
            await self.updater.confirm()
            self._on_slots(await self._installer.slots())
        except UpdateError as exc:
            # Not kept: the boot loader goes back at a later start; the fleet shows "on trial".
            log.error("updates: slot %s could not be marked good: %s", slots.booted, exc)

    async def _trial_self_test(self, slot: str) -> list[str]:
        """The parts that failed every one of the trial's self-tests (none: the slot passes)."""
        for attempt in range(1, TRIAL_SELF_TESTS + 1):
            results = await self._self_test()
            failed = sorted(name for name, ok in results.items() if ok is False)
            if not failed or attempt == TRIAL_SELF_TESTS:
                return failed
            log.warning(
                "slot %s on trial: self-test %d of %d failed (%s); again in %.0f s",
                slot,
                attempt,
                TRIAL_SELF_TESTS,
                ", ".join(failed),
                TRIAL_SELF_TEST_PAUSE_SECONDS,
            )
            await asyncio.sleep(TRIAL_SELF_TEST_PAUSE_SECONDS)
        return failed

    async def close(self) -> None:
        if self.updater is not None:
            await self.updater.close()
