"""What the booth's screens need from the server besides signalling: the topics walk-ins can
choose (with their names per language) and the organisation's branding (name, colours, texts,
logo). Fetched with the booth's own credential whenever the link comes up and every few minutes
while it is up; a failure keeps what was there before."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from kiosk.identity import ServerAccess

log = logging.getLogger(__name__)

#: A logo bigger than this is not shown (the server refuses more than 256 KiB anyway).
MAX_LOGO_BYTES = 512 * 1024


@dataclass
class ServerInfo:
    #: (id, the topic's own name), in the server's order.
    topics: list[tuple[str, str]] = field(default_factory=list)
    #: topic id -> language -> the topic's name in that language (where it has one).
    topic_names: dict[str, dict[str, str]] = field(default_factory=dict)
    organisation_name: str | None = None
    primary_color: str | None = None
    accent_color: str | None = None
    #: The organisation's own texts: language -> key -> text.
    texts: dict[str, dict[str, str]] = field(default_factory=dict)
    logo: bytes | None = None
    logo_type: str | None = None


async def fetch_server_info(access: ServerAccess, known: ServerInfo) -> ServerInfo:
    """Topics and branding from the server; on any failure the ``known`` values stay."""
    info = ServerInfo(**vars(known))
    try:
        async with access.session() as http:
            async with await access.get(http, "/api/v1/topics") as response:
                response.raise_for_status()
                body: Any = await response.json()
            offered = [t for t in body["topics"] if t.get("active", True)]
            info.topics = [(str(t["id"]), str(t["name"])) for t in offered]
            info.topic_names = {
                str(t["id"]): {str(k): str(v) for k, v in t["names"].items() if v}
                for t in offered
                if isinstance(t.get("names"), dict)
            }
            async with await access.get(http, "/api/v1/branding") as response:
                response.raise_for_status()
                branding: Any = await response.json()
            info.organisation_name = branding.get("organisation_name")
            info.primary_color = branding.get("primary_color")
            info.accent_color = branding.get("accent_color")
            texts = branding.get("texts") or {}
            info.texts = {
                str(lang): {str(k): str(v) for k, v in entries.items()}
                for lang, entries in texts.items()
                if isinstance(entries, dict)
            }
            logo_url = branding.get("logo_url")
            info.logo, info.logo_type = None, None
            if isinstance(logo_url, str) and logo_url.startswith("/"):
                async with await access.get(http, logo_url) as response:
                    response.raise_for_status()
                    data = await response.content.read(MAX_LOGO_BYTES + 1)
                    if len(data) <= MAX_LOGO_BYTES:
                        info.logo, info.logo_type = data, response.content_type
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
        log.warning("could not fetch topics and branding from the server: %s", exc)
        return known
    log.info(
        "server info: %d topic(s), organisation %r, logo %s",
        len(info.topics),
        info.organisation_name,
        "yes" if info.logo else "no",
    )
    return info


def topics_in(info: ServerInfo, language: str) -> list[tuple[str, str]]:
    """The topics as a visitor in *language* reads them: the name in that language where the
    topic has one, its own name otherwise."""
    return [
        (topic_id, info.topic_names.get(topic_id, {}).get(language) or name)
        for topic_id, name in info.topics
    ]
