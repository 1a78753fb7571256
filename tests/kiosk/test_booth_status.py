"""The booth's status file (kiosk/booth/status.py): the keys its readers use, a call's
statistics only while a call runs, and a reader that never sees half a file."""

from __future__ import annotations

import json
from pathlib import Path

from kiosk.booth import BoothStatus
from kiosk.booth.status import write_status


def _status(**fields: object) -> BoothStatus:
    return BoothStatus.model_validate(
        {"pid": 1, "state": "idle", "link": "online", "updated_at": 1.0, **fields}
    )


async def test_the_file_has_the_keys_its_readers_use_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "booth.status.json"
    status = _status(queue_position=(2, 120), session_id="s1")
    await write_status(path, status)
    keys = set(json.loads(path.read_text()))
    assert {"state", "session_id", "link", "reconnecting", "repairs", "calls_completed"} <= keys
    assert {"call_requested_at", "camera_light", "queue_position", "updated_at"} <= keys
    assert "call" not in keys and "others" not in keys  # no call runs
    assert BoothStatus.read(path) == status


async def test_a_call_adds_its_statistics(tmp_path: Path) -> None:
    path = tmp_path / "booth.status.json"
    await write_status(path, _status(call={"video_frames_received": 3, "live": None}, others=[]))
    read = BoothStatus.read(path)
    assert read is not None and read.call == {"video_frames_received": 3, "live": None}
    assert read.others == []


def test_no_file_or_half_a_file_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "booth.status.json"
    assert BoothStatus.read(path) is None
    path.write_text('{"pid": 1, "state": "id')
    assert BoothStatus.read(path) is None
