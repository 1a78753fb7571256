"""Booth updates as stored: the bundles administrators uploaded (their facts; the files are
kept by SHA-256 in the data folder), the rollouts and every booth's progress in them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from .common import rowcount
from .database import Database
from .errors import ConflictError, DuplicateError, NotFoundError
from .models import Rollout, RolloutBooth, UpdateBundle

__all__ = [
    "NewBundle",
    "RolloutPolicy",
    "add_bundle",
    "bundle_by_sha256",
    "create_rollout",
    "delete_bundle",
    "get_bundle",
    "get_rollout",
    "list_bundles",
    "list_rollouts",
    "rollout_booths",
    "rollouts_in",
    "save_rollout_booths",
    "set_rollout_state",
]


#: A rollout in these states acts on booths; at most one is (``Rollout.active``).
ACTIVE_STATES = ("running", "paused")


@dataclass(frozen=True)
class NewBundle:
    version: str
    compatible: str
    signer: str
    sha256: str
    size: int


@dataclass(frozen=True)
class RolloutPolicy:
    max_failure_share: float
    health_timeout_seconds: int
    max_parallel: int


async def add_bundle(db: Database, facts: NewBundle, *, uploaded_by: str | None) -> UpdateBundle:
    """Keep a checked bundle's facts; :class:`DuplicateError` if the same file is there."""
    bundle = UpdateBundle(
        version=facts.version,
        compatible=facts.compatible,
        signer=facts.signer,
        sha256=facts.sha256,
        size=facts.size,
        uploaded_at=db.now(),
        uploaded_by=uploaded_by,
    )
    async with db.session() as session:
        session.add(bundle)
        try:
            await session.commit()
        except IntegrityError:
            raise DuplicateError(
                f"this bundle (version {facts.version}) was uploaded already"
            ) from None
    return bundle


async def get_bundle(db: Database, bundle_id: str) -> UpdateBundle | None:
    async with db.reads() as session:
        return await session.get(UpdateBundle, bundle_id)


async def bundle_by_sha256(db: Database, sha256: str) -> UpdateBundle | None:
    async with db.reads() as session:
        return await session.scalar(select(UpdateBundle).where(UpdateBundle.sha256 == sha256))


async def list_bundles(db: Database) -> list[UpdateBundle]:
    """Newest first."""
    async with db.reads() as session:
        return list(
            await session.scalars(select(UpdateBundle).order_by(UpdateBundle.uploaded_at.desc()))
        )


async def delete_bundle(db: Database, bundle_id: str) -> UpdateBundle:
    """Forget a bundle no rollout uses; :class:`ConflictError` when one does."""
    async with db.session() as session:
        bundle = await session.get(UpdateBundle, bundle_id)
        if bundle is None:
            raise NotFoundError("no such bundle")
        used = await session.scalar(
            select(func.count()).select_from(Rollout).where(Rollout.bundle_id == bundle_id)
        )
        if used:
            raise ConflictError("a rollout uses this bundle: it stays while the rollout is listed")
        await session.delete(bundle)
        await session.commit()
    return bundle


async def create_rollout(
    db: Database,
    bundle_id: str,
    stages: Sequence[Sequence[str]],
    policy: RolloutPolicy,
    *,
    created_by: str | None,
) -> Rollout:
    """A running rollout of the bundle to the booths in ``stages`` (stage 0: the canaries,
    may be empty); :class:`ConflictError` while another rollout is running or paused."""
    now = db.now()
    async with db.session() as session:
        if await session.get(UpdateBundle, bundle_id) is None:
            raise NotFoundError("no such bundle")
        busy = await session.scalar(
            select(Rollout.id).where(Rollout.state.in_(ACTIVE_STATES)).limit(1)
        )
        if busy is not None:
            raise ConflictError(
                "another rollout is running or paused: cancel it or let it finish first"
            )
        rollout = Rollout(
            bundle_id=bundle_id,
            state="running",
            active=True,
            stage=0,
            max_failure_share=policy.max_failure_share,
            health_timeout_seconds=policy.health_timeout_seconds,
            max_parallel=policy.max_parallel,
            created_at=now,
            created_by=created_by,
            updated_at=now,
        )
        session.add(rollout)
        try:
            await session.flush()
        except IntegrityError:  # another one started meanwhile (uq_rollouts_one_active)
            raise ConflictError(
                "another rollout is running or paused: cancel it or let it finish first"
            ) from None
        for stage, booths in enumerate(stages):
            for booth_id in booths:
                session.add(
                    RolloutBooth(
                        rollout_id=rollout.id,
                        booth_id=booth_id,
                        stage=stage,
                        progress="pending",
                        percent=0,
                        detail="",
                    )
                )
        await session.commit()
    return rollout


async def get_rollout(db: Database, rollout_id: str) -> Rollout | None:
    async with db.reads() as session:
        return await session.get(Rollout, rollout_id)


async def list_rollouts(db: Database) -> list[Rollout]:
    """Newest first."""
    async with db.reads() as session:
        return list(await session.scalars(select(Rollout).order_by(Rollout.created_at.desc())))


async def rollouts_in(db: Database, states: Sequence[str]) -> list[Rollout]:
    async with db.reads() as session:
        return list(await session.scalars(select(Rollout).where(Rollout.state.in_(states))))


async def rollout_booths(db: Database, rollout_id: str) -> list[RolloutBooth]:
    async with db.reads() as session:
        return list(
            await session.scalars(
                select(RolloutBooth)
                .where(RolloutBooth.rollout_id == rollout_id)
                .order_by(RolloutBooth.stage, RolloutBooth.booth_id)
            )
        )


async def set_rollout_state(
    db: Database,
    rollout_id: str,
    state: str,
    *,
    expect: Sequence[str],
    reason: str | None = None,
    stage: int | None = None,
) -> bool:
    """Move the rollout to ``state`` if it is in one of ``expect`` (so a pause never revives a
    rollout that stopped meanwhile); whether it moved."""
    values: dict[str, object] = {
        "state": state,
        "updated_at": db.now(),
        "active": True if state in ACTIVE_STATES else None,
    }
    if reason is not None:
        values["reason"] = reason
    if stage is not None:
        values["stage"] = stage
    async with db.session() as session:
        result = await session.execute(
            update(Rollout)
            .where(Rollout.id == rollout_id, Rollout.state.in_(expect))
            .values(**values)
        )
        await session.commit()
    return rowcount(result) == 1


async def save_rollout_booths(
    db: Database, rollout_id: str, changes: Sequence[tuple[str, str, int, str, datetime | None]]
) -> None:
    """Booths' progress: (booth id, progress, percent, detail, since) each."""
    async with db.session() as session:
        for booth_id, progress, percent, detail, since in changes:
            await session.execute(
                update(RolloutBooth)
                .where(RolloutBooth.rollout_id == rollout_id, RolloutBooth.booth_id == booth_id)
                .values(progress=progress, percent=percent, detail=detail, since=since)
            )
        await session.commit()
