"""The booking system's place on the admin pages: service accounts, their API tokens (shown
once, hashed at rest, scoped, expiring, revocable) and their webhook endpoints (the signing
secret shown once, sealed at rest). Every change is in the audit log, without the secrets."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import Field

from server.api import ADMINS, Api, ApiCall, Name, RequestBody
from server.auditing import audit
from server.http import ProblemError
from server.keys import DATABASE
from server.outbox import WEBHOOKS
from server.outbox.webhooks import EVENTS
from server.storage import (
    ApiToken,
    WebhookEndpoint,
    add_webhook,
    create_service_account,
    delete_webhook,
    issue_token,
    list_service_accounts,
    list_tokens,
    list_webhooks,
    revoke_token,
)

__all__ = ["register"]

Scope = Literal["appointments:read", "appointments:write"]
Event = Literal["appointment.waiting", "call.started", "call.ended", "appointment.no_show"]
assert set(EVENTS) == {"appointment.waiting", "call.started", "call.ended", "appointment.no_show"}


class NewAccount(RequestBody):
    name: Name


class NewToken(RequestBody):
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=2)]
    #: Days until the token expires.
    days: Annotated[int, Field(ge=1, le=730)] = 365


class NewWebhook(RequestBody):
    url: Annotated[str, Field(min_length=8, max_length=500)]
    events: Annotated[list[Event], Field(min_length=1, max_length=len(EVENTS))]


def token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "prefix": token.prefix,
        "scopes": token.scopes.split(),
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat(),
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
    }


def webhook_json(webhook: WebhookEndpoint) -> dict[str, Any]:
    return {"id": webhook.id, "url": webhook.url, "events": webhook.events.split()}


def _webhook_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ProblemError(400, "Bad Request", "url: an https:// (or http://) address")
    if parts.username or parts.password:
        raise ProblemError(400, "Bad Request", "url: no credentials in the address")
    return url


def register(api: Api) -> None:
    @api.endpoint(
        "GET", "/service-accounts", allow=ADMINS, summary="List the booking systems' accounts"
    )
    async def accounts(call: ApiCall) -> web.StreamResponse:
        db = call.request.app[DATABASE]
        items = []
        for account in await list_service_accounts(db):
            items.append(
                {
                    "id": account.id,
                    "name": account.name,
                    "created_at": account.created_at.isoformat(),
                    "tokens": [token_json(t) for t in await list_tokens(db, account.id)],
                    "webhooks": [webhook_json(w) for w in await list_webhooks(db, account.id)],
                }
            )
        return web.json_response({"service_accounts": items, "events": list(EVENTS)})

    @api.endpoint(
        "POST",
        "/service-accounts",
        allow=ADMINS,
        summary="Create a booking system's account",
        body=NewAccount,
    )
    async def create(call: ApiCall) -> web.StreamResponse:
        body = call.body_as(NewAccount)
        account = await create_service_account(call.request.app[DATABASE], body.name)
        await audit(call, "service_account.create", account.id)
        return web.json_response({"id": account.id, "name": account.name}, status=201)

    @api.endpoint(
        "POST",
        "/service-accounts/{id}/tokens",
        allow=ADMINS,
        summary="Issue an API token for a booking system",
        body=NewToken,
    )
    async def issue(call: ApiCall) -> web.StreamResponse:
        body = call.body_as(NewToken)
        db = call.request.app[DATABASE]
        token, text = await issue_token(
            db,
            call.request.match_info["id"],
            scopes=set(body.scopes),
            expires_at=db.now() + timedelta(days=body.days),
        )
        await audit(call, "api_token.issue", token.id, account=token.account_id, scopes=body.scopes)
        return web.json_response(
            {**token_json(token), "token": text, "note": "the token is shown once; keep it"},
            status=201,
        )

    @api.endpoint(
        "POST", "/api-tokens/{id}/revoke", allow=ADMINS, summary="Revoke a booking system's token"
    )
    async def revoke(call: ApiCall) -> web.StreamResponse:
        token = await revoke_token(call.request.app[DATABASE], call.request.match_info["id"])
        await audit(call, "api_token.revoke", token.id, account=token.account_id)
        return web.json_response(token_json(token))

    @api.endpoint(
        "POST",
        "/service-accounts/{id}/webhooks",
        allow=ADMINS,
        summary="Add a webhook endpoint for a booking system",
        body=NewWebhook,
    )
    async def add(call: ApiCall) -> web.StreamResponse:
        body = call.body_as(NewWebhook)
        webhooks = call.request.app.get(WEBHOOKS)
        if webhooks is None:  # pragma: no cover - every server runs the outbox
            raise ProblemError(503, "Service Unavailable", "the outbox is not running")
        secret = "whsec_" + secrets.token_urlsafe(32)
        endpoint = await add_webhook(
            call.request.app[DATABASE],
            call.request.match_info["id"],
            url=_webhook_url(body.url),
            events=set(body.events),
            sealed_secret=lambda row: webhooks.secrets.seal(secret.encode(), row),
        )
        await audit(call, "webhook.add", endpoint.id, account=endpoint.account_id)
        return web.json_response(
            {**webhook_json(endpoint), "secret": secret, "note": "the secret is shown once"},
            status=201,
        )

    @api.endpoint(
        "DELETE", "/webhooks/{id}", allow=ADMINS, summary="Remove a booking system's webhook"
    )
    async def remove(call: ApiCall) -> web.StreamResponse:
        await delete_webhook(call.request.app[DATABASE], call.request.match_info["id"])
        await audit(call, "webhook.remove", call.request.match_info["id"])
        return web.json_response({"ok": True})
