"""Booth health and remote control: which booths are online and what they report, and the
administrators' commands to them (:mod:`server.metrics` counts them for Prometheus).

Booths heartbeat every ``heartbeat_seconds`` (15 s by default) with a health report. The latest
report of each booth is kept in memory (on its connection, and here once it has gone); at most
one a minute per booth is stored, for the history, and purged after :data:`HEALTH_RETENTION`.
A booth is offline when its connection is gone or its last heartbeat is older than
:data:`OFFLINE_AFTER_HEARTBEATS` intervals.

Commands go only to a connected booth, which answers with a ``command_result``. Out of service
is remembered (a setting, so it outlives a restart of the server) and told to the booth again
whenever it connects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from protocol import (
    BoothCommand,
    BoothCommandName,
    BoothHealth,
    CommandResult,
    Message,
    UpdateProgress,
)
from server.api import ADMINS, Api, ApiCall
from server.http import ProblemError
from server.keys import CONFIG, DATABASE
from server.signalling import Participant, new_id
from server.storage import (
    ActorKind,
    Database,
    HealthReport,
    get_booth,
    get_setting,
    health_since,
    latest_health,
    list_booths,
    list_branches,
    put_setting,
    record_audit,
    record_health_reports,
)

if TYPE_CHECKING:
    from server.cluster.fleet import ClusterFleet, RemoteSighting

log = logging.getLogger(__name__)

#: A booth's health is stored at most this often (seconds); the newest is always in memory.
RECORD_EVERY_SECONDS = 60.0
#: Reports to store are gathered this long and stored together (one statement): 5,000 booths
#: report about 80 times a second.
RECORD_BATCH_SECONDS = 0.25
#: Heartbeat intervals without a heartbeat after which a connected booth counts as offline.
OFFLINE_AFTER_HEARTBEATS = 3
#: Stored health reports older than this are purged by the housekeeping.
HEALTH_RETENTION = timedelta(days=7)
#: The health history an administrator can ask for, in hours.
DEFAULT_HISTORY_HOURS, MAX_HISTORY_HOURS = 24, 168
#: The setting that remembers which booths are out of service (a JSON list of booth ids).
OUT_OF_SERVICE_KEY = "fleet.out_of_service"
#: Commands sent and not answered yet that are remembered (to name the command of a result).
MAX_OPEN_COMMANDS = 1000


class FleetState(StrEnum):
    """A booth as the fleet view and /metrics count it."""

    ONLINE = "online"
    OFFLINE = "offline"
    #: Set out of service by an administrator (online or not), or saying so itself.
    OUT_OF_SERVICE = "out_of_service"


@dataclass(frozen=True)
class CommandOutcome:
    """A booth's answer to a command."""

    command_id: str
    #: The command it answers; None when this server did not send it (or no longer knows).
    command: str | None
    ok: bool
    detail: str
    at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "command_id": self.command_id,
            "command": self.command,
            "ok": self.ok,
            "detail": self.detail,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class Sighting:
    """What the server knows of a booth now: live while it is connected, else the last."""

    online: bool
    last_seen: datetime | None = None
    reported_state: str | None = None
    health: BoothHealth | None = None
    #: When its connection began (None: not connected here).
    connected_at: datetime | None = None
    #: ``health`` came over this connection (False: it is the last one before it, kept while
    #: the booth has not reported again; after a restart it may describe another version).
    health_is_current: bool = False


def _stored_health(state: str, data: str) -> BoothHealth | None:
    """A stored report back as the booth sent it; None if it no longer reads as one."""
    try:
        figures = json.loads(data)
        if not isinstance(figures, dict):
            return None
        return BoothHealth.model_validate_json(json.dumps({**figures, "state": state}))
    except (ValueError, ValidationError):
        return None


