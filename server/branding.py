"""The organisation's branding: name, colours, texts per language and the logo.

Anyone may read it (the citizens' page and booths show it before anybody logs in), together
with the organisation's time zone, in which every page shows times; administrators change it.
Colours must carry white text with the contrast WCAG 2.1 AA asks for (4.5:1), so pages and
booths can put labels on them without checking again. Texts are plain text, shown with
``textContent``; markup characters are refused rather than escaped, so what the administrator
typed is what everybody sees.

The pages and the booth show an organisation's text in the visitor's language; without one
they keep their built-in text, except for the privacy notice: an organisation's notice is
always shown, in English or German (the first that exists) when there is none in the visitor's
language. The pages (``/static/js/branding.js``) and the booth (``kiosk/ui/screens.py``)
follow this rule.

The logo is a PNG (checked: signature, header, chunks, at most 2048 x 2048 pixels) or an SVG
cleaned by :mod:`server.svg`, and is served with its own strict Content-Security-Policy.
"""

from __future__ import annotations

import json
import logging
import math
import re
import struct
import unicodedata
import zlib
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, ValidationError

from server.api import ADMINS, EVERYONE, PREFIX, Api, ApiCall, Name, RequestBody
from server.auditing import audit
from server.http import ProblemError
from server.keys import CONFIG, DATABASE
from server.storage import (
    Database,
    asset_digest,
    delete_asset,
    get_asset,
    get_setting,
    put_asset,
    put_setting,
)
from server.svg import SvgError, sanitize_svg

log = logging.getLogger(__name__)


BRANDING_KEY = "branding"
LOGO_ASSET = "logo"

LANGUAGES = ("de", "en", "tr", "uk", "ru", "ar")
#: The texts an organisation can replace, with their longest length in characters.
TEXT_LIMITS = {"welcome": 200, "privacy_notice": 1000, "booth_idle": 200, "ended": 300}

DEFAULT_NAME = "Videobooth"
DEFAULT_PRIMARY = "#0b5cad"  # 6.67:1 with white
DEFAULT_ACCENT = "#006b5f"  # 6.43:1 with white
MIN_CONTRAST = 4.5

PNG = "image/png"
SVG = "image/svg+xml"
MAX_LOGO_BYTES = 256 * 1024
MAX_LOGO_PIXELS = 2048
LOGO_CSP = "default-src 'none'; style-src 'unsafe-inline'"
#: Hex digits of the logo's SHA-256 in its URL: a new logo gets a new URL.
LOGO_VERSION_CHARS = 16

