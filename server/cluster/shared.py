"""The calls of a cluster: any node serves any client, whichever node carries the call.

Each call is *carried* by one node, its owner: the node where the caller was connected when it
asked for an advisor. The owner runs the call's logic in its switchboard, which stays what it
is on one server (synchronous, in memory); a participant connected to another node is there a
*proxy*, a :class:`~server.signalling.Participant` whose transport publishes to that
participant's subject. PostgreSQL holds each live call's row (``server/storage/live_calls.py``):
who is in it, on which node, and which node owns it. The bus (NATS) carries the rest::

    vb.participant.<participant_id>  owner → the participant's node: a message to deliver,
                                     or "close the connection"
    vb.call.<session_id>             the participant's node → the owner: a message the
                                     participant sent, its connection lost; requests (with a
                                     reply): an advisor accepts, a participant resumes
    vb.queue.<queue>                 owner → every node: its waiting calls that joined,
                                     changed or left (every node keeps the others' waiting
                                     calls, reloaded from PostgreSQL at start and whenever its
                                     bus was away)

Exactly one advisor gets a caller: an accept is first a conditional ``UPDATE`` of the call's
row (:func:`~server.storage.claim_live_call`), on whichever node the advisor is; only the
winner's accept reaches the owner. When a node dies (:class:`~.membership.Membership` stops
hearing it), a survivor takes its calls over in one conditional ``UPDATE``
(:func:`~server.storage.adopt_live_calls`) and carries them on: members connected to a live
node stay reachable through it, members that were on the dead node are away until they resume
(they reconnect through the load balancer to a survivor, which passes the resume on to the new
owner). Media never passes through the nodes, so a call's media goes on meanwhile.

Writes to PostgreSQL and the queue's messages leave a node in order on one line (a call's row
is written before another node can hear of the call); messages to participants on another.
Neither ever blocks the switchboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from protocol import (
    Admit,
    CallAccept,
    CallCancel,
    Chat,
    Error,
    ErrorCode,
    Hangup,
    LobbyJoin,
    Message,
    ParticipantAway,
    ParticipantBack,
    ProtocolError,
    Remove,
    Resume,
    decode_client,
    encode,
)
from server.cluster.bus import (
    Bus,
    BusState,
    StateChange,
    Subscription,
    call_subject,
    participant_subject,
)
from server.cluster.bus import Message as BusMessage
from server.cluster.errors import BusError
from server.cluster.membership import GONE_AFTER, HEARTBEAT_SECONDS, Membership
from server.resume import Member
from server.signalling import (
    CallSession,
    Entitlement,
    Invitation,
    MemoryInvitations,
    MemoryParticipants,
    MemorySessions,
    Participant,
    Presence,
    SessionState,
)
from server.signalling.invitations import token_hash
from server.signalling.permissions import check_allowed
from server.signalling.waiting_room import visible_to
from server.storage import (
    Database,
    LiveMember,
    LiveRecord,
    add_call_invitation,
    adopt_live_calls,
    call_ended,
    call_invitation,
    claim_live_call,
    close_live_call,
    drop_call_invitations,
    get_live_call,
    live_call_owners,
    live_calls_owned_by,
    open_live_call,
    release_live_claim,
    save_live_members,
    take_live_call,
    waiting_live_calls,
)
from server.switchboard import Switchboard

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["SharedCalls", "SharedInvitations", "SharedParticipants", "SharedSessions"]

#: How long a node waits for the owner of a call to answer an accept or a resume.
ASK_SECONDS = 5.0
#: How long a resume waits for the owner of its call to answer or to be known gone.
TAKE_OVER_SECONDS = GONE_AFTER + 4.0
#: A write to PostgreSQL that failed (it restarts, say) is tried again this often, waiting
#: twice as long each time from the first figure up to the second.
WRITE_TRIES, WRITE_BACKOFF = 12, (0.1, 3.0)
#: What a participant sends that must reach the call's owner even while it changes.
SURELY = (Chat, Hangup, CallCancel, Admit, Remove)
#: Where a node tells the others to end a login's, an appointment's or a booth's connections.
CONNECTIONS_SUBJECT = "vb.connections"
#: The queue subjects' last token for calls on no topic and for appointments' lobbies.
ANY_TOPIC, APPOINTMENTS = "any", "appointment"


def _queue_of(session: CallSession) -> str:
    if session.appointment_id is not None:
        return APPOINTMENTS
    return session.topic_id or ANY_TOPIC


def _member(participant: Participant) -> Member:
    return Member(
        participant_id=participant.participant_id,
        role=participant.role,
        principal_id=participant.principal_id,
        name=participant.name,
    )


class Line:
    """Work that must leave this node in order, done by one task; each piece is tried again
    while PostgreSQL is away, and a failure is logged, never raised to whoever put it here."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: asyncio.Queue[tuple[Callable[[], Awaitable[None]], str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def put(self, work: Callable[[], Awaitable[None]], what: str) -> None:
        self._queue.put_nowait((work, what))

    async def settled(self) -> None:
        """Wait until what was put here so far is done (not what comes later)."""
        done = asyncio.get_running_loop().create_future()

        async def mark() -> None:
            if not done.done():
                done.set_result(None)

        self.put(mark, "mark")
        await done

    async def _run(self) -> None:
        while True:
            work, what = await self._queue.get()
            try:
                await _with_retries(work, what)
            except Exception:
                log.exception("%s: %s failed", self.name, what)
            finally:
                self._queue.task_done()


