"""Topics: the services a walk-in can ask for, their names per language, and which advisors
serve which.

A topic has its own name (what advisors and administrators see) and may have a name in each
language of the booth and the citizens' page; a visitor sees the one in their language and the
topic's own name where there is none.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from server.api import ADMINS, USERS, Access, Api, ApiCall, Name, RequestBody
from server.http import ProblemError
from server.keys import DATABASE
from server.storage import (
    TOPIC_LANGUAGES,
    ActorKind,
    Topic,
    create_topic,
    get_user,
    list_topics,
    record_audit,
    rename_topic,
    set_topic_active,
    set_topic_names,
    set_user_topics,
    topic_names,
)

#: Language -> the topic's name in it ("" removes that language).
Names = Annotated[
    dict[Annotated[str, Field(max_length=8)], Annotated[str, Field(max_length=100)]],
    Field(max_length=len(TOPIC_LANGUAGES)),
]


class NewTopic(RequestBody):
    name: Name
    names: Names | None = None


class TopicChange(RequestBody):
    name: Name | None = None
    #: Replaces every name per language the topic had.
    names: Names | None = None
    active: bool | None = None


def topic_json(topic: Topic) -> dict[str, Any]:
    """A topic as the API shows it: its own name, its names per language, active or not."""
    return {
        "id": topic.id,
        "name": topic.name,
        "names": topic_names(topic),
        "active": topic.active,
    }


class AdvisorTopics(RequestBody):
    topic_ids: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=200)]


def register(api: Api) -> None:
    @api.endpoint(
        "GET",
        "/topics",
        allow=frozenset({*USERS, Access.BOOTH}),
        summary="List the topics walk-ins can choose",
    )
    async def topics(call: ApiCall) -> web.StreamResponse:
        # Booths and advisors see the active ones; administrators all.
        everything = call.caller.access is Access.ADMIN
        items = await list_topics(call.request.app[DATABASE], include_inactive=everything)
        return web.json_response(
            {"topics": [topic_json(t) for t in items], "languages": list(TOPIC_LANGUAGES)}
        )

    @api.endpoint("POST", "/topics", allow=ADMINS, summary="Create a topic", body=NewTopic)
    async def create(call: ApiCall) -> web.StreamResponse:
        db, body = call.request.app[DATABASE], call.body_as(NewTopic)
        topic = await create_topic(db, body.name)
        if body.names:
            topic = await set_topic_names(db, topic.id, body.names)
        await record_audit(
            db,
            actor_kind=ActorKind.USER,
            actor_id=call.caller.id,
            action="topic.create",
            subject=topic.id,
        )
        return web.json_response(topic_json(topic), status=201)

    @api.endpoint(
        "PATCH",
        "/topics/{id}",
        allow=ADMINS,
        summary="Rename a topic, name it per language, or stop or start offering it",
        body=TopicChange,
    )
    async def change(call: ApiCall) -> web.StreamResponse:
        body = call.body_as(TopicChange)
        if body.name is None and body.names is None and body.active is None:
            raise ProblemError(
                400, "Bad Request", "nothing to change: give a name, names or active"
            )
        db = call.request.app[DATABASE]
        topic_id = call.request.match_info["id"]
        # Renaming first: a refused name leaves the topic as it was.
        if body.name is not None:
            topic = await rename_topic(db, topic_id, body.name)
        if body.names is not None:
            topic = await set_topic_names(db, topic_id, body.names)
        if body.active is not None:
            topic = await set_topic_active(db, topic_id, body.active)
        changed = sorted(body.model_dump(exclude_none=True))
        await record_audit(
            db,
            actor_kind=ActorKind.USER,
            actor_id=call.caller.id,
            action="topic.update",
            subject=topic.id,
            detail=json.dumps({"active": topic.active, "fields": changed}, separators=(",", ":")),
        )
        return web.json_response(topic_json(topic))

    @api.endpoint(
        "PUT",
        "/advisors/{id}/topics",
        allow=ADMINS,
        summary="Set the topics an advisor serves",
        body=AdvisorTopics,
    )
    async def assign(call: ApiCall) -> web.StreamResponse:
        db = call.request.app[DATABASE]
        user_id = call.request.match_info["id"]
        if await get_user(db, user_id) is None:
            raise ProblemError(404, "Not Found", "no such advisor")
        await set_user_topics(db, user_id, call.body_as(AdvisorTopics).topic_ids)
        await record_audit(
            db,
            actor_kind=ActorKind.USER,
            actor_id=call.caller.id,
            action="advisor.topics",
            subject=user_id,
        )
        return web.json_response({"ok": True})
