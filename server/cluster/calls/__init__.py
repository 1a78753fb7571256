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

The parts, one a module (each a side of :class:`SharedCalls`, put together in :mod:`.node`):

- :mod:`.wire`: the constants, members as they travel, refusals; :mod:`.line`: ordered work,
  tried again while the database is away; :mod:`.stores`: the switchboard's stores that tell of
  their changes, and the transport to a participant on another node; :mod:`.base`: what the
  parts share (sending, asking, proxies, rows).
- :mod:`.owner`: the calls carried here; :mod:`.member`: the participants connected here in
  calls carried elsewhere (passing on what they send, accepting, invitations), with
  :mod:`.delivery` (what their calls' owners send them) and :mod:`.resuming`;
  :mod:`.takeover`: the calls of a node that died; :mod:`.queue`: the waiting room across nodes.
"""

from server.cluster.calls.node import SharedCalls
from server.cluster.calls.stores import SharedInvitations, SharedParticipants, SharedSessions

__all__ = ["SharedCalls", "SharedInvitations", "SharedParticipants", "SharedSessions"]
