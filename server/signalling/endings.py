"""Endings: calls that ended and participants who left a call that goes on.

A resume token names its call and its participant and stays valid for hours, so whatever ended
must be remembered until no token can name it any more: no token takes it up again. The
switchboard writes each new ending beside itself to the database too (table
``call_endings``), and a restarted server reads them back (:meth:`EndingStore.remember`).
:class:`EndingStore` is an in-memory dictionary here, something shared in a later cluster.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

#: Endings remembered at most; each is forgotten anyway once no token can name it any more.
ENDINGS_REMEMBERED = 200_000
#: The participant id that stands for the whole call.
WHOLE_CALL = ""


class EndingStore(ABC):
    @abstractmethod
    def finish(self, session_id: str, participant_id: str, at: float) -> bool:
        """Remember that the call ended (``WHOLE_CALL``) or that the participant is finished
        in it, at ``at`` (epoch seconds); False when that was known already."""

    @abstractmethod
    def remember(self, endings: Iterable[tuple[str, str, float]]) -> None:
        """Endings recorded elsewhere (session id, participant id, epoch seconds), oldest
        first; those known already keep their time."""

    @abstractmethod
    def forget_before(self, oldest: float) -> None:
        """Forget the endings older than ``oldest`` (epoch seconds)."""

    @abstractmethod
    def ended(self, session_id: str, participant_id: str = WHOLE_CALL) -> bool: ...

    @abstractmethod
    def __len__(self) -> int: ...


class MemoryEndings(EndingStore):
    """Endings in insertion order (oldest first), at most ``limit`` of them."""

    def __init__(self, *, limit: int = ENDINGS_REMEMBERED) -> None:
        self._limit = limit
        self._at: dict[tuple[str, str], float] = {}

    def finish(self, session_id: str, participant_id: str, at: float) -> bool:
        key = (session_id, participant_id)
        if key in self._at:
            return False
        self._at[key] = at
        while len(self._at) > self._limit:
            del self._at[next(iter(self._at))]
        return True

    def remember(self, endings: Iterable[tuple[str, str, float]]) -> None:
        for session_id, participant_id, at in endings:
            self._at.setdefault((session_id, participant_id), at)

    def forget_before(self, oldest: float) -> None:
        while self._at:
            key = next(iter(self._at))
            if self._at[key] >= oldest:
                break
            del self._at[key]

    def ended(self, session_id: str, participant_id: str = WHOLE_CALL) -> bool:
        return (session_id, participant_id) in self._at

    def __len__(self) -> int:
        return len(self._at)
