"""Enrolment: the booth's identity, kept from an earlier boot, or got from the server with the
token in booth.toml or one read from the enrolment QR code (the screen asks for it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from kiosk import flow as booth_flow
from kiosk.backoff import Backoff
from kiosk.clock import ClockReading, explain_connection_error
from kiosk.config import BoothConfig
from kiosk.identity import (
    EnrolmentRefusedError,
    Identity,
    ServerAccess,
    ServerNotFoundError,
    enrol,
    forget_token,
    load_identity,
)

log = logging.getLogger(__name__)


class Enrolment:
    """Gets the booth its identity; the flow keeps how far it is and why not yet."""

    def __init__(
        self,
        *,
        config: BoothConfig,
        access: ServerAccess,
        post: Callable[[booth_flow.Event], None],
        clock: Callable[[], ClockReading],
    ) -> None:
        self._config = config
        self._access = access
        self._post = post
        self._clock = clock
        #: The tokens read from the enrolment QR code, in the order they were read.
        self._scanned_tokens: asyncio.Queue[str] = asyncio.Queue()

    def token_scanned(self, token: str) -> None:
        self._scanned_tokens.put_nowait(token)

    async def identity(self) -> Identity:
        """The enrolled identity; waits for a token and retries until there is one."""
        directory = self._config.identity_dir
        identity = await asyncio.to_thread(load_identity, directory)
        if identity is not None:
            return identity
        token = self._config.enrolment_token
        if token is None:
            self._post(booth_flow.EnrolmentNeeded())
        backoff = Backoff(ceiling=self._config.reconnect_max_seconds)
        while True:
            if token is None:
                token = await self._scanned_tokens.get()
            try:
                identity = await enrol(self._access, directory, token)
            except EnrolmentRefusedError as exc:
                # A spent, expired or revoked token: say so and wait for another code.
                log.error("enrolment refused: %s", exc)
                self._post(booth_flow.EnrolmentNeeded())
                self._post(booth_flow.EnrolmentFailed(exc.reason, detail=str(exc)))
                token = None
                continue
            except ServerNotFoundError as exc:
                # A wrong address: the screen says so; the card is corrected, or the proxy.
                log.error("cannot enrol: %s; trying again in %.0f s", exc, backoff.delay)
                self._post(booth_flow.EnrolmentDelayed(detail=str(exc)))
                self._post(booth_flow.ServerNotFound())
                await backoff.wait()
                continue
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                reason = explain_connection_error(exc, self._clock())
                log.warning("cannot enrol yet (%s); trying again in %.0f s", reason, backoff.delay)
                await backoff.wait()
                continue
            break
        if self._config.enrolment_token is not None and self._config.source is not None:
            try:
                await asyncio.to_thread(forget_token, self._config.source)
            except OSError as exc:  # a read-only boot partition: the token is spent anyway
                log.warning(
                    "could not remove the spent token from %s: %s", self._config.source, exc
                )
        self._post(booth_flow.Enrolled())
        return identity
