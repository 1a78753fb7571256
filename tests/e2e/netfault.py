"""A booth's network path on loopback that a test can cut and restore.

The booth reaches the server (TCP) and the relay (UDP) only through these forwarders. Cut, they
forward nothing, like a branch's Wi-Fi that drops: UDP datagrams are dropped, TCP bytes are held
(as TCP would retransmit them) and new connections wait. Restored, everything flows again.
They run on their own event loop in a thread, so a test can use them from anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any


class PathCut:
    """TCP forwarders (to the server) and UDP forwarders (to the relay) on 127.0.0.1."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._open = asyncio.Event()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._call(self._set_open)
        self._servers: list[Any] = []
        self._forwarding: set[asyncio.Task[Any]] = set()
        self._listeners: list[socket.socket] = []
        self._accepted: list[socket.socket] = []
        self.dropped = 0

    # ------------------------------------------------------------ control

    def cut(self) -> None:
        self._call(self._open.clear)

    def restore(self) -> None:
        self._call(self._set_open)

    @property
    def is_cut(self) -> bool:
        return not self._open.is_set()

    def tcp(self, target_port: int) -> int:
        """A TCP port that forwards to 127.0.0.1:``target_port``."""
        port: int = self._run(self._tcp(target_port))
        return port

    def udp(self, target_port: int) -> int:
        """A UDP port that forwards to 127.0.0.1:``target_port`` (one upstream socket per
        client address, as a NAT would)."""
        port: int = self._run(self._udp(target_port))
        return port

    def close(self) -> None:
        async def stop() -> None:
            # Each forwarder and the pumps of its connection close their sockets when cancelled
            # (a socket left to the collector warns during a later test).
            loop = asyncio.get_running_loop()
            for listener in self._listeners:
                loop.remove_reader(listener.fileno())
                listener.close()
            tasks = list(self._forwarding)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for server in self._servers:
                server.close()
            await asyncio.sleep(0)  # the closed transports let their sockets go
            for conn in self._accepted:
                conn.close()  # one whose forwarder was cancelled before it started

        self._run(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            # Its self-pipe and selector go with it (else collected during a later test).
            self._loop.close()

    # ------------------------------------------------------------ inside the loop

    def _set_open(self) -> None:
        self._open.set()

    def _call(self, function: Any) -> None:
        done = threading.Event()

        def run() -> None:
            function()
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def _spawn(self, coroutine: Any) -> None:
        task = self._loop.create_task(coroutine)
        self._forwarding.add(task)
        task.add_done_callback(self._forwarding.discard)

    async def _tcp(self, target_port: int) -> int:
        loop = asyncio.get_running_loop()

        def shut(writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                writer.close()

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                with contextlib.suppress(ConnectionError, OSError):
                    while data := await reader.read(65536):
                        await self._open.wait()
                        writer.write(data)
                        await writer.drain()
            finally:
                shut(writer)

        async def forward(conn: socket.socket) -> None:
            writer: asyncio.StreamWriter | None = None
            try:
                await self._open.wait()  # a new connection waits while the path is cut
                reader, writer = await asyncio.open_connection(sock=conn)
                with contextlib.suppress(OSError):
                    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
                    await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
            except asyncio.CancelledError:
                pass  # closed with the path
            finally:
                if writer is not None:
                    shut(writer)
                else:
                    conn.close()

        # Its own accepting, not asyncio's server or sock_accept: both drop, unclosed, a socket
        # accepted a moment before they are closed or cancelled (asyncio 3.11). Each accepted
        # socket is kept, and closed with the path whatever became of it.
        def accept() -> None:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            conn.setblocking(False)
            self._accepted.append(conn)
            self._spawn(forward(conn))

        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        loop.add_reader(listener.fileno(), accept)
        self._listeners.append(listener)
        port: int = listener.getsockname()[1]
        return port

    async def _udp(self, target_port: int) -> int:
        loop = asyncio.get_running_loop()
        path = self
        upstreams: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        pending: dict[tuple[str, int], list[bytes]] = {}
        connecting: set[asyncio.Task[None]] = set()

        class Front(asyncio.DatagramProtocol):
            transport: Any

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport  # for datagrams, though not typed so

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if path.is_cut:
                    path.dropped += 1
                    return
                upstream = upstreams.get(addr)
                if upstream is not None:
                    upstream.sendto(data)
                elif addr in pending:
                    pending[addr].append(data)
                else:
                    pending[addr] = [data]
                    task = loop.create_task(self._connect(addr))
                    connecting.add(task)
                    task.add_done_callback(connecting.discard)

            async def _connect(self, addr: tuple[str, int]) -> None:
                front = self

                class Back(asyncio.DatagramProtocol):
                    def datagram_received(self, data: bytes, _: tuple[str, int]) -> None:
                        if path.is_cut:
                            path.dropped += 1
                            return
                        front.transport.sendto(data, addr)

                transport, _ = await loop.create_datagram_endpoint(
                    Back, remote_addr=("127.0.0.1", target_port)
                )
                upstreams[addr] = transport
                path._servers.append(transport)  # closed with the path
                for data in pending.pop(addr):
                    transport.sendto(data)

        transport, _ = await loop.create_datagram_endpoint(
            Front, local_addr=("127.0.0.1", 0), family=socket.AF_INET
        )
        self._servers.append(transport)
        port: int = transport.get_extra_info("sockname")[1]
        return port
