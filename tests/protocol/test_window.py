"""Maintenance windows: parsing what an administrator types, and open or closed in the
branch's own time zone (past midnight, and across a change to summer time)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from protocol.window import ALWAYS, MaintenanceWindow, WindowError, zone

BERLIN = zone("Europe/Berlin")


def test_parse_and_show() -> None:
    window = MaintenanceWindow.parse(" 22:00 - 5:30 ")
    assert (window.start, window.end) == (time(22, 0), time(5, 30))
    assert str(window) == "22:00-05:30"


@pytest.mark.parametrize("text", ["", "22-05", "22:00", "25:00-05:00", "22:60-05:00", "a-b"])
def test_refuses_what_is_not_a_window(text: str) -> None:
    with pytest.raises(WindowError, match="not a maintenance window"):
        MaintenanceWindow.parse(text)


@pytest.mark.parametrize(
    ("utc", "open_"),
    [
        ("2026-12-06T20:59", False),  # 21:59 in Berlin (winter: UTC+1)
        ("2026-12-06T21:00", True),  # 22:00
        ("2026-12-07T02:00", True),  # 03:00, past midnight
        ("2026-12-07T04:00", False),  # 05:00: closed again
        ("2026-06-06T20:00", True),  # 22:00 in summer (UTC+2)
        ("2026-06-06T21:30", True),
    ],
)
def test_open_past_midnight_in_the_branch_time_zone(utc: str, open_: bool) -> None:
    window = MaintenanceWindow.parse("22:00-05:00")
    at = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert window.is_open(at, BERLIN) is open_


def test_a_window_within_one_day() -> None:
    window = MaintenanceWindow.parse("12:00-13:00")
    assert window.is_open(datetime(2026, 12, 6, 11, 30, tzinfo=UTC), BERLIN)
    assert not window.is_open(datetime(2026, 12, 6, 12, 30, tzinfo=UTC), BERLIN)


def test_always() -> None:
    assert ALWAYS.is_open(datetime(2026, 12, 6, 9, 0, tzinfo=UTC), BERLIN)


def test_an_unknown_time_zone_is_a_clear_error() -> None:
    with pytest.raises(WindowError, match="not a time zone"):
        zone("Mars/Olympus")
