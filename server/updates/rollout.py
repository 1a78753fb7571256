"""A rollout's decisions: which booths are offered the update now, which succeeded or failed,
and when the rollout stops by itself. Pure logic over what the fleet knows; the service
(``server/updates/service.py``) stores the outcome and tells the booths.

A rollout goes in stages: the canary booths first, then batches (a share of the other booths,
or the booths of some branches). A booth is offered the update only while it is online, idle
(no visit, no call) and inside its branch's maintenance window; the booth checks the same again
before it installs. A booth succeeded when it is back on the new version with that version's
slot marked good (it reached READY and passed its self-test). It failed when it says so, comes
back on another version (its boot loader fell back), or is not back within the health timeout.
When more than ``max_failure_share`` of the booths that finished failed, the rollout stops.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = [
    "BoothNow",
    "BoothTarget",
    "Decision",
    "Policy",
    "Progress",
    "RolloutState",
    "batches_by_branch",
    "batches_by_share",
    "decide",
]

log = logging.getLogger(__name__)


class RolloutState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    #: Cancelled by an administrator.
    CANCELLED = "cancelled"
    #: Stopped by itself: too many booths failed.
    STOPPED = "stopped"
    DONE = "done"

    @property
    def over(self) -> bool:
        return self in (RolloutState.CANCELLED, RolloutState.STOPPED, RolloutState.DONE)


class Progress(StrEnum):
    """One booth in a rollout."""

    PENDING = "pending"
    #: Told; it has not started (it may be waiting for its window or the end of a visit).
    OFFERED = "offered"
    DOWNLOADING = "downloading"
    INSTALLING = "installing"
    #: Installed; restarting into the other slot.
    REBOOTING = "rebooting"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (Progress.DONE, Progress.FAILED)

    @property
    def under_way(self) -> bool:
        return self in (
            Progress.OFFERED,
            Progress.DOWNLOADING,
            Progress.INSTALLING,
            Progress.REBOOTING,
        )


@dataclass
class BoothTarget:
    """A booth's place in a rollout: its stage and how far it got."""

    booth_id: str
    stage: int
    progress: Progress = Progress.PENDING
    #: When ``progress`` last changed.
    since: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class BoothNow:
    """What the fleet knows of a booth at this moment."""

    online: bool
    #: Idle: no visit, no call, in service.
    idle: bool
    version: str | None
    #: Its running slot is marked good (it reached READY and passed its self-test).
    slot_good: bool
    window_open: bool
    #: When its connection began (a booth that restarted has a newer one).
    connected_at: datetime | None = None


@dataclass(frozen=True)
class Policy:
    max_failure_share: float = 0.2
    #: From the offer to being back on the new version, at most.
    health_timeout: timedelta = timedelta(minutes=30)
    #: Booths under way at once, at most (the server's bandwidth).
    max_parallel: int = 50


