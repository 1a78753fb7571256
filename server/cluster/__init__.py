"""Several server nodes: the bus that carries live events between them.

- :mod:`.bus`: the interface (:class:`Bus`, :class:`Subscription`, :class:`Message`, the
  state and its changes) and the subject scheme with its helpers.
- :mod:`.local`: :class:`LocalBus`, in-process, for one server process and for tests.
- :mod:`.natsbus`: :class:`NatsBus`, over NATS, for several nodes.
- :mod:`.choose`: :func:`bus_for`, the bus a configuration asks for.
- :mod:`.errors`: the errors, one root.
"""

from server.cluster.bus import (
    MAX_PAYLOAD,
    SUBSCRIPTION_BACKLOG,
    Bus,
    BusState,
    Handler,
    Message,
    StateChange,
    StateListener,
    Subscription,
    call_subject,
    check_id,
    participant_subject,
    queue_subject,
)
from server.cluster.choose import bus_for
from server.cluster.errors import (
    BacklogFullError,
    BadSettingError,
    BadSubjectError,
    BusError,
    BusRefusedError,
    BusUnavailableError,
    NoRespondersError,
    PayloadTooLargeError,
    RequestTimeoutError,
)
from server.cluster.local import LocalBus
from server.cluster.natsbus import NatsBus

__all__ = [
    "MAX_PAYLOAD",
    "SUBSCRIPTION_BACKLOG",
    "BacklogFullError",
    "BadSettingError",
    "BadSubjectError",
    "Bus",
    "BusError",
    "BusRefusedError",
    "BusState",
    "BusUnavailableError",
    "Handler",
    "LocalBus",
    "Message",
    "NatsBus",
    "NoRespondersError",
    "PayloadTooLargeError",
    "RequestTimeoutError",
    "StateChange",
    "StateListener",
    "Subscription",
    "bus_for",
    "call_subject",
    "check_id",
    "participant_subject",
    "queue_subject",
]
