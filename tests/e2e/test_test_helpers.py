"""The end-to-end tests' own network helpers close what they opened: a socket left open for the
collector warns (ResourceWarning, an error here) during whichever later test collects it, and
fails that test instead (seen in CI: an accepted socket collected during a storage test)."""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings

from tests.e2e.firefox import Tripwire
from tests.e2e.netfault import PathCut


def _ended(client: socket.socket) -> bool:
    """The far end closed the connection (within 5 s)."""
    client.settimeout(5)
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _collected_quietly() -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_a_cut_path_closed_with_connections_open_closes_them() -> None:
    with socket.create_server(("127.0.0.1", 0)) as target:
        path = PathCut()
        port = path.tcp(target.getsockname()[1])
        open_through = socket.create_connection(("127.0.0.1", port))
        upstream, _ = target.accept()
        path.cut()
        waiting = socket.create_connection(("127.0.0.1", port))  # held while the path is cut
        path.close()
        with open_through, upstream, waiting:
            assert _ended(open_through), "the forwarded connection was left open"
            assert _ended(upstream), "the forwarder's own connection upstream was left open"
            assert _ended(waiting), "a connection waiting for the path was left open"
    assert _collected_quietly() == []


async def test_the_tripwire_closed_with_a_silent_connection_closes_it() -> None:
    tripwire = Tripwire()
    await tripwire.start()
    loop = asyncio.get_running_loop()
    silent = socket.create_connection(("127.0.0.1", tripwire.port))
    with silent:
        silent.setblocking(False)
        for _ in range(500):  # accepted: its handler waits for a request line
            if tripwire._open:
                break
            await asyncio.sleep(0.01)
        await tripwire.close()
        try:
            ended = await asyncio.wait_for(loop.sock_recv(silent, 1), 5) == b""
        except TimeoutError:
            ended = False
        assert ended, "the tripwire's connection was left open"
    assert _collected_quietly() == []
