"""What a person did through the API, into the audit log (metadata only; see
``server/storage/audit.py``)."""

from __future__ import annotations

import json
from typing import Any

from server.api import Access, ApiCall
from server.keys import DATABASE
from server.storage import ActorKind, record_audit

__all__ = ["audit"]


async def audit(call: ApiCall, action: str, subject: str | None = None, **detail: Any) -> None:
    """Record that the calling user did ``action`` to ``subject``; ``detail`` goes in as
    compact JSON (figures and names, never personal data or secrets)."""
    service = call.caller.access is Access.SERVICE
    await record_audit(
        call.request.app[DATABASE],
        actor_kind=ActorKind.SERVICE if service else ActorKind.USER,
        actor_id=call.caller.id,
        action=action,
        subject=subject,
        detail=json.dumps(detail, separators=(",", ":"), sort_keys=True) if detail else None,
    )