class FleetMonitor:
    """The fleet's live state; the switchboard reports booths to it (it never awaits there:
    the database writes run beside it as tasks)."""

    def __init__(self, *, database: Callable[[], Database], heartbeat_seconds: float) -> None:
        self._database = database
        #: Seconds without a heartbeat after which a connected booth is offline.
        self.offline_after = OFFLINE_AFTER_HEARTBEATS * heartbeat_seconds
        self._connections: dict[str, Participant] = {}
        self._gone: dict[str, Sighting] = {}
        self._recorded_at: dict[str, float] = {}
        self._results: dict[str, CommandOutcome] = {}
        self._open_commands: dict[str, tuple[str, str]] = {}  # id -> (booth id, command)
        self._saving = asyncio.Lock()
        #: Health reports to store, and the task storing them (see :meth:`_record`).
        self._reports: list[HealthReport] = []
        self._recorder: asyncio.Task[None] | None = None
        #: The booths an administrator set out of service.
        self.out_of_service: set[str] = set()
        #: In a cluster: the booths connected to the other nodes (server/cluster/fleet.py).
        self.cluster: ClusterFleet | None = None
        #: Where booths' update progress goes (the rollouts; None: updates not configured).
        self.updates: Callable[[str, UpdateProgress], None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def load(self) -> None:
        """Read what outlives a restart: the booths out of service and each booth's last
        stored report. A failure is logged; the server starts anyway."""
        try:
            db = self._database()
            await self.load_service()
            for booth_id, report in (await latest_health(db)).items():
                self._gone.setdefault(
                    booth_id,
                    Sighting(
                        online=False,
                        last_seen=report.at,
                        reported_state=report.state,
                        health=_stored_health(report.state, report.data),
                    ),
                )
        except Exception:
            log.exception("could not read the fleet's stored state")

    async def load_service(self) -> None:
        """Read which booths are out of service (at the start, and when another node of a
        cluster changed it)."""
        value = await get_setting(self._database(), OUT_OF_SERVICE_KEY)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            self.out_of_service = set(value)
        elif value is not None:
            log.warning("setting %s is not a list of booth ids; ignored", OUT_OF_SERVICE_KEY)

    async def flush(self) -> None:
        """Wait for the health reports being stored (at shutdown)."""
        if self._recorder is not None:
            await asyncio.gather(self._recorder, return_exceptions=True)

    # ------------------------------------------------------------ from the switchboard

    def booth_connected(self, conn: Participant) -> None:
        self._connections[conn.principal_id] = conn
        if conn.principal_id in self.out_of_service:
            log.info("booth %s connected while out of service: telling it again", conn.name)
            self.send_command(conn.principal_id, "out_of_service")

    def booth_disconnected(self, conn: Participant) -> None:
        if self._connections.get(conn.principal_id) is conn:
            del self._connections[conn.principal_id]
        before = self._gone.get(conn.principal_id)
        self._gone[conn.principal_id] = Sighting(
            online=False,
            last_seen=_wall_clock(conn.status.last_heartbeat),
            reported_state=_reported_state(conn),
            health=conn.status.health or (before.health if before else None),
        )

    def booth_reported(self, conn: Participant) -> None:
        """A heartbeat with health: store it if the last stored one is a minute old."""
        health, booth_id, now = conn.status.health, conn.principal_id, time.monotonic()
        if health is None or now - self._recorded_at.get(booth_id, -math.inf) < (
            RECORD_EVERY_SECONDS
        ):
            return
        self._recorded_at[booth_id] = now
        figures = health.model_dump(mode="json", exclude={"state"})
        self._reports.append(HealthReport(booth_id, health.state, figures))
        if self._recorder is None:
            self._recorder = asyncio.get_running_loop().create_task(self._record())
            self._recorder.add_done_callback(self._recorded)

    def update_progress(self, conn: Participant, progress: UpdateProgress) -> None:
        """How far the booth got with an update: for the rollouts (server/updates/)."""
        if self.updates is None:
            log.info("booth %s: update progress but updates are not configured", conn.name)
            return
        self.updates(conn.principal_id, progress)

    def command_result(self, conn: Participant, result: CommandResult) -> None:
        sent = self._open_commands.get(result.command_id)
        command: str | None = None
        if sent is not None and sent[0] == conn.principal_id:
            del self._open_commands[result.command_id]
            command = sent[1]
        self._results[conn.principal_id] = CommandOutcome(
            command_id=result.command_id,
            command=command,
            ok=result.ok,
            detail=result.detail,
            at=datetime.now(UTC),
        )
        log.info(
            "booth %s: command %s (%s) %s: %r",
            conn.name,
            command or "unknown",
            result.command_id,
            "done" if result.ok else "failed",
            result.detail,
        )

    async def _record(self) -> None:
        """Store the reports gathered, together, until none is left. One write at a time: when
        hundreds of booths connect at once (after a restart of the server, say), their first
        reports would otherwise each wait for SQLite's single write lock, and those past the
        busy timeout would fail ("database is locked")."""
        while self._reports:
            await asyncio.sleep(RECORD_BATCH_SECONDS)
            reports, self._reports = self._reports, []
            try:
                await record_health_reports(self._database(), reports)
            except Exception as exc:
                # The reports stay in memory; each booth's next one is stored a minute later.
                log.error("health reports of %d booth(s) were not stored: %s", len(reports), exc)

    def _recorded(self, task: asyncio.Task[None]) -> None:
        self._recorder = None  # none left to store (or the server is stopping)

    # ------------------------------------------------------------ questions and commands

    def is_online(self, conn: Participant) -> bool:
        return time.monotonic() - conn.status.last_heartbeat <= self.offline_after

    def sighting(self, booth_id: str) -> Sighting:
        conn = self._connections.get(booth_id)
        gone = self._gone.get(booth_id)
        if conn is None:
            return gone or Sighting(online=False)
        return Sighting(
            online=self.is_online(conn),
            last_seen=_wall_clock(conn.status.last_heartbeat),
            reported_state=_reported_state(conn),
            health=conn.status.health or (gone.health if gone else None),
            connected_at=conn.status.connected_at,
            health_is_current=conn.status.health is not None,
        )

    def holds(self, booth_id: str) -> bool:
        """Whether the booth is connected to this server (node)."""
        return booth_id in self._connections

    def send(self, booth_id: str, message: Message) -> bool:
        """Send ``message`` to the booth if it is connected here and online; whether it was."""
        conn = self._connections.get(booth_id)
        if conn is None or not self.is_online(conn):
            return False
        conn.send(message)
        return True

    def connected_sightings(self) -> list[tuple[str, Sighting]]:
        """The booths connected to this server (node), each as :meth:`sighting` sees it."""
        return [(booth_id, self.sighting(booth_id)) for booth_id in self._connections]

    async def others(self) -> dict[str, RemoteSighting]:
        """In a cluster, the booths connected to the other nodes; else nothing."""
        return await self.cluster.sightings() if self.cluster is not None else {}

    async def send_anywhere(self, booth_id: str, command: BoothCommandName) -> str | None:
        """Send ``command`` to the booth on whichever node holds it; None when none does."""
        command_id = self.send_command(booth_id, command)
        if command_id is None and self.cluster is not None:
            command_id = await self.cluster.command(booth_id, command)
        return command_id

    def state_of(self, booth_id: str, sighting: Sighting) -> FleetState:
        if booth_id in self.out_of_service:
            return FleetState.OUT_OF_SERVICE
        if not sighting.online:
            return FleetState.OFFLINE
        if sighting.reported_state == FleetState.OUT_OF_SERVICE:
            return FleetState.OUT_OF_SERVICE
        return FleetState.ONLINE

    def last_result(self, booth_id: str) -> CommandOutcome | None:
        return self._results.get(booth_id)

    def send_command(self, booth_id: str, command: BoothCommandName) -> str | None:
        """Send ``command`` to the booth; its id, or None when the booth is offline."""
        conn = self._connections.get(booth_id)
        if conn is None or not self.is_online(conn):
            return None
        command_id = new_id()
        while len(self._open_commands) >= MAX_OPEN_COMMANDS:
            del self._open_commands[next(iter(self._open_commands))]
        self._open_commands[command_id] = (booth_id, command)
        conn.send(BoothCommand(command=command, command_id=command_id))
        log.info("booth %s: sent command %s (%s)", conn.name, command, command_id)
        return command_id

    async def set_out_of_service(self, booth_id: str, out: bool) -> None:
        """Remember (in a setting) whether the booth is out of service."""
        if out:
            self.out_of_service.add(booth_id)
        else:
            self.out_of_service.discard(booth_id)
        # One write at a time, each of the whole set as it is then: the last write wins and
        # holds every change.
        async with self._saving:
            await put_setting(self._database(), OUT_OF_SERVICE_KEY, sorted(self.out_of_service))
        if self.cluster is not None:
            await self.cluster.service_changed()


def _wall_clock(monotonic: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=time.monotonic() - monotonic)


def _reported_state(conn: Participant) -> str | None:
    return conn.status.reported_state or (conn.status.health.state if conn.status.health else None)


FLEET = web.AppKey("fleet", FleetMonitor)


def install(app: web.Application) -> FleetMonitor:
    """Keep the fleet's live state for ``app`` (loaded once the database is open); the
    switchboard is to report booths to the monitor returned."""
    monitor = FleetMonitor(
        database=lambda: app[DATABASE], heartbeat_seconds=app[CONFIG].heartbeat_seconds
    )
    app[FLEET] = monitor

    async def load(app: web.Application) -> None:
        await monitor.load()

    async def flush(app: web.Application) -> None:
        await monitor.flush()

    # on_startup runs after the cleanup contexts started, so the database is open by then.
    app.on_startup.append(load)
    app.on_shutdown.append(flush)
    return monitor


# ---------------------------------------------------------------- the API


class CommandBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    command: BoothCommandName


#: Commands that change what the server remembers of the booth.
_SERVICE_COMMANDS: dict[str, bool] = {"out_of_service": True, "in_service": False}


def _state_filter(raw: str | None) -> FleetState | None:
    if raw is None or raw == "":
        return None
    try:
        return FleetState(raw)
    except ValueError:
        choices = ", ".join(s.value for s in FleetState)
        raise ProblemError(400, "Bad Request", f"state: one of {choices}, not {raw!r}") from None


def _hours(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_HISTORY_HOURS
    hours = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 4 else 0
    if not 1 <= hours <= MAX_HISTORY_HOURS:
        raise ProblemError(
            400, "Bad Request", f"hours: a whole number from 1 to {MAX_HISTORY_HOURS}, not {raw!r}"
        )
    return hours


def register(api: Api) -> None:
    @api.endpoint(
        "GET", "/fleet", allow=ADMINS, summary="See every booth's state, last sighting and health"
    )
    async def fleet(call: ApiCall) -> web.StreamResponse:
        request = call.request
        branch = request.query.get("branch") or None
        if branch is not None and len(branch) > 64:
            raise ProblemError(400, "Bad Request", "branch: a branch id (at most 64 characters)")
        wanted = _state_filter(request.query.get("state"))
        db, monitor = request.app[DATABASE], request.app[FLEET]
        branches = {b.id: b for b in await list_branches(db)}
        elsewhere = await monitor.others()
        booths = []
        for booth in await list_booths(db, include_revoked=False):
            if branch is not None and booth.branch_id != branch:
                continue
            seen = monitor.sighting(booth.id)
            outcome: dict[str, Any] | None = None
            if (there := elsewhere.get(booth.id)) is not None and not seen.online:
                seen, outcome = there.sighting, there.last_command
            state = monitor.state_of(booth.id, seen)
            if wanted is not None and state is not wanted:
                continue
            if (here := monitor.last_result(booth.id)) is not None:
                outcome = here.as_json()
            home = branches.get(booth.branch_id) if booth.branch_id else None
            booths.append(
                {
                    "id": booth.id,
                    "name": booth.name,
                    "branch_id": booth.branch_id,
                    "branch_name": home.name if home else None,
                    "enrolled": booth.public_key is not None,
                    "state": state.value,
                    "online": seen.online,
                    "out_of_service": booth.id in monitor.out_of_service,
                    "reported_state": seen.reported_state,
                    "last_seen": seen.last_seen.isoformat() if seen.last_seen else None,
                    "version": seen.health.version if seen.health else None,
                    "health": seen.health.model_dump(mode="json") if seen.health else None,
                    "last_command": outcome,
                }
            )
        return web.json_response(
            {"booths": booths, "heartbeat_seconds": request.app[CONFIG].heartbeat_seconds}
        )

    @api.endpoint(
        "GET", "/booths/{id}/health", allow=ADMINS, summary="Read a booth's stored health reports"
    )
    async def history(call: ApiCall) -> web.StreamResponse:
        request, booth_id = call.request, call.request.match_info["id"]
        hours = _hours(request.query.get("hours"))
        db = request.app[DATABASE]
        if await get_booth(db, booth_id) is None:
            raise ProblemError(404, "Not Found", "no such booth")
        reports = await health_since(db, booth_id, db.now() - timedelta(hours=hours))
        rows = []
        for report in reports:
            health = _stored_health(report.state, report.data)
            figures = health.model_dump(mode="json") if health else {"state": report.state}
            rows.append({"at": report.at.isoformat(), **figures})
        return web.json_response({"booth_id": booth_id, "hours": hours, "reports": rows})

    @api.endpoint(
        "POST",
        "/booths/{id}/commands",
        allow=ADMINS,
        summary="Send a command to a connected booth",
        body=CommandBody,
    )
    async def command(call: ApiCall) -> web.StreamResponse:
        request, booth_id = call.request, call.request.match_info["id"]
        name = call.body_as(CommandBody).command
        db, monitor = request.app[DATABASE], request.app[FLEET]
        booth = await get_booth(db, booth_id)
        if booth is None or booth.revoked:
            raise ProblemError(404, "Not Found", "no such booth")
        offline = ProblemError(
            409,
            "Conflict",
            f"The booth {booth.name!r} is offline; a command reaches only a connected booth. "
            "Try again when the fleet shows it online.",
        )
        # Sent first, to whichever node holds the booth (asking every node for its booths
        # first would be a second, slower question that can time out on its own).
        command_id = await monitor.send_anywhere(booth_id, name)
        if command_id is None:
            raise offline
        if name in _SERVICE_COMMANDS:
            await monitor.set_out_of_service(booth_id, _SERVICE_COMMANDS[name])
        await record_audit(
            db,
            actor_kind=ActorKind.USER,
            actor_id=call.caller.id,
            action=f"booth.command.{name}",
            subject=booth_id,
            detail=json.dumps({"command_id": command_id}),
        )
        return web.json_response(
            {"command_id": command_id, "command": name, "booth_id": booth_id}, status=202
        )
