"""Telling systemd how the booth is doing (``sd_notify``), without libsystemd.

A service with ``Type=notify`` is started once it says ``READY=1``; ``STATUS=`` shows in
``systemctl status``; with ``WatchdogSec=`` systemd restarts a booth that stops pinging. The
pings come from the event loop itself, so a hung loop (a blocking call, a deadlock) stops them
and the booth is restarted; a thread pinging would keep a dead booth alive.

The protocol is one datagram to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a path, or an
abstract name written with a leading ``@``). Outside systemd every method does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to systemd; build it with :meth:`from_environ` in the entry point."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self._name = address
        self._address = _socket_address(address) if address else None
        #: Seconds between watchdog pings: half the watchdog timeout, as systemd advises.
        self.watchdog_interval = watchdog_usec / 2_000_000 if watchdog_usec else None
        self._failing = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, pid: int | None = None) -> Notifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` (as sd_notify does).

        The watchdog is ours only if ``WATCHDOG_PID`` is unset or names this process
        (``pid``, default :func:`os.getpid`): a child that inherited the environment must
        not ping for its parent.
        """
        address = environ.get("NOTIFY_SOCKET") or None
        if address is not None and not address.startswith(("/", "@")):
            log.warning("systemd: NOTIFY_SOCKET %r is not supported; not notifying", address)
            address = None
        watchdog_usec: int | None = None
        raw_usec, raw_pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
        if raw_usec:
            me = os.getpid() if pid is None else pid
            try:
                usec, owner = int(raw_usec), (int(raw_pid) if raw_pid else me)
            except ValueError:
                log.warning(
                    "systemd: WATCHDOG_USEC %r or WATCHDOG_PID %r unreadable; no watchdog",
                    raw_usec,
                    raw_pid,
                )
            else:
                if usec > 0 and owner == me:
                    watchdog_usec = usec
        return cls(address, watchdog_usec=watchdog_usec)

    @property
    def enabled(self) -> bool:
        """Whether the booth runs under systemd with a notify socket."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False if not sent (never raises)."""
        if self._address is None:
            return False
        payload = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block the loop: if systemd cannot take the datagram now, drop it.
                sock.setblocking(False)
                sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._failing:
                log.warning("systemd: cannot notify %s: %s", self._name, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("systemd: notifying works again")
        self._failing = False
        return True

    def ready(self) -> bool:
        """The booth is up (``Type=notify`` services count as started from here)."""
        return self.notify("READY=1")

    def status(self, text: str) -> bool:
        """A one-line status for ``systemctl status``."""
        return self.notify("STATUS=" + " ".join(text.split()))

    def stopping(self) -> bool:
        """The booth is shutting down on purpose."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """One watchdog ping: the booth is alive."""
        return self.notify("WATCHDOG=1")

    async def watchdog_task(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Ping the watchdog every :attr:`watchdog_interval` from ``loop`` until cancelled.

        ``loop`` is the loop whose health the pings vouch for, the running one; it is checked,
        because pinging from any other loop would keep a hung booth alive. Returns at once
        when systemd set no watchdog for this process.
        """
        running = asyncio.get_running_loop()
        if loop is not None and loop is not running:
            raise RuntimeError("the watchdog must run on the loop it watches")
        interval = self.watchdog_interval
        if interval is None or not self.enabled:
            log.debug("systemd: no watchdog for this process")
            return
        log.info("systemd: watchdog ping every %.1f s", interval)
        while True:
            self.watchdog()
            await asyncio.sleep(interval)


def _socket_address(address: str) -> bytes:
    """``$NOTIFY_SOCKET`` as a socket address: ``@name`` is the abstract ``\\0name``."""
    if address.startswith("@"):
        return b"\0" + os.fsencode(address[1:])
    return os.fsencode(address)
