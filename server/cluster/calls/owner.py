"""The owner's side: a call carried by this node is written down when it begins, changes and
ends, and what its participants connected to other nodes send reaches it on
``vb.call.<session_id>`` (messages, a lost connection; requests: accept, resume, invite,
join)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from protocol import (
    CallAccept,
    Error,
    ErrorCode,
    LobbyJoin,
    ParticipantBack,
    ProtocolError,
    Resume,
    decode_client,
)
from server.cluster.bus import Message as BusMessage
from server.cluster.bus import call_subject
from server.cluster.calls.base import NodeBase
from server.cluster.calls.wire import member_of, refusal
from server.signalling import CallSession, Invitation, Participant, Presence, SessionState
from server.storage import (
    LiveMember,
    LiveRecord,
    add_call_invitation,
    close_live_call,
    open_live_call,
    save_live_members,
)

log = logging.getLogger(__name__)

__all__ = ["Owner"]


class Owner(NodeBase):
    """The calls carried here: their rows, and what their participants on other nodes send."""

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
            return refusal(ErrorCode.UNKNOWN_SESSION, "this call has ended")
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
            return refusal(exc.code, exc.message)
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
        proxy = self._proxy(LiveMember(member_of(stand_in), node), session.id)
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
