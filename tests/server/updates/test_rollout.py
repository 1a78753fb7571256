"""A rollout's decisions with fake booths: stages, the canaries first, only idle booths inside
their window, success and the ways to fail, and the automatic stop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.updates.rollout import (
    BoothNow,
    BoothTarget,
    Policy,
    Progress,
    RolloutState,
    batches_by_branch,
    batches_by_share,
    decide,
)

V2 = "2.0.0"
NOW = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
POLICY = Policy(max_failure_share=0.25, health_timeout=timedelta(minutes=20), max_parallel=10)


def idle(version: str = "1.0.0", **changes: object) -> BoothNow:
    facts: dict[str, object] = {
        "online": True,
        "idle": True,
        "version": version,
        "slot_good": True,
        "window_open": True,
        "connected_at": NOW - timedelta(hours=5),
    }
    facts.update(changes)
    return BoothNow(**facts)  # type: ignore[arg-type]


def targets(*stages: list[str]) -> list[BoothTarget]:
    return [BoothTarget(b, stage) for stage, booths in enumerate(stages) for b in booths]


def test_the_canaries_go_first_and_alone() -> None:
    plan = targets(["c1"], ["b1", "b2"])
    fleet = {b: idle() for b in ("c1", "b1", "b2")}
    decision = decide(RolloutState.RUNNING, plan, fleet, version=V2, policy=POLICY, now=NOW)
    assert (decision.stage, decision.offer) == (0, ["c1"])


def test_the_next_stage_starts_when_the_canaries_are_done() -> None:
    plan = targets(["c1"], ["b1", "b2"])
    plan[0].progress, plan[0].since = Progress.REBOOTING, NOW - timedelta(minutes=5)
    fleet = {"c1": idle(V2, connected_at=NOW), "b1": idle(), "b2": idle()}
    decision = decide(RolloutState.RUNNING, plan, fleet, version=V2, policy=POLICY, now=NOW)
    assert decision.done == ["c1"]
    assert (decision.stage, decision.offer) == (1, ["b1", "b2"])


def test_an_offline_canary_holds_the_rollout() -> None:
    plan = targets(["c1"], ["b1"])
    decision = decide(
        RolloutState.RUNNING, plan, {"b1": idle()}, version=V2, policy=POLICY, now=NOW
    )
    assert (decision.stage, decision.offer) == (0, [])


def test_offline_booths_of_a_batch_do_not_hold_the_next_one() -> None:
    plan = targets([], ["b1", "b2"], ["b3"])
    plan[0].progress = Progress.DONE
    fleet = {"b1": idle(V2), "b3": idle()}  # b2 is away
    decision = decide(RolloutState.RUNNING, plan, fleet, version=V2, policy=POLICY, now=NOW)
    assert (decision.stage, decision.offer) == (2, ["b3"])
    fleet["b2"] = idle()  # back: offered then, and the rollout stays in its stage
    decision = decide(
        RolloutState.RUNNING, plan, fleet, version=V2, policy=POLICY, now=NOW, reached=2
    )
    assert (decision.stage, decision.offer) == (2, ["b2", "b3"])


@pytest.mark.parametrize(
    "booth",
    [
        idle(idle=False),  # in a visit or a call
        idle(window_open=False),  # outside its branch's maintenance window
        idle(online=False),
    ],
    ids=["busy", "outside its window", "offline"],
)
def test_never_offered_to_a_busy_booth_or_outside_its_window(booth: BoothNow) -> None:
    decision = decide(
        RolloutState.RUNNING,
        targets(["c1"]),
        {"c1": booth},
        version=V2,
        policy=POLICY,
        now=NOW,
    )
    assert decision.offer == []


def test_a_booth_on_the_version_already_is_done_without_an_offer() -> None:
    decision = decide(
        RolloutState.RUNNING, targets(["c1"]), {"c1": idle(V2)}, version=V2, policy=POLICY, now=NOW
    )
    assert (decision.offer, decision.done) == ([], ["c1"])


def test_back_on_the_new_version_but_not_marked_good_is_not_done_yet() -> None:
    plan = targets(["c1"])
    plan[0].progress, plan[0].since = Progress.REBOOTING, NOW - timedelta(minutes=2)
    fleet = {"c1": idle(V2, slot_good=False, connected_at=NOW)}
    decision = decide(RolloutState.RUNNING, plan, fleet, version=V2, policy=POLICY, now=NOW)
    assert (decision.done, decision.failed) == ([], [])


def test_a_booth_back_on_the_old_version_failed_and_the_rollout_stops() -> None:
    plan = targets(["c1"], ["b1"])
    plan[0].progress, plan[0].since = Progress.REBOOTING, NOW - timedelta(minutes=8)
    fleet = {"c1": idle("1.0.0", connected_at=NOW - timedelta(minutes=1)), "b1": idle()}
    decision = decide(RolloutState.RUNNING, plan, fleet, version=V2, policy=POLICY, now=NOW)
    assert [b for b, _ in decision.failed] == ["c1"]
    assert "went back to the old one" in decision.failed[0][1]
    assert decision.state is RolloutState.STOPPED
    assert decision.reason == "1 of 1 updated booths failed, more than 25%: stopped by itself"
    assert decision.offer == []


def test_still_on_the_old_version_before_it_restarted_is_not_a_failure() -> None:
    plan = targets(["c1"])
    plan[0].progress, plan[0].since = Progress.REBOOTING, NOW - timedelta(seconds=2)
    fleet = {"c1": idle("1.0.0", connected_at=NOW - timedelta(hours=1))}
    decision = decide(RolloutState.RUNNING, plan, fleet, version=V2, policy=POLICY, now=NOW)
    assert (decision.failed, decision.state) == ([], RolloutState.RUNNING)


@pytest.mark.parametrize("progress", [Progress.OFFERED, Progress.DOWNLOADING, Progress.INSTALLING])
def test_a_booth_switched_off_before_it_installed_is_offered_again(progress: Progress) -> None:
    """Switched off while it downloaded or installed: it comes back on the old slot (nothing
    was switched) and is offered the update anew, not counted as failed."""
    plan = targets(["c1"])
    plan[0].progress, plan[0].since = progress, NOW - timedelta(minutes=3)
    fleet = {"c1": idle("1.0.0", connected_at=NOW - timedelta(minutes=1))}
    decision = decide(RolloutState.RUNNING, plan, fleet, version=V2, policy=POLICY, now=NOW)
    assert (decision.again, decision.offer, decision.failed) == (["c1"], ["c1"], [])
    # Busy when it is back: pending, offered once it is idle.
    fleet = {"c1": idle("1.0.0", idle=False, connected_at=NOW - timedelta(minutes=1))}
    decision = decide(RolloutState.RUNNING, plan, fleet, version=V2, policy=POLICY, now=NOW)
    assert (decision.again, decision.offer) == (["c1"], [])


def test_a_booth_not_back_in_time_failed() -> None:
    plan = targets(["c1"])
    plan[0].progress, plan[0].since = Progress.INSTALLING, NOW - timedelta(minutes=21)
    decision = decide(RolloutState.RUNNING, plan, {}, version=V2, policy=POLICY, now=NOW)
    assert decision.failed == [("c1", "not back healthy on version 2.0.0 within 20 minutes")]


def test_failures_below_the_share_go_on() -> None:
    plan = targets([], [f"b{i}" for i in range(5)])
    for target in plan[:4]:
        target.progress = Progress.DONE
    plan[4].progress, plan[4].since = Progress.DOWNLOADING, NOW - timedelta(hours=1)
    fleet = {t.booth_id: idle(V2) for t in plan[:4]}
    decision = decide(RolloutState.RUNNING, plan, fleet, version=V2, policy=POLICY, now=NOW)
    assert [b for b, _ in decision.failed] == ["b4"]
    # 1 of 5 (20 %) is not more than 25 %: the rollout ends as done.
    assert decision.state is RolloutState.DONE
    assert decision.reason == "every booth finished: 4 updated, 1 failed"


def test_paused_offers_nothing_but_still_counts_the_booths_under_way() -> None:
    plan = targets(["c1"], ["b1"])
    plan[0].progress, plan[0].since = Progress.REBOOTING, NOW - timedelta(minutes=3)
    fleet = {"c1": idle(V2, connected_at=NOW), "b1": idle()}
    decision = decide(RolloutState.PAUSED, plan, fleet, version=V2, policy=POLICY, now=NOW)
    assert (decision.done, decision.offer, decision.state) == (["c1"], [], RolloutState.PAUSED)


@pytest.mark.parametrize("state", [RolloutState.CANCELLED, RolloutState.STOPPED])
def test_an_ended_rollout_decides_nothing(state: RolloutState) -> None:
    decision = decide(state, targets(["c1"]), {"c1": idle()}, version=V2, policy=POLICY, now=NOW)
    assert (decision.offer, decision.done, decision.failed) == ([], [], [])


def test_at_most_max_parallel_booths_under_way() -> None:
    plan = targets([], [f"b{i:02}" for i in range(25)])
    plan[0].progress = Progress.DONE  # stage 0 is empty: done
    fleet = {t.booth_id: idle() for t in plan}
    decision = decide(RolloutState.RUNNING, plan, fleet, version=V2, policy=POLICY, now=NOW)
    assert len(decision.offer) == POLICY.max_parallel


def test_batches_by_share_reach_each_share_in_turn() -> None:
    booths = [f"b{i}" for i in range(20)]
    batches = batches_by_share(booths, [10, 50, 100], salt="r1")
    assert [len(b) for b in batches] == [2, 8, 10]
    assert sorted(b for batch in batches for b in batch) == sorted(booths)
    assert batches == batches_by_share(booths, [10, 50, 100], salt="r1")  # stable
    assert batches != batches_by_share(booths, [10, 50, 100], salt="r2")  # not enrolment order


@pytest.mark.parametrize("shares", [[], [50], [50, 40, 100], [0, 100]])
def test_batches_by_share_refuse_shares_that_do_not_end_at_100(shares: list[int]) -> None:
    with pytest.raises(ValueError, match="share"):
        batches_by_share(["b1"], shares, salt="r")


def test_batches_by_branch_in_order_and_the_rest_last() -> None:
    branches = {"b1": "north", "b2": "south", "b3": "north", "b4": None, "b5": "east"}
    assert batches_by_branch(branches, [["north"], ["east", "west"]]) == [
        ["b1", "b3"],
        ["b5"],
        ["b2", "b4"],
    ]
