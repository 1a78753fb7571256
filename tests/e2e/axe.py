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
