"""Errors of the relay pool, under one root; a probe's error is also a ``ConnectionError``::

RelayPoolError
└── RelayProbeError   (also ConnectionError)   a relay did not allocate: no answer,
                                               refused, unreachable (the message says which)
"""

from __future__ import annotations

__all__ = ["RelayPoolError", "RelayProbeError"]


class RelayPoolError(Exception):
    """Root of the errors of :mod:`server.relay_pool`."""


class RelayProbeError(RelayPoolError, ConnectionError):
    """A relay failed a probe; the message says what was tried and what happened."""
