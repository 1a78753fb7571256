"""What a process costs, read from ``/proc``: CPU seconds, resident memory, its children."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def total_rss(pids: Iterable[int]) -> int:
    """Summed resident size of the processes still alive among ``pids``."""
    total = 0
    for pid in pids:
        try:
            total += rss_bytes(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def descendants(root: int, name: str | None = None) -> list[int]:
    """Every process below ``root`` (children, their children, ...), optionally only those
    whose command name starts with ``name``."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        head, tail = text.rsplit(")", 1)
        parents[int(entry.name)] = int(tail.split()[1])
        names[int(entry.name)] = head.split("(", 1)[1]
    found: list[int] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return [pid for pid in found if name is None or names[pid].startswith(name)]
