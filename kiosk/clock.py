"""Whether the booth's clock can be trusted, and what a certificate refused because of it means.

A Raspberry Pi has no real-time clock: until a time server has set it, its clock starts where
the last boot left it, or at 1970. TLS then fails with "certificate is not yet valid", which
reads like a problem with the server's certificate. The booth reads, without root, what Linux
says of its clock: the kernel's synchronisation status (``adjtimex`` with no changes; a time
daemon clears ``STA_UNSYNC`` once it has set the clock), or systemd-timesyncd's flag file, and
checks the year against the date this code was released: a clock before that is not set, whatever
the kernel says. A connection refused because the certificate is not yet valid while the clock
is not synchronised is reported as "clock not set" (:func:`explain_connection_error`).
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

log = logging.getLogger(__name__)

#: No clock that reads earlier than this is set: this software did not exist then.
EARLIEST = datetime(2026, 1, 1, tzinfo=UTC)
#: systemd-timesyncd makes this file once it has synchronised the clock (since boot).
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
#: ``adjtimex``'s answer when the clock is not synchronised (``STA_UNSYNC``, or an error).
TIME_ERROR = 5
#: OpenSSL's verify code for a certificate whose notBefore lies in the future.
CERT_NOT_YET_VALID = 9
#: Comfortably more than the kernel's ``struct timex`` (208 bytes on 64-bit Linux).
_TIMEX_SIZE = 512


class ClockState(StrEnum):
    SYNCHRONISED = "synchronised"
    UNSYNCHRONISED = "unsynchronised"


@dataclass(frozen=True)
class ClockReading:
    """The clock's state at one moment, and why it is judged so."""

    state: ClockState
    #: What the clock said (UTC).
    now: datetime
    #: Why: "the kernel says so", "before 2026-01-01: never set", ...
    reason: str

    @property
    def synchronised(self) -> bool:
        return self.state is ClockState.SYNCHRONISED

    def describe(self) -> str:
        """One line for technician mode: the state, the time, and why."""
        return f"{self.state}, {self.now:%Y-%m-%d %H:%M} UTC ({self.reason})"


def kernel_clock_status() -> int | None:
    """``adjtimex`` asked for nothing but its status (no root needed); None where unavailable.

    0 to 4: the kernel's clock is synchronised; :data:`TIME_ERROR`: it is not.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return None
    timex = ctypes.create_string_buffer(_TIMEX_SIZE)  # modes = 0: read only
    result = int(adjtimex(timex))
    return None if result < 0 else result


def read_clock(
    *,
    now: Callable[[], float] = time.time,
    kernel_status: Callable[[], int | None] = kernel_clock_status,
    timesync_flag: Path = TIMESYNC_FLAG,
    earliest: datetime = EARLIEST,
) -> ClockReading:
    """The clock's state now. Never raises: a status that cannot be read counts as unknown."""
    moment = datetime.fromtimestamp(now(), UTC)
    if moment < earliest:
        return ClockReading(
            ClockState.UNSYNCHRONISED, moment, f"before {earliest:%Y-%m-%d}: never set"
        )
    status = kernel_status()
    if status is not None and status != TIME_ERROR:
        return ClockReading(ClockState.SYNCHRONISED, moment, "the kernel says so")
    try:
        flagged = timesync_flag.exists()
    except OSError:
        flagged = False
    if flagged:
        return ClockReading(ClockState.SYNCHRONISED, moment, "systemd-timesyncd says so")
    said = "the kernel" if status is not None else "no status to read; the year"
    return ClockReading(ClockState.UNSYNCHRONISED, moment, f"{said} says so; no time server yet")


def certificate_not_yet_valid(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a certificate refused as not valid yet."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        # aiohttp's certificate error is an SSLCertVerificationError too, without the code.
        if (
            isinstance(error, ssl.SSLCertVerificationError)
            and getattr(error, "verify_code", None) == CERT_NOT_YET_VALID
        ):
            return True
        # aiohttp's ClientConnectorCertificateError keeps the ssl error as certificate_error.
        inner = getattr(error, "certificate_error", None)
        if isinstance(inner, BaseException):
            pending.append(inner)
        pending.extend([error.__cause__, error.__context__])
    return False


#: What a screen says of a connection refused because the clock is not set.
CLOCK_NOT_SET_BRIEFLY = "clock not set: give the booth a time server (NTP)"


def explain_connection_error(
    exc: BaseException, clock: ClockReading, *, briefly: bool = False
) -> str:
    """Why a connection failed, for the log and technician mode.

    A certificate that is not valid yet on a clock that is not synchronised: "clock not set",
    with what the clock says and what to do (``briefly``: only what to do, for a screen that
    shows the clock beside it). With a synchronised clock the certificate's own start date is
    wrong, and that is said instead. Anything else: the error's own text.
    """
    if not certificate_not_yet_valid(exc):
        return str(exc) or type(exc).__name__
    if not clock.synchronised:
        if briefly:
            return CLOCK_NOT_SET_BRIEFLY
        return (
            f"clock not set: the booth's clock says {clock.now:%Y-%m-%d %H:%M} UTC "
            f"({clock.reason}), so the server's certificate is not valid yet; give the booth a "
            "time server (NTP from DHCP, or the image's NTP setting): it connects by itself once "
            "its clock is set"
        )
    return (
        "the server's certificate is not valid yet, and the booth's clock is synchronised "
        f"({clock.now:%Y-%m-%d %H:%M} UTC): the certificate's start date is wrong; renew it"
    )
