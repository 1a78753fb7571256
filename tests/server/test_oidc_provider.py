"""Single sign-on, the parts a real provider in tests/identity does not exercise: a discovery
document that is not the configured provider's, or lacks what the flow needs, or signs with
an algorithm refused here, is refused with a message that says which; roles and topics come
from a dotted claim path (Keycloak's ``realm_access.roles``), administrator before advisor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from joserfc.jwk import RSAKey

from server.config import OidcConfig
from server.oidc.login import _groups, role_of, topics_of
from server.oidc.provider import Provider, ProviderError
from server.storage import Role

PUBLIC_KEY = RSAKey.generate_key(2048).as_dict(private=False)


async def _provider(
    aiohttp_server: Any, tmp_path: Path, document: dict[str, Any], *, issuer: str | None = None
) -> Provider:
    app = web.Application()

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response(document)

    async def keys(request: web.Request) -> web.Response:
        return web.json_response({"keys": [PUBLIC_KEY]})

    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/keys", keys)
    server = await aiohttp_server(app)
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    own = str(server.make_url("")).rstrip("/")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        document.setdefault(name, f"{own}/keys")
    document.setdefault("issuer", own)
    config = OidcConfig(
        issuer=issuer or own,
        client_id="videobooth",
        client_secret_file=secret,
        advisor_groups=("vb-advisors",),
    )
    return Provider(config)


async def test_a_discovery_document_of_the_right_issuer_is_taken(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    provider = await _provider(aiohttp_server, tmp_path, {})
    info = await provider.info()
    assert info.algorithms == ("RS256",)  # nothing said: RS256, as the standard has it


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"issuer": "https://elsewhere.example"}, "names the issuer 'https://elsewhere.example'"),
        ({"token_endpoint": None}, "lacks token_endpoint"),
        ({"id_token_signing_alg_values_supported": ["HS256", "none"]}, "none of which"),
    ],
    ids=["another issuer", "no token endpoint", "symmetric or no signature"],
)
async def test_a_discovery_document_that_is_not_right_is_refused(
    aiohttp_server: Any, tmp_path: Path, document: dict[str, Any], words: str
) -> None:
    provider = await _provider(aiohttp_server, tmp_path, document)
    with pytest.raises(ProviderError, match=words.replace("(", r"\(").replace(")", r"\)")):
        await provider.info()


def test_roles_and_topics_from_a_dotted_claim_administrator_first(tmp_path: Path) -> None:
    config = OidcConfig(
        issuer="https://login.agency.example",
        client_id="videobooth",
        client_secret_file=tmp_path / "secret",
        groups_claim="realm_access.roles",
        admin_groups=("vb-admins",),
        advisor_groups=("vb-advisors",),
        topic_prefix="vb-topic-",
    )
    claims = {"realm_access": {"roles": ["vb-advisors", "vb-topic-Rente", "vb-admins", 7]}}
    groups = _groups(claims, config.groups_claim)
    assert groups == ["vb-advisors", "vb-topic-Rente", "vb-admins"]  # not the number
    assert role_of(config, groups) is Role.ADMIN
    assert topics_of(config, groups) == ["Rente"]
    assert role_of(config, ["vb-advisors"]) is Role.ADVISOR
    assert role_of(config, _groups({"realm_access": "vb-advisors"}, "realm_access.roles")) is None
    assert role_of(config, _groups({}, config.groups_claim)) is None
