"""The provider's tokens checked with joserfc (the JOSE library of Authlib's maintainers):
the ID token of a login and the logout token of a back-channel logout.

Every failure is a :class:`TokenError` whose message says which check failed in words a
person (and the administrator reading the log) understands: a wrong signature, a token for
another client, a replayed login (nonce), an expired token.
"""

from __future__ import annotations

import time
from typing import Any, cast

from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwt import ClaimsOption

from server.oidc.provider import Provider

__all__ = ["BACKCHANNEL_EVENT", "TokenError", "check_id_token", "check_logout_token"]

#: Clocks of the provider and this server may differ by this much (seconds).
LEEWAY_SECONDS = 60
#: A logout token older than this is refused (it may be a replay).
LOGOUT_TOKEN_MAX_AGE_SECONDS = 300
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: The largest token read (a provider's tokens are a few kilobytes).
MAX_TOKEN_CHARS = 16 * 1024

_CLAIM_WORDS = {
    "iss": "it comes from another issuer than the configured provider",
    "aud": "it was issued for another client, not this service (audience)",
    "azp": "it was issued to another client, not this service (authorized party)",
    "nonce": "it does not belong to this login (nonce): a replayed or foreign login",
    "sub": "it names nobody (no subject)",
    "exp": "it has no expiry",
    "iat": "it has no time of issue",
    "events": "it is not a back-channel logout token",
}


class TokenError(Exception):
    """A token failed a check; the message says which."""


async def check_id_token(provider: Provider, token: str, *, nonce: str) -> dict[str, Any]:
    """The claims of an ID token from the token endpoint, after every check of OpenID Connect
    Core 3.1.3.7: signature by the provider's key, issuer, audience (and authorized party),
    expiry, and the nonce of this login."""
    essential = ("sub", "exp", "iat")
    claims = await _checked(provider, token, "ID token", essential, {"nonce": nonce})
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != provider.config.client_id:
        raise TokenError(f"The ID token cannot be used: {_CLAIM_WORDS['azp']}.")
    return claims


async def check_logout_token(provider: Provider, token: str) -> tuple[str | None, str | None]:
    """``(subject, session id)`` of a back-channel logout token, after the checks of
    Back-Channel Logout 1.0 section 2.6: signature, issuer, audience, time of issue, the
    logout event, a subject or a session id, and no nonce."""
    claims = await _checked(provider, token, "logout token", ("iat", "jti", "events"), {})
    events = claims["events"]
    if not isinstance(events, dict) or BACKCHANNEL_EVENT not in events:
        raise TokenError(f"The logout token cannot be used: {_CLAIM_WORDS['events']}.")
    if "nonce" in claims:
        raise TokenError("The logout token cannot be used: it carries a nonce (an ID token?).")
    if time.time() - float(claims["iat"]) > LOGOUT_TOKEN_MAX_AGE_SECONDS + LEEWAY_SECONDS:
        raise TokenError("The logout token cannot be used: it is too old.")
    subject, sid = claims.get("sub"), claims.get("sid")
    if not isinstance(subject, str):
        subject = None
    if not isinstance(sid, str):
        sid = None
    if subject is None and sid is None:
        raise TokenError(
            "The logout token cannot be used: it names neither a person nor a session."
        )
    return subject, sid


async def _checked(
    provider: Provider,
    token: str,
    what: str,
    essential: tuple[str, ...],
    values: dict[str, str],
) -> dict[str, Any]:
    """The claims of a token signed by the provider, for this client (issuer, audience), with
    the ``essential`` claims and the claims with given ``values``."""
    info = await provider.info()
    claims = await _verified(provider, token, info.algorithms)
    options: dict[str, ClaimsOption] = {name: {"essential": True} for name in essential}
    wanted = {"iss": info.issuer, "aud": provider.config.client_id, **values}
    options.update({name: {"essential": True, "value": value} for name, value in wanted.items()})
    # (cast: mypy cannot tell that no option is called ``now`` or ``leeway``)
    registry = jwt.JWTClaimsRegistry(leeway=LEEWAY_SECONDS, **cast(dict[str, Any], options))
    _validate(registry, claims, what)
    return claims


async def _verified(provider: Provider, token: str, algorithms: tuple[str, ...]) -> dict[str, Any]:
    """The claims of a token whose signature is the provider's (keys read again once for a
    key id they lack)."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise TokenError("The token cannot be used: it is not a signed token (JWS compact).")
    try:
        header = jws.extract_compact(token.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError):
        raise TokenError("The token cannot be used: it cannot be read.") from None
    if header.get("alg") not in algorithms:
        raise TokenError(
            f"The token cannot be used: it is signed with {header.get('alg')!r}, "
            f"which is not accepted here ({', '.join(algorithms)})."
        )
    kid = header.get("kid") if isinstance(header.get("kid"), str) else None
    keys = await provider.keys(kid)
    try:
        decoded = jwt.decode(token, keys, algorithms=list(algorithms))
    except BadSignatureError:
        raise TokenError(
            "The token cannot be used: its signature is wrong (not made with the provider's key)."
        ) from None
    except JoseError as exc:
        raise TokenError(f"The token cannot be used: {exc.description or exc.error}.") from None
    return dict(decoded.claims)


def _validate(registry: jwt.JWTClaimsRegistry, claims: dict[str, Any], what: str) -> None:
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise TokenError(f"The {what} cannot be used: it has expired.") from None
    except (InvalidClaimError, MissingClaimError) as exc:
        claim = getattr(exc, "claim", "") or ""
        words = _CLAIM_WORDS.get(claim, f"its claim {claim!r} is wrong or missing")
        raise TokenError(f"The {what} cannot be used: {words}.") from None
    except JoseError as exc:
        raise TokenError(f"The {what} cannot be used: {exc.description or exc.error}.") from None
