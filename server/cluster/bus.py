"""The bus: how the server's live events reach every node.

One server process uses :class:`~server.cluster.local.LocalBus`, in-process; several nodes
behind a load balancer use :class:`~server.cluster.natsbus.NatsBus`, over NATS. Both have the
semantics of NATS core: a message goes to every subscription whose pattern matches its subject
at the time it is published, and to one member of each queue group; nothing is stored for a
subscriber that comes later or is away. Payloads are bytes; what they mean is the caller's.

Subjects
--------
Tokens separated by dots, each of letters, digits, ``_`` and ``-`` only (nothing that could
change the meaning of a NATS protocol line or of a pattern). Patterns for :meth:`Bus.subscribe`
may also use ``*`` for exactly one token and ``>`` as the last token for one or more. The
server's subjects, made by the helpers below from ids checked against the same alphabet::

    vb.participant.<participant_id>   to one participant, on whichever node holds its connection
    vb.call.<session_id>              to every node with a participant of that call
    vb.queue.<queue_id>               to every node with an advisor serving that waiting queue

(``vb.call.*`` is every call, ``vb.>`` everything of this server.) Replies to requests go to
inbox subjects the bus makes itself.

Delivery
--------
Each subscription has its own bounded inbox and one task that runs its handler for one message
at a time, in the order they came: a publisher never runs a handler itself, a slow handler
delays only its own subscription, and one whose inbox is full (:data:`SUBSCRIPTION_BACKLOG`)
loses the newest messages, logged. A handler that raises is logged and gets the next message.
A handler answers a request by returning bytes; what it returns for a plain message is ignored.

State
-----
:class:`BusState` changes in one place (:meth:`Bus._set_state`), logged ``old -> new``, and
each change goes to the listeners given to :meth:`Bus.on_state`. A change from
``disconnected`` to ``connected`` (:attr:`StateChange.reconnected`) means messages may have
been missed meanwhile: a listener resynchronises what it keeps from other nodes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from server.cluster.errors import (
    BadSubjectError,
    BusUnavailableError,
    NoRespondersError,
    PayloadTooLargeError,
    RequestTimeoutError,
)

log = logging.getLogger(__name__)

__all__ = [
    "MAX_PAYLOAD",
    "PREFIX",
    "SUBSCRIPTION_BACKLOG",
    "Bus",
    "BusState",
    "Handler",
    "Message",
    "StateChange",
    "StateListener",
    "Subscription",
    "call_subject",
    "check_id",
    "check_pattern",
    "check_queue",
    "check_subject",
    "matches",
    "participant_subject",
    "queue_subject",
]

#: Messages a subscription holds while its handler is busy; beyond, the newest are dropped
#: (logged at the first and then every thousandth).
SUBSCRIPTION_BACKLOG = 10_000

#: The largest payload, NATS's default ``max_payload``; both buses refuse larger ones.
MAX_PAYLOAD = 1024 * 1024

#: The first token of every subject of this server.
PREFIX = "vb"

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def check_id(value: str) -> str:
    """``value`` as one subject token: an id of letters, digits, ``_`` and ``-``."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise BadSubjectError(
            f"{value!r} cannot be part of a subject: use letters, digits, _ and -"
        )
    return value


def check_subject(subject: str) -> str:
    """``subject`` if it is a subject to publish to (no wildcards)."""
    if not isinstance(subject, str) or not all(_TOKEN.fullmatch(t) for t in subject.split(".")):
        raise BadSubjectError(
            f"{subject!r} is not a subject: tokens of letters, digits, _ and - separated by dots"
        )
    return subject


def check_pattern(pattern: str) -> str:
    """``pattern`` if it is a subject to subscribe to: ``*`` one token, a last ``>`` the rest."""
    tokens = pattern.split(".") if isinstance(pattern, str) else [""]
    for index, part in enumerate(tokens):
        if part == ">" and index == len(tokens) - 1:
            continue
        if part != "*" and not _TOKEN.fullmatch(part):
            raise BadSubjectError(
                f"{pattern!r} is not a subject pattern: tokens of letters, digits, _ and -, "
                "or * for one token, or > as the last token, separated by dots"
            )
    return pattern


