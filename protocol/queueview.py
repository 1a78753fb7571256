"""An advisor's queue as a client keeps it: the last ``queue`` with every ``queue_changed``
applied since. Python clients (the load benchmark, tests) use this; the workspace page does the
same in ``server/static/advisor/app.js``."""

from __future__ import annotations

from typing import Any


class QueueView:
    """The waiting calls by session id, from the messages' JSON as received."""

    def __init__(self) -> None:
        self.calls: dict[str, dict[str, Any]] = {}

    def apply(self, message: dict[str, Any]) -> bool:
        """Take in a ``queue`` or ``queue_changed`` message; False for any other message."""
        kind = message.get("type")
        if kind == "queue":
            self.calls = {call["session_id"]: call for call in message["waiting"]}
        elif kind == "queue_changed":
            for call in message.get("upsert", []):
                self.calls[call["session_id"]] = call
            for session_id in message.get("remove", []):
                self.calls.pop(session_id, None)
        else:
            return False
        return True

    @property
    def waiting(self) -> list[dict[str, Any]]:
        """The waiting calls, oldest first: the list's order, then each new call after them
        (a change lists the calls that joined in the order they came)."""
        return list(self.calls.values())
