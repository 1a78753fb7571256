"""Typed application state keys (``app[CONFIG]`` and friends)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from server.config import ServerConfig

if TYPE_CHECKING:
    pass

CONFIG = web.AppKey("config", ServerConfig)
DATABASE = web.AppKey["Database"]("database")
SWITCHBOARD = web.AppKey["Switchboard"]("switchboard")
LOGIN_LIMITER = web.AppKey["RateLimiter"]("login_limiter")
