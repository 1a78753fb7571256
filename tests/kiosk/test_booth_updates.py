"""The booth's updates as the booth runs them: an offer downloaded from a real aiohttp server
with the booth's credential, installed by the fake installer while the booth is out of service,
then the machine restarted; a booth without A/B slots says so; after a start on a slot on trial
the slot is kept when the self-test passes, and the machine restarted when it fails."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kiosk import flow as booth_flow
from kiosk.booth import updates as updates_module
from kiosk.booth.updates import UPDATING, BoothUpdates, choose_installer
from kiosk.config import BoothConfig
from kiosk.flow import Flow
from kiosk.identity import ServerAccess
from kiosk.updates import FakeInstaller, Installer, Slots
from protocol import Message, UpdateOffer, UpdateProgress, UpdateWithdrawn

CREDENTIAL = "booth1.secret"
BUNDLE = os.urandom(300_000)
AUTHS = web.AppKey("auths", list)


async def _file(request: web.Request) -> web.StreamResponse:
    request.app[AUTHS].append(request.headers.get("Authorization"))
    if request.headers.get("Authorization") != f"Bearer {CREDENTIAL}":
        raise web.HTTPUnauthorized()
    # Connection: close: no kept-alive socket outlives the test (it would warn when collected).
    return web.Response(body=BUNDLE, headers={"Connection": "close"})


STILL = web.AppKey("still", dict)


async def _still(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Authorization") != f"Bearer {CREDENTIAL}":
        raise web.HTTPUnauthorized()
    return web.json_response(request.app[STILL], headers={"Connection": "close"})


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app[AUTHS] = []
    app[STILL] = {"state": "running", "install": True}
    app.router.add_get("/api/v1/updates/bundles/b1/file", _file)
    app.router.add_get("/api/v1/updates/rollouts/r1/still", _still)
    test_server = TestServer(app)
    await test_server.start_server()
    yield test_server
    await test_server.close()


class Booth:
    """What BoothUpdates talks to: the flow, the link, the self-test, the machine."""

    def __init__(self, tmp_path: Path, base: str, installer: Installer | None) -> None:
        self.config = BoothConfig(
            server_url=base, credential=CREDENTIAL, identity_dir=tmp_path, updates="fake"
        )
        self.flow = Flow()
        self.flow.handle(booth_flow.LinkUp(), 0.0)  # connected: idle
        self.sent: list[Message] = []
        self.events: list[booth_flow.Event] = []
        self.restarts = 0
        self.self_test: dict[str, bool | None] = {"camera": True, "microphone": True}
        #: Answers for the next self-tests, first to last (then ``self_test``'s).
        self.self_test_answers: list[dict[str, bool | None]] = []
        self.self_tests = 0
        self.slots: list[Slots] = []
        self.updates = BoothUpdates(
            config=self.config,
            installer=installer,
            access=ServerAccess(server_url=base, credential=CREDENTIAL),
            flow=self.flow,
            post=self.post,
            send=self.send,
            self_test=self.run_self_test,
            restart_machine=self.restart,
            on_slots=self.slots.append,
        )

    def post(self, event: booth_flow.Event) -> None:
        self.events.append(event)
        self.flow.handle(event, 0.0)

    def send(self, message: Message) -> bool:
        self.sent.append(message)
        return True

    async def run_self_test(self) -> dict[str, bool | None]:
        self.self_tests += 1
        if self.self_test_answers:
            return self.self_test_answers.pop(0)
        return self.self_test

    def restart(self) -> None:
        self.restarts += 1

    def phases(self) -> list[str]:
        seen: list[str] = []
        for message in self.sent:
            if isinstance(message, UpdateProgress) and (not seen or seen[-1] != message.phase):
                seen.append(message.phase)
        return seen


def _offer(**changes: object) -> UpdateOffer:
    offer = UpdateOffer(
        rollout_id="r1",
        version="2.0.0",
        path="/api/v1/updates/bundles/b1/file",
        size=len(BUNDLE),
        sha256=hashlib.sha256(BUNDLE).hexdigest(),
        window="0:00-0:00",
        timezone="Europe/Berlin",
    )
    return offer.model_copy(update=changes)


async def _until(booth: Booth, phase: str) -> None:
    for _ in range(300):
        if booth.phases() and booth.phases()[-1] == phase:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never reached {phase}: {booth.phases()}")


async def test_an_offer_is_fetched_installed_and_the_machine_restarted(
    server: TestServer, tmp_path: Path
) -> None:
    installer = FakeInstaller()
    booth = Booth(tmp_path, str(server.make_url("/")).rstrip("/"), installer)
    booth.updates.offered(_offer())
    await _until(booth, "rebooting")
    assert booth.phases() == ["downloading", "installing", "rebooting"]
    assert installer.installed == [tmp_path / "updates" / f"{_offer().sha256}.raucb"]
    assert installer.installed[0].read_bytes() == BUNDLE
    # Out of service while RAUC wrote; the machine restarts after the last report.
    assert booth_flow.OutOfService(reason=UPDATING) in booth.events
    for _ in range(200):
        if booth.restarts:
            break
        await asyncio.sleep(0.01)
    assert booth.restarts == 1
    await booth.updates.close()


async def test_outside_its_window_it_downloads_but_waits_to_install(
    server: TestServer, tmp_path: Path
) -> None:
    installer = FakeInstaller()
    booth = Booth(tmp_path, str(server.make_url("/")).rstrip("/"), installer)
    # A window of one minute at 03:00 on the other side of the world: closed (almost surely).
    booth.updates.offered(_offer(window="03:00-03:01", timezone="Pacific/Kiritimati"))
    await _until(booth, "waiting")
    await asyncio.sleep(0.1)
    assert booth.phases() == ["downloading", "waiting"]
    assert installer.installed == []
    booth.updates.withdrawn(UpdateWithdrawn(rollout_id="r1"))
    await booth.updates.close()


async def test_a_booth_without_slots_says_so(tmp_path: Path) -> None:
    booth = Booth(tmp_path, "http://127.0.0.1:9", None)
    booth.updates.offered(_offer())
    assert booth.sent == [
        UpdateProgress(
            rollout_id="r1",
            phase="failed",
            detail="this booth does not install updates (no A/B root slots)",
        )
    ]


async def test_a_slot_on_trial_is_kept_when_the_self_test_passes(tmp_path: Path) -> None:
    installer = FakeInstaller(version="2.0.0", booted="B")
    installer.state = replace(installer.state, booted_good=False)
    booth = Booth(tmp_path, "http://127.0.0.1:9", installer)
    await booth.updates.confirm()
    assert (await installer.slots()).booted_good
    assert [s.booted_good for s in booth.slots] == [False, True]
    assert booth.restarts == 0
    await booth.updates.confirm()  # once a start
    assert len(booth.slots) == 2


async def test_a_slot_on_trial_that_fails_its_self_test_restarts_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(updates_module, "TRIAL_SELF_TEST_PAUSE_SECONDS", 0.01)
    installer = FakeInstaller(version="2.0.0", booted="B")
    installer.state = replace(installer.state, booted_good=False)
    booth = Booth(tmp_path, "http://127.0.0.1:9", installer)
    booth.self_test = {"camera": False, "microphone": True}
    await booth.updates.confirm()
    assert not (await installer.slots()).booted_good  # the boot loader will go back
    assert booth.restarts == 1
    assert booth.self_tests == updates_module.TRIAL_SELF_TESTS  # every try failed


async def test_a_slot_on_trial_whose_device_is_still_starting_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The microphone gives nothing for the first seconds after a cold start (the audio server
    still starting): a later try of the self-test passes, and the slot is kept."""
    monkeypatch.setattr(updates_module, "TRIAL_SELF_TEST_PAUSE_SECONDS", 0.01)
    installer = FakeInstaller(version="2.0.0", booted="B")
    installer.state = replace(installer.state, booted_good=False)
    booth = Booth(tmp_path, "http://127.0.0.1:9", installer)
    booth.self_test_answers = [
        {"camera": True, "microphone": False},
        {"camera": True, "microphone": False},
        {"camera": True, "microphone": True},
    ]
    with caplog.at_level(logging.WARNING):
        await booth.updates.confirm()
    assert (await installer.slots()).booted_good
    assert (booth.restarts, booth.self_tests) == (0, 3)
    assert "self-test 2 of 4 failed (microphone)" in caplog.text