_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_MARKUP = re.compile(r"[<>]")
# Joiners shape Arabic and other scripts; every other format character (bidi overrides,
# invisible marks) could make a text read differently from what was typed.
_ALLOWED_FORMAT = {"\u200c", "\u200d"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class BrandingError(ValueError):
    """Branding input that cannot be used; the message names the field and says why."""


# --- request bodies ------------------------------------------------------------------------


class LanguageTexts(RequestBody):
    welcome: Annotated[str, Field(max_length=TEXT_LIMITS["welcome"])] | None = None
    privacy_notice: Annotated[str, Field(max_length=TEXT_LIMITS["privacy_notice"])] | None = None
    booth_idle: Annotated[str, Field(max_length=TEXT_LIMITS["booth_idle"])] | None = None
    ended: Annotated[str, Field(max_length=TEXT_LIMITS["ended"])] | None = None


class Texts(RequestBody):
    de: LanguageTexts | None = None
    en: LanguageTexts | None = None
    tr: LanguageTexts | None = None
    uk: LanguageTexts | None = None
    ru: LanguageTexts | None = None
    ar: LanguageTexts | None = None


class BrandingBody(RequestBody):
    organisation_name: Name
    primary_color: Annotated[str, Field(max_length=7)]
    accent_color: Annotated[str, Field(max_length=7)]
    texts: Texts = Field(default_factory=Texts)


# --- checks ----------------------------------------------------------------------------------


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    """The WCAG 2.1 contrast ratio of two ``#RRGGBB`` colours, from 1 to 21."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def check_colour(value: str, field: str) -> str:
    """Return the colour in lower case; raise :class:`BrandingError` for a malformed one or
    one whose contrast with white text is below :data:`MIN_CONTRAST`."""
    if not _COLOUR.fullmatch(value):
        raise BrandingError(f"{field}: give a colour as #RRGGBB, such as {DEFAULT_PRIMARY}")
    ratio = contrast_ratio(value, "#ffffff")
    if ratio < MIN_CONTRAST:
        shown = math.floor(ratio * 100) / 100  # never round up to a passing 4.50
        raise BrandingError(
            f"{field}: {value} has a contrast of {shown:.2f}:1 with white text; WCAG AA needs "
            f"at least {MIN_CONTRAST}:1, so choose a darker colour"
        )
    return value.lower()


def plain_text(value: str, field: str, *, multiline: bool) -> str:
    """Return *value* trimmed with line breaks as ``\\n``; raise :class:`BrandingError` for
    markup characters or invisible control and format characters."""
    cleaned = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if _MARKUP.search(cleaned):
        raise BrandingError(f"{field}: plain text only, without < or >")
    for char in cleaned:
        if char == "\n" and multiline:
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char not in _ALLOWED_FORMAT:
            raise BrandingError(
                f"{field}: remove the invisible character U+{ord(char):04X}"
                + ("" if multiline else " (line breaks are not allowed here)")
            )
    return cleaned


def clean_branding(body: BrandingBody) -> dict[str, Any]:
    """The branding as stored: checked, trimmed, without empty texts."""
    name = plain_text(body.organisation_name, "organisation_name", multiline=False)
    if not name:
        raise BrandingError("organisation_name: must not be empty")
    texts: dict[str, dict[str, str]] = {}
    for language in LANGUAGES:
        given: LanguageTexts | None = getattr(body.texts, language)
        if given is None:
            continue
        for key in TEXT_LIMITS:
            raw: str | None = getattr(given, key)
            if raw is None:
                continue
            cleaned = plain_text(raw, f"texts.{language}.{key}", multiline=True)
            if cleaned:
                texts.setdefault(language, {})[key] = cleaned
    return {
        "organisation_name": name,
        "primary_color": check_colour(body.primary_color, "primary_color"),
        "accent_color": check_colour(body.accent_color, "accent_color"),
        "texts": texts,
    }


def png_size(data: bytes) -> tuple[int, int]:
    """The width and height of the PNG image *data*, after checking its structure.

    Raises :class:`BrandingError` unless *data* is a complete PNG (signature, header first,
    chunks with correct checksums, nothing after the end) of at most 2048 x 2048 pixels.
    """
    if not data.startswith(_PNG_SIGNATURE):
        raise BrandingError("logo: the file is not a PNG image (the PNG signature is missing)")
    position, first, ended = len(_PNG_SIGNATURE), True, False
    width = height = 0
    while position < len(data) and not ended:
        if position + 12 > len(data):
            raise BrandingError("logo: the PNG file is cut off")
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        end = position + 12 + length
        if end > len(data):
            raise BrandingError("logo: the PNG file is cut off")
        chunk = data[position + 4 : end - 4]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if not kind.isalpha() or zlib.crc32(chunk) != crc:
            raise BrandingError("logo: the PNG file is damaged (a chunk's checksum is wrong)")
        if first:
            if kind != b"IHDR" or length != 13:
                raise BrandingError("logo: the PNG file has no valid header (IHDR)")
            width, height = struct.unpack(">II", data[position + 8 : position + 16])
            first = False
        ended = kind == b"IEND"
        position = end
    if not ended:
        raise BrandingError("logo: the PNG file is cut off (no IEND chunk)")
    if position != len(data):
        raise BrandingError("logo: the PNG file has data after its end; save it again")
    if not (0 < width <= MAX_LOGO_PIXELS and 0 < height <= MAX_LOGO_PIXELS):
        raise BrandingError(
            f"logo: the image is {width} x {height} pixels; at most "
            f"{MAX_LOGO_PIXELS} x {MAX_LOGO_PIXELS} are allowed"
        )
    return width, height


# --- reading -------------------------------------------------------------------------------


def _defaults() -> dict[str, Any]:
    return {
        "organisation_name": DEFAULT_NAME,
        "primary_color": DEFAULT_PRIMARY,
        "accent_color": DEFAULT_ACCENT,
        "texts": {},
    }


async def current_branding(db: Database) -> dict[str, Any]:
    """The stored branding, or the defaults when none is stored or it no longer passes."""
    stored = await get_setting(db, BRANDING_KEY)
    if stored is None:
        return _defaults()
    try:
        return clean_branding(BrandingBody.model_validate_json(json.dumps(stored)))
    except (ValidationError, BrandingError) as exc:
        log.warning("stored branding is not valid any more, using the defaults: %s", exc)
        return _defaults()


def logo_url(digest: str | None) -> str | None:
    """The logo's address, versioned by its SHA-256 *digest*; None without a logo."""
    if digest is None:
        return None
    return f"{PREFIX}/branding/logo?v={digest[:LOGO_VERSION_CHARS]}"


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds *limit* bytes."""
    too_large = ProblemError(
        413, "Payload Too Large", f"logo: the file is too large; at most {limit // 1024} KiB"
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    data = bytearray()
    while chunk := await request.content.read(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise too_large
    return bytes(data)


def register(api: Api) -> None:
    """Add the branding endpoints to ``api``."""

    @api.endpoint("GET", "/branding", allow=EVERYONE, summary="Read the organisation's branding")
    async def read(call: ApiCall) -> web.StreamResponse:
        db = call.request.app[DATABASE]
        branding = await current_branding(db)
        return web.json_response(
            {
                **branding,
                "logo_url": logo_url(await asset_digest(db, LOGO_ASSET)),
                "languages": list(LANGUAGES),
                "text_limits": TEXT_LIMITS,
                # Every page shows times in the organisation's zone, as the invitations do.
                "timezone": call.request.app[CONFIG].timezone,
            }
        )

    @api.endpoint(
        "PUT",
        "/branding",
        allow=ADMINS,
        summary="Change the organisation's name, colours and texts",
        body=BrandingBody,
    )
    async def write(call: ApiCall) -> web.StreamResponse:
        try:
            branding = clean_branding(call.body_as(BrandingBody))
        except BrandingError as exc:
            raise ProblemError(400, "Bad Request", str(exc)) from None
        db = call.request.app[DATABASE]
        await put_setting(db, BRANDING_KEY, branding)
        await audit(call, "branding.update", BRANDING_KEY, languages=sorted(branding["texts"]))
        return web.json_response(
            {**branding, "logo_url": logo_url(await asset_digest(db, LOGO_ASSET))}
        )

    @api.endpoint("PUT", "/branding/logo", allow=ADMINS, summary="Upload the organisation's logo")
    async def upload(call: ApiCall) -> web.StreamResponse:
        request = call.request
        content_type = request.content_type.lower()
        if content_type not in (PNG, SVG):
            raise ProblemError(
                415,
                "Unsupported Media Type",
                f"logo: send the file as {PNG} or {SVG}, not {content_type}",
            )
        data = await _read_limited(request, MAX_LOGO_BYTES)
        removed: dict[str, list[str]] = {"elements": [], "attributes": []}
        try:
            if content_type == PNG:
                png_size(data)
            else:
                data, report = sanitize_svg(data)
                removed = {
                    "elements": sorted(report.elements),
                    "attributes": sorted(report.attributes),
                }
        except SvgError as exc:
            raise ProblemError(400, "Bad Request", f"logo: {exc}") from None
        except BrandingError as exc:
            raise ProblemError(400, "Bad Request", str(exc)) from None
        asset = await put_asset(request.app[DATABASE], LOGO_ASSET, data, content_type)
        await audit(call, "branding.logo", BRANDING_KEY, content_type=content_type, bytes=len(data))
        return web.json_response(
            {
                "logo_url": logo_url(asset.sha256),
                "content_type": content_type,
                "bytes": len(data),
                "removed": removed,
            }
        )

    @api.endpoint(
        "DELETE", "/branding/logo", allow=ADMINS, summary="Remove the organisation's logo"
    )
    async def remove(call: ApiCall) -> web.StreamResponse:
        deleted = await delete_asset(call.request.app[DATABASE], LOGO_ASSET)
        if deleted:
            await audit(call, "branding.logo_delete", BRANDING_KEY)
        return web.json_response({"deleted": deleted})

    @api.endpoint(
        "GET", "/branding/logo", allow=EVERYONE, summary="Download the organisation's logo"
    )
    async def logo(call: ApiCall) -> web.StreamResponse:
        request = call.request
        asset = await get_asset(request.app[DATABASE], LOGO_ASSET)
        if asset is None:
            raise ProblemError(404, "Not Found", "no logo has been uploaded")
        versioned = request.query.get("v") == asset.sha256[:LOGO_VERSION_CHARS]
        suffix = "png" if asset.content_type == PNG else "svg"
        headers = {
            "ETag": f'"{asset.sha256}"',
            # A versioned URL never changes its content; the plain one is checked each time.
            "Cache-Control": "public, max-age=31536000, immutable" if versioned else "no-cache",
            "Content-Security-Policy": LOGO_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "same-origin",
            "Content-Disposition": f'inline; filename="logo.{suffix}"',
        }
        wanted = request.if_none_match or ()
        if any(tag.value in (asset.sha256, "*") for tag in wanted):
            return web.Response(status=304, headers=headers)
        return web.Response(body=asset.data, content_type=asset.content_type, headers=headers)
