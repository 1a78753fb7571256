"""A real booth enrols against an in-process server: with the token from booth.toml (which is
then deleted from the file), or with the token read from the enrolment QR code (shown to its
camera); it comes back after a restart with its stored key, and a revoked booth is out of
service."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from kiosk.booth import Booth
from kiosk.config import load_config
from kiosk.flow import QrCodeRead, State
from kiosk.identity import IDENTITY_FILE, KEY_FILE
from kiosk.media import PyAVSource
from server.keys import DATABASE
from server.storage import create_user
from tests.kiosk.conftest import qr_video
from tests.server.conftest import PASSWORD, Harness, MakeHarness, make_harness  # noqa: F401


async def _until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def _admin(harness: Harness) -> aiohttp.ClientSession:
    await create_user(harness.app[DATABASE], username="admin1", password=PASSWORD, role="admin")
    return await harness.login("admin1")


async def _new_booth(admin: aiohttp.ClientSession, harness: Harness, name: str) -> dict[str, Any]:
    async with admin.post(harness.url("/api/v1/booths"), json={"name": name}) as response:
        assert response.status == 201
        body: dict[str, Any] = await response.json()
        return body


def _boot_file(tmp_path: Path, harness: Harness, token: str | None) -> Path:
    path = tmp_path / "boot" / "booth.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# written by videobooth-provision",
        f'server_url = "{harness.url("/").rstrip("/")}"',
        'branch = "Branch 7"',
        f'identity_dir = "{tmp_path / "data"}"',
        *([f'enrolment_token = "{token}"'] if token else []),
        "[camera]",
        'kind = "test-pattern"',
        "allow_test_pattern = true",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def _run(booth: Booth) -> asyncio.Task[None]:
    return asyncio.create_task(booth.run())


async def test_enrolment_with_the_token_from_the_boot_partition(
    make_harness: MakeHarness,  # noqa: F811
    tmp_path: Path,
) -> None:
    harness = await make_harness()
    admin = await _admin(harness)
    added = await _new_booth(admin, harness, "Branch 7 booth")
    boot = _boot_file(tmp_path, harness, added["enrolment_token"])

    booth = Booth(load_config(boot))
    task = await _run(booth)
    await _until(lambda: booth.state is State.IDLE, "the enrolled booth to be idle")
    assert booth.access.identity is not None
    assert booth.access.identity.booth_id == added["booth"]["id"]
    assert "enrolment_token" not in boot.read_text()  # spent, so deleted
    assert "# written by videobooth-provision" in boot.read_text()  # the rest kept
    for name in (KEY_FILE, IDENTITY_FILE):
        assert stat.S_IMODE((tmp_path / "data" / name).stat().st_mode) == 0o600
    booth.stop()
    await task

    # After a restart the stored key is enough.
    again = Booth(load_config(boot))
    task = await _run(again)
    await _until(lambda: again.state is State.IDLE, "the restarted booth to be idle")

    # Revoked: the server closes the connection and refuses the next login.
    async with admin.post(harness.url(f"/api/v1/booths/{added['booth']['id']}/revoke"), json={}):
        pass
    await _until(lambda: again.state is State.OUT_OF_SERVICE, "out of service")
    again.stop()
    await task
    await admin.close()


async def test_enrolment_by_scanning_the_code(
    make_harness: MakeHarness,  # noqa: F811
    tmp_path: Path,
) -> None:
    harness = await make_harness()
    admin = await _admin(harness)
    spent = await _new_booth(admin, harness, "Booth S")
    added = await _new_booth(admin, harness, "Booth Q")
    boot = _boot_file(tmp_path, harness, None)
    booth = Booth(load_config(boot))
    task = await _run(booth)
    await _until(lambda: booth.state is State.ENROLMENT, "the enrolment screen")
    await _until(lambda: booth.fanout is not None, "the camera, to read the code")

    # Someone else's code, already used: the screen says why and waits for another.
    other = Booth(load_config(_boot_file(tmp_path / "other", harness, spent["enrolment_token"])))
    other_task = await _run(other)
    await _until(lambda: other.state is State.IDLE, "the other booth")
    other.stop()
    await other_task
    booth.post(QrCodeRead(spent["enrolment_token"]))
    await _until(lambda: booth.flow.enrolment_problem is not None, "the refusal")
    assert booth.flow.enrolment_problem == "token_used"  # the screen explains it
    assert "already used" in (booth.enrolment_problem or "")  # the technician's status
    assert booth.state is State.ENROLMENT

    booth.post(QrCodeRead(added["enrolment_token"]))
    await _until(lambda: booth.state is State.IDLE, "idle after enrolment")
    assert booth.fanout is None  # the camera is off again
    booth.stop()
    await task
    await admin.close()


async def test_enrolment_reads_the_code_through_the_camera(
    make_harness: MakeHarness,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The enrolment screen's QR code reaches the booth as camera frames: a PyAV source
    showing the code stands in for the camera, and nothing is handed to the flow directly."""
    harness = await make_harness()
    admin = await _admin(harness)
    added = await _new_booth(admin, harness, "Booth C")
    video = qr_video(tmp_path / "enrolment-code.mp4", added["enrolment_token"])
    opened: list[PyAVSource] = []

    async def camera() -> PyAVSource:
        source = PyAVSource(url=str(video), width=640, height=480, fps=15, loop=True)
        await source.start()
        opened.append(source)
        return source

    booth = Booth(load_config(_boot_file(tmp_path, harness, None)), camera=camera)
    task = await _run(booth)
    await _until(lambda: booth.state is State.ENROLMENT, "the enrolment screen")
    await _until(lambda: booth.state is State.IDLE, "enrolment with the code the camera saw")
    assert booth.access.identity is not None
    assert booth.access.identity.booth_id == added["booth"]["id"]
    assert opened and opened[0].frames_captured > 0
    assert booth.fanout is None  # the camera is off again
    booth.stop()
    await task
    await admin.close()
