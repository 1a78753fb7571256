"""The fleet across the nodes of a cluster: a booth is connected to one node, and an
administrator's fleet page and commands reach whichever node the load balancer picks.

Nothing is copied ahead of time (5,000 booths' heartbeats would be a thousand messages a second
to every node); the node answering the administrator asks the others when it needs to::

    vb.fleet.ask       "what do your booths say?" every node answers, in parts of at most
                       PART booths, on the reply subject named in the question
    vb.fleet.command   a request: the node holding the booth's connection sends the command
                       and answers with its id; the others stay silent
    vb.fleet.service   the booths out of service changed (a setting): every node reads it again

The live sightings of the booths connected elsewhere come with their last health report and
their last command's answer, as the node holding them knows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from protocol import BoothCommandName, BoothHealth
from server.cluster.bus import Bus, Subscription
from server.cluster.bus import Message as BusMessage
from server.cluster.errors import BusError
from server.cluster.membership import Membership
from server.fleet_health import FleetMonitor, Sighting

log = logging.getLogger(__name__)

__all__ = ["ClusterFleet", "RemoteSighting"]

#: Booths per answer to ``vb.fleet.ask`` (each well under NATS's 1 MiB per message).
PART = 200
#: How long a node waits for the others' answers.
ASK_SECONDS = 1.0
#: How long a command waits for the node holding the booth (an administrator's action: rare,
#: and worth waiting for on a busy node rather than reporting a connected booth offline).
COMMAND_SECONDS = 3.0


@dataclass(frozen=True)
class RemoteSighting:
    """A booth connected to another node, as that node sees it."""

    node: str
    sighting: Sighting
    last_command: dict[str, Any] | None


class ClusterFleet:
    """This node's part in the cluster's fleet (see the module's documentation)."""

    def __init__(self, *, bus: Bus, monitor: FleetMonitor, membership: Membership) -> None:
        self._bus = bus
        self._monitor = monitor
        self._membership = membership
        self.node = membership.node_id
        self._subscriptions: list[Subscription] = []

    async def start(self) -> None:
        self._subscriptions = [
            await self._bus.subscribe("vb.fleet.ask", self._asked),
            await self._bus.subscribe("vb.fleet.command", self._command),
            await self._bus.subscribe("vb.fleet.service", self._service),
        ]
        self._monitor.cluster = self

    async def stop(self) -> None:
        self._monitor.cluster = None
        for subscription in self._subscriptions:
            with contextlib.suppress(BusError):
                await subscription.unsubscribe()

    # ------------------------------------------------------------ asking the others

    async def sightings(self) -> dict[str, RemoteSighting]:
        """The booths connected to the other nodes, by id (what answered within ASK_SECONDS)."""
        others = set(self._membership.alive()) - {self.node}
        if not others:
            return {}
        reply = f"vb.fleet.reply.{self.node}.{secrets.token_hex(8)}"
        found: dict[str, RemoteSighting] = {}
        parts: dict[str, set[int]] = {}
        expected: dict[str, int] = {}
        complete = asyncio.Event()

        async def heard(message: BusMessage) -> None:
            try:
                data = json.loads(message.payload)
                node, part, count = str(data["node"]), int(data["part"]), int(data["parts"])
                for entry in data["booths"]:
                    booth_id, seen = _sighting(entry)
                    found[booth_id] = RemoteSighting(node, seen, entry.get("cmd"))
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                log.warning("a fleet answer that is not one (%s); ignored", exc)
                return
            parts.setdefault(node, set()).add(part)
            expected[node] = count
            if all(len(parts.get(n, ())) >= expected.get(n, 1) for n in others):
                complete.set()

        subscription = await self._bus.subscribe(reply, heard)
        try:
            await self._bus.publish(
                "vb.fleet.ask", json.dumps({"reply": reply, "node": self.node}).encode()
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(complete.wait(), ASK_SECONDS)
        except BusError as exc:
            log.warning("the other nodes' booths not asked: %s", exc)
        finally:
            with contextlib.suppress(BusError):
                await subscription.unsubscribe()
        silent = sorted(n for n in others if len(parts.get(n, ())) < expected.get(n, 1))
        if silent:  # their booths show as last seen, not online, this time
            log.warning("the fleet: no whole answer within %.1f s from %s", ASK_SECONDS, silent)
        return found

    async def command(self, booth_id: str, command: BoothCommandName) -> str | None:
        """Send ``command`` to a booth connected to another node; its id, or None when no node
        holds the booth (offline)."""
        payload = json.dumps({"booth": booth_id, "command": command}).encode()
        try:
            answer = await self._bus.request("vb.fleet.command", payload, timeout=COMMAND_SECONDS)
        except BusError as exc:
            log.info("booth %s: no node sent the command: %s", booth_id, exc)
            return None
        command_id = json.loads(answer).get("command_id")
        return str(command_id) if command_id else None

    async def service_changed(self) -> None:
        """Tell the other nodes to read the booths out of service again."""
        try:
            await self._bus.publish("vb.fleet.service", json.dumps({"node": self.node}).encode())
        except BusError as exc:
            log.warning("the other nodes not told of a change of service: %s", exc)

    # ------------------------------------------------------------ answering

    async def _asked(self, message: BusMessage) -> None:
        try:
            data = json.loads(message.payload)
            reply, asker = str(data["reply"]), str(data["node"])
        except (ValueError, KeyError, TypeError):
            log.warning("a fleet question that is not one; ignored")
            return
        if asker == self.node:
            return
        booths = [
            _entry(booth_id, seen, self._monitor.last_result(booth_id))
            for booth_id, seen in self._monitor.connected_sightings()
        ]
        parts = [booths[i : i + PART] for i in range(0, len(booths), PART)] or [[]]
        for index, part in enumerate(parts):
            answer = {"node": self.node, "part": index, "parts": len(parts), "booths": part}
            try:
                await self._bus.publish(reply, json.dumps(answer).encode())
            except BusError as exc:
                log.warning("a fleet answer not sent: %s", exc)
                return

    async def _command(self, message: BusMessage) -> bytes | None:
        try:
            data = json.loads(message.payload)
            booth_id, command = str(data["booth"]), data["command"]
        except (ValueError, KeyError, TypeError):
            return None
        if not self._monitor.sighting(booth_id).online:
            return None  # not here: the node that holds it answers
        command_id = self._monitor.send_command(booth_id, command)
        return None if command_id is None else json.dumps({"command_id": command_id}).encode()

    async def _service(self, message: BusMessage) -> None:
        await self._monitor.load_service()


def _entry(booth_id: str, seen: Sighting, outcome: Any) -> dict[str, Any]:
    return {
        "id": booth_id,
        "online": seen.online,
        "seen": seen.last_seen.isoformat() if seen.last_seen else None,
        "state": seen.reported_state,
        "health": seen.health.model_dump(mode="json") if seen.health else None,
        "cmd": outcome.as_json() if outcome is not None else None,
    }


def _sighting(entry: dict[str, Any]) -> tuple[str, Sighting]:
    health = entry["health"]
    return str(entry["id"]), Sighting(
        online=bool(entry["online"]),
        last_seen=datetime.fromisoformat(entry["seen"]) if entry["seen"] else None,
        reported_state=entry["state"],
        health=BoothHealth.model_validate(health) if health is not None else None,
    )
