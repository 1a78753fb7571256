"""The participant's side: a client connected to this node in a call another node carries.
What the owner sends it arrives on ``vb.participant.<id>``; what it sends is passed on to
``vb.call.<session_id>`` (what must not be lost as a request, asked again while the owner
changes); taking a call is a claim on its row first; a resume or an invitation goes to the
call's owner, or the call is taken over when its owner is gone."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from protocol import (
    CallAccept,
    CallCancel,
    Error,
    ErrorCode,
    Hangup,
    LobbyJoin,
    Message,
    ProtocolError,
    Resume,
    encode,
)
from server.cluster.bus import call_subject
from server.cluster.calls.line import with_retries
from server.cluster.calls.resuming import Resuming
from server.cluster.calls.wire import (
    SURELY,
    TAKE_OVER_SECONDS,
    error_code,
    member_of,
    raise_refusal,
)
from server.cluster.errors import BusError
from server.signalling import Invitation, Participant, SessionState
from server.signalling.invitations import token_hash
from server.signalling.permissions import check_allowed
from server.signalling.waiting_room import visible_to
from server.storage import (
    LiveMember,
    call_invitation,
    claim_live_call,
    get_live_call,
    release_live_claim,
)

log = logging.getLogger(__name__)

__all__ = ["Members"]


class Members(Resuming):
    """The participants connected here, in calls carried on other nodes."""

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
            conn.send(Error(code=error_code(reply["error"]), message=str(reply.get("message", ""))))

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
        me = LiveMember(member_of(conn), self.node)
        if not await with_retries(lambda: claim_live_call(self._db, session_id, me), "claim"):
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
        raise_refusal(reply)
        if conn.session_id is None and self._here.is_connected(conn):
            conn.session_id = session_id

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
        raise_refusal(reply)
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
                    "member": LiveMember(member_of(conn), self.node).to_json(),
                },
            )
        except BusError:
            raise ProtocolError(ErrorCode.UNKNOWN_SESSION, "this call has ended") from None
        raise_refusal(reply)