def check_queue(queue: str) -> str:
    """``queue`` if it can name a queue group."""
    if not isinstance(queue, str) or not _TOKEN.fullmatch(queue):
        raise BadSubjectError(f"{queue!r} cannot name a queue group: use letters, digits, _ and -")
    return queue


def matches(pattern: str, subject: str) -> bool:
    """Whether ``subject`` matches the subscription ``pattern``, as NATS matches them."""
    want, have = pattern.split("."), subject.split(".")
    for index, part in enumerate(want):
        if part == ">":
            return len(have) > index
        if index >= len(have) or part not in ("*", have[index]):
            return False
    return len(want) == len(have)


def participant_subject(participant_id: str) -> str:
    """Messages to one participant, on whichever node holds its connection."""
    return f"{PREFIX}.participant.{check_id(participant_id)}"


def call_subject(session_id: str) -> str:
    """Events of one call, for every node with a participant in it."""
    return f"{PREFIX}.call.{check_id(session_id)}"


def queue_subject(queue_id: str) -> str:
    """Events of one waiting queue, for every node with an advisor serving it."""
    return f"{PREFIX}.queue.{check_id(queue_id)}"


@dataclass(frozen=True, slots=True)
class Message:
    """One message as a handler gets it; ``reply`` is set when it is a request."""

    subject: str
    payload: bytes
    reply: str | None = None


#: What a subscription runs for each message; bytes returned answer a request.
Handler = Callable[[Message], Awaitable[bytes | None]]


class BusState(StrEnum):
    """Where the bus is; only ``connected`` carries messages between nodes at once."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class StateChange:
    """One change of a bus's state, as its listeners get it."""

    old: BusState
    new: BusState

    @property
    def reconnected(self) -> bool:
        """Back after an outage: what other nodes sent meanwhile may be lost."""
        return self.old is BusState.DISCONNECTED and self.new is BusState.CONNECTED


#: Called in the event loop for each state change; it should not block.
StateListener = Callable[[StateChange], None]


class Subscription:
    """One subscription: its pattern, its queue group, its inbox and the task that empties it.

    Made by :meth:`Bus.subscribe`; :meth:`unsubscribe` ends it.
    """

    def __init__(self, bus: Bus, pattern: str, handler: Handler, queue: str | None) -> None:
        self.bus = bus
        self.pattern = pattern
        self.queue = queue
        #: Messages lost because the inbox was full.
        self.dropped = 0
        self._handler = handler
        self._inbox: asyncio.Queue[Message] = asyncio.Queue(SUBSCRIPTION_BACKLOG)
        self._active = True
        self._worker = asyncio.get_running_loop().create_task(
            self._deliver(), name=f"bus {bus.name}: {self}"
        )

    def __str__(self) -> str:
        return self.pattern if self.queue is None else f"{self.pattern} (queue {self.queue})"

    @property
    def active(self) -> bool:
        return self._active

    def offer(self, message: Message) -> None:
        """Queue ``message`` for the handler; never waits."""
        if not self._active:
            return
        try:
            self._inbox.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            # A stuck handler would otherwise log every message it misses.
            if self.dropped % 1000 != 1:
                return
            log.warning(
                "bus %s: %s is %d messages behind, a message on %s is dropped (%d so far)",
                self.bus.name,
                self,
                SUBSCRIPTION_BACKLOG,
                message.subject,
                self.dropped,
            )

    async def unsubscribe(self) -> None:
        """No message reaches the handler once this returns; safe to call twice, and from
        the handler itself (which then finishes the message it has)."""
        if not self._active:
            return
        self._active = False
        self.bus._forget(self)
        try:
            await self.bus._unsubscribe(self)
        finally:
            await self._stop()

    async def _stop(self) -> None:
        self._active = False
        if self._worker is not asyncio.current_task():
            self._worker.cancel()
            await asyncio.wait([self._worker])

    async def _deliver(self) -> None:
        while self._active:
            message = await self._inbox.get()
            try:
                answer = await self._handler(message)
            except Exception:
                log.exception(
                    "bus %s: the handler of %s failed on a message on %s",
                    self.bus.name,
                    self,
                    message.subject,
                )
                continue
            if message.reply is not None and answer is not None:
                try:
                    await self.bus._answer(message.reply, answer)
                except Exception:
                    log.exception(
                        "bus %s: the answer of %s to a request on %s was not sent",
                        self.bus.name,
                        self,
                        message.subject,
                    )


