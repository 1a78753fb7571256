"""Installing a bundle into the other root slot, and the slots' state: RAUC on a booth, a fake
in tests and on machines without A/B slots.

RAUC checks the bundle's signature against the image's keyring and every block of it against
the signed hash tree before it writes a byte; it writes the slot that is not running, and
tells the boot loader to try it once on the next start. The boot loader falls back to the old
slot by itself if the new one does not start; the booth marks the new slot good only after it
reached READY and passed its self-test (:meth:`Installer.mark_good`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from .errors import UpdateError

__all__ = ["FakeInstaller", "InstallError", "Installer", "RaucInstaller", "Slots", "parse_status"]

log = logging.getLogger(__name__)

#: Percent done and what RAUC is doing (its own words).
InstallProgress = Callable[[int, str], None]
_PROGRESS = re.compile(r"^\s*(\d{1,3})%\s+(.*)$")


class InstallError(UpdateError):
    """RAUC refused or failed the installation; nothing was switched."""


@dataclass(frozen=True)
class Slots:
    """The root slots as the booth runs now."""

    #: The boot name of the running slot ("A" or "B").
    booted: str
    #: The running slot is marked good (the boot loader will not fall back from it).
    booted_good: bool
    #: The version of the bundle the running slot was installed from (None: flashed, not
    #: updated: the image's own version applies).
    booted_version: str | None
    #: The slot the boot loader starts next (after an installation: the other one).
    primary: str | None


def parse_status(text: str) -> Slots:
    """``rauc status --detailed --output-format=json``, read into :class:`Slots`."""
    try:
        data: Any = json.loads(text)
        booted = str(data["booted"])
        slots: dict[str, dict[str, Any]] = {}
        for entry in data["slots"]:
            slots.update(entry)
        primary_name = data.get("boot_primary")
    except (ValueError, KeyError, TypeError) as exc:
        raise UpdateError(f"RAUC's status is not what was expected: {exc}") from exc
    running = next(
        (s for s in slots.values() if s.get("bootname") == booted and s.get("class") == "rootfs"),
        None,
    )
    if running is None:
        raise UpdateError(f"RAUC names no root slot with the boot name {booted!r}")
    bundle = (running.get("slot_status") or {}).get("bundle") or {}
    primary = slots.get(primary_name or "", {}).get("bootname") if primary_name else None
    return Slots(
        booted=booted,
        booted_good=running.get("boot_status") == "good",
        booted_version=bundle.get("version"),
        primary=primary,
    )


class Installer(Protocol):
    async def slots(self) -> Slots: ...

    async def install(self, bundle: Path, progress: InstallProgress) -> None:
        """Install ``bundle`` into the other slot and make it the next to start; raises
        :class:`InstallError` with RAUC's reason."""
        ...

    async def mark_good(self) -> None:
        """The running slot works: the boot loader keeps it."""
        ...


class RaucInstaller:
    """The ``rauc`` command (it asks the RAUC service of the booth's system).

    RAUC's U-Boot backend cannot tell a slot on trial from one that works: every start takes
    one of the slot's tries, and marking it good gives them back. So the booth marks its slot
    good on every start once it works, and remembers in ``trial`` (on /data) which slot an
    installation made the next to start: that slot is on trial until it is marked good once.
    The image's trial guard (``videobooth-trial-guard``) reads the same file.
    """

    def __init__(self, *, rauc: str = "rauc", trial: Path | None = None) -> None:
        self._rauc = rauc
        self._trial = trial

    def _on_trial(self) -> str | None:
        if self._trial is None:
            return None
        try:
            return self._trial.read_text().split()[0]
        except (OSError, IndexError):
            return None

    async def _start(self, *args: str) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                self._rauc,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise InstallError(f"cannot run {self._rauc!r} (is rauc installed?): {exc}") from exc

    async def _run(self, *args: str) -> str:
        process = await self._start(*args)
        out, err = await process.communicate()
        if process.returncode != 0:
            raise InstallError(f"rauc {args[0]} failed: {_last_line(err.decode(errors='replace'))}")
        return out.decode(errors="replace")

    async def slots(self) -> Slots:
        slots = parse_status(await self._run("status", "--detailed", "--output-format=json"))
        # RAUC calls a slot with tries left "good": on trial is what the booth remembered.
        return replace(slots, booted_good=slots.booted_good and self._on_trial() != slots.booted)

    async def install(self, bundle: Path, progress: InstallProgress) -> None:
        process = await self._start("install", str(bundle))
        assert process.stdout is not None
        assert process.stderr is not None
        errors = asyncio.ensure_future(process.stderr.read())
        said: list[str] = []
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            if (match := _PROGRESS.match(line)) is not None:
                progress(min(int(match[1]), 100), match[2])
            elif line:
                said.append(line)
        await process.wait()
        stderr = (await errors).decode(errors="replace")
        if process.returncode != 0:
            raise InstallError(f"RAUC did not install the bundle: {_last_line(stderr, said)}")
        log.info("bundle %s installed into the other slot", bundle.name)
        if self._trial is not None:
            slots = parse_status(await self._run("status", "--detailed", "--output-format=json"))
            target = slots.primary or ("B" if slots.booted == "A" else "A")
            try:
                self._trial.parent.mkdir(parents=True, exist_ok=True)
                self._trial.write_text(f"{target} {bundle.name}\n")
            except OSError as exc:
                raise InstallError(f"cannot note slot {target} as on trial: {exc}") from exc

    async def mark_good(self) -> None:
        await self._run("status", "mark-good")
        log.info("the running slot is marked good")
        if self._trial is not None:
            # Kept, or (on the old slot after a fall back) given up: on trial no more.
            self._trial.unlink(missing_ok=True)


#: What ``rauc install`` prints about itself (its state as the service reports it, and
#: progress lines): never the reason it failed.
_STATES = {"idle", "installing", "done", "failed"}
_REASON = re.compile(r"fail|error|refus|invalid|signature|verif|denied|not |cannot", re.I)


def _last_line(stderr: str, stdout: list[str] | None = None) -> str:
    """The reason RAUC gave: the last line that reads like one (it may come on either
    stream, after its state changes back to "idle"), else its last words."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lines += [line.strip() for line in stdout or [] if line.strip()]
    said = [
        line.removeprefix("rauc-Message:").strip()
        for line in lines
        if line.lower() not in _STATES and not _PROGRESS.match(line)
    ]
    reasons = [line for line in said if _REASON.search(line)]
    if reasons:
        return reasons[-1][:300]
    return said[-1][:300] if said else "no reason given"


class FakeInstaller:
    """Two slots in memory: installs take a moment and report progress; a bundle whose file
    name contains ``refuse`` is refused, as RAUC refuses a bundle it cannot verify."""

    def __init__(self, *, version: str = "1.0.0", booted: str = "A") -> None:
        self.state = Slots(booted=booted, booted_good=True, booted_version=version, primary=booted)
        self.installed: list[Path] = []

    async def slots(self) -> Slots:
        return self.state

    async def install(self, bundle: Path, progress: InstallProgress) -> None:
        if "refuse" in bundle.name:
            raise InstallError("RAUC did not install the bundle: signature verification failed")
        for percent, what in ((0, "Installing"), (40, "Copying image to rootfs.1"), (100, "done")):
            progress(percent, what)
            await asyncio.sleep(0)
        self.installed.append(bundle)
        other = "B" if self.state.booted == "A" else "A"
        self.state = replace(self.state, primary=other)

    async def mark_good(self) -> None:
        self.state = replace(self.state, booted_good=True)
