"""Telling systemd how a service is doing (``sd_notify``), without libsystemd.

Both the server and the booth run as ``Type=notify`` units: a unit counts as started once it
says ``READY=1``; ``STATUS=`` lines show in ``systemctl status``; ``STOPPING=1`` marks a shutdown
on purpose; with ``WatchdogSec=`` systemd restarts a process that stops pinging. The pings come
from the event loop itself, so a loop that hangs (a blocking call, a deadlock) stops them and the
process is restarted; a thread pinging would keep a dead process alive.

The protocol is one datagram to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a path, or an
abstract name written with a leading ``@``). Outside systemd every method does nothing and
nothing raises. Log lines written to the journal carry their priority (:func:`configure_logging`).
It lives here because this package is the only one both the server and the
booth import; the server adds its aiohttp hooks in ``server/systemd.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any, Self

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
    def from_environ(cls, environ: Mapping[str, str], *, pid: int | None = None) -> Self:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` as sd_notify does.

        The watchdog is ours only if ``WATCHDOG_PID`` is unset or names this process (``pid``,
        default :func:`os.getpid`): a child that inherited the environment must not ping for
        its parent.
        """
        address = environ.get("NOTIFY_SOCKET") or None
        if address is not None and not address.startswith(("/", "@")):
            log.warning("systemd: NOTIFY_SOCKET %r is not a socket path; not notifying", address)
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
        """Whether this process runs under systemd with a notify socket."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False if not sent (never raises)."""
        if self._address is None:
            return False
        payload = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block the loop: if systemd cannot take the datagram now, it is dropped.
                sock.setblocking(False)
                sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._failing:
                log.warning("systemd: cannot notify %s: %s", self._name, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("systemd: notifying %s works again", self._name)
        self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """The service is up (a ``Type=notify`` unit counts as started from here)."""
        return self.notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """A one-line status for ``systemctl status``."""
        return self.notify(*_status(text))

    def stopping(self, status: str | None = None) -> bool:
        """The service is shutting down on purpose."""
        return self.notify("STOPPING=1", *_status(status))

    def watchdog(self) -> bool:
        """One watchdog ping: the event loop is alive."""
        return self.notify("WATCHDOG=1")

    async def watchdog_task(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Ping every :attr:`watchdog_interval` from the running loop until cancelled; returns
        at once when systemd set no watchdog for this process.

        ``loop``, when given, is the loop whose health the pings vouch for; it must be the
        running one, because pinging from any other loop would keep a hung process alive.
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


def _status(text: str | None) -> tuple[str, ...]:
    """``STATUS=`` with ``text`` on one line (systemd shows one), or nothing."""
    return () if text is None else ("STATUS=" + " ".join(text.split()),)


def _socket_address(address: str) -> bytes:
    """``$NOTIFY_SOCKET`` as a socket address: ``@name`` is the abstract ``\\0name``."""
    if address.startswith("@"):
        return b"\0" + os.fsencode(address[1:])
    return os.fsencode(address)


#: Python's logging levels as syslog priorities (sd-daemon(3)'s ``<N>`` line prefixes).
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


class _JournalFormatter(logging.Formatter):
    """A line for the journal: its priority as a ``<N>`` prefix (journald reads it, so
    ``journalctl -p err`` finds the errors) and no time stamp (the journal has its own)."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in _PRIORITIES if record.levelno >= level), 7)
        # A traceback's lines are one message: each line carries the priority.
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).split("\n"))


def to_journal(environ: Mapping[str, str], stream: Any) -> bool:
    """Whether ``stream`` is connected to the journal: systemd says which (device and inode
    of the stream) in ``$JOURNAL_STREAM``, so a redirected stream is not taken for it."""
    try:
        device, inode = (int(part) for part in environ.get("JOURNAL_STREAM", "").split(":"))
        status = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (status.st_dev, status.st_ino) == (device, inode)


def configure_logging(level: str, environ: Mapping[str, str] = os.environ) -> None:
    """The root logger on standard error: with each line's priority when that is the journal,
    with a time stamp otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    if to_journal(environ, sys.stderr):
        handler.setFormatter(_JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
