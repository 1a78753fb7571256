"""The booth's side of a rollout with the fake installer: never during a visit, installed only
inside the window, a refused bundle gives the booth back, a withdrawn offer stops, and the
running slot is marked good only when the booth says it works."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from pathlib import Path

from kiosk.updates import Bundle, FakeInstaller
from kiosk.updates.updater import Maintenance, Offer, Phase, Report, Updater

OFFER = Offer(
    rollout_id="r1",
    version="2.0.0",
    bundle=Bundle(url="https://server/api/v1/updates/b1/bundle", size=10, sha256="a" * 64),
)


@dataclass
class Booth:
    """What the updater sees of the booth, and what it did to it."""

    tmp: Path
    idle: bool = True
    window: bool = True
    out_of_service: bool = False
    reports: list[Report] = field(default_factory=list)
    reboots: int = 0
    fetches: int = 0
    fetch_gate: asyncio.Event = field(default_factory=asyncio.Event)
    installer: FakeInstaller = field(default_factory=FakeInstaller)
    bundle_name: str = "booth-2.0.0.raucb"

    def __post_init__(self) -> None:
        self.fetch_gate.set()

    async def fetch(self, bundle: Bundle) -> Path:
        self.fetches += 1
        await self.fetch_gate.wait()
        return self.tmp / self.bundle_name

    def begin(self) -> bool:
        if not self.idle:
            return False
        self.out_of_service = True
        return True

    def end(self) -> None:
        self.out_of_service = False

    async def reboot(self) -> None:
        self.reboots += 1

    def updater(self) -> Updater:
        return Updater(
            installer=self.installer,
            fetch=self.fetch,
            is_idle=lambda: self.idle,
            window_open=lambda: self.window,
            maintenance=Maintenance(self.begin, self.end),
            report=self.reports.append,
            reboot=self.reboot,
            poll_seconds=0.01,
        )

    def phases(self) -> list[Phase]:
        seen: list[Phase] = []
        for report in self.reports:
            if not seen or seen[-1] is not report.phase:
                seen.append(report.phase)
        return seen


async def _settle(updater: Updater) -> None:
    for _ in range(100):
        await asyncio.sleep(0.01)
        if updater.phase in (Phase.REBOOTING, Phase.FAILED):
            return


async def test_idle_inside_the_window_it_installs_and_restarts(tmp_path: Path) -> None:
    booth = Booth(tmp_path)
    updater = booth.updater()
    updater.take(OFFER)
    await _settle(updater)
    assert booth.phases() == [Phase.DOWNLOADING, Phase.INSTALLING, Phase.REBOOTING]
    assert booth.installer.installed == [tmp_path / "booth-2.0.0.raucb"]
    assert (booth.reboots, booth.out_of_service) == (1, True)
    percents = [r.percent for r in booth.reports if r.phase is Phase.INSTALLING]
    assert percents == sorted(percents) and percents[-1] == 100


async def test_never_during_a_visit(tmp_path: Path) -> None:
    booth = Booth(tmp_path, idle=False)
    updater = booth.updater()
    updater.take(OFFER)
    await asyncio.sleep(0.1)
    assert booth.phases() == [Phase.WAITING]
    assert (booth.fetches, booth.installer.installed) == (0, [])
    booth.idle = True
    updater.nudge()
    await _settle(updater)
    assert booth.phases() == [Phase.WAITING, Phase.DOWNLOADING, Phase.INSTALLING, Phase.REBOOTING]


async def test_a_visit_pauses_the_download(tmp_path: Path) -> None:
    booth = Booth(tmp_path)
    booth.fetch_gate.clear()  # the download takes its time
    updater = booth.updater()
    updater.take(OFFER)
    await asyncio.sleep(0.05)
    booth.idle = False  # a citizen steps in
    updater.nudge()
    await asyncio.sleep(0.05)
    assert booth.phases() == [Phase.DOWNLOADING, Phase.WAITING]
    assert booth.reports[-1].detail == "download paused for a visit"
    booth.idle = True
    booth.fetch_gate.set()
    updater.nudge()
    await _settle(updater)
    assert booth.fetches == 2  # went on (a real download resumes from its part)
    assert booth.phases()[-1] is Phase.REBOOTING


async def test_installed_only_inside_the_window(tmp_path: Path) -> None:
    booth = Booth(tmp_path, window=False)
    updater = booth.updater()
    updater.take(OFFER)
    await asyncio.sleep(0.1)
    assert booth.phases() == [Phase.DOWNLOADING, Phase.WAITING]  # downloaded ahead of time
    assert booth.installer.installed == []
    booth.window = True
    await _settle(updater)
    assert booth.phases()[-2:] == [Phase.INSTALLING, Phase.REBOOTING]


async def test_a_refused_bundle_gives_the_booth_back(tmp_path: Path) -> None:
    booth = Booth(tmp_path, bundle_name="refuse.raucb")
    updater = booth.updater()
    updater.take(OFFER)
    await _settle(updater)
    assert booth.phases()[-1] is Phase.FAILED
    assert "signature verification failed" in booth.reports[-1].detail
    assert (booth.out_of_service, booth.reboots) == (False, 0)


async def test_a_withdrawn_offer_stops_and_the_same_offer_twice_is_one(tmp_path: Path) -> None:
    booth = Booth(tmp_path, window=False)
    updater = booth.updater()
    updater.take(OFFER)
    updater.take(OFFER)  # again after a reconnect
    await asyncio.sleep(0.05)
    assert booth.fetches == 1
    updater.withdraw("r1")
    booth.window = True
    await asyncio.sleep(0.1)
    assert (booth.installer.installed, updater.offer) == ([], None)
    await updater.close()


async def test_the_running_slot_is_marked_good_once(tmp_path: Path) -> None:
    installer = FakeInstaller(version="2.0.0", booted="B")
    installer.state = replace(installer.state, booted_good=False)  # on trial after a start
    booth = Booth(tmp_path, installer=installer)
    updater = booth.updater()
    assert await updater.confirm() is True
    assert (await installer.slots()).booted_good
    assert await updater.confirm() is False
