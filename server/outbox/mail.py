"""Invitations by e-mail: what the citizen gets (in their language, signed with the
organisation's name and colour, with a calendar entry), and when (the invitation now, a
reminder before, a message when the appointment moves or is cancelled). Everything goes
through the outbox (:mod:`server.storage.outbox`); the worker (:mod:`.worker`) sends it.

The join link and code exist in clear only at the appointment's creation (the database keeps
their hashes), so the citizen's contact, with them, is kept sealed (:mod:`.sealing`) for the
mails that follow, and dropped with the last one.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

from server.config import MailConfig
from server.outbox.sealing import Sealer
from server.outbox.texts import LANGUAGES, MAIL_TEXTS
from server.storage import (
    Appointment,
    Database,
    drop_contact,
    enqueue,
    get_contact,
    put_contact,
    supersede,
)

__all__ = ["Contact", "Envelope", "Mailer", "compose"]

log = logging.getLogger(__name__)

REMINDER = "reminder"


@dataclass(frozen=True)
class Contact:
    """How to reach an appointment's citizen, and what their mails need to say."""

    email: str
    language: str
    link: str
    code: str
    advisor: str


@dataclass(frozen=True)
class Envelope:
    """A mail as the outbox keeps it: sender, recipient and the message itself."""

    sender: str
    recipient: str
    message: bytes

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"from": self.sender, "to": self.recipient, "message": self.message.decode("utf-8")}
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        record = json.loads(data)
        return cls(record["from"], record["to"], record["message"].encode("utf-8"))


def compose(
    kind: str,
    *,
    contact: Contact,
    appointment: Appointment,
    sequence: int,
    branding: dict[str, Any],
    config: MailConfig,
    zone: str,
    message_id: str,
) -> EmailMessage:
    """One mail (``invitation``, ``reminder``, ``moved``, ``cancelled``) with its .ics."""
    language = contact.language if contact.language in LANGUAGES else "de"
    subject, body, title = MAIL_TEXTS[language][kind]
    local = appointment.starts_at.astimezone(ZoneInfo(zone))
    spaced = f"{contact.code[:4]} {contact.code[4:]}"
    values = {
        "org": branding["organisation_name"],
        "advisor": contact.advisor,
        "day": local.strftime("%d.%m.%Y"),
        "time": local.strftime("%H:%M %Z"),
        "minutes": appointment.duration_minutes,
        "link": contact.link,
        "code": spaced,
    }
    text = body.format(**values)
    message = EmailMessage()
    message["Subject"] = subject.format(**values)
    message["From"] = formataddr((branding["organisation_name"], config.from_address))
    message["To"] = contact.email
    if config.reply_to:
        message["Reply-To"] = config.reply_to
    message["Date"] = format_datetime(datetime.now().astimezone())
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(_html(text, language, branding), subtype="html")
    cancelled = kind == "cancelled"
    calendar = _calendar(
        appointment,
        contact=contact,
        sequence=sequence,
        title=title.format(**values),
        description=text,
        organiser=config.from_address,
        organisation=branding["organisation_name"],
        cancelled=cancelled,
    )
    message.add_attachment(
        calendar,
        maintype="text",
        subtype="calendar",
        filename="appointment.ics",
        params={"method": "CANCEL" if cancelled else "REQUEST"},
    )
    # Last: making the message multipart moves the Content-* headers set before into a part.
    message["Content-Language"] = language
    return message


def _html(text: str, language: str, branding: dict[str, Any]) -> str:
    colour = branding.get("primary_colour") or "#0b5cad"
    direction = "rtl" if language == "ar" else "ltr"
    paragraphs = "".join(
        f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>" for part in text.split("\n\n")
    )
    return (
        f'<!doctype html><html lang="{language}" dir="{direction}"><body '
        f'style="font-family:sans-serif;font-size:16px;line-height:1.5">'
        f'<div style="border-top:6px solid {html.escape(colour)};padding-top:12px">'
        f"<strong>{html.escape(branding['organisation_name'])}</strong></div>"
        f"{paragraphs}</body></html>"
    )