class Bus(ABC):
    """Publish, subscribe and request between the server's nodes (see the module's text).

    :meth:`start` before use, :meth:`close` at the end (safe twice).
    """

    def __init__(self, *, name: str) -> None:
        #: Who this is in the logs: the node's id.
        self.name = name
        self._state = BusState.NEW
        self._listeners: list[StateListener] = []
        self._subscriptions: set[Subscription] = set()

    @property
    def state(self) -> BusState:
        return self._state

    def on_state(self, listener: StateListener) -> None:
        """Call ``listener`` with each later change of state."""
        self._listeners.append(listener)

    @abstractmethod
    async def start(self) -> None:
        """Connect; :class:`~.errors.BusUnavailableError` (or ``BusRefusedError``) if not."""

    @abstractmethod
    async def publish(self, subject: str, payload: bytes) -> None:
        """Send ``payload`` to every subscription matching ``subject``; does not wait for them.

        While disconnected the message waits in a bounded buffer, sent on reconnecting;
        :class:`~.errors.BacklogFullError` when that is full.
        """

    async def subscribe(
        self, pattern: str, handler: Handler, *, queue: str | None = None
    ) -> Subscription:
        """Run ``handler`` for each message matching ``pattern`` (wildcards ``*``, ``>``).

        Subscriptions with the same ``queue`` share the messages: each goes to one of them.
        Once this returns, messages any node publishes reach the subscription.
        """
        check_pattern(pattern)
        if queue is not None:
            check_queue(queue)
        self._check_open()
        subscription = Subscription(self, pattern, handler, queue)
        self._subscriptions.add(subscription)
        try:
            await self._subscribe(subscription)
        except BaseException:
            self._forget(subscription)
            await subscription._stop()
            raise
        return subscription

    @abstractmethod
    async def request(
        self,
        subject: str,
        payload: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 (the request's own deadline, as in NATS)
    ) -> bytes:
        """The first answer to ``payload`` sent to ``subject``.

        :class:`~.errors.NoRespondersError` at once when nobody subscribes to it;
        :class:`~.errors.RequestTimeoutError` when no answer comes within ``timeout`` seconds.
        """

    async def close(self) -> None:
        """End every subscription and disconnect; safe to call twice. A request still
        waiting ends by its timeout."""
        if self._state is BusState.CLOSED:
            return
        for subscription in list(self._subscriptions):
            await subscription.unsubscribe()
        await self._disconnect()
        self._set_state(BusState.CLOSED)

    # The implementations' part.

    @abstractmethod
    async def _subscribe(self, subscription: Subscription) -> None:
        """Start routing matching messages to ``subscription.offer``."""

    @abstractmethod
    async def _unsubscribe(self, subscription: Subscription) -> None:
        """Stop routing messages to ``subscription``."""

    @abstractmethod
    async def _answer(self, reply: str, payload: bytes) -> None:
        """Send a handler's answer to the requester's ``reply`` subject."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Let go of the connection (subscriptions are already ended)."""

    def _forget(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def _check_payload(self, subject: str, payload: bytes) -> None:
        if len(payload) > MAX_PAYLOAD:
            raise PayloadTooLargeError(
                f"bus {self.name}: a message on {subject} has {len(payload)} bytes, "
                f"more than the {MAX_PAYLOAD} a message may have"
            )

    def _no_responders(self, subject: str) -> NoRespondersError:
        return NoRespondersError(f"bus {self.name}: nobody answers requests on {subject}")

    def _timed_out(self, subject: str, timeout: float) -> RequestTimeoutError:
        return RequestTimeoutError(
            f"bus {self.name}: no answer to a request on {subject} within {timeout:g} s"
        )

    def _check_open(self) -> None:
        if self._state in (BusState.NEW, BusState.CLOSED):
            raise BusUnavailableError(f"bus {self.name} is {self._state}: start it before use")

    def _set_state(self, state: BusState, why: str = "") -> None:
        """The one place the state changes: logged ``old -> new``, then told to listeners."""
        old = self._state
        if state is old:
            return
        self._state = state
        log.info("bus %s: %s -> %s%s", self.name, old, state, f" ({why})" if why else "")
        change = StateChange(old, state)
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                log.exception("bus %s: a listener failed on %s -> %s", self.name, old, state)
