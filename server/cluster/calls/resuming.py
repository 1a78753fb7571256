"""A participant connected here takes up a call another node carries: the resume goes to the
call's owner (the connection listens under its old participant id first); when the owner is
gone, it waits until a survivor took the call over, or takes it over itself."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from protocol import ErrorCode, ProtocolError, Resume
from server.cluster.calls.delivery import Delivery
from server.cluster.calls.line import with_retries
from server.cluster.calls.wire import TAKE_OVER_SECONDS, raise_refusal
from server.cluster.errors import BusError
from server.resume import Member
from server.signalling import Participant
from server.storage import LiveMember, call_ended, get_live_call, take_live_call

log = logging.getLogger(__name__)

__all__ = ["Resuming"]


class Resuming(Delivery):
    """Resuming calls carried elsewhere."""

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
            record = await with_retries(lambda: get_live_call(self._db, session_id), "resume")
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
            raise_refusal(reply)
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
