"""A small WebDriver BiDi client for Debian's Firefox ESR, which Playwright cannot drive.

Playwright only drives its own patched Firefox builds; a stock Firefox speaks WebDriver BiDi
(https://w3c.github.io/webdriver-bidi/) on ``--remote-debugging-port``. This module starts one
headless, with a throw-away profile that fakes camera and microphone and keeps Firefox from
reaching anything outside this machine, and offers the few commands the end-to-end tests need:
navigate, evaluate, click, type, press keys, poll, close.

Anything Firefox still tries to fetch from the network goes to a local "tripwire" proxy that
answers nothing and records the request, so a test can assert that the browser stayed inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

# The profile's user.js. Grouped by why; every URL-valued preference is emptied or pointed at a
# data: URL so that even a forgotten switch has nowhere to go, and the proxy catches the rest.
PREFERENCES: dict[str, bool | int | str] = {
    # Media: the fake camera (moving colours) and microphone (a tone), no permission prompt,
    # autoplay allowed; the TURN relay in the tests listens on 127.0.0.1.
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.peerconnection.ice.loopback": True,
    # A test machine has no sound card: without an output device every AudioContext stays
    # "suspended" (the citizen's level meter would never move). cubeb's mock backend stands in.
    "media.cubeb.force_mock_context": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # Video codecs as Debian ships them: no H.264 in WebRTC (the OpenH264 plug-in is a download,
    # and /etc/firefox-esr/firefox-esr.js switches it off), so the booth sends this Firefox VP8.
    # Codec plug-ins (OpenH264, Widevine) are downloads: none.
    "media.gmp-manager.url": "data:text/plain,",
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-gmpopenh264.autoupdate": False,
    "media.gmp-widevinecdm.enabled": False,
    "media.gmp-widevinecdm.autoupdate": False,
    "media.eme.enabled": False,
    # Updates of the browser, add-ons, system add-ons, search engines, blocklists.
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "app.update.checkInstallTime": False,
    "app.update.url": "data:text/plain,",
    "extensions.update.enabled": False,
    "extensions.update.autoUpdateDefault": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.getAddons.showPane": False,
    "extensions.htmlaboutaddons.recommendations.enabled": False,
    "extensions.blocklist.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "extensions.systemAddon.update.url": "data:text/plain,",
    "extensions.pocket.enabled": False,
    "browser.search.update": False,
    "browser.search.geoip.url": "",
    # Telemetry, health report, crash reports, usage pings.
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "data:,",
    "toolkit.telemetry.shutdownPingSender.enabled": False,
    "toolkit.telemetry.firstShutdownPing.enabled": False,
    "toolkit.telemetry.newProfilePing.enabled": False,
    "toolkit.telemetry.updatePing.enabled": False,
    "toolkit.telemetry.bhrPing.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.usage.uploadEnabled": False,
    "browser.ping-centre.telemetry": False,
    "browser.tabs.crashReporting.sendReport": False,
    "browser.crashReports.unsubmittedCheck.autoSubmit2": False,
    "breakpad.reportURL": "",
    # Captive portal and connectivity checks.
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "captivedetect.canonicalURL": "",
    # Safe browsing lists.
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.passwords.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.google4.gethashURL": "",
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.safebrowsing.provider.mozilla.gethashURL": "",
    # Remote settings, Normandy, Nimbus experiments and studies.
    "services.settings.server": "data:,#remote-settings-dummy/v1",
    "app.normandy.enabled": False,
    "app.normandy.api_url": "",
    "app.shield.optoutstudies.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "security.remote_settings.crlite_filters.enabled": False,
    "security.remote_settings.intermediates.enabled": False,
    "security.OCSP.enabled": 0,
    # Web push.
    "dom.push.enabled": False,
    "dom.push.connection.enabled": False,
    "dom.push.serverURL": "",
    # First-run, welcome and what's-new pages; the new-tab page and its feeds.
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "about:blank",
    "startup.homepage_welcome_url.additional": "",
    "startup.homepage_override_url": "",
    "browser.startup.homepage": "about:blank",
    "browser.startup.page": 0,
    "browser.startup.firstrunSkipsHomepage": True,
    "browser.aboutwelcome.enabled": False,
    "trailhead.firstrun.didSeeAboutWelcome": True,
    "datareporting.policy.firstRunURL": "",
    "browser.shell.checkDefaultBrowser": False,
    "browser.uitour.enabled": False,
    "browser.disableResetPrompt": True,
    "browser.newtabpage.enabled": False,
    "browser.newtabpage.activity-stream.feeds.telemetry": False,
    "browser.newtabpage.activity-stream.telemetry": False,
    "browser.newtabpage.activity-stream.feeds.topsites": False,
    "browser.newtabpage.activity-stream.feeds.section.topstories": False,
    "browser.newtabpage.activity-stream.feeds.system.topstories": False,
    "browser.newtabpage.activity-stream.feeds.snippets": False,
    "browser.newtabpage.activity-stream.default.sites": "",
    "browser.topsites.contile.enabled": False,
    "browser.discovery.enabled": False,
    "identity.fxaccounts.enabled": False,
    "browser.translations.enable": False,
    "browser.ml.enable": False,
    "browser.urlbar.quicksuggest.enabled": False,
    "browser.urlbar.suggest.searches": False,
    # Prefetching, speculative connections, DNS over HTTPS, geolocation and region lookups.
    "network.prefetch-next": False,
    "network.dns.disablePrefetch": True,
    "network.predictor.enabled": False,
    "network.http.speculative-parallel-limit": 0,
    "browser.urlbar.speculativeConnect.enabled": False,
    "browser.places.speculativeConnect.enabled": False,
    "network.trr.mode": 5,
    "doh-rollout.disable-heuristics": True,
    "geo.enabled": False,
    "geo.provider.network.url": "",
    "browser.region.network.url": "",
    "browser.region.update.enabled": False,
    # Whatever is left goes through the tripwire proxy (set at launch); loopback stays direct.
    "network.proxy.type": 1,
    "network.proxy.share_proxy_settings": True,
    "network.proxy.no_proxies_on": "127.0.0.1,localhost",
    "network.proxy.allow_hijacking_localhost": False,
    "network.proxy.socks_remote_dns": True,
    # Quiet and predictable for tests.
    "browser.tabs.warnOnClose": False,
    "browser.sessionstore.resume_from_crash": False,
    "toolkit.startup.max_resumed_crashes": -1,
}

# Release builds ignore services.settings.server (above) unless this is set; without it
# Firefox fetches its remote settings from Mozilla at start. No crash reporter either.
ENVIRONMENT = {"MOZ_REMOTE_SETTINGS_DEVTOOLS": "1", "MOZ_CRASHREPORTER_DISABLE": "1"}

# WebDriver key codes (https://w3c.github.io/webdriver/#keyboard-actions).
KEYS = {
    "Tab": "\ue004",
    "Enter": "\ue007",
    "Escape": "\ue00c",
    "Space": " ",
    "Backspace": "\ue003",
}

_LISTENING = re.compile(r"WebDriver BiDi listening on (ws://[\d.]+:\d+)")


class FirefoxError(AssertionError):
    """Firefox did not start, refused a command, or a page script threw."""


def user_js(preferences: Mapping[str, bool | int | str]) -> str:
    return "".join(
        f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in preferences.items()
    )


def deserialize(value: Mapping[str, Any]) -> Any:
    """A BiDi RemoteValue as Python: primitives, arrays, objects, maps and sets, recursively.

    Values Python has no twin for (nodes, functions, promises, ...) come back as the RemoteValue.
    """
    kind = value["type"]
    data = value.get("value")
    if kind in ("undefined", "null"):
        return None
    if kind in ("string", "boolean"):
        return data
    if kind == "number":
        specials = {"NaN": math.nan, "-0": -0.0, "Infinity": math.inf, "-Infinity": -math.inf}
        return specials.get(data, data) if isinstance(data, str) else data
    if kind == "bigint":
        return int(str(data))
    if kind in ("array", "set"):
        return [deserialize(item) for item in data or []]
    if kind in ("object", "map"):
        return {
            key if isinstance(key, str) else deserialize(key): deserialize(item)
            for key, item in data or []
        }
    if kind == "date":
        return data
    return dict(value)


@dataclass
class Tripwire:
    """An HTTP proxy on loopback that forwards nothing and remembers what was asked of it."""

    requests: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            with contextlib.suppress(Exception):
                line = await asyncio.wait_for(reader.readline(), 5)
                if line:
                    self.requests.append(line.decode("latin-1").strip())
                    writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
        finally:  # also when the test's loop ends with a connection still open
            self._open.discard(writer)
            writer.close()

    async def close(self) -> None:
        """Stop listening, and close the connections still open (a socket left to the
        collector warns during a later test)."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._open):
                writer.close()
            await self._server.wait_closed()
            self._server = None