def test_auto_is_rauc_only_where_the_image_set_it_up(tmp_path: Path) -> None:
    config = BoothConfig(server_url="https://vb.example.org", credential="b.s")
    assert choose_installer(config, system_conf=tmp_path / "missing.conf") is None
    (tmp_path / "system.conf").write_text("[system]\n")
    installer = choose_installer(config, system_conf=tmp_path / "system.conf")
    assert type(installer).__name__ == "RaucInstaller"
    fake = BoothConfig(server_url="https://vb.example.org", credential="b.s", updates="fake")
    assert isinstance(choose_installer(fake), FakeInstaller)


async def test_a_rollout_paused_meanwhile_is_not_installed(
    server: TestServer, tmp_path: Path
) -> None:
    """The pause was made on another server node and never reached this booth: it asks just
    before it installs, and stops."""
    server.app[STILL].update(state="paused", install=False)
    installer = FakeInstaller()
    booth = Booth(tmp_path, str(server.make_url("/")).rstrip("/"), installer)
    booth.updates.offered(_offer())
    for _ in range(300):
        if booth.sent and booth.sent[-1].detail == "the rollout was paused or cancelled":  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.01)
    assert booth.phases() == ["downloading", "waiting"]
    assert (installer.installed, booth.restarts) == ([], 0)
    assert not any(isinstance(e, booth_flow.OutOfService) for e in booth.events)
