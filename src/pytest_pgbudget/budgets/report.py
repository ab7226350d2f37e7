"""Failure messages: a headline per violation, the statement, the plan lines that matter, a hint."""

from __future__ import annotations

from collections.abc import Sequence

from ..capture.statements import Statement
from ..plans import MARKER
from .check import Violation

_CONTEXT = 2  # plan lines shown around each marked line when not verbose


def _key_plan_lines(lines: list[str]) -> list[str]:
    marked = [i for i, line in enumerate(lines) if line.startswith(MARKER)]
    if not marked or len(lines) <= 12:
        return lines
    keep = sorted(
        {j for i in marked for j in range(i - _CONTEXT, i + _CONTEXT + 1) if 0 <= j < len(lines)}
    )
    out: list[str] = []
    previous = -1
    for j in keep:
        if j != previous + 1:
            out.append("   ...")
        out.append(lines[j])
        previous = j
    if previous != len(lines) - 1:
        out.append("   ...")
    return out


def format_violations(
    where: str,
    violations: Sequence[Violation],
    statements: Sequence[Statement],
    *,
    verbose: bool = False,
) -> str:
    """The text of a failed budget, every violation together."""
    count = len(violations)
    lines = [
        violations[0].headline if count == 1 else f"{count} pgbudget violations in {where}:",
    ]
    for number, violation in enumerate(violations, 1):
        if count > 1:
            lines += ["", f"[{number}] {violation.headline}"]
        if violation.statement is not None:
            lines.append(f"    statement: {violation.statement.short_sql(400)}")
            plan = violation.plan_lines()
            shown = plan if verbose else _key_plan_lines(plan)
            lines.append("    plan:")
            lines += [f"      {line}" for line in shown]
        if violation.extra:
            extra = (
                violation.extra
                if verbose or len(violation.extra) <= 10
                else (
                    *violation.extra[:10],
                    f"... and {len(violation.extra) - 10} more (-v shows all)",
                )
            )
            if violation.keyword == "max_queries" and not verbose:
                lines.append("    (add -v to list the queries)")
            else:
                lines += [f"    {line}" for line in extra]
        if violation.hint:
            lines.append(f"    hint: {violation.hint}")
    latency = [v for v in violations if v.latency]
    if latency and len(latency) == count:
        lines += [
            "",
            "    (latency only: timings vary on shared machines; max_buffers is deterministic)",
        ]
    if verbose and statements:
        lines += ["", f"all {len(statements)} captured statements:"]
        lines += [
            f"  {s.duration_ms:9.3f} ms  {s.buffers:6d} buf  {s.short_sql(160)}" for s in statements
        ]
    return "\n".join(lines)