class Firefox:
    """One headless Firefox and its top-level browsing context, driven over WebDriver BiDi."""

    def __init__(
        self,
        *,
        process: asyncio.subprocess.Process,
        log_path: Path,
        tripwire: Tripwire,
        name: str,
    ) -> None:
        self.process = process
        self.log_path = log_path
        self.tripwire = tripwire
        self.name = name
        self.context = ""
        self.console: list[str] = []
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._closed = False

    # ------------------------------------------------------------------ life cycle

    @classmethod
    async def launch(
        cls, executable: str, workdir: Path, *, name: str = "firefox", timeout: float = 30
    ) -> Firefox:
        """Start Firefox with a fresh profile in ``workdir`` and open a BiDi session."""
        profile = workdir / f"{name}-profile"
        profile.mkdir(parents=True)
        tripwire = Tripwire()
        await tripwire.start()
        preferences = {
            **PREFERENCES,
            "network.proxy.http": "127.0.0.1",
            "network.proxy.http_port": tripwire.port,
            "network.proxy.ssl": "127.0.0.1",
            "network.proxy.ssl_port": tripwire.port,
        }
        (profile / "user.js").write_text(user_js(preferences))
        log_path = workdir / f"{name}.log"
        try:
            process = await _start(executable, profile, log_path)
        except BaseException:
            await tripwire.close()
            raise
        browser = cls(process=process, log_path=log_path, tripwire=tripwire, name=name)
        try:
            endpoint = await browser._endpoint(timeout)
            await browser._connect(endpoint)
        except BaseException:
            await browser.close()
            raise
        log.info("%s (pid %d) driven over WebDriver BiDi at %s", name, process.pid, endpoint)
        return browser

    async def _endpoint(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise FirefoxError(f"Firefox exited at start:\n{self.log_tail()}")
            found = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if found:
                return found.group(1)
            await asyncio.sleep(0.1)
        raise FirefoxError(
            f"Firefox did not open WebDriver BiDi in {timeout} s:\n{self.log_tail()}"
        )

    async def _connect(self, endpoint: str) -> None:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(f"{endpoint}/session", max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        await self.command("session.new", {"capabilities": {}})
        await self.command("session.subscribe", {"events": ["log.entryAdded"]})
        tree = await self.command("browsingContext.getTree", {"maxDepth": 0})
        self.context = tree["contexts"][0]["context"]

    async def close(self) -> None:
        """End the session and Firefox; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        asked = False
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.command("browser.close"), 5)
                asked = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._http is not None:
            await self._http.close()
        if self.process.returncode is None:
            if not asked:
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await self.tripwire.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no Firefox log)"
        return f"--- {self.log_path} (last {lines} lines) ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    # ------------------------------------------------------------------ protocol

    async def command(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Send one BiDi command and return its result; a BiDi error raises FirefoxError."""
        if self._ws is None or self._ws.closed:
            raise FirefoxError(f"{method}: the BiDi connection is closed\n{self.log_tail()}")
        self._next_id += 1
        ident = self._next_id
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = reply
        try:
            await self._ws.send_json({"id": ident, "method": method, "params": params or {}})
            message = await reply
        finally:
            self._pending.pop(ident, None)
        if message.get("type") == "error":
            raise FirefoxError(
                f"{method} failed: {message.get('error')}: {message.get('message')}\n"
                f"{self.log_tail()}"
            )
        return message.get("result")

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            ident = message.get("id")
            if ident is not None and ident in self._pending:
                if not self._pending[ident].done():
                    self._pending[ident].set_result(message)
            elif message.get("method") == "log.entryAdded":
                entry = message["params"]
                line = f"[{self.name} console] {entry.get('level')}: {entry.get('text')}"
                self.console.append(line)
                print(line)
        gone = FirefoxError(f"Firefox closed the BiDi connection\n{self.log_tail()}")
        for reply in self._pending.values():
            if not reply.done():
                reply.set_exception(gone)

    # ------------------------------------------------------------------ page

    async def navigate(self, url: str) -> None:
        """Load ``url`` in the tab and wait until the page has loaded completely."""
        await self.command(
            "browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"}
        )

    async def evaluate(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page (awaiting a promise) and return it as Python.

        Runs through the debugger, so the page's Content-Security-Policy does not apply.
        """
        result = await self.command(
            "script.evaluate",
            {
                "expression": expression,
                "target": {"context": self.context},
                "awaitPromise": True,
                "resultOwnership": "none",
                "serializationOptions": {"maxObjectDepth": 4},
            },
        )
        if result["type"] == "exception":
            details = result["exceptionDetails"]
            raise FirefoxError(f"page script threw: {details.get('text')}\n  in: {expression}")
        return deserialize(result["result"])

    async def poll(self, expression: str, timeout: float, what: str) -> Any:
        """Re-evaluate ``expression`` until it is truthy; return that value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise FirefoxError(
                    f"timed out after {timeout} s waiting for {what} in {self.name} "
                    f"(last value {value!r})\n{self.log_tail()}"
                )
            await asyncio.sleep(0.1)

    async def _element(self, selector: str) -> dict[str, Any]:
        """The element as a BiDi node reference, scrolled into view; it must be visible."""
        result = await self.command(
            "script.evaluate",
            {
                "expression": f"""(() => {{
                    const el = document.querySelector({json.dumps(selector)});
                    if (!el || !el.checkVisibility()) return null;
                    el.scrollIntoView({{ block: "center" }});
                    return el;
                }})()""",
                "target": {"context": self.context},
                "awaitPromise": False,
                "resultOwnership": "none",
            },
        )
        node = result.get("result", {})
        if result["type"] == "exception" or node.get("type") != "node":
            raise FirefoxError(f"no visible element matches {selector!r} in {self.name}")
        return {"sharedId": node["sharedId"]}

    async def click(self, selector: str, timeout: float = 10) -> None:
        """Move the mouse to the element's centre and click it, as a user would."""
        await self.poll(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " return !!el && el.checkVisibility() && !el.disabled; })()",
            timeout,
            f"{selector} to be clickable",
        )
        element = await self._element(selector)
        await self._perform(
            [
                {
                    "type": "pointer",
                    "id": "mouse",
                    "parameters": {"pointerType": "mouse"},
                    "actions": [
                        {
                            "type": "pointerMove",
                            "x": 0,
                            "y": 0,
                            "origin": {"type": "element", "element": element},
                        },
                        {"type": "pointerDown", "button": 0},
                        {"type": "pointerUp", "button": 0},
                    ],
                }
            ]
        )

    async def type(self, selector: str, text: str) -> None:
        """Focus the element and type ``text`` key by key."""
        await self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " el.focus(); el.select?.(); })()"
        )
        await self.press(*text)

    async def press(self, *keys: str) -> None:
        """Press and release each key in turn: characters, or names from KEYS ("Tab", ...)."""
        await self._perform([{"type": "key", "id": "keyboard", "actions": list(_strokes(keys))}])

    async def _perform(self, actions: list[dict[str, Any]]) -> None:
        await self.command("input.performActions", {"context": self.context, "actions": actions})
        await self.command("input.releaseActions", {"context": self.context})


async def _start(executable: str, profile: Path, log_path: Path) -> asyncio.subprocess.Process:
    with log_path.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            executable,
            "--headless",
            "--no-remote",
            "--profile",
            str(profile),
            # 0: Firefox picks a free port and prints it, so parallel runs cannot collide.
            "--remote-debugging-port",
            "0",
            stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, **ENVIRONMENT},
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )


def _strokes(keys: Iterable[str]) -> Iterable[dict[str, str]]:
    for key in keys:
        value = KEYS.get(key, key)
        yield {"type": "keyDown", "value": value}
        yield {"type": "keyUp", "value": value}
