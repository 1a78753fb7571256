"""The booth's one backoff (kiosk/backoff.py)."""

from __future__ import annotations

from kiosk.backoff import Backoff


def test_delays_double_up_to_the_ceiling_and_start_again_after_a_success() -> None:
    backoff = Backoff(ceiling=5.0)
    assert [backoff.next() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 1.0
    backoff.hold_off()
    assert backoff.next() == 5.0


def test_jitter_waits_half_to_all_of_the_delay() -> None:
    draws: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        draws.append((low, high))
        return low

    backoff = Backoff(ceiling=30.0, jitter=True, uniform=uniform)
    assert [backoff.next() for _ in range(3)] == [0.5, 1.0, 2.0]
    assert draws == [(0.5, 1.0)] * 3
