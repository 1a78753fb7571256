"""Single sign-on for staff against a real OpenID provider (node-oidc-provider, OpenID
Certified, with its own login and consent pages), a real server and Chromium.

Shown: an advisor signs in through the provider's page, gets the advisor role from a group
claim and a topic from another, takes a booth's call; a logout at the provider closes her
socket (back-channel logout); logging out here logs out there too (RP-initiated). Abuse that
fails: ID tokens with a wrong signature, audience, nonce or an expired one, each refused with a
page that says which; someone in no group of the service; a person the provider calls "root"
does not become the local root; a disabled person's open socket closes at her next refused
sign-in; forged or replayed logout tokens; password logins where they are turned off.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import aiohttp
import pytest

from tests.e2e.axe import audit, no_violations
from tests.e2e.conftest import poll
from tests.identity.conftest import LABEL, SsoWorld

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

#: The provider's development interactions: its login form, then its consent form.
PROVIDER_LOGIN = "input[name=login]"
PROVIDER_SUBMIT = "button[type=submit]"


async def _workspace(browser: Any) -> tuple[Any, Any]:
    context = await browser.new_context(permissions=["camera", "microphone"])
    page = await context.new_page()
    page.on("console", lambda msg: print(f"[advisor console] {msg.type}: {msg.text}"))
    return context, page


async def _through_provider(page: Any, world: SsoWorld, login: str) -> None:
    """From the provider's pages back to the server: log in (any password) and consent,
    where the provider asks (a session it already has skips its login form)."""
    issuer = world.provider.issuer
    for _ in range(4):
        await page.wait_for_load_state()
        if not page.url.startswith(issuer):
            return
        if await page.locator(PROVIDER_LOGIN).count():
            await page.fill(PROVIDER_LOGIN, login)
            await page.fill("input[name=password]", "any password: the test provider's")
        await page.click(PROVIDER_SUBMIT)
    raise AssertionError(f"still at the provider: {page.url}")


async def _sign_in(page: Any, world: SsoWorld, login: str) -> None:
    await page.goto(f"{world.server.url}/advisor/")
    await page.get_by_role("link", name=f"Sign in with {LABEL}").click()
    await _through_provider(page, world, login)


async def _sign_in_again(page: Any, world: SsoWorld, login: str) -> None:
    """A sign-in straight from its address (a page of a logged-in browser shows no link)."""
    await page.goto(f"{world.server.url}/api/v1/auth/oidc/login?next=/advisor/")
    await _through_provider(page, world, login)


async def _me(page: Any) -> int:
    status: int = await page.evaluate("async () => (await fetch('/api/v1/me')).status")
    return status


async def test_oidc_advisor_signs_in_at_the_provider_and_takes_a_booth_call(
    sso: SsoWorld, browser: Any, start_booth: Any
) -> None:
    context, page = await _workspace(browser)
    await page.goto(f"{sso.server.url}/advisor/")
    await page.get_by_role("link", name=f"Sign in with {LABEL}").wait_for()
    no_violations([await audit(page, "advisor: login with single sign-on")])
    started = time.monotonic()
    await _sign_in(page, sso, "ada")
    await page.wait_for_selector("#queue-view:not([hidden])")
    print(f"\nsign-in through the provider's pages: {time.monotonic() - started:.2f} s")
    assert await page.inner_text("#who") == "Ada Advisor"
    assert await page.locator("#change-password").is_hidden()  # no password here

    # The account: made at the sign-in, an advisor (group claim), serving Pensions (topic
    # group), without a password.
    async with sso.root() as root:
        async with root.get(f"{sso.server.url}/api/v1/users") as r:
            users = {u["username"]: u for u in (await r.json())["users"]}
        async with root.get(f"{sso.server.url}/api/v1/topics") as r:
            topics = {t["id"]: t["name"] for t in (await r.json())["topics"]}
    ada = users["ada"]
    assert (ada["role"], ada["single_sign_on"], ada["display_name"]) == (
        "advisor",
        True,
        "Ada Advisor",
    )
    assert [topics[t] for t in ada["topic_ids"]] == ["Pensions"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sso.server.url}/api/v1/auth/login",
            json={"username": "ada", "password": "any password: the test provider's"},
        ) as r,
    ):
        assert r.status == 401  # an account of the provider has no password here

    # A booth's call, taken in this workspace: the booth's video arrives.
    booth = start_booth(sso.server, "Branch 1 booth", "--call")
    booth.wait_for(lambda s: s.get("state") == "waiting", 30, "the booth to wait")
    await page.get_by_role("button", name="Accept call from Branch 1 booth").click(timeout=15_000)
    await poll(
        lambda: page.evaluate("() => document.getElementById('remote-video').dataset.firstFrameAt"),
        20,
        "the booth's video in the advisor's browser",
    )
    booth.wait_for(lambda s: s.get("state") == "in_call", 20, "the booth to be in the call")
    await page.get_by_role("button", name="End call").click()

    # Logging out here goes on to the provider's logout (RP-initiated), and back.
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(f"{sso.provider.issuer}/**")
    await page.click(PROVIDER_SUBMIT)  # "Yes, sign me out"
    await page.wait_for_url(f"{sso.server.url}/advisor/")
    await page.wait_for_selector("#login-view:not([hidden])")
    assert await _me(page) == 401
    await context.close()


async def test_oidc_logout_at_the_provider_closes_the_advisors_socket(
    sso: SsoWorld, browser: Any
) -> None:
    context, page = await _workspace(browser)
    await _sign_in(page, sso, "ada")
    await page.wait_for_selector("#queue-view:not([hidden])")
    await page.wait_for_selector("#connection-state[data-i18n=online]")

    # Another tab of the same browser logs out at the provider itself.
    other = await context.new_page()
    await other.goto(f"{sso.provider.issuer}/session/end")
    started = time.monotonic()
    await other.click(PROVIDER_SUBMIT)  # "Yes, sign me out"
    # The provider's back-channel logout reaches the server, which ends the login and closes
    # the workspace's socket: the page shows its login again.
    await page.wait_for_selector("#login-view:not([hidden])", timeout=15_000)
    closed = time.monotonic() - started
    print(f"\nlogout at the provider -> the workspace's socket closed: {closed:.2f} s")
    assert await _me(page) == 401
    assert "back-channel logout from the identity provider: 1 login(s) ended" in (
        sso.server.log.read_text()
    )
    await context.close()


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("signature", "its signature is wrong"),
        ("audience", "issued for another client, not this service (audience)"),
        ("nonce", "does not belong to this login (nonce)"),
        ("expired", "it has expired"),
    ],
)
async def test_oidc_a_bad_id_token_is_refused_with_a_clear_page(
    sso: SsoWorld, browser: Any, kind: str, words: str
) -> None:
    context, page = await _workspace(browser)
    sso.provider.tamper.kind = kind
    await _sign_in(page, sso, "ada")
    assert sso.provider.tamper.done.is_set(), "the front never saw the token answer"
    await page.wait_for_url(f"{sso.server.url}/api/v1/auth/oidc/callback**")
    text = await page.inner_text("main")
    assert "Sign-in did not work" in text and words in text, text
    assert await _me(page) == 401
    async with sso.root() as root, root.get(f"{sso.server.url}/api/v1/users") as r:
        assert "ada" not in {u["username"] for u in (await r.json())["users"]}
    await context.close()


async def test_oidc_no_group_of_the_service_no_entry_and_a_leaver_is_disabled(
    sso: SsoWorld, browser: Any
) -> None:
    context, page = await _workspace(browser)
    await _sign_in(page, sso, "nina")  # in "staff" only
    text = await page.inner_text("main")
    assert "not in a group that may use this service" in text, text
    assert await _me(page) == 401
    await context.close()

    # Ada works; the provider takes her out of the advisors; at her next sign-in she is
    # refused, her account disabled and her open workspace closed.
    context, page = await _workspace(browser)
    await _sign_in(page, sso, "ada")
    await page.wait_for_selector("#queue-view:not([hidden])")
    sso.set_groups("ada", ["staff"])
    second = await context.new_page()
    await _sign_in_again(second, sso, "ada")
    assert "not in a group that may use this service" in await second.inner_text("main")
    await page.wait_for_selector("#login-view:not([hidden])", timeout=15_000)
    async with sso.root() as root, root.get(f"{sso.server.url}/api/v1/users") as r:
        ada = {u["username"]: u for u in (await r.json())["users"]}["ada"]
    assert ada["disabled"] is True
    # Back in the group, she stays out until an administrator enables her account again.
    sso.set_groups("ada", ["videobooth-advisors"])
    await _sign_in_again(second, sso, "ada")
    assert "disabled on this service" in await second.inner_text("main")
    await context.close()


async def test_oidc_the_providers_root_does_not_become_the_local_root(
    sso: SsoWorld, browser: Any
) -> None:
    context, page = await _workspace(browser)
    await _sign_in(page, sso, "rita")  # preferred_username "root"
    text = await page.inner_text("main")
    assert "belongs to another account here" in text, text
    assert await _me(page) == 401
    await context.close()


async def test_oidc_forged_and_replayed_logout_tokens_are_refused(sso: SsoWorld) -> None:
    url = f"{sso.server.url}/api/v1/auth/oidc/backchannel-logout"
    provider = sso.provider
    now = int(time.time())
    good = {
        "iss": provider.issuer,
        "aud": provider.client_id,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "sid": "some-session",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    }
    cases = {
        "not a token": "garbage",
        "signed with another key": provider.mint(good, foreign=True),
        "for another client": provider.mint({**good, "aud": "another-client"}),
        "an ID token (nonce)": provider.mint({**good, "nonce": "n"}),
        "no logout event": provider.mint({**good, "events": {}}),
        "too old": provider.mint({**good, "iat": now - 3600}),
        "names nobody": provider.mint({k: v for k, v in good.items() if k != "sid"}),
    }
    async with aiohttp.ClientSession() as http:
        for why, token in cases.items():
            async with http.post(url, data={"logout_token": token}) as r:
                assert r.status == 400, (why, r.status, await r.text())
        async with http.post(url, data={}) as r:
            assert r.status == 400
        # A well-formed one for a session nobody has: accepted, nothing ended.
        async with http.post(url, data={"logout_token": provider.mint(good)}) as r:
            assert r.status == 200, await r.text()
    assert "1 login(s) ended" not in sso.server.log.read_text()


async def test_oidc_password_logins_turned_off_but_for_break_glass(sso_only: SsoWorld) -> None:
    base = sso_only.server.url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/v1/auth/methods") as r:
            methods = await r.json()
        assert methods["sso"]["label"] == LABEL
        async with http.post(
            f"{base}/api/v1/auth/login", json={"username": "someone", "password": "x" * 12}
        ) as r:
            assert r.status == 403
            assert "password logins are turned off" in (await r.json())["detail"]
        # The break-glass administrator still logs in with a password (when the provider is
        # down).
        async with http.post(
            f"{base}/api/v1/auth/login",
            json={"username": "root", "password": sso_only.root_password},
        ) as r:
            assert r.status == 200, await r.text()
