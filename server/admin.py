"""Administration: users, branches, settings and the audit log (administrators only).

Every change is written to the audit log with metadata only (who, what, which record, which
fields): never a password, not even a generated one. Generated passwords are returned once, in
the response that made them, and must be changed by their user at the next login
(:mod:`server.account`).

Two rules protect access to the administration itself: administrators cannot disable
themselves or take away their own role (someone else has to), and the last enabled
administrator can be neither disabled nor made an advisor (the storage layer checks that in
the same transaction as the change).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

from server.api import ADMINS, Api, ApiCall, Name, RequestBody
from server.auditing import audit
from server.http import ProblemError
from server.keys import CONFIG, DATABASE, SWITCHBOARD
from server.storage import (
    MAX_AUDIT_RETENTION_DAYS,
    MIN_AUDIT_RETENTION_DAYS,
    AuditEvent,
    Branch,
    BranchUsage,
    ConflictError,
    User,
    audit_retention_days,
    branch_usage,
    create_branch,
    create_user,
    delete_branch,
    disable_user,
    enable_user,
    get_user,
    list_branches,
    list_users,
    search_audit,
    set_audit_retention_days,
    set_must_change_password,
    set_password,
    update_branch,
    update_user,
    user_topic_ids,
)

log = logging.getLogger(__name__)


#: Length of a generated password, from secrets.token_urlsafe: 20 characters, 120 bits.
GENERATED_PASSWORD_BYTES = 15
AUDIT_PAGE_DEFAULT = 50
AUDIT_PAGE_MAX = 500
_CURSOR_SEPARATOR = "~"

RoleName = Literal["advisor", "admin"]


class NewUser(RequestBody):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    display_name: Annotated[str, Field(max_length=200)] | None = None
    role: RoleName
    #: Leave out to have one generated (and returned once).
    password: Annotated[str, Field(min_length=1, max_length=1024)] | None = None


class UserChange(RequestBody):
    display_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    role: RoleName | None = None


class NewBranch(RequestBody):
    name: Name
    region: Name


class BranchChange(RequestBody):
    name: Name | None = None
    region: Name | None = None


class Settings(RequestBody):
    #: Days audit events are kept; null goes back to the server configuration's value.
    audit_retention_days: (
        Annotated[int, Field(ge=MIN_AUDIT_RETENTION_DAYS, le=MAX_AUDIT_RETENTION_DAYS)] | None
    )


def user_json(user: User, topic_ids: list[str]) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role.value,
        "disabled": user.disabled,
        "must_change_password": user.must_change_password,
        # Made at a single sign-on: name, role and topics come from the identity provider.
        "single_sign_on": user.external_subject is not None,
        "created_at": user.created_at.isoformat(),
        "topic_ids": topic_ids,
    }


def branch_json(branch: Branch, usage: BranchUsage) -> dict[str, Any]:
    return {
        "id": branch.id,
        "name": branch.name,
        "region": branch.region,
        "created_at": branch.created_at.isoformat(),
        "booths": usage.booths,
        "appointments": usage.appointments,
    }


def audit_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "actor_kind": event.actor_kind.value,
        "actor_id": event.actor_id,
        "action": event.action,
        "subject": event.subject,
        "detail": event.detail,
    }


def audit_cursor(event: AuditEvent) -> str:
    """Where the page after *event* starts: its time and id (``before`` of the next call)."""
    return f"{event.at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}{_CURSOR_SEPARATOR}{event.id}"


def _parse_cursor(raw: str) -> tuple[datetime, str | None]:
    at, _, event_id = raw.partition(_CURSOR_SEPARATOR)
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or len(event_id) > 64:
        raise ProblemError(
            400,
            "Bad Request",
            "before: give the 'next' value of the previous page, or a time with a zone "
            "such as 2026-03-01T12:00:00Z",
        )
    return when, event_id or None


def _int_query(call: ApiCall, name: str, default: int, low: int, high: int) -> int:
    raw = call.request.query.get(name)
    if raw is None:
        return default
    # isdigit() alone takes "²" and other digits int() refuses: ASCII digits only.
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ProblemError(400, "Bad Request", f"{name}: give a whole number from {low} to {high}")
    return int(raw)


@contextlib.contextmanager
def _conflicts() -> Iterator[None]:
    """A change refused by a rule about other records is a conflict (409), not bad input."""
    try:
        yield
    except ConflictError as exc:
        raise ProblemError(409, "Conflict", str(exc)) from None


def _new_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def register(api: Api) -> None:
    """Add the administration endpoints to ``api``."""
    _register_users(api)
    _register_branches(api)
    _register_settings(api)
    _register_audit(api)


def _register_users(api: Api) -> None:
    @api.endpoint("GET", "/users", allow=ADMINS, summary="List the users")
    async def users(call: ApiCall) -> web.StreamResponse:
        db = call.request.app[DATABASE]
        topics = await user_topic_ids(db)
        return web.json_response(
            {"users": [user_json(u, topics.get(u.id, [])) for u in await list_users(db)]}
        )

    @api.endpoint("POST", "/users", allow=ADMINS, summary="Create a user", body=NewUser)
    async def create(call: ApiCall) -> web.StreamResponse:
        body = call.body_as(NewUser)
        generated = body.password is None
        password = _new_password() if body.password is None else body.password
        user = await create_user(
            call.request.app[DATABASE],
            username=body.username,
            password=password,
            role=body.role,
            display_name=body.display_name,
        )
        if generated:
            # The administrator has seen it: only the user should know their password.
            await set_must_change_password(call.request.app[DATABASE], user.id, True)
            user.must_change_password = True
        await audit(
            call,
            "user.create",
            user.id,
            role=user.role.value,
            password="generated" if generated else "given",
        )
        result: dict[str, Any] = {"user": user_json(user, [])}
        if generated:
            result["password"] = password
            result["note"] = (
                "the password is shown once: hand it to the user now; they choose their own "
                "at their first login"
            )
        return web.json_response(result, status=201)

    @api.endpoint(
        "PATCH",
        "/users/{id}",
        allow=ADMINS,
        summary="Change a user's display name or role",
        body=UserChange,
    )
    async def change(call: ApiCall) -> web.StreamResponse:
        body = call.body_as(UserChange)
        user_id = call.request.match_info["id"]
        if user_id == call.caller.id and body.role == "advisor":
            raise ProblemError(
                409,
                "Conflict",
                "you cannot take away your own administrator role: ask another administrator",
            )
        db = call.request.app[DATABASE]
        with _conflicts():
            user = await update_user(db, user_id, display_name=body.display_name, role=body.role)
        changed = sorted(body.model_dump(exclude_none=True))
        await audit(call, "user.update", user.id, fields=changed, role=user.role.value)
        topics = await user_topic_ids(db)
        return web.json_response({"user": user_json(user, topics.get(user.id, []))})

    @api.endpoint(
        "POST", "/users/{id}/disable", allow=ADMINS, summary="Disable a user and end their logins"
    )
    async def disable(call: ApiCall) -> web.StreamResponse:
        user_id = call.request.match_info["id"]
        if user_id == call.caller.id:
            raise ProblemError(
                409,
                "Conflict",
                "you cannot disable your own account: ask another administrator",
            )
        db = call.request.app[DATABASE]
        with _conflicts():
            user = await disable_user(db, user_id)
        # Their open workspaces close now; a call they are in ends.
        call.request.app[SWITCHBOARD].end_logins(user.id, reason="account disabled")
        await audit(call, "user.disable", user.id)
        topics = await user_topic_ids(db)
        return web.json_response({"user": user_json(user, topics.get(user.id, []))})

    @api.endpoint("POST", "/users/{id}/enable", allow=ADMINS, summary="Enable a disabled user")
    async def enable(call: ApiCall) -> web.StreamResponse:
        db = call.request.app[DATABASE]
        user = await enable_user(db, call.request.match_info["id"])
        await audit(call, "user.enable", user.id)
        topics = await user_topic_ids(db)
        return web.json_response({"user": user_json(user, topics.get(user.id, []))})

    @api.endpoint(
        "POST",
        "/users/{id}/password",
        allow=ADMINS,
        summary="Give a user a new generated password",
    )
    async def reset_password(call: ApiCall) -> web.StreamResponse:
        db = call.request.app[DATABASE]
        user_id = call.request.match_info["id"]
        if await get_user(db, user_id) is None:
            raise ProblemError(404, "Not Found", "no such user")
        password = _new_password()
        # The flag first: should the second step fail, the old password is changed at the next
        # login, which is harmless; the other order could leave a generated password for good.
        await set_must_change_password(db, user_id, True)
        await set_password(db, user_id, password)
        call.request.app[SWITCHBOARD].end_logins(user_id, reason="password reset")
        await audit(call, "user.password_reset", user_id)
        return web.json_response(
            {
                "password": password,
                "note": "the password is shown once: hand it to the user now; "
                "their open logins have ended, and they choose their own at the next login",
            }
        )


def _register_branches(api: Api) -> None:
    @api.endpoint("GET", "/branches", allow=ADMINS, summary="List the branches")
    async def branches(call: ApiCall) -> web.StreamResponse:
        db = call.request.app[DATABASE]
        usage = await branch_usage(db)
        return web.json_response(
            {
                "branches": [
                    branch_json(b, usage.get(b.id, BranchUsage())) for b in await list_branches(db)
                ]
            }
        )

    @api.endpoint("POST", "/branches", allow=ADMINS, summary="Create a branch", body=NewBranch)
    async def create(call: ApiCall) -> web.StreamResponse:
        body = call.body_as(NewBranch)
        branch = await create_branch(call.request.app[DATABASE], body.name, body.region)
        await audit(call, "branch.create", branch.id)
        return web.json_response({"branch": branch_json(branch, BranchUsage())}, status=201)

    @api.endpoint(
        "PATCH",
        "/branches/{id}",
        allow=ADMINS,
        summary="Rename a branch or change its region",
        body=BranchChange,
    )
    async def change(call: ApiCall) -> web.StreamResponse:
        body = call.body_as(BranchChange)
        db = call.request.app[DATABASE]
        branch = await update_branch(
            db, call.request.match_info["id"], name=body.name, region=body.region
        )
        await audit(
            call, "branch.update", branch.id, fields=sorted(body.model_dump(exclude_none=True))
        )
        usage = await branch_usage(db)
        return web.json_response(
            {"branch": branch_json(branch, usage.get(branch.id, BranchUsage()))}
        )

    @api.endpoint("DELETE", "/branches/{id}", allow=ADMINS, summary="Delete an unused branch")
    async def remove(call: ApiCall) -> web.StreamResponse:
        branch_id = call.request.match_info["id"]
        with _conflicts():
            await delete_branch(call.request.app[DATABASE], branch_id)
        await audit(call, "branch.delete", branch_id)
        return web.json_response({"ok": True})


def _register_settings(api: Api) -> None:
    async def settings_json(call: ApiCall) -> dict[str, Any]:
        stored = await audit_retention_days(call.request.app[DATABASE])
        configured = call.request.app[CONFIG].audit_retention_days
        return {
            "audit_retention_days": stored if stored is not None else configured,
            "audit_retention_source": "setting" if stored is not None else "configuration",
            "audit_retention_configured": configured,
        }

    @api.endpoint("GET", "/settings", allow=ADMINS, summary="Read the settings")
    async def read(call: ApiCall) -> web.StreamResponse:
        return web.json_response(await settings_json(call))

    @api.endpoint("PUT", "/settings", allow=ADMINS, summary="Change the settings", body=Settings)
    async def write(call: ApiCall) -> web.StreamResponse:
        days = call.body_as(Settings).audit_retention_days
        await set_audit_retention_days(call.request.app[DATABASE], days)
        await audit(call, "settings.update", "audit_retention_days", audit_retention_days=days)
        return web.json_response(await settings_json(call))


def _register_audit(api: Api) -> None:
    @api.endpoint("GET", "/audit", allow=ADMINS, summary="Read the audit log")
    async def audit(call: ApiCall) -> web.StreamResponse:
        query = call.request.query
        limit = _int_query(call, "limit", AUDIT_PAGE_DEFAULT, 1, AUDIT_PAGE_MAX)
        before, before_id = _parse_cursor(query["before"]) if "before" in query else (None, None)
        action = query.get("action") or None
        events = await search_audit(
            call.request.app[DATABASE],
            limit=limit,
            before=before,
            before_id=before_id,
            action=action,
        )
        return web.json_response(
            {
                "events": [audit_json(e) for e in events],
                "next": audit_cursor(events[-1]) if len(events) == limit else None,
            }
        )
