"""Appointments: advisors create, list, move and cancel them; each has a join link and code.

The link's token and the numeric code are shown once, at creation (and a new code when a move
has to issue one): the database keeps only their hashes.
"""

from __future__ import annotations

import io
import logging
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import segno
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from server.api import USERS, Access, Api, ApiCall
from server.auditing import audit
from server.calls import base_url
from server.http import ProblemError
from server.keys import CONFIG, DATABASE, SWITCHBOARD
from server.outbox import MAILER
from server.outbox.mail import Contact
from server.storage import (
    Appointment,
    cancel_appointment,
    create_appointment,
    get_appointment,
    get_user_by_username,
    join_window,
    list_appointments,
    move_appointment,
)

log = logging.getLogger(__name__)


#: An e-mail address as far as this server checks it (the relay knows better).
EMAIL = r"^[^@\s<>,;\"]{1,64}@[^@\s<>,;\"]{1,190}$"


class NewAppointment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: AwareDatetime
    duration_minutes: Annotated[int, Field(ge=5, le=240)] = 30
    channel: Literal["own_device", "booth", "either"] = "either"
    topic_id: str | None = None
    branch_id: str | None = None
    citizen_label: Annotated[str, Field(max_length=80)] | None = None
    #: Invite by e-mail (where the server has [mail]): the invitation with a calendar entry,
    #: a reminder, and a message if the appointment moves or is cancelled.
    citizen_email: Annotated[str, Field(max_length=254, pattern=EMAIL)] | None = None
    citizen_language: Literal["de", "en", "tr", "uk", "ru", "ar"] = "de"
    #: A booking system names the advisor (username); an advisor makes their own.
    advisor: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class MoveAppointment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: AwareDatetime
    duration_minutes: Annotated[int, Field(ge=5, le=240)] | None = None


def appointment_json(appointment: Appointment) -> dict[str, Any]:
    opens, closes = join_window(appointment)
    return {
        "id": appointment.id,
        "advisor_id": appointment.advisor_id,
        "starts_at": appointment.starts_at.isoformat(),
        "duration_minutes": appointment.duration_minutes,
        "channel": appointment.channel.value,
        "topic_id": appointment.topic_id,
        "branch_id": appointment.branch_id,
        "citizen_label": appointment.citizen_label,
        "status": appointment.status.value,
        "join_opens_at": opens.isoformat(),
        "join_closes_at": closes.isoformat(),
    }


def invitation(
    *, link: str, code: str, starts_at: datetime, minutes: int, advisor: str, zone: str
) -> dict[str, str]:
    """The invitation text in German and English, to copy into a letter or an e-mail."""
    local = starts_at.astimezone(ZoneInfo(zone))
    day_de, day_en = local.strftime("%d.%m.%Y"), local.strftime("%Y-%m-%d")
    time_ = local.strftime("%H:%M %Z")  # the zone named: citizens may be elsewhere
    spaced = f"{code[:4]} {code[4:]}"
    return {
        "de": (
            f"Ihr Videotermin mit {advisor} am {day_de} um {time_} ({minutes} Minuten).\n"
            f"Von zu Hause: öffnen Sie {link} und folgen Sie den Schritten.\n"
            f"An einer Videokabine in der Filiale: wählen Sie „Termin“ und geben Sie den Code "
            f"{spaced} ein.\nDas Gespräch wird nicht aufgezeichnet."
        ),
        "en": (
            f"Your video appointment with {advisor} on {day_en} at {time_} ({minutes} minutes).\n"
            f"From home: open {link} and follow the steps.\n"
            f"At a video booth in a branch: choose “Appointment” and enter the code {spaced}.\n"
            f"The conversation is not recorded."
        ),
    }


def qr_svg(link: str) -> str:
    buffer = io.BytesIO()
    segno.make(link, error="m").save(buffer, kind="svg", scale=4, xmldecl=False, border=4)
    return buffer.getvalue().decode()


async def _own(call: ApiCall) -> Appointment:
    db = call.request.app[DATABASE]
    appointment = await get_appointment(db, call.request.match_info["id"])
    # Another advisor's appointment reads as missing: no probing for ids. Administrators and
    # the booking system see them all.
    if appointment is None or (
        call.caller.access not in (Access.ADMIN, Access.SERVICE)
        and appointment.advisor_id != call.caller.id
    ):
        raise ProblemError(404, "Not Found", "no such appointment")
    return appointment


#: People, and the booking system with the token's scope.
STAFF_AND_SERVICE = frozenset({*USERS, Access.SERVICE})


async def _advisor_for(call: ApiCall, username: str | None) -> tuple[str, str]:
    """Whose appointment it is: the calling advisor's own, or the one a booking system names
    (an enabled advisor or administrator)."""
    if call.caller.access is not Access.SERVICE:
        if username is not None:
            raise ProblemError(400, "Bad Request", "advisor: only a booking system names one")
        return call.caller.id or "", call.caller.name
    if username is None:
        raise ProblemError(400, "Bad Request", "advisor: name the advisor (username)")
    user = await get_user_by_username(call.request.app[DATABASE], username)
    if user is None or user.disabled:
        raise ProblemError(400, "Bad Request", f"advisor: no enabled advisor {username!r}")
    return user.id, user.display_name or user.username


