"""Invitations by e-mail through a real SMTP server (aiosmtpd, with STARTTLS and a login, as an
organisation's relay), from a real server process.

Shown: the invitation arrives in the citizen's language, parses, its link opens the join page
and its calendar entry is the appointment (METHOD:REQUEST); the reminder follows before the
appointment; a move sends the new time (SEQUENCE 1) and a cancellation a CANCEL; with the
relay down the invitation waits in the outbox and goes out once the relay is back, exactly
once. Neither the address nor the link is in the server's log or, in clear, in its database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import icalendar
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.e2e.conftest import (
    Server,
    appointment_start,
    free_port,
    login_advisor,
    make_server,
    wait_until,
)
from tests.pki import TestCA

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CITIZEN = "citizen.smtp-test@example.test"
RELAY_USER, RELAY_PASSWORD = "videobooth", "relay-password-for-the-tests"


class Inbox:
    """What the relay accepted: (sender, recipients, message)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(m["Subject"]) for _, _, m in self.messages]

    def wait_for(self, count: int, timeout: float, what: str) -> email.message.EmailMessage:
        wait_until(lambda: len(self.messages) >= count, timeout, what)
        return self.messages[count - 1][2]


class Relay:
    """aiosmtpd on a fixed port with STARTTLS required and a login, that can go away."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        # The organisation's own CA signed the relay's certificate; the server is given the CA.
        self.ca = TestCA(folder / "pki")
        issued = self.ca.issue("relay.agency.test", addresses=("127.0.0.1",))
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(issued.certificate, issued.key)
        self.inbox = Inbox()
        self._controller: Controller | None = None

    @staticmethod
    def _login(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> AuthResult:
        good = isinstance(auth, LoginPassword) and (auth.login, auth.password) == (
            RELAY_USER.encode(),
            RELAY_PASSWORD.encode(),
        )
        return AuthResult(success=good)

    def start(self) -> None:
        self._controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=self.context,
            require_starttls=True,
            auth_required=True,
            authenticator=self._login,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    relay = Relay(tmp_path)
    yield relay
    relay.stop()


def _mail_server(tmp_path: Path, relay: Relay, *, reminder_minutes: int) -> Server:
    server = make_server(tmp_path, None)
    password = tmp_path / "relay-password"
    password.write_text(RELAY_PASSWORD + "\n")
    with server.config.open("a") as config:
        config.write(
            "[mail]\n"
            'host = "127.0.0.1"\n'
            f"port = {relay.port}\n"
            'security = "starttls"\n'
            f'username = "{RELAY_USER}"\n'
            f'password_file = "{password}"\n'
            'from_address = "termine@agency.example"\n'
            f'ca_file = "{relay.ca.path}"\n'
            f"reminder_minutes = {reminder_minutes}\n"
        )
    return server


METRICS_TOKEN = "metrics-token-of-the-smtp-test"


async def _outbox_figures(server: Server) -> dict[str, float]:
    """The outbox's lines of /metrics, by series."""
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/metrics", headers=headers) as r,
    ):
        assert r.status == 200
        text = await r.text()
    series = (
        line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("videobooth_outbox")
    )
    return {name: float(value) for name, value in series}


async def _advisor(server: Server) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    body = {"username": "advisor", "password": server.advisor_password}
    async with http.post(f"{server.url}/api/v1/auth/login", json=body) as r:
        assert r.status == 200, await r.text()
    return http


def _calendar(message: email.message.EmailMessage) -> Any:
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in message.walk()]
    calendar = icalendar.Calendar.from_ical(parts[0].get_payload(decode=True))
    (event,) = calendar.walk("VEVENT")
    return calendar, event