@dataclass
class Decision:
    """What to do now."""

    state: RolloutState
    #: The stage the rollout is in (booths of this stage and earlier ones are offered).
    stage: int
    offer: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    #: Booth id and why.
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: Booths that connected again before they installed (switched off while downloading or
    #: installing: the old slot runs, nothing was switched): pending again, offered anew.
    again: list[str] = field(default_factory=list)
    #: Why the state changed, if it did.
    reason: str | None = None


def _spread(booth_id: str, salt: str) -> str:
    # A stable order that is not the order of enrolment (which follows branches).
    return hashlib.sha256(f"{salt}:{booth_id}".encode()).hexdigest()


def batches_by_share(booths: Sequence[str], shares: Sequence[int], *, salt: str) -> list[list[str]]:
    """``booths`` split into batches that together reach each share in turn (percentages,
    ascending, ending at 100): ``[10, 50, 100]`` is a tenth, then up to half, then the rest."""
    if not shares or shares[-1] != 100 or any(b <= a for a, b in itertools.pairwise(shares)):
        raise ValueError("the shares must rise and end at 100, e.g. 10, 50, 100")
    if shares[0] <= 0:
        raise ValueError("every share must be more than 0 %")
    ordered = sorted(booths, key=lambda b: _spread(b, salt))
    batches, taken = [], 0
    for share in shares:
        upto = max(taken, -(-len(ordered) * share // 100))  # rounded up
        batches.append(ordered[taken:upto])
        taken = upto
    return [batch for batch in batches if batch]


def batches_by_branch(
    booth_branches: Mapping[str, str | None], branch_batches: Sequence[Sequence[str]]
) -> list[list[str]]:
    """One batch per group of branches, in order; booths of branches in no group last."""
    batches: list[list[str]] = []
    placed: set[str] = set()
    for group in branch_batches:
        wanted = set(group)
        batch = sorted(b for b, branch in booth_branches.items() if branch in wanted)
        placed.update(batch)
        if batch:
            batches.append(batch)
    rest = sorted(b for b in booth_branches if b not in placed)
    if rest:
        batches.append(rest)
    return batches


def _failure_share(targets: Sequence[BoothTarget]) -> tuple[int, int]:
    failed = sum(1 for t in targets if t.progress is Progress.FAILED)
    finished = sum(1 for t in targets if t.progress.finished)
    return failed, finished


def decide(
    state: RolloutState,
    targets: Sequence[BoothTarget],
    booths: Mapping[str, BoothNow],
    *,
    version: str,
    policy: Policy,
    now: datetime,
    reached: int = 0,
) -> Decision:
    """What the rollout to ``version`` does now. ``targets`` are its booths in their stages
    (stage 0: the canaries); ``booths`` what the fleet knows of them now (a booth missing
    from it is offline); ``reached`` the stage it had reached (a stage is never gone back
    to). ``targets`` are not changed: the decision lists the changes."""
    decision = Decision(state=state, stage=0)
    if state.over:
        return decision
    progress = {t.booth_id: t.progress for t in targets}

    # Booths under way: back on the new version, back on another, or silent too long.
    for target in targets:
        if not target.progress.under_way:
            continue
        now_booth = booths.get(target.booth_id)
        online = now_booth is not None and now_booth.online
        if online and now_booth is not None and now_booth.version == version:
            if now_booth.slot_good:
                decision.done.append(target.booth_id)
                progress[target.booth_id] = Progress.DONE
                continue
        elif (
            online
            and now_booth is not None
            and target.progress is Progress.REBOOTING
            and now_booth.connected_at is not None
            and target.since is not None
            and now_booth.connected_at > target.since
        ):
            # Connected again since it went to restart, on another version: its boot loader
            # went back to the old slot.
            why = (
                f"came back on version {now_booth.version or 'unknown'}: the new version did "
                "not start, the booth went back to the old one"
            )
            decision.failed.append((target.booth_id, why))
            progress[target.booth_id] = Progress.FAILED
            continue
        elif (
            online
            and now_booth is not None
            and target.progress is not Progress.REBOOTING
            and now_booth.connected_at is not None
            and target.since is not None
            and now_booth.connected_at > target.since
        ):
            decision.again.append(target.booth_id)
            progress[target.booth_id] = Progress.PENDING
            continue
        since = target.since or now
        if now - since > policy.health_timeout:
            minutes = policy.health_timeout.total_seconds() / 60
            why = f"not back healthy on version {version} within {minutes:g} minutes"
            decision.failed.append((target.booth_id, why))
            progress[target.booth_id] = Progress.FAILED

    # Too many failures: stop before offering more.
    updated = [BoothTarget(t.booth_id, t.stage, progress[t.booth_id]) for t in targets]
    failed, finished = _failure_share(updated)
    if state is RolloutState.RUNNING and failed and failed / finished > policy.max_failure_share:
        decision.state = RolloutState.STOPPED
        decision.reason = (
            f"{failed} of {finished} updated booths failed, more than "
            f"{policy.max_failure_share:.0%}: stopped by itself"
        )
        return decision

    if all(p.finished for p in progress.values()):
        if state is RolloutState.RUNNING:
            decision.state = RolloutState.DONE
            decision.reason = f"every booth finished: {finished - failed} updated, {failed} failed"
        return decision

    # The stage: the canaries must all be done first; a later stage is complete when all
    # its booths finished or are offline and not started (they are offered when they return).
    stages = sorted({t.stage for t in targets})
    current = stages[-1]
    for stage in stages:
        members = [t for t in targets if t.stage == stage]
        if stage == 0:
            complete = all(progress[t.booth_id] is Progress.DONE for t in members)
        else:
            complete = all(
                progress[t.booth_id].finished
                or (
                    progress[t.booth_id] is Progress.PENDING
                    and not (booths.get(t.booth_id) or _OFFLINE).online
                )
                for t in members
            )
        if not complete:
            current = stage
            break
    decision.stage = current = max(current, reached)
    if state is not RolloutState.RUNNING:
        return decision

    under_way = sum(1 for p in progress.values() if p.under_way)
    for target in sorted(targets, key=lambda t: (t.stage, t.booth_id)):
        if target.stage > current or under_way >= policy.max_parallel:
            break
        if progress[target.booth_id] is not Progress.PENDING:
            continue
        booth = booths.get(target.booth_id)
        if booth is None or not booth.online:
            continue
        if booth.version == version and booth.slot_good:
            decision.done.append(target.booth_id)  # on it already
            continue
        if booth.idle and booth.window_open:
            decision.offer.append(target.booth_id)
            under_way += 1
    return decision


_OFFLINE = BoothNow(online=False, idle=False, version=None, slot_good=False, window_open=False)
