"""Fetching an update bundle from the server: over HTTPS with the booth's own login on every
request, in ranges, so that an interrupted download (a dropped network, a restart) goes on
where it stopped instead of starting again; checked against the SHA-256 the server announced
before anyone installs it.

The partial file lives beside the finished one as ``<name>.part``: its length is how far the
download got. Only a whole file with the right digest is renamed to its final name.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp

from kiosk.backoff import Backoff

from .errors import DownloadError

__all__ = ["Bundle", "Download", "HeadersFor"]

log = logging.getLogger(__name__)

#: Read and written in pieces of this size; progress is reported at most once a piece.
CHUNK = 1 << 20
#: A request that stalls this long is cut and asked again from where it got.
STALL_SECONDS = 60.0
#: Failures in a row (no byte received between them) before the download gives up.
MAX_FAILURES = 8

#: Headers that log the booth in for one request (a fresh nonce each time).
HeadersFor = Callable[[aiohttp.ClientSession], Awaitable[dict[str, str]]]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Bundle:
    """What the server announced: where the bundle is, how long, and its digest."""

    url: str
    size: int
    sha256: str


def _length(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while piece := file.read(CHUNK):
            digest.update(piece)
    return digest.hexdigest()


class Download:
    """One bundle into ``folder``: :meth:`run` returns the finished file's path."""

    def __init__(
        self,
        bundle: Bundle,
        folder: Path,
        *,
        http: aiohttp.ClientSession,
        headers: HeadersFor,
        progress: Progress | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.bundle = bundle
        self.path = folder / f"{bundle.sha256}.raucb"
        self.partial = folder / f"{bundle.sha256}.raucb.part"
        self._http = http
        self._headers = headers
        self._progress = progress
        self._backoff = backoff or Backoff(first=2.0, ceiling=120.0, jitter=True)
        #: Bytes received from the network in this run (not counting a resumed part).
        self.received = 0

    async def run(self) -> Path:
        """Download (or finish downloading) the bundle; :class:`DownloadError` when the
        server refuses it, it does not match, or the network failed too often in a row."""
        if await asyncio.to_thread(self.path.exists):
            if await asyncio.to_thread(_digest, self.path) == self.bundle.sha256:
                return self.path  # finished before a restart
            await asyncio.to_thread(self.path.unlink)
        await asyncio.to_thread(self.partial.parent.mkdir, parents=True, exist_ok=True)
        failures = 0
        while True:
            have = await asyncio.to_thread(_length, self.partial)
            if have > self.bundle.size:
                log.warning("the partial download is longer than the bundle: starting again")
                await asyncio.to_thread(self.partial.unlink)
                have = 0
            if have == self.bundle.size:
                break
            before = have
            try:
                await self._fetch_from(have)
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                got = await asyncio.to_thread(_length, self.partial)
                failures = 0 if got > before else failures + 1
                if failures >= MAX_FAILURES:
                    raise DownloadError(
                        f"the download stopped {failures} times in a row at {got} of "
                        f"{self.bundle.size} bytes: {exc or type(exc).__name__}"
                    ) from exc
                log.info(
                    "download of %s interrupted at %d of %d bytes (%s); going on",
                    self.bundle.sha256[:12],
                    got,
                    self.bundle.size,
                    exc or type(exc).__name__,
                )
                if got == before:
                    await self._backoff.wait()
                continue
        digest = await asyncio.to_thread(_digest, self.partial)
        if digest != self.bundle.sha256:
            await asyncio.to_thread(self.partial.unlink)
            raise DownloadError(
                f"the downloaded bundle's SHA-256 is {digest[:16]}..., not the announced "
                f"{self.bundle.sha256[:16]}...: it was thrown away"
            )
        await asyncio.to_thread(os.replace, self.partial, self.path)
        log.info("downloaded bundle %s (%d bytes)", self.bundle.sha256[:12], self.bundle.size)
        return self.path

    async def _write(self, file: IO[Any], piece: bytearray) -> int:
        """Write ``piece`` in the worker thread; when cancelled meanwhile (a visit pauses the
        download), the write is waited for before the cancellation goes on: a thread cannot
        be stopped, and one still writing when the file is measured for the resume, or when
        the piece is written again, would leave the bundle with bytes twice."""
        writing = asyncio.ensure_future(asyncio.to_thread(file.write, piece))
        try:
            await asyncio.shield(writing)
        except asyncio.CancelledError:
            await asyncio.wait([writing])
            raise
        self.received += len(piece)
        self._backoff.reset()
        return len(piece)

    async def _fetch_from(self, offset: int) -> None:
        headers = await self._headers(self._http)
        if offset:
            headers["Range"] = f"bytes={offset}-"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=STALL_SECONDS)
        async with self._http.get(self.bundle.url, headers=headers, timeout=timeout) as response:
            if response.status in (401, 403, 404, 410):
                raise DownloadError(
                    f"the server refused the bundle: HTTP {response.status} "
                    f"({response.reason or 'no reason'})"
                )
            if offset and response.status == 200:
                # The server sends the whole file: start again from its first byte.
                log.info("the server ignored the range: downloading from the start")
                offset = 0
            elif offset and response.status != 206:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message="range refused"
                )
            elif not offset and response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info, (), status=response.status, message=response.reason or ""
                )
            mode = "ab" if offset else "wb"
            file = await asyncio.to_thread(self.partial.open, mode)
            try:
                written = offset
                # What the network delivers (tens of KiB at a time) is gathered and written a
                # piece at a time: one hand-over to the writing thread per MiB, not hundreds.
                pending = bytearray()
                try:
                    async for data in response.content.iter_any():
                        pending += data
                        if len(pending) < CHUNK:
                            continue
                        # Handed over before the write: written even if cancelled meanwhile
                        # (see _write), so never written again below.
                        piece, pending = pending, bytearray()
                        written += await self._write(file, piece)
                        if self._progress is not None:
                            self._progress(written, self.bundle.size)
                finally:
                    # Also when the connection was cut: what arrived is kept for the resume.
                    if pending:
                        written += await self._write(file, pending)
                        if self._progress is not None:
                            self._progress(written, self.bundle.size)
                await asyncio.to_thread(file.flush)
                await asyncio.to_thread(os.fsync, file.fileno())
            finally:
                await asyncio.to_thread(file.close)
