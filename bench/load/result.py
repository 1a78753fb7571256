"""What one load run measured, its table rows and its goals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.load.settings import API_GOAL_MS, LoadSettings
from bench.procs import percentile
from bench.table import row, text_table


@dataclass
class LoadResult:
    """Everything one run measured; :meth:`rows` and :meth:`table` present it."""

    settings: LoadSettings
    baseline_rss_kib: int = 0
    booths_rss_kib: int = 0
    booths_connected: int = 0
    booths_connected_at_end: int = 0
    booths_online_at_end: int = 0
    #: Longest time between two heartbeats of one booth (seconds).
    max_heartbeat_gap: float = 0.0
    heartbeats: int = 0
    setup_ms: list[float] = field(default_factory=list)
    negotiated_ms: list[float] = field(default_factory=list)
    reference_setup_ms: list[float] = field(default_factory=list)
    reference_negotiated_ms: list[float] = field(default_factory=list)
    attempted: int = 0
    completed: int = 0
    #: Set-ups that waited for an advisor to be free (the earlier calls were slow to end).
    waited_for_advisor: int = 0
    load_seconds: float = 0.0
    api_ms: list[float] = field(default_factory=list)
    api_by_path: dict[str, list[float]] = field(default_factory=dict)
    api_failures: int = 0
    reference_api_ms: list[float] = field(default_factory=list)
    server_cpu_idle: float = 0.0  # cores, booths connected, no calls
    server_cpu_load: float = 0.0  # cores, during the set-ups
    server_alive: bool = False
    #: Unexpected errors: refused messages, failed set-ups, errors in the server's log, ...
    errors: list[str] = field(default_factory=list)
    messages_received: int = 0

    @property
    def per_booth_kib(self) -> float:
        return (self.booths_rss_kib - self.baseline_rss_kib) / max(self.booths_connected, 1)

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.load_seconds if self.load_seconds else 0.0

    def rows(self) -> list[dict[str, Any]]:
        """The figures as rows of ``bench/run.py``'s table (figure, value, reference,
        reference_is, ratio, goal)."""
        s = self.settings
        n = s.booths
        rows = [
            row(
                f"load: booths connected at the end (of {n})",
                self.booths_connected_at_end,
                n,
                "booths started",
                f"all {n}",
            ),
            row(
                "load: booths online in the fleet view at the end",
                self.booths_online_at_end,
                n,
                "booths started",
                f"all {n}",
            ),
            row(
                f"load: server RSS with {n} idle booths, MiB",
                self.booths_rss_kib / 1024,
                self.baseline_rss_kib / 1024,
                "server RSS before the booths, MiB",
                "",
            ),
            row(
                "load: server memory per idle booth, KiB",
                self.per_booth_kib,
                self.baseline_rss_kib / 1024,
                "server RSS before the booths, MiB",
                "measured",
                ratio=False,
            ),
            row(
                "load: call set-ups completed per second",
                self.achieved_rate,
                s.rate,
                "set-ups started per second",
                f">= {s.rate * 0.95:g}/s",
            ),
        ]
        for p in (50, 95, 99):
            rows.append(
                row(
                    f"load: call set-up p{p} ms (request -> call_started, both)",
                    percentile(self.setup_ms, p),
                    percentile(self.reference_setup_ms, p),
                    "one set-up at a time",
                    "",
                )
            )
        for p in (50, 99):
            rows.append(
                row(
                    f"load: set-up to offer/answer/ICE relayed p{p} ms",
                    percentile(self.negotiated_ms, p),
                    percentile(self.reference_negotiated_ms, p),
                    "one set-up at a time",
                    "",
                )
            )
        for p in (50, 95, 99):
            rows.append(
                row(
                    f"load: API p{p} ms",
                    percentile(self.api_ms, p),
                    percentile(self.reference_api_ms, p),
                    "same requests, idle server",
                    f"<= {API_GOAL_MS:g} ms" if p == 99 else "",
                )
            )
        rows.append(
            row(
                "load: server CPU during the set-ups, cores",
                self.server_cpu_load,
                self.server_cpu_idle,
                f"{n} booths connected, no calls",
                "",
            )
        )
        return rows

    def goals(self) -> dict[str, bool]:
        """Each goal of the issue and whether this run met it."""
        return {
            f"all {self.settings.booths} booths connected and online": (
                self.booths_connected_at_end == self.settings.booths
                and self.booths_online_at_end == self.settings.booths
            ),
            f"{self.settings.rate:g} set-ups/s (>= 95 %)": self.completion_ratio >= 0.95,
            f"API p99 <= {API_GOAL_MS:g} ms": percentile(self.api_ms, 99) <= API_GOAL_MS,
            "server up, no unexpected errors": self.server_alive and not self.errors,
        }

    @property
    def completion_ratio(self) -> float:
        return self.completed / self.attempted if self.attempted else 0.0

    def table(self) -> str:
        """A plain-text table of the rows and the goals."""
        lines = text_table(self.rows(), self.goals())
        s = self.settings
        lines.append(
            f"set-ups: {self.completed} of {self.attempted} completed in {self.load_seconds:.1f} s"
            f" ({self.waited_for_advisor} waited for a free advisor); heartbeats sent: "
            f"{self.heartbeats}, longest gap {self.max_heartbeat_gap:.1f} s "
            f"(booth interval {s.heartbeat_seconds:g} s); API requests: {len(self.api_ms)} "
            f"({self.api_failures} failed); messages received: {self.messages_received}"
        )
        for path, values in sorted(self.api_by_path.items()):
            lines.append(
                f"  API {path:28} p50 {percentile(values, 50):6.1f} ms"
                f"  p99 {percentile(values, 99):6.1f} ms  ({len(values)} requests)"
            )
        for error in self.errors[:20]:
            lines.append(f"error: {error}")
        if len(self.errors) > 20:
            lines.append(f"... and {len(self.errors) - 20} more errors")
        return "\n".join(lines)
