"""axe-core, the accessibility engine, run in a page the tests have brought to some state.

axe-core comes from the npm registry as a development dependency (package.json): the tests
evaluate its script in the page through the browser's debugging protocol, which the pages'
Content-Security-Policy does not govern. The server never serves it.

:func:`audit` runs the WCAG 2.0/2.1 level A and AA rules (:data:`WCAG_TAGS`) over the whole
document and fails with every violation spelled out: the rule, its help text, the elements and
what axe saw wrong with each. What axe could not decide (``incomplete``, e.g. the contrast of
text over a video) is printed, not failed: a person looks at those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.components import unavailable

REPO = Path(__file__).resolve().parents[2]
AXE_SCRIPT = REPO / "node_modules" / "axe-core" / "axe.min.js"
#: The rule sets: WCAG 2.0 and 2.1, levels A and AA (BITV 2.0 and EN 301 549 ask for these).
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")

RUN = """async (tags) => {
  const result = await axe.run(document, {
    runOnly: { type: 'tag', values: tags },
  });
  const nodes = (items) => items.reduce((sum, item) => sum + item.nodes.length, 0);
  const checked = new Set();
  for (const group of [result.passes, result.violations, result.incomplete]) {
    for (const item of group) for (const node of item.nodes) checked.add(node.target.join(' '));
  }
  return {
    version: axe.version,
    rules: result.passes.length + result.violations.length + result.incomplete.length
      + result.inapplicable.length,
    applicable: result.passes.length + result.violations.length + result.incomplete.length,
    checked: checked.size,
    checks: nodes(result.passes) + nodes(result.violations) + nodes(result.incomplete),
    violations: result.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
    })),
    incomplete: result.incomplete.map((v) => ({
      id: v.id, nodes: v.nodes.map((n) => n.target.join(' ')),
    })),
  };
}"""


@dataclass
class Audit:
    """One page state's audit: how much was checked and what was found."""

    state: str
    version: str
    rules: int
    applicable: int
    checked: int
    checks: int
    violations: list[dict[str, Any]] = field(default_factory=list)
    incomplete: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        review = sum(len(i["nodes"]) for i in self.incomplete)
        return (
            f"{self.state:<40} {self.applicable:>3} of {self.rules} rules applied, "
            f"{self.checked:>4} elements, {self.checks:>5} checks, "
            f"{len(self.violations)} violations, {review} to review"
        )


#: Every audit of the session, for the summary the tests print.
AUDITS: list[Audit] = []


def summary() -> list[str]:
    """The session's audits as the end of a test run prints them (also when they pass)."""
    if not AUDITS:
        return []
    lines = [
        f"axe-core {AUDITS[0].version}, rule set {', '.join(WCAG_TAGS)} (WCAG 2.0/2.1 A and AA): "
        f"{len(AUDITS)} page states, {sum(a.checked for a in AUDITS)} elements, "
        f"{sum(a.checks for a in AUDITS)} checks, "
        f"{sum(len(a.violations) for a in AUDITS)} violations"
    ]
    lines += [f"  {audit.line()}" for audit in AUDITS]
    return lines


def axe_source() -> str:
    if not AXE_SCRIPT.is_file():
        unavailable(
            "axe-core is not in node_modules (the accessibility checks need it); "
            "run ./scripts/test or npm ci"
        )
    return AXE_SCRIPT.read_text()


async def audit(page: Any, state: str) -> Audit:
    """Run axe-core over ``page`` as it is now, at the WCAG 2.1 A/AA rules; the result is
    printed and kept in :data:`AUDITS`, and :func:`no_violations` fails on what it found (so one
    run lists the violations of every state, not only of the first)."""
    # What slides in is checked as it stays, not half-way (a finite animation ends).
    await page.evaluate(
        "() => Promise.all(document.getAnimations()"
        ".filter((a) => a.effect?.getTiming().iterations !== Infinity).map((a) => a.finished))"
    )
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(axe_source())
    found = await page.evaluate(RUN, list(WCAG_TAGS))
    result = Audit(state=state, **found)
    AUDITS.append(result)
    print(f"axe {result.version}: {result.line()}")
    for item in result.violations:
        print(f"    VIOLATION {item['id']}: {', '.join(n['target'] for n in item['nodes'][:4])}")
    for item in result.incomplete:
        print(f"    to review: {item['id']} on {', '.join(item['nodes'][:4])}")
    return result


def no_violations(audits: list[Audit]) -> None:
    """Fail with every violation of ``audits``, state by state."""
    assert audits, "nothing was audited"
    failed = {a.state: a.violations for a in audits if a.violations}
    assert not failed, "axe-core found WCAG 2.1 A/AA violations:\n" + json.dumps(
        failed, indent=2, ensure_ascii=False
    )


