"""The bus of one server process: NATS core's semantics, in memory.

The embedded default (no [cluster] section) and the stand-in for tests of what uses a bus. It
matches patterns, picks one member of each queue group at random and answers requests as
:class:`~server.cluster.natsbus.NatsBus` does; it is never disconnected.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets

from server.cluster.bus import (
    Bus,
    BusState,
    Message,
    Subscription,
    check_subject,
    matches,
)
from server.cluster.errors import BusUnavailableError

log = logging.getLogger(__name__)

#: The first token of the subjects requests are answered on (as NATS's inboxes).
INBOX = "_INBOX"


class LocalBus(Bus):
    """An in-process bus; ``name`` is who it is in the logs."""

    def __init__(self, *, name: str = "local") -> None:
        super().__init__(name=name)
        # In the order they were made, as a NATS server keeps them.
        self._routes: list[Subscription] = []
        # Requests waiting for an answer, by their inbox subject.
        self._waiting: dict[str, asyncio.Future[bytes]] = {}

    async def start(self) -> None:
        if self.state is BusState.CLOSED:
            raise BusUnavailableError(f"bus {self.name} is closed: make a new one")
        self._set_state(BusState.CONNECTED, "in-process")

    async def publish(self, subject: str, payload: bytes) -> None:
        check_subject(subject)
        self._check_payload(subject, payload)
        self._check_open()
        waiting = self._waiting.get(subject)
        if waiting is not None:
            if not waiting.done():
                waiting.set_result(payload)
            return
        self._route(Message(subject, payload))

    async def request(
        self,
        subject: str,
        payload: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 (the request's own deadline, as in NATS)
    ) -> bytes:
        check_subject(subject)
        self._check_payload(subject, payload)
        self._check_open()
        inbox = f"{INBOX}.{secrets.token_hex(11)}"
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[inbox] = answer
        try:
            if not self._route(Message(subject, payload, inbox)):
                raise self._no_responders(subject)
            try:
                return await asyncio.wait_for(answer, timeout)
            except TimeoutError:
                raise self._timed_out(subject, timeout) from None
        finally:
            del self._waiting[inbox]

    def _route(self, message: Message) -> int:
        """Offer ``message`` to each matching subscription and one of each queue group;
        how many got it."""
        chosen: list[Subscription] = []
        groups: dict[str, list[Subscription]] = {}
        for subscription in self._routes:
            if matches(subscription.pattern, message.subject):
                if subscription.queue is None:
                    chosen.append(subscription)
                else:
                    groups.setdefault(subscription.queue, []).append(subscription)
        chosen += (random.choice(members) for members in groups.values())
        for subscription in chosen:
            subscription.offer(message)
        return len(chosen)

    async def _subscribe(self, subscription: Subscription) -> None:
        self._routes.append(subscription)

    async def _unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._routes:
            self._routes.remove(subscription)

    async def _answer(self, reply: str, payload: bytes) -> None:
        waiting = self._waiting.get(reply)
        # A requester that gave up is gone; the answer is dropped, as NATS drops it.
        if waiting is not None and not waiting.done():
            waiting.set_result(payload)

    async def _disconnect(self) -> None:
        """Nothing to let go of; requests still waiting end by their timeout, as over NATS."""
