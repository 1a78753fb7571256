"""The booth fetches the topics and the organisation's branding (logo included) with its own
credential; when the server cannot be reached it keeps what it had."""

from __future__ import annotations

from kiosk.identity import ServerAccess
from kiosk.serverinfo import ServerInfo, fetch_server_info, topics_in
from server.keys import DATABASE
from server.storage import create_topic, create_user, set_topic_active, set_topic_names
from tests.server.conftest import PASSWORD, MakeHarness, make_harness  # noqa: F401
from tests.server.test_branding import make_png, upload


async def test_topics_and_branding_reach_the_booth(make_harness: MakeHarness) -> None:  # noqa: F811
    harness = await make_harness()
    db = harness.app[DATABASE]
    residence = await create_topic(db, "Residence permit")
    await set_topic_names(db, residence.id, {"ar": "تصريح الإقامة", "de": "Aufenthaltstitel"})
    closed = await create_topic(db, "Old service")
    await set_topic_active(db, closed.id, False)
    await create_user(db, username="admin1", password=PASSWORD, role="admin")
    admin = await harness.login("admin1")
    async with admin.put(
        harness.url("/api/v1/branding"),
        json={
            "organisation_name": "Stadt Beispiel",
            "primary_color": "#0b5cad",
            "accent_color": "#006b5f",
            "texts": {"de": {"booth_idle": "Willkommen im Bürgeramt"}},
        },
    ) as response:
        assert response.status == 200, await response.text()
    logo = make_png()
    await upload(admin, harness, logo, "image/png")
    await admin.close()

    credential = await harness.add_booth("Info booth")
    base = harness.url("/").rstrip("/")
    info = await fetch_server_info(ServerAccess(base, credential=credential), ServerInfo())
    assert info.topics == [(residence.id, "Residence permit")]
    # Each visitor reads the topics in their language, the topic's own name where it has none.
    assert topics_in(info, "ar") == [(residence.id, "تصريح الإقامة")]
    assert topics_in(info, "de") == [(residence.id, "Aufenthaltstitel")]
    assert topics_in(info, "tr") == [(residence.id, "Residence permit")]
    assert info.organisation_name == "Stadt Beispiel"
    assert (info.primary_color, info.accent_color) == ("#0b5cad", "#006b5f")
    assert info.texts["de"]["booth_idle"] == "Willkommen im Bürgeramt"
    assert (info.logo, info.logo_type) == (logo, "image/png")

    # A wrong credential (or a server that is away) leaves the booth with what it knew.
    assert await fetch_server_info(ServerAccess(base, credential="x.y"), info) is info
    away = ServerAccess("http://127.0.0.1:9", credential=credential)
    assert await fetch_server_info(away, info) is info
