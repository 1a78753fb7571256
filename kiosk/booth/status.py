"""The booth's status file: what it is doing now, for tests, benchmarks and a technician's
``cat``; no personal data (there is none to report).

:class:`BoothStatus` is the file's one definition: the booth writes it, and readers parse it
with :meth:`BoothStatus.read` instead of picking keys out of a dictionary.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: How often the running booth writes its status file.
STATUS_INTERVAL = 0.5


def _absent(value: object) -> bool:
    return value is None


class BoothStatus(BaseModel):
    """One snapshot of the booth (the JSON keys are the field names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: int
    #: The flow's state (:class:`kiosk.flow.State`'s value).
    state: str
    media_connected: bool = False
    camera_fault: str | None = None
    #: The link's state (:class:`kiosk.link.LinkState`'s value).
    link: str
    session_id: str | None = None
    reconnecting: bool = False
    #: Peer connections made anew in the running call.
    repairs: int = 0
    #: Wall clock when the citizen asked for a call (set-up time measurements).
    call_requested_at: float | None = None
    calls_completed: int = 0
    camera_streaming: bool = False
    camera_light: bool = False
    hardware_unavailable: str | None = None
    platform: str | None = None
    link_problem: str | None = None
    topics: int = 0
    booth_id: str | None = None
    enrolment_problem: str | None = None
    #: While waiting: (place in the queue, estimated wait in seconds).
    queue_position: tuple[int, int] | None = None
    audio_fault: str | None = None
    #: How the last call ended: reason, time, statistics.
    last_call_ended: dict[str, Any] | None = None
    updated_at: float
    #: While a call runs: its peer connection's statistics (``live``: the latest sample) ...
    call: dict[str, Any] | None = Field(default=None, exclude_if=_absent)
    #: ... and each further participant's (the keys are absent without a call).
    others: list[dict[str, Any]] | None = Field(default=None, exclude_if=_absent)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=1, default=str)

    @classmethod
    def read(cls, path: Path) -> BoothStatus | None:
        """The status in ``path``; None while there is none (not written yet, or being
        replaced)."""
        try:
            return cls.model_validate_json(path.read_text())
        except (FileNotFoundError, ValueError, ValidationError):
            return None


async def write_status(path: Path, status: BoothStatus) -> None:
    """Write ``status`` to ``path`` so that a reader never sees half a file."""
    await asyncio.to_thread(_write_atomically, path, status.to_json())


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
