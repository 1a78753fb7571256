"""Invitation links: an advisor invites someone (an interpreter, say) into a running call.

Only a hash of each link's token is kept, with the call and the advisor's label. Opening a
link gives the citizen a guest pass for that call (``server/join.py``); on its page it asks to
join, and the call's advisor admits or removes it (:mod:`server.signalling.calls`).
:class:`InvitationStore` is an in-memory dictionary here, something shared in a later cluster
(a link made on one node is opened on any).
"""

from __future__ import annotations

import hashlib
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass

from protocol import ErrorCode, ProtocolError

#: Open invitations one call may have at once, and how long a link is valid at most.
MAX_INVITATIONS = 5
INVITATION_SECONDS = 4 * 3600.0


@dataclass(frozen=True)
class Invitation:
    """A link to join one running call."""

    session_id: str
    label: str
    expires_at: float  # monotonic


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class InvitationStore(ABC):
    @abstractmethod
    def add(self, token_hash: str, invitation: Invitation) -> None: ...

    @abstractmethod
    def get(self, token_hash: str) -> Invitation | None: ...

    @abstractmethod
    def count_for(self, session_id: str) -> int:
        """The open invitations of the call."""

    @abstractmethod
    def drop_expired(self, now: float) -> None: ...

    @abstractmethod
    def drop_for(self, session_id: str) -> None:
        """Forget the call's invitations (it ended)."""


class MemoryInvitations(InvitationStore):
    def __init__(self) -> None:
        self._by_hash: dict[str, Invitation] = {}

    def add(self, token_hash: str, invitation: Invitation) -> None:
        self._by_hash[token_hash] = invitation

    def get(self, token_hash: str) -> Invitation | None:
        return self._by_hash.get(token_hash)

    def count_for(self, session_id: str) -> int:
        return sum(inv.session_id == session_id for inv in self._by_hash.values())

    def drop_expired(self, now: float) -> None:
        for key in [k for k, inv in self._by_hash.items() if inv.expires_at <= now]:
            del self._by_hash[key]

    def drop_for(self, session_id: str) -> None:
        for key in [k for k, inv in self._by_hash.items() if inv.session_id == session_id]:
            del self._by_hash[key]


def new_invitation(store: InvitationStore, session_id: str, label: str, now: float) -> str:
    """A new link's token for the call; refused when it has enough open ones."""
    store.drop_expired(now)
    if store.count_for(session_id) >= MAX_INVITATIONS:
        raise ProtocolError(ErrorCode.CALL_FULL, "this call has enough open invitations")
    token = secrets.token_urlsafe(24)
    store.add(
        token_hash(token),
        Invitation(session_id=session_id, label=label, expires_at=now + INVITATION_SECONDS),
    )
    return token


def open_invitation(store: InvitationStore, token: str, now: float) -> Invitation | None:
    """The invitation ``token`` opens, if it has not expired."""
    invitation = store.get(token_hash(token))
    if invitation is None or invitation.expires_at <= now:
        return None
    return invitation
