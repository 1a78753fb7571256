"""Errors raised by the bus (:mod:`server.cluster`).

Every error has one root, and each also inherits the built-in that describes it, so callers
may catch either::

    BusError
    ├── BadSubjectError       (also ValueError)       a subject, wildcard pattern, queue group
    │                                                 or id outside the scheme of :mod:`.bus`
    ├── PayloadTooLargeError  (also ValueError)       a payload over MAX_PAYLOAD (1 MiB)
    ├── BadSettingError       (also ValueError)       the token or CA file of [cluster] cannot
    │                                                 be used
    ├── NoRespondersError     (also LookupError)      a request that nobody subscribes to
    ├── RequestTimeoutError   (also TimeoutError)     a request whose answer did not come in
    │                                                 time
    ├── BacklogFullError      (also BufferError)      disconnected, and the messages waiting to
    │                                                 be sent already fill the pending buffer:
    │                                                 this one is dropped
    └── BusUnavailableError   (also ConnectionError)  no NATS server answered at start, or the
        │                                             bus is not started or closed
        └── BusRefusedError                           a NATS server refused this node: its
                                                      token or the TLS handshake

NATS client errors are converted where they arise (:mod:`.natsbus`), ``raise ... from exc``.
Messages are written for the technician who reads the log; none holds the token.
"""

from __future__ import annotations

__all__ = [
    "BacklogFullError",
    "BadSettingError",
    "BadSubjectError",
    "BusError",
    "BusRefusedError",
    "BusUnavailableError",
    "NoRespondersError",
    "PayloadTooLargeError",
    "RequestTimeoutError",
]


class BusError(Exception):
    """Root of all errors raised by :mod:`server.cluster`."""


class BadSubjectError(BusError, ValueError):
    """A subject, pattern, queue group or id that the subject scheme does not allow."""


class PayloadTooLargeError(BusError, ValueError):
    """A payload larger than a message may be."""


class BadSettingError(BusError, ValueError):
    """A file named in the [cluster] section cannot be read or used."""


class NoRespondersError(BusError, LookupError):
    """A request to a subject that nobody subscribes to."""


class RequestTimeoutError(BusError, TimeoutError):
    """A request whose answer did not come within its timeout."""


class BacklogFullError(BusError, BufferError):
    """The bus is disconnected and its pending buffer is full; the message was not kept."""


class BusUnavailableError(BusError, ConnectionError):
    """The bus cannot carry messages: not started, closed, or no server answered at start."""


class BusRefusedError(BusUnavailableError):
    """A NATS server refused this node (a wrong token, or a certificate that did not verify)."""
