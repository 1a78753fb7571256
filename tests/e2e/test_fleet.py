"""A booth process that starts with only a token in its configuration enrols, goes online,
shows up healthy in the fleet API, takes commands, and after revocation is refused."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import _run_cli, launch_booth, make_server, stop_process

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def _wait(check: Any, timeout: float, what: str) -> Any:
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.2)


async def test_a_booth_with_only_a_token_enrols_reports_and_obeys(tmp_path: Path) -> None:
    server = make_server(tmp_path, None)
    admin_password = secrets.token_urlsafe(16)
    _run_cli(
        [
            "--config",
            str(server.config),
            "user",
            "add",
            "admin1",
            "--role",
            "admin",
            "--password-stdin",
        ],
        stdin=admin_password + "\n",
    )
    server.start()
    booth_process: subprocess.Popen[bytes] | None = None
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        async with http.post(
            f"{server.url}/api/v1/auth/login",
            json={"username": "admin1", "password": admin_password},
        ) as response:
            assert response.status == 200
        async with http.post(f"{server.url}/api/v1/booths", json={"name": "Branch 9 booth"}) as r:
            assert r.status == 201, await r.text()
            added = await r.json()
        booth_id = added["booth"]["id"]

        # The boot partition's file, as the provisioning tool writes it: no secret, a token.
        boot = tmp_path / "boot"
        boot.mkdir()
        config = boot / "booth.toml"
        config.write_text(
            f'server_url = "{server.url}"\n'
            'branch = "Branch 9"\n'
            f'enrolment_token = "{added["enrolment_token"]}"\n'
            f'identity_dir = "{tmp_path / "data"}"\n'
            "heartbeat_seconds = 1\n"
            '[camera]\nkind = "test-pattern"\nallow_test_pattern = true\n'
        )
        booth = launch_booth(config, tmp_path / "booth")
        booth_process = booth.process
        status = booth.wait_for(
            lambda s: s.get("state") == "idle" and s.get("booth_id") == booth_id,
            30,
            "the booth to enrol and be idle",
        )
        assert "enrolment_token" not in config.read_text()
        print(f"\nenrolled and online: {status['booth_id']}")

        async def fleet_entry() -> dict[str, Any] | None:
            async with http.get(f"{server.url}/api/v1/fleet") as response:
                booths = (await response.json())["booths"]
            entry = next((b for b in booths if b["id"] == booth_id), None)
            return entry if entry and entry["online"] and entry["health"] else None

        entry = await _wait(fleet_entry, 20, "the booth's health in the fleet")
        print(f"fleet: state {entry['state']}, health {entry['health']}")
        assert entry["enrolled"] is True
        assert entry["health"]["state"] == "idle"
        assert entry["health"]["uptime_seconds"] > 0

        # Commands: out of service and back, then a self-test with its answer.
        for command, state in (("out_of_service", "out_of_service"), ("in_service", "idle")):
            async with http.post(
                f"{server.url}/api/v1/booths/{booth_id}/commands", json={"command": command}
            ) as response:
                assert response.status == 202, await response.text()
            booth.wait_for(lambda s, state=state: s.get("state") == state, 15, f"state {state}")
        async with http.post(
            f"{server.url}/api/v1/booths/{booth_id}/commands", json={"command": "self_test"}
        ) as response:
            command_id = (await response.json())["command_id"]

        async def answered() -> dict[str, Any] | None:
            async with http.get(f"{server.url}/api/v1/fleet") as response:
                booths = (await response.json())["booths"]
            last = next(b for b in booths if b["id"] == booth_id)["last_command"]
            return last if last and last.get("command_id") == command_id else None

        result = await _wait(answered, 20, "the self-test's answer")
        print(f"self-test: {result}")
        assert result["ok"] is True

        # Revoked: the booth is put out, and its next login is refused.
        async with http.post(f"{server.url}/api/v1/booths/{booth_id}/revoke", json={}) as r:
            assert r.status == 200
        booth.wait_for(
            lambda s: s.get("state") == "out_of_service" and s.get("link") == "refused",
            30,
            "the revoked booth to be refused",
        )
    finally:
        await http.close()
        if booth_process is not None:
            stop_process(booth_process)
        server.stop()