async def _with_retries(work: Callable[[], Awaitable[T]], what: str) -> T:
    """``work()``, tried again while the database fails (not for a broken rule)."""
    delay = WRITE_BACKOFF[0]
    for attempt in range(1, WRITE_TRIES + 1):
        try:
            return await work()
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            if attempt == WRITE_TRIES:
                raise
            log.warning("%s: the database failed (%s); again in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, WRITE_BACKOFF[1])
    raise AssertionError("unreachable")  # pragma: no cover


class RemoteTransport:
    """How the owner of a call reaches a participant connected to another node."""

    __slots__ = ("_calls", "_participant_id")

    def __init__(self, calls: SharedCalls, participant_id: str) -> None:
        self._calls, self._participant_id = calls, participant_id

    def send_text(self, text: str) -> bool:
        self._calls.send(participant_subject(self._participant_id), {"text": text})
        return True

    def close(self, code: int, reason: str) -> None:
        self._calls.send(participant_subject(self._participant_id), {"close": [code, reason]})


class SharedSessions(MemorySessions):
    """This node's calls, in memory as on one server, each also written to PostgreSQL."""

    def __init__(self) -> None:
        super().__init__()
        self.link: SharedCalls | None = None

    def add(self, session: CallSession) -> None:
        super().add(session)
        if self.link is not None:
            self.link.opened(session)

    def remove(self, session_id: str) -> CallSession | None:
        session = super().remove(session_id)
        if session is not None and self.link is not None:
            self.link.closed(session)
        return session

    def changed(self, session: CallSession) -> None:
        if self.link is not None:
            self.link.changed(session)


class SharedParticipants(MemoryParticipants):
    """The participants connected to this node; one that goes stops listening on the bus."""

    def __init__(self) -> None:
        super().__init__()
        self.link: SharedCalls | None = None

    def discard(self, participant: Participant) -> bool:
        gone = super().discard(participant)
        if gone and self.link is not None:
            self.link.unreachable(participant.participant_id)
        return gone


class SharedInvitations(MemoryInvitations):
    """The links into this node's calls, in memory as on one server and written down for the
    other nodes, where the links are opened."""

    def __init__(self) -> None:
        super().__init__()
        self.link: SharedCalls | None = None

    def add(self, token_hash: str, invitation: Invitation) -> None:
        super().add(token_hash, invitation)
        if self.link is not None:
            self.link.invitation_added(token_hash, invitation)


@dataclass
class Figures:
    """What this node's part in the cluster's calls did, for its health answer and logs."""

    forwarded: int = 0
    delivered: int = 0
    accepts_won: int = 0
    accepts_lost: int = 0
    taken_over: int = 0
    resumed_elsewhere: int = 0
    others_waiting: int = 0
    timings: dict[str, float] = field(default_factory=dict)


class SharedCalls:
    """This node's part in the cluster's calls (see the module's documentation)."""

    def __init__(
        self,
        *,
        switchboard: Switchboard,
        bus: Bus,
        db: Database,
        membership: Membership,
    ) -> None:
        if not isinstance(switchboard.sessions, SharedSessions) or not isinstance(
            switchboard.connections, SharedParticipants
        ):
            raise TypeError("a node of a cluster keeps its calls in SharedSessions")
        self._sb = switchboard
        self._sessions: SharedSessions = switchboard.sessions
        self._here: SharedParticipants = switchboard.connections
        self._bus = bus
        self._db = db
        self._membership = membership
        self.node = membership.node_id
        #: The waiting calls other nodes carry, by id (what this node's advisors see of them).
        self._others: dict[str, CallSession] = {}
        #: The queue subject each of this node's published waiting calls went to.
        self._queue_subjects: dict[str, str] = {}
        self._call_subscriptions: dict[str, Subscription] = {}
        self._participant_subscriptions: dict[str, Subscription] = {}
        self._queue_subscription: Subscription | None = None
        self._connections_subscription: Subscription | None = None
        self._writes = Line("cluster-writes")
        self._sends = Line("cluster-sends")
        #: Messages that must not be lost, passed on one at a time as requests.
        self._surely = Line("cluster-surely")
        self._tasks: set[asyncio.Task[None]] = set()
        self.figures = Figures()
        #: Since when this node hears the others (monotonic; again after its bus was away).
        self._listening_since = time.monotonic()

    # ------------------------------------------------------------ start and stop

    async def start(self) -> None:
        self._writes.start()
        self._sends.start()
        self._surely.start()
        self._sessions.link = self
        self._here.link = self
        if isinstance(self._sb.invitations, SharedInvitations):
            self._sb.invitations.link = self
        self._sb.join_cluster(self)
        self._queue_subscription = await self._bus.subscribe("vb.queue.>", self._heard_queue)
        self._connections_subscription = await self._bus.subscribe(
            CONNECTIONS_SUBJECT, self._heard_connections
        )
        self._bus.on_state(self._bus_changed)
        self._membership.on_gone = self.node_gone
        # Calls this node carried before it restarted are its own to carry on.
        await self._adopt(self.node)
        await self._reload()
        self._spawn(self._watch(), "watch the owners of calls")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for line in (self._writes, self._sends, self._surely):
            await line.stop()
        for subscription in (
            *self._call_subscriptions.values(),
            *self._participant_subscriptions.values(),
        ):
            with contextlib.suppress(BusError):
                await subscription.unsubscribe()
        for own in (self._queue_subscription, self._connections_subscription):
            if own is not None:
                with contextlib.suppress(BusError):
                    await own.unsubscribe()

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("%s failed", name)

        task = asyncio.get_running_loop().create_task(run(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ sending on the bus

    def send(self, subject: str, data: dict[str, Any]) -> None:
        """Publish ``data`` on ``subject``, after what this node sent before it."""
        payload = json.dumps(data, separators=(",", ":")).encode()

        async def publish() -> None:
            try:
                await self._bus.publish(subject, payload)
            except BusError as exc:
                log.warning("not sent on %s: %s", subject, exc)

        self._sends.put(publish, f"send on {subject}")

    async def _ask(self, session_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """A request to the owner of ``session_id``; its answer (BusError when none)."""
        await self._sends.settled()  # what this node sent before goes first
        payload = json.dumps(data, separators=(",", ":")).encode()
        answer = await self._bus.request(call_subject(session_id), payload, timeout=ASK_SECONDS)
        reply: dict[str, Any] = json.loads(answer)
        return reply

    # ------------------------------------------------------------ this node's calls (owner)

    def opened(self, session: CallSession) -> None:
        """A call carried here began (or was taken over or rebuilt): its row, and listening
        for what its participants on other nodes send."""
        record = self._record(session)

        async def write() -> None:
            if session.id not in self._call_subscriptions:
                self._call_subscriptions[session.id] = await self._bus.subscribe(
                    call_subject(session.id), self._heard_call
                )
            if not await open_live_call(self._db, record):  # it was there: taken over
                await self._save(record)

        self._writes.put(write, f"session {session.id}: opened")

    def changed(self, session: CallSession) -> None:
        record = self._record(session)
        self._writes.put(lambda: self._save(record), f"session {session.id}: members")

    def closed(self, session: CallSession) -> None:
        async def write() -> None:
            await close_live_call(self._db, session.id)
            await drop_call_invitations(self._db, session.id)
            subscription = self._call_subscriptions.pop(session.id, None)
            if subscription is not None:
                await subscription.unsubscribe()

        self._writes.put(write, f"session {session.id}: closed")

    async def _save(self, record: LiveRecord) -> None:
        await save_live_members(
            self._db,
            record.session_id,
            caller=record.caller,
            advisor=record.advisor if record.state == "active" else None,
            guests=record.guests,
        )

    def _where(self, participant: Participant) -> LiveMember:
        return LiveMember(member=_member(participant), node=participant.node or self.node)

    def _record(self, session: CallSession) -> LiveRecord:
        return LiveRecord(
            session_id=session.id,
            state="active" if session.state is SessionState.ACTIVE else "waiting",
            owner=self.node,
            caller=self._where(session.caller),
            advisor=None if session.advisor is None else self._where(session.advisor),
            guests=tuple(self._where(g) for g in session.guests),
            appointment_id=session.appointment_id,
            advisor_id=session.advisor_id,
            topic_id=session.topic_id,
            topic_name=session.topic_name,
            region=session.region,
            waiting_since=session.waiting_since,
        )

    def _proxy(
        self,
        where: LiveMember,
        session_id: str | None,
        topics: Collection[str] = (),
        invited_to: str | None = None,
    ) -> Participant:
        member = where.member
        return Participant(
            role=member.role,
            principal_id=member.principal_id,
            name=member.name,
            transport=RemoteTransport(self, member.participant_id),
            entitlement=Entitlement(topics=frozenset(topics), invited_to=invited_to),
            participant_id=member.participant_id,
            session_id=session_id,
            node=where.node,
        )

    async def _heard_call(self, message: BusMessage) -> bytes | None:
        """What a participant of a call carried here sent through its own node."""
        session_id = message.subject.rsplit(".", 1)[-1]
        try:
            data = json.loads(message.payload)
            op, node = str(data["op"]), str(data["node"])
        except (ValueError, KeyError, TypeError):
            log.warning("a message on %s that is not one; ignored", message.subject)
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return _refusal(ErrorCode.UNKNOWN_SESSION, "this call has ended")
        try:
            if op == "message":
                self._from_member(session, node, str(data["from"]), str(data["text"]))
                return b'{"ok":true}'  # (answered only when asked: see _forward_surely)
            elif op == "lost":
                member = self._remote_member(session, str(data["from"]), node)
                if member is not None:
                    self._sb.forwarded_lost(member, resumable=bool(data["resumable"]))
            elif op == "accept":
                where = LiveMember.from_json(data["member"])
                advisor = self._proxy(where, None, topics=[str(t) for t in data["topics"]])
                self._sb.handle_forwarded(advisor, CallAccept(session_id=session_id))
                return b'{"ok":true}'
            elif op == "invite":
                token = self._sb.invite(str(data["advisor_id"]), session_id, str(data["label"]))
                await self._writes.settled()  # the link opens on any node once it is answered
                return json.dumps({"token": token}).encode()
            elif op == "join":
                where = LiveMember.from_json(data["member"])
                guest = self._proxy(where, None, invited_to=session_id)
                self._sb.handle_forwarded(guest, LobbyJoin())
                return b'{"ok":true}'
            elif op == "resume":
                where = LiveMember.from_json(data["member"])
                resuming = self._proxy(where, None)
                self._sb.handle_forwarded(
                    resuming, Resume(session_id=session_id, token=str(data["token"]))
                )
                return b'{"ok":true}'
        except ProtocolError as exc:
            return _refusal(exc.code, exc.message)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("a %s on %s that is not one (%s); ignored", op, message.subject, exc)
        return None

    def _remote_member(
        self, session: CallSession, participant_id: str, node: str
    ) -> Participant | None:
        """The participant of ``session`` that ``node`` speaks for; a member this node took
        for gone (it was on a node thought dead, or this node restarted) is reached again."""
        member = session.member(participant_id) or next(
            (p for p in session.pending if p.participant_id == participant_id), None
        )
        if member is None:
            return None
        if member.node == node:
            return member
        if node == self.node:  # sent from here before this node took the call over
            return member if self._here.is_connected(member) else None
        if member.node is None and member.presence is Presence.AWAY and node != self.node:
            return self._revive(session, member, node)
        return None

    def _revive(self, session: CallSession, stand_in: Participant, node: str) -> Participant:
        """A participant this node only expected back speaks through ``node``: a proxy takes
        its place, gets what was held for it, and the others learn that it is back."""
        proxy = self._proxy(LiveMember(_member(stand_in), node), session.id)
        if stand_in in session.pending:
            session.pending[session.pending.index(stand_in)] = proxy
        else:
            session.replace(stand_in, proxy)
        stand_in.gone(f"reached again through node {node}")
        for text in stand_in.take_held():
            proxy.send_text(text)
        self._sessions.changed(session)
        if session.state is SessionState.ACTIVE:
            for other in session.participants():
                if other is not proxy:
                    other.send(
                        ParticipantBack(session_id=session.id, participant_id=proxy.participant_id)
                    )
        log.info("session %s: %s reached again through node %s", session.id, proxy, node)
        return proxy

    def _from_member(self, session: CallSession, node: str, participant_id: str, text: str) -> None:
        sender = self._remote_member(session, participant_id, node)
        if sender is None:
            log.debug(
                "session %s: a message from %s, not in it; ignored", session.id, participant_id
            )
            return
        try:
            message = decode_client(text)
        except ProtocolError as exc:
            sender.send(Error(code=exc.code, message=exc.message))
            return
        try:
            self._sb.handle_forwarded(sender, message)
        except ProtocolError as exc:
            self._sb.signalling_errors += 1
            sender.send(Error(code=exc.code, message=exc.message, ref=message.id))

    # ------------------------------------------------------------ participants here

    def reachable(self, conn: Participant) -> Awaitable[Subscription]:
        """Listen for what the owners of calls send to ``conn`` (connected here)."""
        participant_id = conn.participant_id

        async def deliver(message: BusMessage) -> None:
            self._deliver(participant_id, message.payload)

        return self._bus.subscribe(participant_subject(participant_id), deliver)

    async def _listen_for(self, conn: Participant) -> None:
        if conn.participant_id not in self._participant_subscriptions:
            subscription = await self.reachable(conn)
            self._participant_subscriptions[conn.participant_id] = subscription

    def unreachable(self, participant_id: str) -> None:
        subscription = self._participant_subscriptions.pop(participant_id, None)
        if subscription is not None:
            self._spawn(subscription.unsubscribe(), f"unsubscribe {participant_id[:8]}")

    def _deliver(self, participant_id: str, payload: bytes) -> None:
        conn = self._here.get(participant_id)
        if conn is None:
            return  # gone meanwhile
        try:
            data = json.loads(payload)
        except ValueError:
            log.warning("a delivery for %s that is not one; ignored", conn)
            return
        if "close" in data:
            code, reason = data["close"]
            conn.session_id = None
            conn.close(int(code), str(reason))
            return
        text = str(data["text"])
        self._follow(conn, text)
        self.figures.delivered += 1
        conn.send_text(text)

    @staticmethod
    def _follow(conn: Participant, text: str) -> None:
        """Keep ``conn``'s call as its client learns it from what the call's owner sends."""
        try:
            message = json.loads(text)
            kind, session_id = message.get("type"), message.get("session_id")
        except (ValueError, AttributeError):
            return
        left = (kind == "hangup" and session_id == conn.session_id) or (
            kind == "participant_left" and message.get("participant_id") == conn.participant_id
        )
        if kind in ("call_waiting", "call_started", "resumed"):
            conn.session_id = session_id
        elif left:
            conn.session_id = None

    async def _forward_surely(
        self, conn: Participant, session_id: str, data: dict[str, Any]
    ) -> None:
        """Pass a message on that must not be lost (chat, hanging up, letting someone in or
        out) as a request: while the call's owner is gone and no survivor has taken it over
        yet, ask again until one has (or give up after TAKE_OVER_SECONDS, telling the sender)."""
        started = time.monotonic()
        while True:
            try:
                reply = await self._ask(session_id, data)
                break
            except BusError as exc:
                if time.monotonic() - started > TAKE_OVER_SECONDS:
                    log.warning("session %s: a message not passed on: %s", session_id, exc)
                    conn.send(
                        Error(
                            code=ErrorCode.UNKNOWN_SESSION,
                            message="this call cannot be reached just now; try again",
                        )
                    )
                    return
                await asyncio.sleep(0.25)
        if "error" in reply:
            conn.send(Error(code=_code(reply["error"]), message=str(reply.get("message", ""))))

    def lost(self, conn: Participant, session_id: str, *, resumable: bool) -> None:
        """``conn`` (connected here) lost its connection while in a call another node carries."""
        self.send(
            call_subject(session_id),
            {"op": "lost", "node": self.node, "from": conn.participant_id, "resumable": resumable},
        )

    async def intercept(self, conn: Participant, message: Message) -> bool:
        """Act on ``message`` the cluster's way when it concerns a call another node carries,
        or takes a call (an accept is a claim on the call's row first); False: the switchboard
        acts on it as on one server. Raises ProtocolError to refuse it."""
        if isinstance(message, Resume):
            return await self._resume(conn, message)
        if isinstance(message, CallAccept):
            await self._accept(conn, message.session_id)
            return True
        invited_to = conn.entitlement.invited_to
        if isinstance(message, LobbyJoin) and invited_to is not None:
            if invited_to in self._sessions:
                return False
            await self._join(conn, invited_to)
            return True
        session_id = getattr(message, "session_id", None)
        if session_id is None or session_id != conn.session_id or session_id in self._sessions:
            return False
        if not self._here.is_connected(conn):
            return True
        check_allowed(conn.role, message)
        data = {
            "op": "message",
            "node": self.node,
            "from": conn.participant_id,
            "text": encode(message),
        }
        if isinstance(message, SURELY):
            self._surely.put(lambda: self._forward_surely(conn, session_id, data), "forward")
        else:
            self.send(call_subject(session_id), data)
        self.figures.forwarded += 1
        if isinstance(message, Hangup | CallCancel):
            conn.session_id = None  # as its client assumes: the call is over for it
        return True

    # ------------------------------------------------------------ taking a call

    async def _accept(self, conn: Participant, session_id: str) -> None:
        check_allowed(conn.role, CallAccept(session_id=session_id))
        if not self._here.is_connected(conn):
            return
        if conn.session_id is not None:
            raise ProtocolError(ErrorCode.ALREADY_IN_CALL, "end your current call first")
        session = self._sessions.get(session_id) or self._others.get(session_id)
        if session is None or not visible_to(session, conn):
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, f"no waiting call {session_id}")
        if session.state is not SessionState.WAITING:
            raise ProtocolError(
                ErrorCode.SESSION_NOT_WAITING, "another advisor has already taken this call"
            )
        await self._writes.settled()  # a call begun here has its row
        me = LiveMember(_member(conn), self.node)
        if not await _with_retries(lambda: claim_live_call(self._db, session_id, me), "claim"):
            self.figures.accepts_lost += 1
            raise ProtocolError(
                ErrorCode.SESSION_NOT_WAITING, "another advisor has already taken this call"
            )
        self.figures.accepts_won += 1
        if session_id in self._sessions:
            self._sb.handle(conn, CallAccept(session_id=session_id))
            return
        await self._listen_for(conn)
        try:
            reply = await self._ask(
                session_id,
                {
                    "op": "accept",
                    "node": self.node,
                    "member": me.to_json(),
                    "topics": sorted(conn.entitlement.topics),
                },
            )
        except BusError as exc:
            log.warning("session %s: its owner did not answer an accept: %s", session_id, exc)
            await release_live_claim(self._db, session_id, me)
            raise ProtocolError(
                ErrorCode.UNKNOWN_SESSION, "this call cannot be reached just now; try again"
            ) from None
        _raise_refusal(reply)
        if conn.session_id is None and self._here.is_connected(conn):
            conn.session_id = session_id

    # ------------------------------------------------------------ invitation links

    def invitation_added(self, hashed: str, invitation: Invitation) -> None:
        """A link into a call carried here: written down, so that it opens on any node."""
        left = invitation.expires_at - self._sb.clock.monotonic()
        expires_at = self._sb.clock.now() + timedelta(seconds=left)

        async def write() -> None:
            await add_call_invitation(
                self._db,
                hashed,
                session_id=invitation.session_id,
                label=invitation.label,
                expires_at=expires_at,
            )

        self._writes.put(write, f"session {invitation.session_id}: invitation")

    async def invite(self, advisor_id: str, session_id: str, label: str) -> str:
        """A new link into the running call ``session_id`` of ``advisor_id``, made by the
        call's owner on whichever node; raises ProtocolError as :meth:`Switchboard.invite`."""
        if session_id in self._sessions:
            return self._sb.invite(advisor_id, session_id, label)
        try:
            reply = await self._ask(
                session_id,
                {"op": "invite", "node": self.node, "advisor_id": advisor_id, "label": label},
            )
        except BusError:
            raise ProtocolError(
                ErrorCode.NOT_IN_SESSION, "you have no running call with that id"
            ) from None
        _raise_refusal(reply)
        return str(reply["token"])

    async def invitation(self, token: str) -> Invitation | None:
        """The invitation ``token`` opens, made on whichever node, if its call still runs."""
        found = self._sb.invitation(token)
        if found is not None:
            return found
        stored = await call_invitation(self._db, token_hash(token))
        if stored is None:
            return None
        session_id, label = stored
        record = await get_live_call(self._db, session_id)
        if record is None or record.state != "active":
            return None
        return Invitation(session_id=session_id, label=label, expires_at=0.0)

    async def _join(self, conn: Participant, session_id: str) -> None:
        """``conn``, invited by link, asks the owner of the call to be let in."""
        if conn.session_id is not None:
            raise ProtocolError(ErrorCode.ALREADY_IN_CALL, "you are already waiting or in a call")
        await self._listen_for(conn)
        try:
            reply = await self._ask(
                session_id,
                {
                    "op": "join",
                    "node": self.node,
                    "member": LiveMember(_member(conn), self.node).to_json(),
                },
            )
        except BusError:
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, "this call has ended") from None
        _raise_refusal(reply)

    # ------------------------------------------------------------ resuming

    async def _resume(self, conn: Participant, message: Resume) -> bool:
        session_id = message.session_id
        if session_id in self._sessions:
            return False  # carried here: the switchboard takes it up
        claim = self._sb.calls.tokens.verify(message.token)
        if (
            claim is None
            or claim.session_id != session_id
            or claim.me.role is not conn.role
            or claim.me.principal_id != conn.principal_id
        ):
            raise ProtocolError(ErrorCode.CANNOT_RESUME, "this call cannot be taken up again")
        if conn.session_id is not None:
            raise ProtocolError(ErrorCode.ALREADY_IN_CALL, "you are already waiting or in a call")
        started = time.monotonic()
        while True:
            record = await _with_retries(lambda: get_live_call(self._db, session_id), "resume")
            if record is None:
                if await call_ended(self._db, session_id, claim.me.participant_id):
                    raise ProtocolError(ErrorCode.CANNOT_RESUME, "the call has ended")
                return False  # live nowhere (the whole cluster restarted): rebuilt here
            if record.owner == self.node:
                self._take_over(record)  # this node carried it before it restarted
                return False
            try:
                reply = await self._resume_at_owner(conn, claim.me, message)
            except BusError as exc:
                if record.owner not in self._membership.alive():
                    taken = await take_live_call(
                        self._db, session_id, owner=record.owner, me=self.node
                    )
                    if taken is not None:
                        self._take_over(taken)
                        return False
                    continue  # someone else took it over: ask that one
                if time.monotonic() - started > TAKE_OVER_SECONDS:
                    log.info(
                        "session %s: its owner %s does not answer: %s",
                        session_id,
                        record.owner,
                        exc,
                    )
                    raise ProtocolError(
                        ErrorCode.CANNOT_RESUME, "this call cannot be reached just now; try again"
                    ) from None
                await asyncio.sleep(0.25)
                continue
            _raise_refusal(reply)
            self.figures.resumed_elsewhere += 1
            if self._here.is_connected(conn):
                conn.session_id = session_id
            return True

    async def _resume_at_owner(
        self, conn: Participant, me: Member, message: Resume
    ) -> dict[str, Any]:
        """Ask the owner to take ``conn`` back under its old participant id; ``conn`` listens
        under that id first (the owner's answer and what was held for it come there)."""
        new_id = conn.participant_id
        self._rekey(conn, me.participant_id)
        try:
            await self._listen_for(conn)
            return await self._ask(
                message.session_id,
                {
                    "op": "resume",
                    "node": self.node,
                    "member": LiveMember(me, self.node).to_json(),
                    "token": message.token,
                },
            )
        except BaseException:
            self._rekey(conn, new_id)
            raise
        # (a refusal in the answer: the caller's _raise_refusal; the id stays the old one,
        # which nobody else uses: the owner refused it)

    def _rekey(self, conn: Participant, participant_id: str) -> None:
        if conn.participant_id == participant_id:
            return
        if self._here.discard(conn):
            conn.participant_id = participant_id
            self._here.add(conn)

    # ------------------------------------------------------------ a node died

    def node_gone(self, node: str) -> None:
        """``node`` is silent: its participants in calls carried here are away, and its calls
        are taken over (one survivor gets each)."""
        self._members_gone({node})
        self._spawn(self._adopt(node), f"adopt the calls of {node}")

    def _members_gone(self, nodes: set[str]) -> None:
        """The participants connected through ``nodes`` lost their connections: the calls
        carried here wait for them to resume (on another node)."""
        for session in list(self._sessions.values()):
            for participant in (*session.participants(), *session.pending):
                if participant.node in nodes and participant.presence is Presence.CONNECTED:
                    log.info("%s: its node %s is gone", participant, participant.node)
                    self._sb.forwarded_lost(participant, resumable=True)

    async def _watch(self) -> None:
        """Every second, take over the calls of owners nobody hears: also of a node that died
        before this one ever heard it (it was killed right after it started, say)."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if (
                self._bus.state is not BusState.CONNECTED
                or time.monotonic() - self._listening_since < GONE_AFTER
            ):
                continue  # not listening long enough to know who is silent
            alive = set(self._membership.alive())
            self._members_gone(
                {
                    p.node
                    for session in self._sessions.values()
                    for p in session.participants()
                    if p.node is not None and p.node not in alive
                }
            )
            try:
                owners = await live_call_owners(self._db)
            except SQLAlchemyError as exc:
                log.warning("owners of calls not read: %s", exc)
                continue
            for owner in sorted(owners - alive - {self.node}):
                log.warning("node %s carries calls and is not heard: taking them over", owner)
                await self._adopt(owner)

    async def _adopt(self, node: str) -> None:
        started = time.monotonic()
        records = await _with_retries(
            lambda: adopt_live_calls(self._db, dead=node, me=self.node), f"adopt {node}"
        )
        for record in records:
            self._take_over(record)
        if records:
            self._sb.room.republish()
            self._sb.room.changed()
            took = time.monotonic() - started
            self.figures.timings[f"adopted from {node}"] = took
            log.warning("took over %d call(s) of node %s in %.3f s", len(records), node, took)

    def _take_over(self, record: LiveRecord) -> None:
        """Carry on a call whose owner died (or this node before it restarted)."""
        if record.session_id in self._sessions:
            return
        alive, now = set(self._membership.alive()), self._sb.clock.monotonic()

        def member(where: LiveMember) -> Participant:
            if where.node == self.node:
                here = self._here.get(where.member.participant_id)
                if here is not None:
                    return here
            elif where.node in alive:
                return self._proxy(where, record.session_id)
            return Participant.stand_in(where.member, record.session_id, now)

        caller = member(record.caller)
        session = CallSession(
            id=record.session_id,
            caller=caller,
            advisor=None if record.advisor is None else member(record.advisor),
            appointment_id=record.appointment_id,
            advisor_id=record.advisor_id,
            topic_id=record.topic_id,
            topic_name=record.topic_name,
            region=record.region,
            state=SessionState.ACTIVE if record.state == "active" else SessionState.WAITING,
            waiting_since=record.waiting_since,
        )
        session.guests.extend(member(g) for g in record.guests)
        for participant in session.participants():
            participant.session_id = session.id
        self._others.pop(session.id, None)
        self._sessions.add(session)
        self.figures.taken_over += 1
        log.info("session %s: carried on here", session.id)
        if session.state is SessionState.ACTIVE:
            away = [p for p in session.participants() if p.presence is Presence.AWAY]
            for participant in session.participants():
                for gone in away:
                    if participant is not gone:
                        participant.send(
                            ParticipantAway(
                                session_id=session.id, participant_id=gone.participant_id
                            )
                        )

    # ------------------------------------------------------------ logins, appointments, booths

    def tell_others(self, action: str, args: dict[str, str | None]) -> None:
        self.send(CONNECTIONS_SUBJECT, {"node": self.node, "do": action, "args": args})

    async def _heard_connections(self, message: BusMessage) -> None:
        try:
            data = json.loads(message.payload)
            if data["node"] == self.node:
                return
            self._sb.from_other_node(str(data["do"]), dict(data["args"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("a connection action that is not one (%s); ignored", exc)

    # ------------------------------------------------------------ the waiting room

    def others(self) -> Collection[CallSession]:
        return self._others.values()

    def publish(self, upsert: list[CallSession], remove: list[str]) -> None:
        by_queue: dict[str, tuple[list[dict[str, Any]], list[str]]] = {}
        for session in upsert:
            subject = self._queue_subjects[session.id] = f"vb.queue.{_queue_of(session)}"
            by_queue.setdefault(subject, ([], []))[0].append(_entry(session))
        for session_id in remove:
            subject = self._queue_subjects.pop(session_id, f"vb.queue.{ANY_TOPIC}")
            by_queue.setdefault(subject, ([], []))[1].append(session_id)
        for subject, (entries, removed) in by_queue.items():
            payload = json.dumps(
                {"owner": self.node, "upsert": entries, "remove": removed}, separators=(",", ":")
            ).encode()

            async def publish(subject: str = subject, payload: bytes = payload) -> None:
                try:
                    await self._bus.publish(subject, payload)
                except BusError as exc:  # the others reload from PostgreSQL when it is back
                    log.warning("queue change not sent on %s: %s", subject, exc)

            self._writes.put(publish, f"queue change on {subject}")

    async def _heard_queue(self, message: BusMessage) -> None:
        try:
            data = json.loads(message.payload)
            owner = str(data["owner"])
            if owner == self.node:
                return
            upsert = [_replica(entry, owner) for entry in data["upsert"]]
            remove = [str(s) for s in data["remove"]]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("a queue change on %s that is not one (%s); ignored", message.subject, exc)
            return
        for session in upsert:
            if session.id not in self._sessions:
                self._others[session.id] = session
        for session_id in remove:
            self._others.pop(session_id, None)
        self.figures.others_waiting = len(self._others)
        self._sb.room.changed()

    async def _reload(self) -> None:
        """The other nodes' waiting calls as PostgreSQL has them (at the start, and after the
        bus was away: what was said meanwhile was not heard)."""
        records = await _with_retries(lambda: waiting_live_calls(self._db), "reload")
        self._others = {
            r.session_id: _replica_of(r)
            for r in records
            if r.owner != self.node and r.session_id not in self._sessions
        }
        self.figures.others_waiting = len(self._others)
        self._sb.room.changed()

    def _bus_changed(self, change: StateChange) -> None:
        if change.reconnected:
            self._spawn(self._after_reconnect(), "reload the waiting calls")

    async def _after_reconnect(self) -> None:
        self._listening_since = time.monotonic()
        await self._let_go_of_taken()
        await self._reload()
        self._sb.room.republish()

    async def _let_go_of_taken(self) -> None:
        """After this node's bus was away, the others may have taken its calls over (they
        heard nothing from it): a call whose row names another owner now is that owner's.
        This node lets go of it without ending it; its participants connected here are
        disconnected so that they resume with the new owner."""
        await self._writes.settled()  # the rows of the calls begun meanwhile are written
        mine = list(self._sessions.values())
        owned = await _with_retries(lambda: live_calls_owned_by(self._db, self.node), "owned")
        for session in mine:
            if session.id in owned or self._sessions.get(session.id) is not session:
                continue
            log.warning("session %s: taken over by another node meanwhile; letting go", session.id)
            MemorySessions.remove(self._sessions, session.id)  # not closed: it goes on there
            subscription = self._call_subscriptions.pop(session.id, None)
            if subscription is not None:
                self._spawn(subscription.unsubscribe(), f"unsubscribe {session.id[:8]}")
            for participant in (*session.participants(), *session.pending):
                if participant.node is None and self._here.is_connected(participant):
                    participant.session_id = None
                    participant.close(1012, "the call moved to another server node")


def _refusal(code: ErrorCode, message: str) -> bytes:
    return json.dumps({"error": str(code), "message": message}).encode()


def _code(value: Any) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.INTERNAL


def _raise_refusal(reply: dict[str, Any]) -> None:
    if "error" in reply:
        raise ProtocolError(_code(reply["error"]), str(reply.get("message", "refused")))


def _entry(session: CallSession) -> dict[str, Any]:
    return {
        "s": session.id,
        "c": _member(session.caller).to_json(),
        "ws": session.waiting_since.isoformat(),
        "ap": session.appointment_id,
        "ad": session.advisor_id,
        "t": [session.topic_id, session.topic_name],
        "r": session.region,
    }


def _waiting(
    session_id: str,
    caller: Member,
    owner: str,
    waiting_since: datetime,
    where: tuple[str | None, str | None, str | None, str | None, str | None],
) -> CallSession:
    """Another node's waiting call as this node shows it. ``where``: its appointment, that
    appointment's advisor, its topic's id and name, its region."""
    stand_in = Participant.stand_in(caller, session_id, 0.0)
    stand_in.node = owner
    appointment_id, advisor_id, topic_id, topic_name, region = where
    return CallSession(
        id=session_id,
        caller=stand_in,
        waiting_since=waiting_since,
        owner=owner,
        appointment_id=appointment_id,
        advisor_id=advisor_id,
        topic_id=topic_id,
        topic_name=topic_name,
        region=region,
    )


def _replica(entry: dict[str, Any], owner: str) -> CallSession:
    topic_id, topic_name = entry["t"]
    return _waiting(
        str(entry["s"]),
        Member.from_json(entry["c"]),
        owner,
        datetime.fromisoformat(str(entry["ws"])),
        (
            _text(entry["ap"]),
            _text(entry["ad"]),
            _text(topic_id),
            _text(topic_name),
            _text(entry["r"]),
        ),
    )


def _replica_of(record: LiveRecord) -> CallSession:
    return _waiting(
        record.session_id,
        record.caller.member,
        record.owner,
        record.waiting_since,
        (
            record.appointment_id,
            record.advisor_id,
            record.topic_id,
            record.topic_name,
            record.region,
        ),
    )


def _text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("expected text")
    return value