# --- what an engine does not check -----------------------------------------------------------

#: Elements wider than the viewport, outside a box of their own that scrolls (a wide table may
#: scroll inside one: WCAG 1.4.10 exempts content that needs two dimensions).
OVERFLOW = """() => {
  const root = document.documentElement;
  const width = root.clientWidth;
  const wide = [...document.body.querySelectorAll('*')].filter((e) => {
    if (e.closest('.table-scroll, .visually-hidden')) return false;
    const box = e.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && box.right > width + 1;
  }).map((e) => e.id ? `#${e.id}` : `${e.tagName.toLowerCase()}.${e.className}`);
  return { scrollWidth: root.scrollWidth, width, wide: wide.slice(0, 10) };
}"""

#: The focused element and its focus indicator: the outline's colour and the colour behind it.
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const rgba = (text) => {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const parts = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return { r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1 };
  };
  const lum = ({ r, g, b }) => {
    const lin = [r, g, b].map((c) => {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
  };
  let behind = null;
  for (let node = el.parentElement; node && !behind; node = node.parentElement) {
    const colour = rgba(getComputedStyle(node).backgroundColor);
    if (colour && colour.a > 0.5) behind = colour;
  }
  behind = behind || { r: 255, g: 255, b: 255, a: 1 };
  const style = getComputedStyle(el);
  const ring = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2
    ? rgba(style.outlineColor) : null;
  const [hi, lo] = ring ? [lum(ring), lum(behind)].sort((a, b) => b - a) : [0, 0];
  const all = [...document.querySelectorAll('*')];
  return {
    at: all.indexOf(el),
    what: (el.id ? `#${el.id}` : el.tagName.toLowerCase()) + ' "'
      + (el.getAttribute('aria-label') || el.textContent || el.value || '').trim().slice(0, 40)
      + '"',
    visible: el.matches(':focus-visible'),
    ring: ring ? style.outlineColor : null,
    width: parseFloat(style.outlineWidth),
    contrast: ring ? (hi + 0.05) / (lo + 0.05) : 0,
  };
}"""

#: What the keyboard should reach: visible, enabled controls and links, in document order.
TABBABLE = """() => {
  const selector = 'a[href], button, input, select, textarea, summary, [tabindex]';
  return [...document.querySelectorAll(selector)].filter((e) => {
    if (e.disabled || e.tabIndex < 0) return false;
    if (e.closest('[inert], [hidden], details:not([open]) > :not(summary)')) return false;
    if (e.type === 'hidden' || (e.type === 'radio' && !e.checked)) return false;
    const box = e.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(e).visibility !== 'hidden';
  }).length;
}"""


#: Where a walk starts: a mark before everything, focused and then taken away.
START = """() => {
  const mark = document.createElement('span');
  mark.id = 'focus-walk-start';
  mark.tabIndex = -1;
  document.body.prepend(mark);
  window.scrollTo(0, 0);
  mark.focus();
}"""


async def reflows(page: Any, state: str) -> dict[str, Any]:
    """Nothing of ``page`` is wider than its viewport: no sideways scrolling."""
    found: dict[str, Any] = await page.evaluate(OVERFLOW)
    print(f"reflow {state}: {found['scrollWidth']} of {found['width']} CSS px {found['wide']}")
    assert found["scrollWidth"] <= found["width"] + 1 and not found["wide"], (state, found)
    return found


async def focus_walk(page: Any, state: str) -> list[dict[str, Any]]:
    """Tab through the whole page from its top: every control is reached, in document order,
    and each shows a focus ring of at least 2 px with a contrast of 3:1 to what is behind it."""
    expected = await page.evaluate(TABBABLE)
    await page.evaluate(START)
    await page.keyboard.press("Tab")
    await page.evaluate("() => document.getElementById('focus-walk-start')?.remove()")
    stops: list[dict[str, Any]] = []
    for _ in range(3 * expected + 10):  # a date field takes a Tab for each of its parts
        focused = await page.evaluate(FOCUSED)
        if focused is None or (stops and focused["at"] < stops[-1]["at"]):
            break  # back at the top (or out of the page): once round
        if not stops or focused["at"] != stops[-1]["at"]:
            stops.append(focused)
        await page.keyboard.press("Tab")
    weak = [s for s in stops if not s["visible"] or s["width"] < 2 or s["contrast"] < 3]
    print(
        f"focus {state}: {len(stops)} stops of {expected} controls, weakest ring "
        f"{min((s['contrast'] for s in stops), default=0):.1f}:1"
    )
    assert len(stops) >= expected, (state, expected, [s["what"] for s in stops])
    assert not weak, (state, weak)
    return stops