def register(api: Api) -> None:
    """Add the appointment endpoints to ``api``."""

    @api.endpoint(
        "POST",
        "/appointments",
        allow=STAFF_AND_SERVICE,
        summary="Create an appointment",
        body=NewAppointment,
        scope="appointments:write",
    )
    async def create(call: ApiCall) -> web.StreamResponse:
        body = call.body_as(NewAppointment)
        request = call.request
        advisor_id, advisor_name = await _advisor_for(call, body.advisor)
        mailer = request.app.get(MAILER)
        if body.citizen_email is not None and mailer is None:
            raise ProblemError(
                400, "Bad Request", "invitations by e-mail are not set up on this server ([mail])"
            )
        appointment, token, code = await create_appointment(
            request.app[DATABASE],
            advisor_id=advisor_id,
            starts_at=body.starts_at,
            duration_minutes=body.duration_minutes,
            channel=body.channel,
            topic_id=body.topic_id,
            branch_id=body.branch_id,
            citizen_label=body.citizen_label,
        )
        await audit(call, "appointment.create", appointment.id)
        link = f"{base_url(request)}/join/{token}"
        if mailer is not None and body.citizen_email is not None:
            contact = Contact(
                email=body.citizen_email,
                language=body.citizen_language,
                link=link,
                code=code,
                advisor=advisor_name,
            )
            await mailer.invite(appointment, contact)
        return web.json_response(
            {
                "appointment": appointment_json(appointment),
                "join_link": link,
                "join_code": code,
                "invitation": invitation(
                    link=link,
                    code=code,
                    starts_at=appointment.starts_at,
                    minutes=appointment.duration_minutes,
                    advisor=advisor_name,
                    zone=request.app[CONFIG].timezone,
                ),
                # A phone opens the link (the page ignores the query); a booth's camera reads
                # the code from it, so the citizen need not type it.
                "qr_svg": qr_svg(f"{link}?code={code}"),
                "note": "the link and the code are shown once; keep the invitation",
            },
            status=201,
        )

    @api.endpoint(
        "GET",
        "/appointments",
        allow=STAFF_AND_SERVICE,
        summary="List appointments",
        scope="appointments:read",
    )
    async def listing(call: ApiCall) -> web.StreamResponse:
        raw_day = call.request.query.get("day")
        try:
            day = date.fromisoformat(raw_day) if raw_day else None
        except ValueError:
            raise ProblemError(400, "Bad Request", "day: expected YYYY-MM-DD") from None
        everyone = call.caller.access in (Access.ADMIN, Access.SERVICE)
        advisor = None if everyone else call.caller.id
        zone = ZoneInfo(call.request.app[CONFIG].timezone)
        items = await list_appointments(
            call.request.app[DATABASE], advisor_id=advisor, day=day, tz=zone
        )
        return web.json_response({"appointments": [appointment_json(a) for a in items]})

    @api.endpoint(
        "PATCH",
        "/appointments/{id}",
        allow=STAFF_AND_SERVICE,
        summary="Move an appointment",
        body=MoveAppointment,
        scope="appointments:write",
    )
    async def move(call: ApiCall) -> web.StreamResponse:
        body = call.body_as(MoveAppointment)
        appointment = await _own(call)
        moved, new_code = await move_appointment(
            call.request.app[DATABASE],
            appointment.id,
            starts_at=body.starts_at,
            duration_minutes=body.duration_minutes,
        )
        await audit(call, "appointment.move", appointment.id)
        mailer = call.request.app.get(MAILER)
        if mailer is not None:
            await mailer.moved(moved, new_code)
        result: dict[str, Any] = {"appointment": appointment_json(moved)}
        if new_code is not None:
            result["join_code"] = new_code
            result["note"] = "the old code clashed in the new time: give the citizen this one"
        return web.json_response(result)

    @api.endpoint(
        "POST",
        "/appointments/{id}/cancel",
        allow=STAFF_AND_SERVICE,
        summary="Cancel an appointment",
        scope="appointments:write",
    )
    async def cancel(call: ApiCall) -> web.StreamResponse:
        appointment = await _own(call)
        cancelled = await cancel_appointment(call.request.app[DATABASE], appointment.id)
        # Its guest passes die with it: the citizens' pages close and its lobby empties.
        call.request.app[SWITCHBOARD].appointment_cancelled(appointment.id)
        await audit(call, "appointment.cancel", appointment.id)
        mailer = call.request.app.get(MAILER)
        if mailer is not None:
            await mailer.cancelled(cancelled)
        return web.json_response({"appointment": appointment_json(cancelled)})
