"""One row of ``make bench``'s table: a figure beside its reference from the same run, their
ratio where it means something, and the goal. Every benchmark makes its rows here."""

from __future__ import annotations

from typing import Any

__all__ = ["Row", "row"]

Row = dict[str, Any]


def row(
    figure: str,
    value: float,
    reference: float,
    reference_is: str,
    goal: str = "",
    *,
    ratio: bool = True,
) -> Row:
    """One line of the table; ``ratio=False`` where value / reference means nothing."""
    return {
        "figure": figure,
        "value": float(value),
        "reference": float(reference),
        "reference_is": reference_is,
        "ratio": value / reference if ratio and reference else None,
        "goal": goal,
    }


def text_table(
    rows: list[Row], goals: dict[str, bool], *, reference: str = "reference"
) -> list[str]:
    """``rows`` and whether each goal was met, as lines for a terminal (a benchmark's own
    ``python -m`` output; ``bench/run.py`` prints the whole run's table itself)."""
    width = max([len(r["figure"]) for r in rows] + [6])
    lines = [f"{'figure':{width}} {'value':>9} {reference:>9} {'ratio':>6}  goal"]
    for line in rows:
        ratio = f"{line['ratio']:.2f}" if line["ratio"] is not None else "-"
        lines.append(
            f"{line['figure']:{width}} {line['value']:>9.1f} {line['reference']:>9.1f} "
            f"{ratio:>6}  {line['goal']}"
        )
    lines.append("")
    lines += [
        f"goal: {goal:{width - 2}} {'met' if met else 'NOT MET'}" for goal, met in goals.items()
    ]
    return lines