def _calendar(
    appointment: Appointment,
    *,
    contact: Contact,
    sequence: int,
    title: str,
    description: str,
    organiser: str,
    organisation: str,
    cancelled: bool,
) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Videobooth//Appointments//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "REQUEST")
    event = icalendar.Event()
    event.add("uid", f"{appointment.id}@{organiser.rsplit('@', 1)[1]}")
    event.add("dtstamp", datetime.now().astimezone())
    event.add("dtstart", appointment.starts_at)
    event.add("dtend", appointment.starts_at + timedelta(minutes=appointment.duration_minutes))
    event.add("sequence", sequence)
    event.add("summary", title)
    event.add("description", description)
    event.add("location", contact.link)
    event.add("url", contact.link)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    organizer = icalendar.vCalAddress(f"mailto:{organiser}")
    organizer.params["cn"] = icalendar.vText(organisation)
    event.add("organizer", organizer)
    attendee = icalendar.vCalAddress(f"mailto:{contact.email}")
    attendee.params["rsvp"] = icalendar.vText("FALSE")
    event.add("attendee", attendee)
    calendar.add_component(event)
    data: bytes = calendar.to_ical()
    return data


class Mailer:
    """The mails of appointments with an e-mail address, put into the outbox."""

    def __init__(
        self,
        db: Database,
        config: MailConfig,
        sealer: Sealer,
        *,
        zone: str,
        branding: Callable[[], Awaitable[dict[str, Any]]],
        wake: Callable[[], None],
    ) -> None:
        self._db = db
        self.config = config
        self._sealer = sealer
        self._zone = zone
        #: ``await branding()``: the organisation's name and colours now.
        self._branding = branding
        #: ``wake()``: the local worker looks at the outbox at once.
        self._wake = wake

    async def invite(self, appointment: Appointment, contact: Contact) -> None:
        """The invitation now, the reminder before the appointment."""
        sealed = self._sealer.seal(json.dumps(asdict(contact)).encode(), appointment.id)
        await put_contact(self._db, appointment.id, sealed, sequence=0)
        await self._queue("invitation", appointment, contact, sequence=0)
        await self._remind(appointment, contact, sequence=0)
        self._wake()

    async def moved(self, appointment: Appointment, new_code: str | None) -> None:
        known = await self._contact(appointment.id)
        if known is None:
            return
        contact, sequence = known
        if new_code is not None:
            contact = Contact(**{**asdict(contact), "code": new_code})
        sequence += 1
        sealed = self._sealer.seal(json.dumps(asdict(contact)).encode(), appointment.id)
        await put_contact(self._db, appointment.id, sealed, sequence=sequence)
        await supersede(self._db, ordering_key=appointment.id, purpose=f"mail.{REMINDER}")
        await self._queue("moved", appointment, contact, sequence=sequence)
        await self._remind(appointment, contact, sequence=sequence)
        self._wake()

    async def cancelled(self, appointment: Appointment) -> None:
        known = await self._contact(appointment.id)
        if known is None:
            return
        contact, sequence = known
        await supersede(self._db, ordering_key=appointment.id, purpose=f"mail.{REMINDER}")
        await self._queue("cancelled", appointment, contact, sequence=sequence + 1)
        await drop_contact(self._db, appointment.id)  # nothing follows a cancellation
        self._wake()

    async def _contact(self, appointment_id: str) -> tuple[Contact, int] | None:
        found = await get_contact(self._db, appointment_id)
        if found is None:
            return None
        sealed, sequence = found
        record = json.loads(self._sealer.open(sealed, appointment_id))
        return Contact(**record), sequence

    async def _remind(self, appointment: Appointment, contact: Contact, *, sequence: int) -> None:
        minutes = self.config.reminder_minutes
        at = appointment.starts_at - timedelta(minutes=minutes)
        if minutes and at > self._db.now():
            await self._queue(REMINDER, appointment, contact, sequence=sequence, at=at)

    async def _queue(
        self,
        kind: str,
        appointment: Appointment,
        contact: Contact,
        *,
        sequence: int,
        at: datetime | None = None,
    ) -> None:
        branding = await self._branding()
        domain = self.config.from_address.rsplit("@", 1)[1]

        def sealed(row_id: str) -> bytes:
            message = compose(
                kind,
                contact=contact,
                appointment=appointment,
                sequence=sequence,
                branding=branding,
                config=self.config,
                zone=self._zone,
                message_id=make_msgid(idstring=row_id, domain=domain),
            )
            raw = message.as_bytes(policy=SMTP)
            envelope = Envelope(self.config.from_address, contact.email, raw)
            return self._sealer.seal(envelope.to_bytes(), row_id)

        row = await enqueue(
            self._db,
            kind="mail",
            purpose=f"mail.{kind}",
            sealed_by=sealed,
            ordering_key=appointment.id,
            not_before=at,
        )
        log.info("mail %s (%s) queued for appointment %s", row, kind, appointment.id)
