"""Branding: name, colours (WCAG AA with white text), texts per language, and the logo."""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Any

import aiohttp
import pytest

from server.branding import (
    DEFAULT_ACCENT,
    DEFAULT_PRIMARY,
    LOGO_CSP,
    MAX_LOGO_BYTES,
    BrandingError,
    contrast_ratio,
    png_size,
)
from server.keys import DATABASE
from server.storage import get_asset, get_setting, list_audit, put_setting
from tests.server.conftest import Harness
from tests.server.test_admin import admin, call

__all__ = ["admin"]  # the fixture, shared with test_admin

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LOGO = "/api/v1/branding/logo"

BRANDING = {
    "organisation_name": "Stadt Musterhausen",
    "primary_color": "#7A3E9D",
    "accent_color": "#00695c",
    "texts": {
        "de": {"welcome": "  Willkommen!  ", "privacy_notice": "Nichts wird\r\naufgezeichnet."},
        "ar": {"welcome": "أهلا وسهلا"},
        "uk": {"ended": ""},
    },
}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png(width: int = 16, height: int = 8) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x0b\x5c\xad" * width for _ in range(height))
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


async def upload(
    http: aiohttp.ClientSession, harness: Harness, data: bytes, content_type: str
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": content_type}
    async with http.put(harness.url(LOGO), data=data, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def _public_branding(harness: Harness) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(harness.url("/api/v1/branding")) as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


# --- colours and PNG checks ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("colour", "ratio"),
    [("#ffffff", 1.0), ("#000000", 21.0), ("#767676", 4.54), ("#777777", 4.48)],
)
def test_contrast_ratio_with_white(colour: str, ratio: float) -> None:
    assert contrast_ratio(colour, "#ffffff") == pytest.approx(ratio, abs=0.01)


def test_the_default_colours_pass_aa() -> None:
    for colour in (DEFAULT_PRIMARY, DEFAULT_ACCENT):
        assert contrast_ratio(colour, "#ffffff") >= 4.5


def test_png_size_reads_a_valid_header() -> None:
    assert png_size(make_png(300, 120)) == (300, 120)
    assert png_size(make_png(2048, 1)) == (2048, 1)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"GIF89a" + b"\x00" * 40, "not a PNG"),
        (make_png(2049, 10), "2049 x 10 pixels"),
        (make_png(10, 4096), "at most 2048 x 2048"),
        (make_png(0, 10), "0 x 10"),
        (make_png()[:-6], "cut off"),
        (make_png()[:40], "cut off"),
        (make_png()[:-12], "no IEND"),
        (make_png() + b"<html><script>alert(1)</script>", "data after its end"),
        (make_png()[:23] + b"\x09" + make_png()[24:], "checksum"),  # height 8 -> 9
        (PNG_SIGNATURE + _chunk(b"IDAT", b"x") + _chunk(b"IEND", b""), "no valid header"),
    ],
)
def test_png_size_refuses_what_is_not_a_sound_png(data: bytes, words: str) -> None:
    with pytest.raises(BrandingError, match=words):
        png_size(data)


# --- name, colours and texts ---------------------------------------------------------------


async def test_defaults_are_served_to_everyone(harness: Harness) -> None:
    branding = await _public_branding(harness)
    assert branding["organisation_name"] == "Videobooth"
    assert (branding["primary_color"], branding["accent_color"]) == (
        DEFAULT_PRIMARY,
        DEFAULT_ACCENT,
    )
    assert branding["texts"] == {}
    assert branding["logo_url"] is None
    assert branding["languages"] == ["de", "en", "tr", "uk", "ru", "ar"]
    assert set(branding["text_limits"]) == {"welcome", "privacy_notice", "booth_idle", "ended"}


