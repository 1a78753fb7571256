"""The identity tests' OpenID provider: node-oidc-provider (``tests/identity/provider.mjs``,
from the npm registry through package.json) behind a small front in the test's own event loop.

The front forwards every request unchanged (the provider's discovery, its login and consent
pages, its token and logout endpoints), so the server and Chromium talk to the real provider.
Only when a test asks does it change the ID token in one token answer: signed with a key the
provider does not have, for another audience, with another nonce, or expired, each signed
with the provider's own key (the test made the key and gave it to the provider), so that the
server's check of exactly that claim is what refuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from joserfc import jws, jwt
from joserfc.jwk import KeySet, RSAKey

from tests.components import require, unavailable

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "tests" / "identity" / "provider.mjs"
MODULE = REPO / "node_modules" / "oidc-provider"
KID = "videobooth-tests-1"
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "host",
}


@dataclass
class Tamper:
    """What the front does to the next token answer's ID token (None: nothing)."""

    kind: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class OidcProvider:
    issuer: str
    client_id: str
    client_secret: str
    keys: KeySet
    process: asyncio.subprocess.Process
    tamper: Tamper = field(default_factory=Tamper)
    log: list[str] = field(default_factory=list)

    def mint(self, claims: dict[str, Any], *, foreign: bool = False) -> str:
        """A token with ``claims`` signed with the provider's key (or one it does not have)."""
        keys = self.keys
        if foreign:  # same key id, another key: only the signature is wrong
            keys = KeySet([RSAKey.generate_key(2048, parameters={"kid": KID}, private=True)])
        return jwt.encode({"alg": "RS256", "kid": KID, "typ": "JWT"}, claims, keys)

    def altered(self, id_token: str, kind: str) -> str:
        claims = _claims(id_token)
        if kind == "signature":
            return self.mint(claims, foreign=True)
        if kind == "audience":
            claims["aud"] = "another-client"
        elif kind == "nonce":
            claims["nonce"] = "not-the-nonce-of-this-login"
        elif kind == "expired":
            claims["iat"] = int(time.time()) - 7200
            claims["exp"] = int(time.time()) - 3600
        else:
            raise ValueError(kind)
        return self.mint(claims)


def _claims(token: str) -> dict[str, Any]:
    payload = jws.extract_compact(token.encode()).payload
    data: dict[str, Any] = json.loads(payload)
    return data


def node_binary() -> str:
    node = require("node", "the identity tests' OpenID provider (Node.js; Debian package nodejs)")
    if not MODULE.is_dir():
        unavailable("oidc-provider from the npm registry is not installed (npm ci)")
    return node


@contextlib.asynccontextmanager
async def oidc_provider(
    *,
    redirect_uri: str,
    post_logout_redirect_uri: str,
    backchannel_logout_uri: str,
    accounts: Path,
    client_id: str = "videobooth",
) -> AsyncIterator[OidcProvider]:
    """The provider and its front, both on 127.0.0.1; stopped on leaving."""
    node = node_binary()
    client_secret = secrets.token_urlsafe(24)
    key = RSAKey.generate_key(
        2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"}, private=True
    )
    keys = KeySet([key])
    front_app = web.Application()
    #: Filled once the provider answers: where it listens, and the test's handle on it.
    state: dict[str, Any] = {}
    http = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.StreamResponse:
        provider: OidcProvider = state["provider"]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = request.host
        body = await request.read()
        async with http.request(
            request.method,
            state["backend"] + request.rel_url.path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as answer:
            data = await answer.read()
            out_headers = [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP]
            if (
                request.path.endswith("/token")
                and answer.status == 200
                and provider.tamper.kind is not None
            ):
                tokens = json.loads(data)
                tokens["id_token"] = provider.altered(tokens["id_token"], provider.tamper.kind)
                data = json.dumps(tokens).encode()
                provider.tamper.kind = None
                provider.tamper.done.set()
        response = web.Response(status=answer.status, body=data)
        for k, v in out_headers:
            response.headers.add(k, v)
        return response

    front_app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(front_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    front_port = runner.addresses[0][1]
    issuer = f"http://127.0.0.1:{front_port}"
    job = {
        "port": 0,
        "issuer": issuer,
        "jwks": keys.as_dict(private=True),
        "clients": [
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uris": [redirect_uri],
                "post_logout_redirect_uris": [post_logout_redirect_uri],
                "backchannel_logout_uri": backchannel_logout_uri,
                "backchannel_logout_session_required": True,
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
            }
        ],
        "accountsFile": str(accounts),
    }
    process = await asyncio.create_subprocess_exec(
        node,
        str(LAUNCHER),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(job).encode())
    process.stdin.close()
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    if not line.startswith("listening "):
        err = await process.stderr.read() if process.stderr else b""
        raise AssertionError(f"the OpenID provider did not start: {line!r} {err.decode()[-2000:]}")
    backend = f"http://127.0.0.1:{int(line.split()[1])}"
    provider = OidcProvider(issuer, client_id, client_secret, keys, process)
    state.update(provider=provider, backend=backend)

    async def stderr_reader() -> None:
        assert process.stderr is not None
        while chunk := await process.stderr.readline():
            provider.log.append(chunk.decode(errors="replace").rstrip())

    reader = asyncio.create_task(stderr_reader())

    try:
        yield provider
    finally:
        await http.close()
        await runner.cleanup()
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 10)
            if process.returncode is None:
                process.kill()
                await process.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
