"""The booth's bundle download against a real aiohttp server: cut off mid-way it goes on from
where it stopped (the bytes received add up to the bundle once), after a restart too; a bundle
that does not match its digest is thrown away; a refusal is an error at once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kiosk.backoff import Backoff
from kiosk.updates import Bundle, Download, DownloadError

SIZE = 3 * 1024 * 1024 + 12345


@dataclass
class Served:
    """The test server's file and what it does to requests."""

    path: Path
    #: Cut the next requests off after this many bytes each.
    cuts: list[int] = field(default_factory=list)
    ignore_range: bool = False
    status: int | None = None
    ranges: list[str | None] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


SERVED = web.AppKey("served", Served)


async def _bundle(request: web.Request) -> web.StreamResponse:
    served = request.app[SERVED]
    served.ranges.append(request.headers.get("Range"))
    served.logins.append(request.headers.get("Authorization", ""))
    if served.status is not None:
        raise web.HTTPForbidden()
    data = served.path.read_bytes()
    if served.ignore_range:
        return web.Response(body=data)
    if not served.cuts:
        return web.FileResponse(served.path)
    # Send part of what was asked for, then drop the connection.
    start = 0
    if (header := request.headers.get("Range")) is not None:
        start = int(header.removeprefix("bytes=").rstrip("-"))
    response = web.StreamResponse(status=206 if start else 200)
    response.content_length = len(data) - start
    if start:
        response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
    await response.prepare(request)
    await response.write(data[start : start + served.cuts.pop(0)])
    assert request.transport is not None
    request.transport.close()
    return response


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[TestServer, Served]]:
    path = tmp_path / "served.raucb"
    path.write_bytes(os.urandom(SIZE))
    served = Served(path=path)
    app = web.Application()
    app[SERVED] = served
    app.router.add_get("/api/v1/updates/bundle", _bundle)
    test_server = TestServer(app)
    await test_server.start_server()
    yield test_server, served
    await test_server.close()


def _announced(test_server: TestServer, served: Served) -> Bundle:
    return Bundle(
        url=str(test_server.make_url("/api/v1/updates/bundle")),
        size=SIZE,
        sha256=hashlib.sha256(served.path.read_bytes()).hexdigest(),
    )


def _download(bundle: Bundle, folder: Path, http: aiohttp.ClientSession) -> Download:
    count = 0

    async def headers(_: aiohttp.ClientSession) -> dict[str, str]:
        nonlocal count
        count += 1
        return {"Authorization": f"Signature nonce={count}"}

    return Download(
        bundle, folder, http=http, headers=headers, backoff=Backoff(first=0.01, ceiling=0.05)
    )


async def test_cut_off_twice_it_goes_on_from_where_it_stopped(
    server: tuple[TestServer, Served], tmp_path: Path
) -> None:
    test_server, served = server
    served.cuts = [1_000_000, 700_000]
    bundle = _announced(test_server, served)
    async with aiohttp.ClientSession() as http:
        download = _download(bundle, tmp_path / "updates", http)
        path = await download.run()
    assert path.read_bytes() == served.path.read_bytes()
    assert download.received == SIZE  # every byte once: resumed, not started again
    # Each request asked for the rest from where the one before was cut off (the server
    # drops the connection after writing; not all it wrote need arrive).
    assert served.ranges[0] is None and len(served.ranges) >= 3
    offsets = [int(r.removeprefix("bytes=").rstrip("-")) for r in served.ranges[1:] if r]
    assert len(offsets) == len(served.ranges) - 1
    assert offsets == sorted(offsets) and 0 < offsets[0] <= 1_000_000
    # A fresh login on every request (each nonce is good once).
    assert served.logins == [f"Signature nonce={n + 1}" for n in range(len(served.ranges))]
    assert not download.partial.exists()


async def test_after_a_restart_it_goes_on_from_the_partial_file(
    server: tuple[TestServer, Served], tmp_path: Path
) -> None:
    test_server, served = server
    bundle = _announced(test_server, served)
    folder = tmp_path / "updates"
    folder.mkdir()
    (folder / f"{bundle.sha256}.raucb.part").write_bytes(served.path.read_bytes()[:2_000_000])
    async with aiohttp.ClientSession() as http:
        download = _download(bundle, folder, http)
        path = await download.run()
    assert path.read_bytes() == served.path.read_bytes()
    assert download.received == SIZE - 2_000_000
    assert served.ranges == ["bytes=2000000-"]


