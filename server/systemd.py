"""The server's systemd notifications: :class:`protocol.systemd.Notifier` (``sd_notify``, shared
with the booth) plus the hooks that tie it to the aiohttp application's life.

The packaged unit (``Type=notify``, ``WatchdogSec=``) counts the server as started once it says
``READY=1``, after its sites listen (the entry point says it then); the watchdog is pinged while
the application runs, and ``STOPPING=1`` is the first step of a shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from protocol.systemd import Notifier


class SystemdNotifier(Notifier):
    """A :class:`~protocol.systemd.Notifier` that can follow an aiohttp application."""

    def attach(self, app: web.Application) -> None:
        """Ping the watchdog while ``app`` runs and say ``STOPPING=1`` when it shuts down.

        ``READY=1`` is not sent here: the application starts before its sites listen, so the
        entry point calls :meth:`ready` once they do.
        """
        app.cleanup_ctx.append(self._watchdog_ctx)
        # First of the shutdown steps: closing connections may take a while.
        app.on_shutdown.insert(0, self._on_shutdown)

    async def _watchdog_ctx(self, app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(self.watchdog_task(), name="systemd watchdog")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _on_shutdown(self, app: web.Application) -> None:
        self.stopping("stopping: closing connections")