async def test_branding_is_stored_cleaned_and_served(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    status, saved = await call(admin, harness, "PUT", "/branding", BRANDING)
    assert status == 200, saved
    branding = await _public_branding(harness)
    assert branding["organisation_name"] == "Stadt Musterhausen"
    assert (branding["primary_color"], branding["accent_color"]) == ("#7a3e9d", "#00695c")
    assert branding["texts"] == {
        "de": {"welcome": "Willkommen!", "privacy_notice": "Nichts wird\naufgezeichnet."},
        "ar": {"welcome": "أهلا وسهلا"},
    }
    events = await list_audit(harness.app[DATABASE])
    assert [(e.action, e.detail) for e in events] == [
        ("branding.update", '{"languages":["ar","de"]}')
    ]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"primary_color": "#ffcc00"}, "primary_color: #ffcc00 has a contrast of 1.51:1"),
        ({"accent_color": "#777777"}, "accent_color: #777777 has a contrast of 4.47:1"),
        ({"primary_color": "#ffffff"}, "needs at least 4.5:1"),
        ({"primary_color": "red"}, "primary_color: give a colour as #rrggbb"),
        ({"primary_color": "#12345g"}, "#rrggbb"),
        ({"primary_color": "#1234567"}, "primary_color"),
        ({"organisation_name": ""}, "organisation_name"),
        ({"organisation_name": "   "}, "must not be empty"),
        ({"organisation_name": "<b>Stadt</b>"}, "plain text only"),
        ({"organisation_name": "Stadt\nLand"}, "line breaks are not allowed"),
        ({"organisation_name": "x" * 101}, "organisation_name"),
        ({"texts": {"fr": {"welcome": "Bonjour"}}}, "texts.fr"),
        ({"texts": {"de": {"goodbye": "Tschüss"}}}, "texts.de.goodbye"),
        ({"texts": {"de": {"welcome": "x" * 201}}}, "texts.de.welcome"),
        ({"texts": {"en": {"ended": "<script>alert(1)</script>"}}}, "plain text only"),
        ({"texts": {"en": {"ended": "Goodbye \u202eevil"}}}, "u+202e"),
        ({"texts": {"en": {"ended": "Bell\x07"}}}, "u+0007"),
        ({"texts": {"en": {"ended": 5}}}, "texts.en.ended"),
        ({"theme": "dark"}, "theme"),
    ],
)
async def test_bad_branding_is_refused_and_changes_nothing(
    harness: Harness, admin: aiohttp.ClientSession, change: dict[str, Any], words: str
) -> None:
    assert (await call(admin, harness, "PUT", "/branding", BRANDING))[0] == 200
    before = await _public_branding(harness)
    status, problem = await call(admin, harness, "PUT", "/branding", {**BRANDING, **change})
    assert status == 400, problem
    assert words.lower() in problem["detail"].lower(), problem
    assert await _public_branding(harness) == before
    assert len(await list_audit(harness.app[DATABASE])) == 1


async def test_stored_branding_that_no_longer_passes_falls_back_to_defaults(
    harness: Harness,
) -> None:
    await put_setting(
        harness.app[DATABASE],
        "branding",
        {"organisation_name": "X", "primary_color": "#eeeeee", "accent_color": "#000000"},
    )
    branding = await _public_branding(harness)
    assert (branding["organisation_name"], branding["primary_color"]) == ("Videobooth", "#0b5cad")


async def test_only_admins_change_branding(harness: Harness) -> None:
    await harness.add_advisor("alice")
    alice = await harness.login("alice")
    try:
        assert (await call(alice, harness, "PUT", "/branding", BRANDING))[0] == 403
        assert (await upload(alice, harness, make_png(), "image/png"))[0] == 403
    finally:
        await alice.close()
    assert await get_setting(harness.app[DATABASE], "branding") is None


# --- the logo ------------------------------------------------------------------------------


