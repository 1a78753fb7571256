"""Where a node of a cluster keeps its calls, participants and invitation links: in memory as
on one server, each change also told to the node's part in the cluster (written down,
published); and how the owner of a call reaches a participant on another node."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from server.cluster.bus import participant_subject
from server.signalling import (
    CallSession,
    Invitation,
    MemoryInvitations,
    MemoryParticipants,
    MemorySessions,
    Participant,
)

if TYPE_CHECKING:
    from server.cluster.calls.base import NodeBase
    from server.cluster.calls.node import SharedCalls

log = logging.getLogger(__name__)

__all__ = ["RemoteTransport", "SharedInvitations", "SharedParticipants", "SharedSessions"]


class RemoteTransport:
    """How the owner of a call reaches a participant connected to another node."""

    __slots__ = ("_calls", "_participant_id")

    def __init__(self, calls: NodeBase, participant_id: str) -> None:
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
