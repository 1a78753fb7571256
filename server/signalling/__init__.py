"""The switchboard's parts, one concept a module; :mod:`server.switchboard` puts them together.

- :mod:`.participants`: a connected client, its entitlement and presence (connected, away,
  gone); :mod:`.transport`: how messages reach it; :mod:`.clock`: the time it reads.
- :mod:`.connections`: connections coming and going, and the logins they live by;
  :mod:`.permissions`: what each role may send.
- :mod:`.sessions`: a call from waiting to ended and who is in it.
- :mod:`.waiting_room`: the queue as advisors and those waiting see it.
- :mod:`.calls`: waiting, being accepted, leaving and ending.
- :mod:`.invitations` and :mod:`.invited`: links into a running call, admitting, removing.
- :mod:`.tokens`, :mod:`.endings` and :mod:`.resuming`: taking a call up again after a lost
  connection or a restart of the server, and what ended staying ended.
- :mod:`.relay`: negotiation, statistics and chat between the participants of a call.
- :mod:`.fakes`: a clock and a transport for tests.

The stores (participants, sessions, endings, invitations) are abstract with in-memory
implementations, so that a cluster of servers can later share them.
"""

from server.signalling.calls import Calls, MediaPolicy
from server.signalling.clock import Clock, SystemClock
from server.signalling.connections import Connections
from server.signalling.endings import WHOLE_CALL, EndingStore, MemoryEndings
from server.signalling.invitations import (
    INVITATION_SECONDS,
    MAX_INVITATIONS,
    Invitation,
    InvitationStore,
    MemoryInvitations,
)
from server.signalling.invited import Invited
from server.signalling.participants import (
    ClientStatus,
    Entitlement,
    FleetObserver,
    LoginLease,
    MemoryParticipants,
    Participant,
    ParticipantStore,
    Presence,
    new_id,
)
from server.signalling.permissions import ALLOWED, check_allowed
from server.signalling.relay import Relay
from server.signalling.resuming import RESUME_GRACE_SECONDS, Resumption
from server.signalling.sessions import CallSession, MemorySessions, SessionState, SessionStore
from server.signalling.tokens import ResumeTokens
from server.signalling.transport import OUTBOX_LIMIT, UNCONNECTED, Outbox, Transport
from server.signalling.waiting_room import DEFAULT_WAIT_SECONDS, WaitingRoom

__all__ = [
    "ALLOWED",
    "DEFAULT_WAIT_SECONDS",
    "INVITATION_SECONDS",
    "MAX_INVITATIONS",
    "OUTBOX_LIMIT",
    "RESUME_GRACE_SECONDS",
    "UNCONNECTED",
    "WHOLE_CALL",
    "CallSession",
    "Calls",
    "ClientStatus",
    "Clock",
    "Connections",
    "EndingStore",
    "Entitlement",
    "FleetObserver",
    "Invitation",
    "InvitationStore",
    "Invited",
    "LoginLease",
    "MediaPolicy",
    "MemoryEndings",
    "MemoryInvitations",
    "MemoryParticipants",
    "MemorySessions",
    "Outbox",
    "Participant",
    "ParticipantStore",
    "Presence",
    "Relay",
    "ResumeTokens",
    "Resumption",
    "SessionState",
    "SessionStore",
    "SystemClock",
    "Transport",
    "WaitingRoom",
    "check_allowed",
    "new_id",
]