def _text(message: email.message.EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


async def test_smtp_invitation_reminder_move_and_cancel_reach_the_citizen(
    tmp_path: Path, relay: Relay
) -> None:
    relay.start()
    server = _mail_server(tmp_path, relay, reminder_minutes=2)
    server.start()
    try:
        http = await _advisor(server)
        async with http:
            # A bad address is refused before anything is stored.
            soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2, seconds=8)
            bad = {"starts_at": soon.isoformat(), "citizen_email": "not an address"}
            async with http.post(f"{server.url}/api/v1/appointments", json=bad) as r:
                assert r.status == 400

            made = {"starts_at": soon.isoformat(), "citizen_email": CITIZEN}
            started = time.monotonic()
            async with http.post(f"{server.url}/api/v1/appointments", json=made) as r:
                assert r.status == 201, await r.text()
                created = await r.json()
            invitation = relay.inbox.wait_for(1, 20, "the invitation at the relay")
            print(f"\ninvitation at the relay {time.monotonic() - started:.2f} s after the request")
            sender, recipients, _ = relay.inbox.messages[0]
            assert (sender, recipients) == ("termine@agency.example", [CITIZEN])
            assert str(invitation["Subject"]) == "Ihr Videotermin bei Videobooth"
            text = _text(invitation)
            link, code = created["join_link"], created["join_code"]
            assert link in text and f"{code[:4]} {code[4:]}" in text, text
            calendar, event = _calendar(invitation)
            assert str(calendar["METHOD"]) == "REQUEST"
            starts_at = dt.datetime.fromisoformat(created["appointment"]["starts_at"])
            assert event.decoded("DTSTART") == starts_at.replace(microsecond=0)  # seconds
            assert int(event["SEQUENCE"]) == 0
            uid = str(event["UID"])
            async with http.get(link) as page:  # the link opens the join page
                assert page.status == 200

            # The reminder: two minutes before, i.e. a few seconds from now.
            reminder = relay.inbox.wait_for(2, 30, "the reminder")
            assert str(reminder["Subject"]).startswith("Erinnerung:")

            # Moved: the new time, the same entry one SEQUENCE on.
            later = soon + dt.timedelta(hours=2)
            appointment_id = created["appointment"]["id"]
            url = f"{server.url}/api/v1/appointments/{appointment_id}"
            async with http.patch(url, json={"starts_at": later.isoformat()}) as r:
                assert r.status == 200, await r.text()
            moved = relay.inbox.wait_for(3, 20, "the mail of the move")
            assert str(moved["Subject"]).startswith("Neue Zeit")
            _, event = _calendar(moved)
            assert (str(event["UID"]), int(event["SEQUENCE"])) == (uid, 1)
            assert event.decoded("DTSTART") == later.replace(microsecond=0)

            async with http.post(f"{url}/cancel") as r:
                assert r.status == 200, await r.text()
            cancelled = relay.inbox.wait_for(4, 20, "the mail of the cancellation")
            assert str(cancelled["Subject"]).startswith("Abgesagt:")
            calendar, event = _calendar(cancelled)
            assert str(calendar["METHOD"]) == "CANCEL"
            assert (str(event["UID"]), int(event["SEQUENCE"]), str(event["STATUS"])) == (
                uid,
                2,
                "CANCELLED",
            )
        await asyncio.sleep(3)  # nothing more: the moved appointment's reminder was dropped
        assert len(relay.inbox.messages) == 4, relay.inbox.subjects()
    finally:
        server.stop()
    log = server.log.read_text()
    token = link.rsplit("/", 1)[1]
    assert CITIZEN not in log and token not in log
    stored = b"".join(p.read_bytes() for p in server.data_dir.glob("videobooth.db*"))
    assert CITIZEN.encode() not in stored and token.encode() not in stored


async def test_smtp_down_the_invitation_waits_and_goes_out_once_it_is_back(
    tmp_path: Path, relay: Relay
) -> None:
    server = _mail_server(tmp_path, relay, reminder_minutes=0)  # the relay is not started
    server.config.write_text(f'metrics_token = "{METRICS_TOKEN}"\n' + server.config.read_text())
    server.start()
    try:
        http = await _advisor(server)
        async with http:
            starts = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
            made = {"starts_at": starts.isoformat(), "citizen_email": CITIZEN}
            async with http.post(f"{server.url}/api/v1/appointments", json=made) as r:
                assert r.status == 201, await r.text()
        wait_until(
            lambda: server.log.read_text().count("not sent (the relay cannot be reached") >= 2,
            30,
            "two failed attempts while the relay is down",
        )
        figures = await _outbox_figures(server)
        assert figures['videobooth_outbox_messages{kind="mail",state="pending"}'] == 1
        assert figures['videobooth_outbox_oldest_pending_seconds{kind="mail"}'] > 0
        relay.start()
        back = time.monotonic()
        message = relay.inbox.wait_for(1, 60, "the invitation once the relay is back")
        print(f"\nrelay back -> invitation delivered after {time.monotonic() - back:.1f} s")
        assert str(message["Subject"]) == "Ihr Videotermin bei Videobooth"
        await asyncio.sleep(5)  # and it is not sent again
        assert len(relay.inbox.messages) == 1, relay.inbox.subjects()
        figures = await _outbox_figures(server)
        assert figures['videobooth_outbox_messages{kind="mail",state="pending"}'] == 0
        assert figures['videobooth_outbox_messages{kind="mail",state="sent"}'] == 1
        assert figures['videobooth_outbox_oldest_pending_seconds{kind="mail"}'] == 0
    finally:
        server.stop()


async def test_smtp_the_advisor_invites_by_e_mail_from_the_workspace(
    tmp_path: Path, relay: Relay, browser: Any
) -> None:
    relay.start()
    server = _mail_server(tmp_path, relay, reminder_minutes=0)
    server.start()
    try:
        advisor = await login_advisor(browser, server)
        await advisor.get_by_text("New appointment").click()
        await advisor.get_by_label("Date and time").fill(await appointment_start())
        await advisor.get_by_label("Citizen's e-mail").fill(CITIZEN)
        await advisor.get_by_label("Language of the e-mails").select_option("uk")
        await advisor.get_by_role("button", name="Create appointment").click()
        await advisor.wait_for_selector("#invitation:not([hidden])")
        assert "by e-mail" in await advisor.inner_text("#notice")
        link = await advisor.inner_text("#invitation-link")
        message = relay.inbox.wait_for(1, 20, "the invitation from the workspace")
        assert str(message["Subject"]) == "Ваш відеозапис: Videobooth"
        assert message["Content-Language"] == "uk"
        assert link in _text(message)
    finally:
        server.stop()
