"""Booth updates on the server: bundles received and kept, rollouts started, paused, resumed
and cancelled, and every few seconds each rollout's decision (:func:`rollout.decide`) carried
out: booths offered the update through their connection, their progress stored, the rollout
stopped when too many failed.

Each node of a cluster runs the same loop. A node offers the update only to the booths
connected to it; what it stores is conditional (a state change names the states it expects),
so two nodes deciding the same thing change it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from protocol import UpdateOffer, UpdateProgress, UpdateWithdrawn
from protocol.window import MaintenanceWindow, zone
from server.config import UpdatesConfig
from server.fleet_health import FleetMonitor
from server.storage import ActorKind, Database, DuplicateError, list_booths, record_audit
from server.storage.branches import list_branches
from server.storage.models import Rollout, RolloutBooth, UpdateBundle
from server.storage.updates import (
    NewBundle,
    RolloutPolicy,
    add_bundle,
    bundle_by_sha256,
    create_rollout,
    get_bundle,
    get_rollout,
    rollout_booths,
    rollouts_in,
    save_rollout_booths,
    set_rollout_state,
)

from .bundle import check_bundle
from .errors import BundleError, UpdateError
from .rollout import (
    BoothNow,
    BoothTarget,
    Policy,
    Progress,
    RolloutState,
    batches_by_branch,
    batches_by_share,
    decide,
)

__all__ = ["RolloutPlan", "Updates"]

log = logging.getLogger(__name__)

#: Per booth: its branch's maintenance window and time zone.
Windows = dict[str, tuple[MaintenanceWindow, str]]
#: A booth's progress as it says it, and as the rollout keeps it.
_PHASES = {
    "waiting": Progress.OFFERED,
    "downloading": Progress.DOWNLOADING,
    "installing": Progress.INSTALLING,
    "rebooting": Progress.REBOOTING,
    "failed": Progress.FAILED,
}
#: Booths the update may still be withdrawn from (RAUC finishes what it began writing).
_WITHDRAWABLE = (Progress.OFFERED, Progress.DOWNLOADING)


@dataclass(frozen=True)
class RolloutPlan:
    """What an administrator asks for: the canaries, then batches by share or by branch."""

    bundle_id: str
    canaries: Sequence[str]
    shares: Sequence[int] | None = None
    branch_batches: Sequence[Sequence[str]] | None = None
    max_failure_share: float = 0.2
    health_timeout_minutes: float = 30.0
    max_parallel: int = 50


def bundle_file_path(bundle_id: str) -> str:
    """Where booths fetch a bundle (the API's path)."""
    return f"/api/v1/updates/bundles/{bundle_id}/file"


class Updates:
    def __init__(
        self,
        *,
        db: Database,
        config: UpdatesConfig,
        folder: Path,
        fleet: FleetMonitor,
        default_timezone: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._config = config
        self.folder = folder
        self._fleet = fleet
        self._default_window = MaintenanceWindow.parse(config.maintenance_window)
        self._default_zone = default_timezone
        self._now = now
        self._writes: set[asyncio.Task[None]] = set()
        self._ticking = asyncio.Lock()
        self._progress_order = asyncio.Lock()
        #: Rollouts are started one at a time on this node (SQLite's one process has no
        #: second node; PostgreSQL's unique rollouts.active decides between nodes).
        self._starting = asyncio.Lock()
        fleet.updates = self.progress

    # ------------------------------------------------------------------ bundles

    def path_of(self, bundle: UpdateBundle) -> Path:
        return self.folder / f"{bundle.sha256}.raucb"

    async def receive(self, chunks: AsyncIterator[bytes], *, user_id: str | None) -> UpdateBundle:
        """Take an uploaded bundle: written to a scratch file (refused past the size limit),
        checked with RAUC, kept by its digest; :class:`BundleError` says what is wrong, and
        nothing of a refused bundle is kept."""
        limit = self._config.max_bundle_mib * 1024 * 1024
        await asyncio.to_thread(self.folder.mkdir, parents=True, exist_ok=True)
        handle, name = await asyncio.to_thread(
            tempfile.mkstemp, prefix=".upload-", suffix=".raucb", dir=self.folder
        )
        scratch = Path(name)
        try:
            size = 0
            with os.fdopen(handle, "wb") as file:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise BundleError(
                            f"the bundle is larger than {self._config.max_bundle_mib} MiB "
                            "([updates] max_bundle_mib)"
                        )
                    await asyncio.to_thread(file.write, chunk)
            if size == 0:
                raise BundleError("the upload was empty: send the .raucb file as the body")
            facts = await check_bundle(
                scratch, self._config.keyring, rauc=self._config.rauc, scratch=self.folder
            )
            if await bundle_by_sha256(self._db, facts.sha256) is not None:
                raise DuplicateError(f"this bundle (version {facts.version}) was uploaded already")
            final = self.folder / f"{facts.sha256}.raucb"
            await asyncio.to_thread(os.replace, scratch, final)
            bundle = await add_bundle(
                self._db,
                NewBundle(
                    version=facts.version,
                    compatible=facts.compatible,
                    signer=facts.signer,
                    sha256=facts.sha256,
                    size=facts.size,
                ),
                uploaded_by=user_id,
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(scratch.unlink)
        log.info("bundle %s (version %s) uploaded", bundle.id, bundle.version)
        return bundle

    # ------------------------------------------------------------------ rollouts

    async def start(self, plan: RolloutPlan, *, user_id: str | None) -> Rollout:
        """A rollout of the plan's bundle to every enrolled booth: the canaries first, then
        the others in batches."""
        bundle = await get_bundle(self._db, plan.bundle_id)
        if bundle is None:
            raise UpdateError("no such bundle")
        booths = {
            b.id: b.branch_id
            for b in await list_booths(self._db, include_revoked=False)
            if b.enrolled_at is not None or b.secret_hash is not None
        }
        unknown = [c for c in plan.canaries if c not in booths]
        if unknown:
            raise UpdateError(f"not booths of this server: {', '.join(sorted(unknown))}")
        rest = {b: branch for b, branch in booths.items() if b not in set(plan.canaries)}
        if plan.branch_batches is not None:
            batches = batches_by_branch(rest, plan.branch_batches)
        else:
            try:
                batches = batches_by_share(
                    sorted(rest), list(plan.shares or [100]), salt=bundle.sha256
                )
            except ValueError as exc:
                raise UpdateError(str(exc)) from None
        async with self._starting:  # one at a time here; across nodes the database decides
            rollout = await self._create(plan, bundle, batches, user_id)
        log.info(
            "rollout %s of %s: %d canaries, %d batches, %d booths",
            rollout.id,
            bundle.version,
            len(plan.canaries),
            len(batches),
            len(booths),
        )
        return rollout

    async def _create(
        self,
        plan: RolloutPlan,
        bundle: UpdateBundle,
        batches: list[list[str]],
        user_id: str | None,
    ) -> Rollout:
        return await create_rollout(
            self._db,
            bundle.id,
            [list(plan.canaries), *batches],
            RolloutPolicy(
                max_failure_share=plan.max_failure_share,
                health_timeout_seconds=round(plan.health_timeout_minutes * 60),
                max_parallel=plan.max_parallel,
            ),
            created_by=user_id,
        )

    async def pause(self, rollout_id: str) -> bool:
        moved = await set_rollout_state(
            self._db, rollout_id, RolloutState.PAUSED, expect=[RolloutState.RUNNING]
        )
        if moved:
            await self._withdraw(rollout_id)
        return moved

    async def resume(self, rollout_id: str) -> bool:
        moved = await set_rollout_state(
            self._db, rollout_id, RolloutState.RUNNING, expect=[RolloutState.PAUSED]
        )
        if moved:
            # Booths that gave up their offer on the pause (on any node) are offered again; a
            # booth still working on it takes the same offer as the one it has.
            again = [
                (t.booth_id, Progress.PENDING.value, 0, "offered again", None)
                for t in await rollout_booths(self._db, rollout_id)
                if Progress(t.progress) in _WITHDRAWABLE
            ]
            await save_rollout_booths(self._db, rollout_id, again)
        return moved

    async def cancel(self, rollout_id: str) -> bool:
        moved = await set_rollout_state(
            self._db,
            rollout_id,
            RolloutState.CANCELLED,
            expect=[RolloutState.RUNNING, RolloutState.PAUSED],
            reason="cancelled by an administrator",
        )
        if moved:
            await self._withdraw(rollout_id)
        return moved

    async def _withdraw(self, rollout_id: str) -> None:
        """Tell the booths connected here that have not begun installing to stop; they are
        pending again (offered anew on resume)."""
        changes = []
        for target in await rollout_booths(self._db, rollout_id):
            if Progress(target.progress) in _WITHDRAWABLE and self._fleet.send(
                target.booth_id, UpdateWithdrawn(rollout_id=rollout_id)
            ):
                changes.append((target.booth_id, Progress.PENDING.value, 0, "withdrawn", None))
        await save_rollout_booths(self._db, rollout_id, changes)

    # ------------------------------------------------------------------ progress

    def progress(self, booth_id: str, progress: UpdateProgress) -> None:
        """A booth's report (from its connection; never awaits there)."""
        task = asyncio.get_running_loop().create_task(self._store_progress(booth_id, progress))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _store_progress(self, booth_id: str, report: UpdateProgress) -> None:
        # One at a time, in the order they came (the lock is fair): a booth's "installing"
        # must not overwrite its "rebooting" that came after it.
        async with self._progress_order:
            await self._store_one(booth_id, report)

    async def _store_one(self, booth_id: str, report: UpdateProgress) -> None:
        rollout = await get_rollout(self._db, report.rollout_id)
        if rollout is None or RolloutState(rollout.state).over:
            return
        target = next(
            (t for t in await rollout_booths(self._db, rollout.id) if t.booth_id == booth_id),
            None,
        )
        if target is None or Progress(target.progress).finished:
            return  # not one of this rollout's booths, or decided already
        progress = _PHASES[report.phase]
        since = target.since if progress.value == target.progress else self._now()
        detail = report.detail if progress is not Progress.FAILED else f"the booth: {report.detail}"
        await save_rollout_booths(
            self._db, rollout.id, [(booth_id, progress.value, report.percent, detail, since)]
        )
        if progress is Progress.FAILED:
            log.warning("booth %s: update %s failed: %s", booth_id, rollout.id, report.detail)

    async def settled(self) -> None:
        """Every progress report so far is stored (for tests and shutdown)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("the rollouts' round failed; trying again")
            await asyncio.sleep(self._config.tick_seconds)

    async def tick(self) -> None:
        """One round: every running or paused rollout's decision carried out."""
        async with self._ticking:
            active = await rollouts_in(self._db, [RolloutState.RUNNING, RolloutState.PAUSED])
            if not active:
                return
            windows = await self._windows()
            for rollout in active:
                # Booths' reports wait meanwhile: the decision is made on what is stored.
                async with self._progress_order:
                    await self._decide(rollout, windows)

    async def _windows(self) -> Windows:
        """Per booth: its branch's maintenance window and time zone."""
        branches = {b.id: b for b in await list_branches(self._db)}
        windows: Windows = {}
        for booth in await list_booths(self._db, include_revoked=False):
            branch = branches.get(booth.branch_id or "")
            window, tz = self._default_window, self._default_zone
            if branch is not None and branch.maintenance_window:
                window = MaintenanceWindow.parse(branch.maintenance_window)
            if branch is not None and branch.timezone:
                tz = branch.timezone
            windows[booth.id] = (window, tz)
        return windows

    def _booth_now(self, booth_id: str, windows: Windows) -> BoothNow | None:
        """What the fleet knows of a booth connected to this node."""
        sighting = self._fleet.sighting(booth_id)
        if not self._fleet.holds(booth_id) or not sighting.online:
            return None
        if not sighting.health_is_current:
            # Connected again but not reported yet: what it runs is not known (the health
            # kept from before a restart names the version it ran then).
            return None
        health = sighting.health
        return BoothNow(
            online=True,
            idle=sighting.reported_state == "idle",
            version=health.version if health is not None else None,
            # A booth without A/B slots (a development machine) has nothing to mark.
            slot_good=health is not None and health.slot_good is not False,
            window_open=booth_id in windows
            and windows[booth_id][0].is_open(self._now(), zone(windows[booth_id][1])),
            connected_at=sighting.connected_at,
        )

    async def _decide(self, rollout: Rollout, windows: Windows) -> None:
        bundle = await get_bundle(self._db, rollout.bundle_id)
        if bundle is None:  # pragma: no cover - the foreign key keeps it
            return
        rows = await rollout_booths(self._db, rollout.id)
        targets = [_target(row) for row in rows]
        booths = {
            t.booth_id: seen
            for t in targets
            if (seen := self._booth_now(t.booth_id, windows)) is not None
        }
        now = self._now()
        decision = decide(
            RolloutState(rollout.state),
            targets,
            booths,
            version=bundle.version,
            policy=Policy(
                max_failure_share=rollout.max_failure_share,
                health_timeout=timedelta(seconds=rollout.health_timeout_seconds),
                max_parallel=rollout.max_parallel,
            ),
            now=now,
            reached=rollout.stage,
        )
        # Only this node's booths are decided here (the others' nodes decide theirs), except
        # a booth silent too long, which no node holds.
        changes: list[tuple[str, str, int, str, datetime | None]] = []
        for booth_id in decision.done:
            changes.append((booth_id, Progress.DONE.value, 100, f"on {bundle.version}", now))
        for booth_id, why in decision.failed:
            changes.append((booth_id, Progress.FAILED.value, 0, why, now))
            log.warning("booth %s: update %s failed: %s", booth_id, rollout.id, why)
        for booth_id in decision.again:
            if booth_id not in decision.offer:
                changes.append((booth_id, Progress.PENDING.value, 0, "connected again", now))
            log.info("booth %s: connected again before it installed %s", booth_id, rollout.id)
        for booth_id in decision.offer:
            window, tz = windows[booth_id]
            offer = UpdateOffer(
                rollout_id=rollout.id,
                version=bundle.version,
                path=bundle_file_path(bundle.id),
                size=bundle.size,
                sha256=bundle.sha256,
                window=str(window),
                timezone=tz,
            )
            if self._fleet.send(booth_id, offer):
                changes.append((booth_id, Progress.OFFERED.value, 0, "offered", now))
                log.info("booth %s: offered %s (rollout %s)", booth_id, bundle.version, rollout.id)
        await save_rollout_booths(self._db, rollout.id, changes)
        state = RolloutState(rollout.state)
        if decision.state is not state:
            if await set_rollout_state(
                self._db,
                rollout.id,
                decision.state,
                expect=[state],
                reason=decision.reason,
                stage=decision.stage,
            ):
                log.warning(
                    "rollout %s: %s -> %s: %s", rollout.id, state, decision.state, decision.reason
                )
                await record_audit(
                    self._db,
                    actor_kind=ActorKind.SYSTEM,
                    actor_id=None,
                    action=f"update.rollout_{decision.state.value}",
                    subject=rollout.id,
                    detail=decision.reason,
                )
        elif decision.stage != rollout.stage:
            await set_rollout_state(
                self._db, rollout.id, state, expect=[state], stage=decision.stage
            )
            log.info("rollout %s: stage %d", rollout.id, decision.stage)


def _target(row: RolloutBooth) -> BoothTarget:
    return BoothTarget(
        booth_id=row.booth_id,
        stage=row.stage,
        progress=Progress(row.progress),
        since=row.since,
        detail=row.detail,
    )


async def run_updates(updates: Updates) -> Callable[[], Awaitable[None]]:
    """Start the loop; returns what stops it."""
    task = asyncio.get_running_loop().create_task(updates.run(), name="updates")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await updates.settled()

    return stop