async def test_a_png_logo_is_served_with_cache_and_security_headers(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    data = make_png(64, 32)
    digest = hashlib.sha256(data).hexdigest()
    status, body = await upload(admin, harness, data, "image/png")
    assert status == 200, body
    assert body["logo_url"] == f"{LOGO}?v={digest[:16]}"
    assert (await _public_branding(harness))["logo_url"] == body["logo_url"]

    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(harness.url(body["logo_url"])) as response:
            assert response.status == 200
            assert await response.read() == data
            headers = response.headers
            assert headers["Content-Type"] == "image/png"
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Content-Security-Policy"] == LOGO_CSP
            assert headers["ETag"] == f'"{digest}"'
            assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        async with anonymous.get(harness.url(LOGO)) as response:
            assert response.headers["Cache-Control"] == "no-cache"
        async with anonymous.get(
            harness.url(LOGO), headers={"If-None-Match": f'"{digest}"'}
        ) as response:
            assert response.status == 304
            assert await response.read() == b""
        async with anonymous.get(harness.url(LOGO), headers={"If-None-Match": '"x"'}) as response:
            assert response.status == 200
    events = await list_audit(harness.app[DATABASE])
    assert [(e.action, e.detail) for e in events] == [
        ("branding.logo", f'{{"bytes":{len(data)},"content_type":"image/png"}}')
    ]


async def test_a_hostile_svg_logo_is_stored_cleaned(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    hostile = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'viewBox="0 0 10 10" onload="alert(1)"><script>alert(2)</script>'
        b'<rect width="10" height="10" fill="#0b5cad" style="fill:url(https://evil.example)"/>'
        b'<linearGradient id="g" xlink:href="http://evil.example/x.svg#g"/>'
        b'<foreignObject><iframe xmlns="http://www.w3.org/1999/xhtml" src="https://x"/>'
        b"</foreignObject></svg>"
    )
    status, body = await upload(admin, harness, hostile, "image/svg+xml; charset=utf-8")
    assert status == 200, body
    assert body["content_type"] == "image/svg+xml"
    assert body["removed"] == {
        "elements": ["foreignObject", "script"],
        "attributes": ["href", "onload", "style"],
    }
    async with aiohttp.ClientSession() as anonymous, anonymous.get(harness.url(LOGO)) as response:
        served = await response.read()
        assert response.headers["Content-Type"] == "image/svg+xml"
        assert response.headers["Content-Security-Policy"] == (
            "default-src 'none'; style-src 'unsafe-inline'"
        )
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    for word in (b"alert", b"evil", b"onload", b"iframe", b"foreignObject", b"script"):
        assert word not in served
    assert b'<rect width="10" height="10" fill="#0b5cad"/>' in served


@pytest.mark.parametrize(
    ("data", "content_type", "status", "words"),
    [
        (b'<!DOCTYPE svg [<!ENTITY a "a">]><svg/>', "image/svg+xml", 400, "document type"),
        (b"<svg><rect></svg>", "image/svg+xml", 400, "not well-formed"),
        (b"not a png at all", "image/png", 400, "not a png"),
        (make_png(4096, 4), "image/png", 400, "at most 2048 x 2048"),
        (b"GIF89a", "image/gif", 415, "image/png or image/svg+xml"),
        (b"{}", "application/json", 415, "not application/json"),
        (b"\x00" * (MAX_LOGO_BYTES + 1), "image/png", 413, "at most 256 kib"),
        (b"", "image/png", 400, "not a png"),
    ],
)
async def test_bad_logos_are_refused_and_the_old_one_stays(
    harness: Harness,
    admin: aiohttp.ClientSession,
    data: bytes,
    content_type: str,
    status: int,
    words: str,
) -> None:
    good = make_png()
    assert (await upload(admin, harness, good, "image/png"))[0] == 200
    got, problem = await upload(admin, harness, data, content_type)
    assert got == status, problem
    assert words in problem["detail"].lower(), problem
    stored = await get_asset(harness.app[DATABASE], "logo")
    assert stored is not None and stored.data == good
    assert len(await list_audit(harness.app[DATABASE])) == 1


async def test_a_logo_larger_than_the_limit_is_refused_without_content_length(
    harness: Harness, admin: aiohttp.ClientSession
) -> None:
    async def chunks() -> Any:
        for _ in range(5):
            yield b"\x00" * (64 * 1024)

    headers = {"Content-Type": "image/png"}
    async with admin.put(harness.url(LOGO), data=chunks(), headers=headers) as response:
        assert response.status == 413
    assert await get_asset(harness.app[DATABASE], "logo") is None


async def test_deleting_the_logo(harness: Harness, admin: aiohttp.ClientSession) -> None:
    await upload(admin, harness, make_png(), "image/png")
    status, body = await call(admin, harness, "DELETE", "/branding/logo")
    assert (status, body) == (200, {"deleted": True})
    assert (await call(admin, harness, "DELETE", "/branding/logo"))[1] == {"deleted": False}
    async with aiohttp.ClientSession() as anonymous, anonymous.get(harness.url(LOGO)) as response:
        assert response.status == 404
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert (await response.json(content_type=None))["detail"] == "no logo has been uploaded"
    assert (await _public_branding(harness))["logo_url"] is None
    assert [e.action for e in await list_audit(harness.app[DATABASE])] == [
        "branding.logo_delete",
        "branding.logo",
    ]