async def test_a_finished_download_is_not_fetched_again(
    server: tuple[TestServer, Served], tmp_path: Path
) -> None:
    test_server, served = server
    bundle = _announced(test_server, served)
    async with aiohttp.ClientSession() as http:
        await _download(bundle, tmp_path, http).run()
        again = _download(bundle, tmp_path, http)
        await again.run()
    assert (again.received, len(served.ranges)) == (0, 1)


async def test_a_server_that_ignores_the_range_is_read_from_the_start(
    server: tuple[TestServer, Served], tmp_path: Path
) -> None:
    test_server, served = server
    bundle = _announced(test_server, served)
    (tmp_path / f"{bundle.sha256}.raucb.part").write_bytes(b"x" * 1000)
    served.ignore_range = True
    async with aiohttp.ClientSession() as http:
        path = await _download(bundle, tmp_path, http).run()
    assert path.read_bytes() == served.path.read_bytes()


async def test_a_bundle_that_does_not_match_is_thrown_away(
    server: tuple[TestServer, Served], tmp_path: Path
) -> None:
    test_server, served = server
    bundle = _announced(test_server, served)
    wrong = Bundle(url=bundle.url, size=bundle.size, sha256="0" * 64)
    async with aiohttp.ClientSession() as http:
        download = _download(wrong, tmp_path, http)
        with pytest.raises(DownloadError, match="not the announced 0000000000000000"):
            await download.run()
    assert not download.partial.exists() and not download.path.exists()


async def test_a_refusal_is_an_error_at_once(
    server: tuple[TestServer, Served], tmp_path: Path
) -> None:
    test_server, served = server
    served.status = 403
    async with aiohttp.ClientSession() as http:
        with pytest.raises(DownloadError, match="HTTP 403"):
            await _download(_announced(test_server, served), tmp_path, http).run()
    assert len(served.ranges) == 1


async def test_it_gives_up_when_nothing_arrives_again_and_again(tmp_path: Path) -> None:
    bundle = Bundle(url="http://127.0.0.1:9/bundle", size=10, sha256="0" * 64)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(DownloadError, match="stopped 8 times in a row at 0 of 10 bytes"):
            await _download(bundle, tmp_path, http).run()


class SlowDisk:
    """The partial file on a slow card: each write takes ``seconds`` before it happens (in the
    download's worker thread, as a real write blocks there)."""

    def __init__(self, file: Any, seconds: float) -> None:
        self._file, self._seconds = file, seconds

    def write(self, data: bytes | bytearray) -> int:
        time.sleep(self._seconds)
        return int(self._file.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> SlowDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


async def test_paused_again_and_again_mid_write_it_still_adds_up(
    server: tuple[TestServer, Served], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A visit (or the link dropping) pauses a download by cancelling it; a new one goes on
    # from the partial file. Cancelled while its worker thread was writing a piece, the old
    # code wrote that piece a second time and measured the file for the resume before the
    # thread was done: the bundle had bytes twice and failed its digest after 350 MB.
    test_server, served = server
    bundle = _announced(test_server, served)
    opened = Path.open

    def slow_open(path: Path, *args: Any, **kwargs: Any) -> Any:
        file = opened(path, *args, **kwargs)
        return SlowDisk(file, 0.1) if path.suffix == ".part" else file

    monkeypatch.setattr(Path, "open", slow_open)
    folder = tmp_path / "updates"
    pauses = 0
    async with aiohttp.ClientSession() as http:
        for wait in (0.02, 0.04, 0.06) * 3:
            fetching = asyncio.ensure_future(_download(bundle, folder, http).run())
            await asyncio.sleep(wait)
            if fetching.done():
                break
            fetching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetching
            pauses += 1
        path = await _download(bundle, folder, http).run()
    assert pauses >= 3  # the bundle is four pieces: each try writes one more
    assert path.read_bytes() == served.path.read_bytes()
