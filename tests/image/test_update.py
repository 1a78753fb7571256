"""A booth updated over the air, for real: the generic image under QEMU with Debian's U-Boot,
the server behind nginx (HTTPS, the organisation's CA), RAUC installing into the other root
slot, the boot counter falling back by itself.

One booth's story, in order (each step starts from where the last one left the booth):

1. Version 1.0.0 is flashed and provisioned; the booth enrols and is online on slot A.
2. Bundles that reach the booth although the server would refuse them (put into the server's
   store behind its back): one signed by another key, refused by the booth's RAUC before it
   writes anything, and one whose stored copy has a flipped byte, thrown away by the booth
   (not the digest the server announced) before RAUC sees it. Slot B is untouched; each
   rollout stops. Then bundles the server must refuse: signed by another key, one flipped byte
   (RAUC's check on upload).
3. Version 2.0.0 rolled out; QEMU is killed while RAUC writes slot B (a power cut): version
   1.0.0 starts again, the rollout offers the update anew, the booth installs it, restarts
   into slot B, reports 2.0.0 and marks the slot good; the rollout is done.
4. Version 3.0.0, whose booth never becomes ready (its service fails at every start), rolled
   out: the booth installs it into slot A (RAUC gives A three starts) and restarts; A's last
   start fails (the test leaves it one of the three: each start costs minutes under emulation,
   and the count itself is test_boot_counter.py's, on the same U-Boot), and the boot loader
   goes back to slot B by itself; the booth is back on 2.0.0 and the rollout stops by itself.
5. Throughout, /data is kept: the booth logs in with the identity it enrolled with at the
   start (its one-time token was spent then), and its identity file is the same at the end.

The server's side of rollouts (batches, windows, never during a call) is tested with fake
booths in tests/server/updates; this test is the booth's side on its real system.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from server.storage import Database
from server.storage.updates import NewBundle, add_bundle
from tests.components import require
from tests.e2e.admin_pages import ADMIN, server_with_admin
from tests.e2e.conftest import Server, free_port, stop_process
from tests.image.conftest import CACHE, PREBUILDS, RELEASE, V2, V3, build
from tests.image.machine import (
    SLOT_A,
    SLOT_B,
    Machine,
    boot_env,
    data_file,
    digest,
    provision,
)
from tests.image.test_image import copy_card
from tests.pki import TestCA
from tests.server.updates.bundles import key_pair, make_bundle

pytestmark = [pytest.mark.image, pytest.mark.timeout(80 * 60)]

#: Starting the booth to READY under emulation (and restarting, and installing) takes minutes;
#: the 350 MB download took 8 minutes with the machine to itself and 19 beside the other tests
#: while the booth drew its idle screen in software ten times a second, under 4 beside them
#: since it draws a screen only when it changes (the margin is for slower machines).
BOOT_SECONDS = 10 * 60
INSTALL_SECONDS = 20 * 60
DOWNLOAD_SECONDS = 35 * 60
#: The host as QEMU's user network shows it to the booth.
HOST = "10.0.2.2"
SLOT_LINE = re.compile(r"videobooth: slot ([AB]) \(starts left: A (\d+), B (\d+)\)")


def _development_cert() -> Path:
    return CACHE / "development-signing" / "cert.pem"


T = TypeVar("T")


@dataclass
class Full:
    """Version 2.0.0, that bundle re-signed by another key, and a copy with one flipped byte."""

    v2: Path
    other_key: Path
    flipped: Path


class Bundles:
    """The small bundles (1 MiB of root) for the booth's own checks, made at once: signed by
    another key, and one signed by the development key whose copy on the server will have one
    flipped byte. The full ones, --bundle-only builds of this tree with the same development
    key (2.0.0, and the broken 3.0.0), come from a thread: built, or taken from the builds made
    ahead, while the booth starts for the first time; the test waits for each where it needs
    it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._key, self._cert = key_pair(folder, "someone-else")
        self.small_other_key = make_bundle(folder, self._key, self._cert, version="2.0.1-other-key")
        dev_key = CACHE / "development-signing" / "key.pem"
        self.small = make_bundle(folder, dev_key, _development_cert(), version="2.0.2-flipped")
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bundles")
        self._full = self._pool.submit(self._make_full)
        self._v3 = self._pool.submit(self._make_v3)

    def _make_full(self) -> Full:
        build(self.folder / "v2", *PREBUILDS["v2"])
        v2 = self.folder / "v2" / f"booth-{V2}.raucb"
        other = self.folder / f"booth-{V2}-other-key.raucb"
        subprocess.run(
            [require("rauc", "re-signs the bundle"), "resign", f"--keyring={_development_cert()}",
             f"--cert={self._cert}", f"--key={self._key}", f"--signing-keyring={self._cert}",
             str(v2), str(other)],
            check=True, capture_output=True,
        )  # fmt: skip
        flipped = self.folder / f"booth-{V2}-flipped.raucb"
        data = bytearray(v2.read_bytes())
        data[len(data) // 2] ^= 0x10
        flipped.write_bytes(bytes(data))
        return Full(v2=v2, other_key=other, flipped=flipped)

    def _make_v3(self) -> Path:
        build(self.folder / "v3", *PREBUILDS["v3"])
        return self.folder / "v3" / f"booth-{V3}.raucb"

    async def full(self) -> Full:
        return await self._wait(self._full, V2)

    async def v3(self) -> Path:
        return await self._wait(self._v3, V3)

    @staticmethod
    async def _wait(future: Future[T], version: str) -> T:
        started = time.monotonic()
        made = await asyncio.wrap_future(future)
        print(f"update test: waited {time.monotonic() - started:.0f} s for the {version} bundle")
        return made

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def bundles(image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bundles]:
    made = Bundles(tmp_path_factory.mktemp("bundles"))
    try:
        yield made
    finally:
        made.close()


@dataclass
class Proxy:
    """nginx terminating HTTPS for the server, as a deployment has it."""

    port: int
    ca: Path
    process: subprocess.Popen[bytes]


@pytest.fixture
def proxy_for() -> Iterator[Callable[[Server, Path, int], Proxy]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(server: Server, folder: Path, port: int) -> Proxy:
        nginx = require("nginx", "terminates HTTPS in front of the server")
        ca = TestCA(folder / "ca")
        issued = ca.issue("booth-updates.test", addresses=(HOST, "127.0.0.1"))
        site = subprocess.run(
            [sys.executable, "-m", "server", "--config", str(server.config), "proxy-config",
             "--certificate", str(issued.certificate), "--key", str(issued.key),
             "--upstream", f"127.0.0.1:{server.port}", "--listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        conf = folder / "nginx"
        conf.mkdir()
        (conf / "site.conf").write_text(
            site.replace("listen 80;", f"listen 127.0.0.1:{free_port()};")
        )
        (conf / "nginx.conf").write_text(
            f"pid {conf}/nginx.pid;\nerror_log {conf}/error.log;\nevents {{}}\n"
            f"http {{\n  access_log {conf}/access.log;\n  include {conf}/site.conf;\n}}\n"
        )
        process = subprocess.Popen(
            [nginx, "-p", str(conf), "-c", str(conf / "nginx.conf"), "-g", "daemon off;"],
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        deadline = time.monotonic() + 20
        while True:  # until nginx listens
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert process.poll() is None, (conf / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx does not listen"
            time.sleep(0.1)
        return Proxy(port=port, ca=ca.path, process=process)

    yield start
    for process in started:
        stop_process(process)


class Admin:
    """The administrator's API session (the admin pages make the same calls)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url

    async def get(self, path: str) -> Any:
        async with self.http.get(f"{self.url}/api/v1{path}") as reply:
            assert reply.status == 200, await reply.text()
            return await reply.json()

    async def post(self, path: str, body: Any, expect: int = 201) -> Any:
        async with self.http.post(f"{self.url}/api/v1{path}", json=body) as reply:
            assert reply.status == expect, await reply.text()
            return await reply.json()

    async def upload(self, bundle: Path, expect: int = 201) -> dict[str, Any]:
        file = await asyncio.to_thread(bundle.open, "rb")  # streamed, as a browser sends it
        try:
            async with self.http.post(f"{self.url}/api/v1/updates/bundles", data=file) as reply:
                assert reply.status == expect, await reply.text()
                answer: dict[str, Any] = await reply.json()
                return answer
        finally:
            file.close()

    async def fleet_entry(self, booth_id: str) -> dict[str, Any]:
        booths = (await self.get("/fleet"))["booths"]
        entry: dict[str, Any] = next(b for b in booths if b["id"] == booth_id)
        return entry

    async def rollout(self, bundle_id: str, booth_id: str) -> str:
        body = {"bundle_id": bundle_id, "canaries": [booth_id], "health_timeout_minutes": 30}
        rollout_id: str = (await self.post("/updates/rollouts", body))["id"]
        return rollout_id

    async def booth_in(self, rollout_id: str) -> tuple[str, dict[str, Any]]:
        found = await self.get(f"/updates/rollouts/{rollout_id}")
        booth: dict[str, Any] = found["booths"][0]
        return str(found["state"]), booth


@contextlib.asynccontextmanager
async def admin_session(proxy: Proxy) -> AsyncIterator[aiohttp.ClientSession]:
    """An administrator's browser session through the proxy (HTTPS, the organisation's CA;
    the session cookie is Secure)."""
    context = ssl.create_default_context(cafile=str(proxy.ca))
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context),
        cookie_jar=aiohttp.CookieJar(unsafe=True),  # a cookie for an address, not a name
        timeout=aiohttp.ClientTimeout(total=600),
    ) as http:
        yield http


async def _until(
    check: Callable[[], Awaitable[bool]],
    timeout: float,
    what: str,
    machine: Machine,
    progress: Callable[[], str] | None = None,
) -> float:
    """Seconds until ``check`` holds; fails with the booth's console (and ``progress``, what
    the server last heard) after ``timeout``."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            said = f" ({progress()})" if progress is not None else ""
            raise AssertionError(machine.failure(f"not within {timeout:.0f} s: {what}{said}"))
        await asyncio.sleep(2)
    return time.monotonic() - started


def _slot_started(machine: Machine, since: int) -> tuple[str, int, int]:
    match = machine.wait_for(SLOT_LINE, 5 * 60, since=since)
    return match[1], int(match[2]), int(match[3])


async def _online_on(
    admin: Admin, machine: Machine, booth_id: str, version: str, slot: str, what: str
) -> float:
    async def there() -> bool:
        entry = await admin.fleet_entry(booth_id)
        health = entry["health"] or {}
        return bool(
            entry["online"]
            and health.get("version") == version
            and health.get("slot") == slot
            and health.get("slot_good") is True
        )

    return await _until(there, BOOT_SECONDS, what, machine)


async def test_update_a_booth_over_the_air_with_fall_back(
    image: Path,
    bundles: Bundles,
    tmp_path: Path,
    proxy_for: Callable[[Server, Path, int], Proxy],
) -> None:
    timings: dict[str, float] = {}
    https = free_port()
    server, password = server_with_admin(
        tmp_path,
        f'public_url = "https://{HOST}:{https}"',
        'trusted_proxies = ["127.0.0.1"]',
        "[updates]",
        f'keyring = "{_development_cert()}"',
        'maintenance_window = "0:00-0:00"',
        "tick_seconds = 0.5",
    )
    machine: Machine | None = None
    stack = contextlib.AsyncExitStack()
    try:
        proxy = proxy_for(server, tmp_path, https)
        http = await stack.enter_async_context(admin_session(proxy))
        url = f"https://127.0.0.1:{https}"
        async with http.post(
            f"{url}/api/v1/auth/login", json={"username": ADMIN, "password": password}
        ) as reply:
            assert reply.status == 200, await reply.text()
        admin = Admin(http, url)
        created = await admin.post("/booths", {"name": "Update booth"})
        booth_id, token = created["booth"]["id"], created["enrolment_token"]

        # 1. Version 1.0.0, flashed and provisioned for the server behind the proxy.
        card = tmp_path / "card.img"
        copy_card(image, card)
        provision(
            card,
            *("--server-url", f"https://{HOST}:{proxy.port}", "--ca-file", str(proxy.ca)),
            *("--branch", "Update test branch", "--token", token),
            devices=tmp_path / "devices.toml",
        )
        with card.open("r+b") as grown:  # room on /data for downloaded bundles
            grown.truncate(card.stat().st_size + 2 * 1024 * 1024 * 1024)
        flashed_a, empty_b = digest(card, SLOT_A), digest(card, SLOT_B)
        machine = Machine(card, tmp_path, "booth")
        machine.start()
        assert _slot_started(machine, 0) == ("A", 2, 3)
        timings["first start to online on 1.0.0"] = await _online_on(
            admin, machine, booth_id, RELEASE, "A", "online on 1.0.0, slot A, marked good"
        )
        enrolled = await _enrolled_at(admin, booth_id)

        # 2. Refused by the booth's own checks before RAUC writes: bundles put into the
        # server's store behind its back.
        for bundle, flip, why in (
            (bundles.small_other_key, False, "RAUC did not install"),  # not its keyring
            (bundles.small, True, "SHA-256"),  # the booth: not the digest the server announced
        ):
            sneaked = await _behind_the_servers_back(server, bundle, flip=flip)
            rollout_id = await admin.rollout(sneaked, booth_id)

            async def refused_by_the_booth(rollout_id: str = rollout_id) -> bool:
                state, booth = await admin.booth_in(rollout_id)
                return state == "stopped" and booth["progress"] == "failed"

            timings[f"{bundle.name}: offered to refused by the booth"] = await _until(
                refused_by_the_booth, INSTALL_SECONDS, f"the booth refuses {bundle.name}", machine
            )
            _, booth = await admin.booth_in(rollout_id)
            print(f"update test: {bundle.name} refused by the booth: {booth['detail']}")
            assert why in booth["detail"], booth
            assert digest(card, SLOT_B) == empty_b, f"{bundle.name} was written to slot B"

        # Refused on upload (RAUC on the server).
        full = await bundles.full()
        refused = await admin.upload(full.other_key, expect=422)
        assert "signed with the trusted key" in refused["detail"], refused
        refused = await admin.upload(full.flipped, expect=422)
        assert "bundle refused" in refused["detail"], refused

        # 3. Version 2.0.0; the machine switched off while RAUC writes slot B.
        v2 = await admin.upload(full.v2)
        assert (v2["version"], v2["compatible"]) == (V2, "videobooth-generic-arm64")
        rollout_id = await admin.rollout(v2["id"], booth_id)

        seen: dict[str, Any] = {}

        async def installing() -> bool:
            _, booth = await admin.booth_in(rollout_id)
            seen.update(booth)
            if booth["progress"] == "failed":  # said at once, not after the whole wait
                raise AssertionError(machine.failure(f"the booth failed 2.0.0: {booth['detail']}"))
            return bool(booth["progress"] == "installing" and booth["percent"] >= 20)

        timings["2.0.0: offered to installing"] = await _until(
            installing,
            DOWNLOAD_SECONDS,
            "the booth installs 2.0.0",
            machine,
            lambda: f"last seen: {seen.get('progress')}, {seen.get('percent')} %",
        )
        machine.kill()
        mark = len(machine.console)
        assert digest(card, SLOT_A) == flashed_a, "the running slot A was written"
        identity = data_file(card, tmp_path, "/videobooth/identity.json")
        assert json.loads(identity)["booth_id"] == booth_id, identity
        machine.start()
        assert _slot_started(machine, mark)[0] == "A", "a half-written slot B was started"
        timings["power cut mid-install: start to online on 1.0.0"] = await _online_on(
            admin, machine, booth_id, RELEASE, "A", "back on 1.0.0 after the power cut"
        )
        # Offered anew: installed, and the machine restarts (QEMU ends: -no-reboot).
        started = time.monotonic()
        await asyncio.to_thread(machine.wait_ended, INSTALL_SECONDS)
        timings["2.0.0 again: online to restart"] = time.monotonic() - started
        mark = len(machine.console)
        machine.start()
        assert _slot_started(machine, mark)[0] == "B"
        timings["start of slot B to online on 2.0.0"] = await _online_on(
            admin, machine, booth_id, V2, "B", "on 2.0.0, slot B, marked good"
        )

        async def done() -> bool:
            state, booth = await admin.booth_in(rollout_id)
            return state == "done" and booth["progress"] == "done"

        await _until(done, 60, "the rollout of 2.0.0 is done", machine)

        # 4. Version 3.0.0 never becomes ready: back to 2.0.0 by itself.
        v3 = await admin.upload(await bundles.v3())
        rollout_id = await admin.rollout(v3["id"], booth_id)
        started = time.monotonic()
        await asyncio.to_thread(machine.wait_ended, INSTALL_SECONDS)
        timings["3.0.0: offered to restart"] = time.monotonic() - started
        # RAUC, having written A, gave it three starts and put it first.
        counter = boot_env(card, tmp_path)
        assert (counter["BOOT_ORDER"], counter["BOOT_A_LEFT"]) == ("A B", "3"), counter
        # Counting down from three is shown on the real U-Boot by test_boot_counter.py; under
        # emulation each failed start costs a minute or two, so here A has one left, as after
        # two failed starts. Its last start then fails, and the boot loader must go to B.
        boot_env(card, tmp_path, BOOT_A_LEFT="1")
        starts: list[tuple[str, int, int]] = []
        started = time.monotonic()
        while not starts or starts[-1][0] != "B":
            assert len(starts) < 5, f"the boot loader did not go back to B: {starts}"
            mark = len(machine.console)
            machine.start()
            starts.append(_slot_started(machine, mark))
            if starts[-1][0] == "A":
                # Its service fails at every start; after five systemd restarts the machine.
                machine.wait_for(
                    r"Rebooting: unit videobooth\.service failed", BOOT_SECONDS, since=mark
                )
                await asyncio.to_thread(machine.wait_ended, BOOT_SECONDS)
        timings["3.0.0: the last start of A failed, back to slot B"] = time.monotonic() - started
        assert [(slot, a_left) for slot, a_left, _ in starts] == [("A", 0), ("B", 0)], starts
        timings["back on 2.0.0"] = await _online_on(
            admin, machine, booth_id, V2, "B", "back on 2.0.0, slot B"
        )

        async def stopped() -> bool:
            state, booth = await admin.booth_in(rollout_id)
            return state == "stopped" and booth["progress"] == "failed"

        await _until(stopped, 60, "the rollout of 3.0.0 stops by itself", machine)
        found = await admin.get(f"/updates/rollouts/{rollout_id}")
        assert "stopped by itself" in (found["reason"] or ""), found
        assert "went back to the old one" in found["booths"][0]["detail"], found

        # 5. The same identity all along: never enrolled again.
        assert await _enrolled_at(admin, booth_id) == enrolled
    finally:
        if machine is not None:
            machine.stop()
        await stack.aclose()
        server.stop()
        for what, seconds in timings.items():
            print(f"update test: {what}: {seconds:.0f} s")
        for line in _booth_link(server.log):
            print(f"update test: server: {line}")
    assert data_file(card, tmp_path, "/videobooth/identity.json") == identity


#: The server's log lines of the booth's link coming and going ("connection of booth 'x' (id)
#: ended: No PONG received ..."), printed with their times beside the emulated booth's pauses.
BOOTH_LINK = re.compile(r"\bbooth '.*'(?: \([0-9a-f]+\))?(?: connected\b| disconnected\b| ended: )")


def _booth_link(log: Path) -> list[str]:
    """When the booth's link came and went, as the server's log says."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line.strip() for line in text.splitlines() if BOOTH_LINK.search(line)]


async def _enrolled_at(admin: Admin, booth_id: str) -> str:
    booths = (await admin.get("/booths"))["booths"]
    entry = next(b for b in booths if b["id"] == booth_id)
    assert entry["enrolled"] is True, entry
    return str(entry["enrolled_at"])


async def _behind_the_servers_back(server: Server, bundle: Path, *, flip: bool) -> str:
    """Put a bundle into the server's store without the upload's check, as someone with
    access to the server's disk and database could (``flip``: the stored copy then has one
    byte changed, as a damaged disk would): the booth must still refuse it."""
    folder = server.data_dir / "updates"
    sha256, size = await asyncio.to_thread(_store, bundle, folder, flip)
    db = await Database.open(
        f"sqlite+aiosqlite:///{(server.data_dir / 'videobooth.db').resolve()}", migrate=False
    )
    try:
        added = await add_bundle(
            db,
            NewBundle(
                version=bundle.stem.removeprefix("booth-").removesuffix("-verity"),
                compatible="videobooth-generic-arm64",
                signer="someone else",
                sha256=sha256,
                size=size,
            ),
            uploaded_by=None,
        )
    finally:
        await db.close()
    return added.id


def _store(bundle: Path, folder: Path, flip: bool) -> tuple[str, int]:
    """Copy ``bundle`` into the server's bundle folder under its digest (of the bundle as it
    was: ``flip`` changes one byte of the copy); digest and size."""
    data = bytearray(bundle.read_bytes())
    sha256 = hashlib.sha256(data).hexdigest()
    if flip:
        data[len(data) // 2] ^= 0x01
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{sha256}.raucb").write_bytes(bytes(data))
    return sha256, len(data)
