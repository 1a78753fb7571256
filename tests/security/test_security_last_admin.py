"""No way around the rule that one enabled administrator remains: every function of the storage
package that disables a user refuses the last administrator (there used to be a second one,
``set_user_disabled``, that disabled anybody)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import server.storage as storage
from server.storage import ConflictError, Database, create_user, get_user
from tests.server.conftest import PASSWORD, sqlite_url


async def test_security_no_path_disables_the_last_administrator(tmp_path: Path) -> None:
    db = await Database.open(sqlite_url(tmp_path / "videobooth.db"))
    try:
        admin = await create_user(db, username="root", password=PASSWORD, role="admin")
        disablers = [
            getattr(storage, name)
            for name in storage.__all__
            if "disable" in name and inspect.iscoroutinefunction(getattr(storage, name))
        ]
        assert disablers, "the storage package lost its way to disable a user"
        for disable in disablers:
            arguments = (
                (db, admin.id, True)
                if len(inspect.signature(disable).parameters) == 3
                else (db, admin.id)
            )
            with pytest.raises(ConflictError, match="last enabled administrator"):
                await disable(*arguments)
            again = await get_user(db, admin.id)
            assert again is not None and not again.disabled, disable.__name__
    finally:
        await db.close()
