"""What a process costs (CPU seconds, resident memory, its descendants), through psutil, and the
percentiles of a run's figures, through :mod:`statistics`."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

import psutil


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` (all its threads), in seconds."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes."""
    return int(psutil.Process(pid).memory_info().rss)


def total_rss(pids: Iterable[int]) -> int:
    """Summed resident size of the processes still alive among ``pids``."""
    total = 0
    for pid in pids:
        try:
            total += rss_bytes(pid)
        except psutil.NoSuchProcess:
            continue
    return total


def descendants(root: int, name: str | None = None) -> list[int]:
    """Every process below ``root`` (children, their children, ...), optionally only those
    whose command name starts with ``name``."""
    found = []
    for child in psutil.Process(root).children(recursive=True):
        try:
            if name is None or child.name().startswith(name):
                found.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def percentile(values: Sequence[float], p: int) -> float:
    """The ``p``-th percentile (1 to 99) of ``values``, between the nearest ranks as
    :func:`statistics.quantiles` computes it inclusively; 0 for no values."""
    if not 1 <= p <= 99:
        raise ValueError(f"a percentile from 1 to 99, not {p}")
    if len(values) < 2:
        return float(values[0]) if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def latency_percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and p99 of ``values`` (ms), as the benchmarks' JSON details name them."""
    return {f"p{p}_ms": percentile(values, p) for p in (50, 95, 99)}
