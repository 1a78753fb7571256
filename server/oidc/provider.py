"""The organisation's OpenID provider as this server talks to it: its discovery document, its
signing keys, the token and userinfo endpoints.

The discovery document is read at the first login (not at start: a provider that is down must
not keep the server from starting, and staff with a break-glass password can still log in),
and again after an hour. The keys are read with it, and again when a token names a key id
they lack (the provider rotated its keys), at most once a minute.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from server.config import OidcConfig

__all__ = ["Provider", "ProviderError", "ProviderInfo"]

log = logging.getLogger(__name__)

#: How long the discovery document is trusted before it is read again.
DISCOVERY_SECONDS = 3600.0
#: Shortest time between two readings of the keys for an unknown key id.
KEYS_AGAIN_SECONDS = 60.0
#: How long one request to the provider may take.
REQUEST_SECONDS = 10.0
#: Largest answer read from the provider.
MAX_ANSWER_BYTES = 1024 * 1024
#: Signature algorithms accepted on tokens: asymmetric ones only (never "none", and no HMAC
#: with the client secret, which anyone holding the secret could forge).
ASYMMETRIC = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


class ProviderError(Exception):
    """The provider could not be reached or answered something unusable; the message says
    what, for the person's error page and the log (never a secret)."""


@dataclass(frozen=True)
class ProviderInfo:
    """What the discovery document says, checked."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    algorithms: tuple[str, ...]


class Provider:
    """One OpenID provider and this server's client registration at it."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._secret: str | None = None
        self._info: ProviderInfo | None = None
        self._info_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._lock = asyncio.Lock()
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(config.ca_file)) if config.ca_file else True
        )

    @property
    def client_secret(self) -> str:
        """The client secret, read from its file once."""
        if self._secret is None:
            try:
                self._secret = self.config.client_secret_file.read_text().strip()
            except OSError as exc:
                raise ProviderError(
                    f"cannot read the client secret file {self.config.client_secret_file}: "
                    f"{exc.strerror or exc}"
                ) from None
            if not self._secret:
                raise ProviderError(f"{self.config.client_secret_file} is empty")
        return self._secret

    async def info(self) -> ProviderInfo:
        """The discovery document (read when older than an hour)."""
        async with self._lock:
            if self._info is None or time.monotonic() - self._info_at > DISCOVERY_SECONDS:
                self._info = await self._discover()
                self._info_at = time.monotonic()
                self._keys = await self._read_keys(self._info)
                self._keys_at = time.monotonic()
            return self._info

    async def keys(self, kid: str | None) -> KeySet:
        """The provider's signing keys; read again for a key id they lack (once a minute)."""
        info = await self.info()
        async with self._lock:
            known = self._keys is not None and (
                kid is None or any(key.kid == kid for key in self._keys.keys)
            )
            if not known and time.monotonic() - self._keys_at > KEYS_AGAIN_SECONDS:
                log.info("the provider's keys lack key id %r: reading them again", kid)
                self._keys = await self._read_keys(info)
                self._keys_at = time.monotonic()
            assert self._keys is not None
            return self._keys

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The token endpoint's answer for an authorization code (client_secret_basic)."""
        info = await self.info()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        auth = aiohttp.BasicAuth(self.config.client_id, self.client_secret)
        answer = await self._request("POST", info.token_endpoint, "token", data=form, auth=auth)
        if not isinstance(answer.get("id_token"), str):
            raise ProviderError("the provider's token endpoint gave no ID token")
        return answer

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        """The userinfo endpoint's claims (empty when the provider has none)."""
        info = await self.info()
        if info.userinfo_endpoint is None:
            return {}
        headers = {"Authorization": f"Bearer {access_token}"}
        return await self._request("GET", info.userinfo_endpoint, "userinfo", headers=headers)

    async def _discover(self) -> ProviderInfo:
        url = f"{self.config.issuer}/.well-known/openid-configuration"
        doc = await self._request("GET", url, "discovery")
        if doc.get("issuer") != self.config.issuer:
            raise ProviderError(
                f"the provider's discovery document names the issuer {doc.get('issuer')!r}, "
                f"not {self.config.issuer!r} as configured"
            )
        required = ("authorization_endpoint", "token_endpoint", "jwks_uri")
        missing = [name for name in required if not isinstance(doc.get(name), str)]
        if missing:
            raise ProviderError(f"the provider's discovery document lacks {', '.join(missing)}")
        offered = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = tuple(a for a in ASYMMETRIC if a in offered)
        if not algorithms:
            raise ProviderError(
                f"the provider signs ID tokens with {offered}, none of which is accepted here "
                f"(accepted: {', '.join(ASYMMETRIC)})"
            )

        def optional(name: str) -> str | None:
            value = doc.get(name)
            return value if isinstance(value, str) else None

        return ProviderInfo(
            issuer=doc["issuer"],
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            jwks_uri=doc["jwks_uri"],
            userinfo_endpoint=optional("userinfo_endpoint"),
            end_session_endpoint=optional("end_session_endpoint"),
            algorithms=algorithms,
        )

    async def _read_keys(self, info: ProviderInfo) -> KeySet:
        doc = await self._request("GET", info.jwks_uri, "keys")
        try:
            return KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ProviderError(f"the provider's key set cannot be read: {exc}") from None

    async def _request(self, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=REQUEST_SECONDS)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.request(method, url, ssl=self._ssl, allow_redirects=False, **kwargs) as r,
            ):
                body = await r.content.read(MAX_ANSWER_BYTES + 1)
                if len(body) > MAX_ANSWER_BYTES:
                    raise ProviderError(f"the provider's {what} answer is too large")
                if r.status != 200:
                    # The error code only: an error description may echo what was sent.
                    code = _error_code(body)
                    raise ProviderError(
                        f"the provider's {what} endpoint answered HTTP {r.status}"
                        + (f" ({code})" if code else "")
                    )
                try:
                    data = json.loads(body)
                except ValueError:
                    raise ProviderError(f"the provider's {what} answer is not JSON") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ProviderError(
                f"the provider cannot be reached for its {what} ({type(exc).__name__})"
            ) from None
        if not isinstance(data, dict):
            raise ProviderError(f"the provider's {what} answer is not a JSON object")
        return data


def _error_code(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    code = data.get("error") if isinstance(data, dict) else None
    return code if isinstance(code, str) and code.isascii() and len(code) <= 64 else None
