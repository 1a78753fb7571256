"""Typed application state keys (``app[CONFIG]`` and friends)."""

from __future__ import annotations

from aiohttp import web

from server.api import Api
from server.boothauth import Nonces
from server.cluster import Bus
from server.cluster.calls import SharedCalls
from server.cluster.membership import Membership
from server.config import ServerConfig
from server.guests import GuestPasses
from server.ratelimit import RateLimiter, WorkGate
from server.storage import Database
from server.switchboard import Switchboard

CONFIG = web.AppKey("config", ServerConfig)
DATABASE = web.AppKey("database", Database)
SWITCHBOARD = web.AppKey("switchboard", Switchboard)
LOGIN_LIMITER = web.AppKey("login_limiter", RateLimiter)
PASSWORD_WORK = web.AppKey("password_work", WorkGate)
API = web.AppKey("api", Api)
GUESTS = web.AppKey("guests", GuestPasses)
JOIN_LIMITER = web.AppKey("join_limiter", RateLimiter)
WALK_IN_LIMITER = web.AppKey("walk_in_limiter", RateLimiter)
CODE_LIMITER = web.AppKey("code_limiters", tuple[RateLimiter, ...])
NONCES = web.AppKey("booth_nonces", Nonces)
ENROL_LIMITER = web.AppKey("enrol_limiter", RateLimiter)
BUS = web.AppKey("bus", Bus)
MEMBERSHIP = web.AppKey("membership", Membership)
SHARED_CALLS = web.AppKey("shared_calls", SharedCalls)
