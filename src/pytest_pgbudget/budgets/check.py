"""Checking captured statements against a budget. Pure: no database here."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..capture.statements import Statement
from ..plans import Node, Spill, index_hint, render_plan
from ..plans.analysis import _spill as _node_spill
from .spec import Budget

#: Re-plans a captured statement with seq scans disabled; returns the indexes it can use.
CapabilityCheck = Callable[[Statement], frozenset[str]]


@dataclass(frozen=True)
class Violation:
    """One broken budget keyword, ready to be shown to a developer."""

    keyword: str
    headline: str
    statement: Statement | None = None
    mark: Callable[[Node], bool] | None = field(default=None, compare=False)
    hint: str | None = None
    extra: tuple[str, ...] = ()
    #: What the violation is about, e.g. the index ``require_index`` asked for.
    subject: str | None = None

    @property
    def latency(self) -> bool:
        return self.keyword in ("max_ms", "p95_ms", "total_ms")

    def plan_lines(self) -> list[str]:
        if self.statement is None:
            return []
        return render_plan(self.statement.plan, mark=self.mark)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: with fewer than 20 values, p95 is the maximum."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value >= 1 else f"{value:.3f} ms"


def _latency(budget: Budget, statements: Sequence[Statement], scale: float) -> list[Violation]:
    found: list[Violation] = []
    durations = [s.duration_ms for s in statements]
    if not durations:
        return found
    scaled = "" if scale == 1 else f" (ceiling scaled x{scale:.2f} for this machine)"
    if budget.max_ms is not None:
        limit = budget.max_ms * scale
        slowest = max(statements, key=lambda s: s.duration_ms)
        if slowest.duration_ms > limit:
            found.append(
                Violation(
                    "max_ms",
                    f"slowest statement took {_ms(slowest.duration_ms)}: budget max_ms={budget.max_ms:g}{scaled}",
                    slowest,
                    hint="the plan above shows where the time went",
                )
            )
    if budget.p95_ms is not None:
        limit = budget.p95_ms * scale
        p95 = percentile(durations, 0.95)
        if p95 > limit:
            n = len(durations)
            note = " (fewer than 20 samples: p95 is the maximum)" if n < 20 else ""
            slowest = max(statements, key=lambda s: s.duration_ms)
            found.append(
                Violation(
                    "p95_ms",
                    f"p95 of {n} statements is {_ms(p95)}{note}: budget p95_ms={budget.p95_ms:g}{scaled}",
                    slowest,
                )
            )
    if budget.total_ms is not None:
        limit = budget.total_ms * scale
        total = sum(durations)
        if total > limit:
            found.append(
                Violation(
                    "total_ms",
                    f"{len(durations)} statements took {_ms(total)} in all: budget total_ms={budget.total_ms:g}{scaled}",
                )
            )
    return found


def _counts(budget: Budget, statements: Sequence[Statement]) -> list[Violation]:
    found: list[Violation] = []
    if budget.max_queries is not None and len(statements) > budget.max_queries:
        found.append(
            Violation(
                "max_queries",
                f"Expected to perform {budget.max_queries} queries or less but {len(statements)} were done",
                extra=tuple(f"{i}. {s.short_sql()}" for i, s in enumerate(statements, 1)),
            )
        )
    if budget.max_repeats is not None:
        counts = Counter(s.fingerprint for s in statements)
        for fp, count in counts.most_common():
            if count <= budget.max_repeats:
                break
            example = next(s for s in statements if s.fingerprint == fp)
            found.append(
                Violation(
                    "max_repeats",
                    f"the same statement ran {count} times (N+1?): budget max_repeats={budget.max_repeats}",
                    example,
                    hint="fetch the rows in one query (WHERE id = ANY(%s), a JOIN, or your ORM's "
                    "select-related/prefetch) instead of one query per row",
                )
            )
    return found


def _is_seq_scan_of(relation: str) -> Callable[[Node], bool]:
    def mark(node: Node) -> bool:
        name = node.get("Relation Name")
        return node.get("Node Type") == "Seq Scan" and (
            name == relation or f"{node.get('Schema')}.{name}" == relation
        )

    return mark


def _plans(budget: Budget, statements: Sequence[Statement]) -> list[Violation]:
    found: list[Violation] = []
    tables = budget.no_seq_scan if isinstance(budget.no_seq_scan, tuple) else None
    for statement in statements:
        if budget.no_seq_scan:
            for scan in statement.seq_scans:
                bare = scan.relation.rsplit(".", 1)[-1]
                if tables is not None:
                    if scan.relation not in tables and bare not in tables:
                        continue
                elif scan.rows <= budget.seq_scan_min_rows:
                    continue
                rule = (
                    f"budget forbids seq scans on {', '.join(tables)}"
                    if tables is not None
                    else f"budget forbids seq scans over {budget.seq_scan_min_rows} rows"
                )
                estimate = " estimated" if scan.estimated else ""
                hint = index_hint(scan)
                found.append(
                    Violation(
                        "no_seq_scan",
                        f"Seq Scan on {scan.relation} ({scan.rows}{estimate} rows): {rule}",
                        statement,
                        mark=_is_seq_scan_of(scan.relation),
                        hint=f"an index would serve the filter: {hint}" if hint else None,
                    )
                )
        if budget.no_temp_spill:
            for spill in statement.spills:
                found.append(
                    Violation(
                        "no_temp_spill",
                        f"{spill.node} spilled to disk ({spill.kind}): budget forbids temp spills",
                        statement,
                        mark=_marks_spill(spill),
                        hint="raise work_mem for this query (SET LOCAL work_mem = '16MB'), or sort/hash "
                        "fewer rows (filter earlier, use an index that returns rows in order)",
                        extra=(spill.detail,) if spill.detail else (),
                    )
                )
        if budget.max_buffers is not None and statement.buffers > budget.max_buffers:
            found.append(
                Violation(
                    "max_buffers",
                    f"statement touched {statement.buffers} shared buffers (hit {statement.summary.shared_hit}, "
                    f"read {statement.summary.shared_read}): budget max_buffers={budget.max_buffers}",
                    statement,
                    hint="buffers count pages read; an index, a narrower filter or a LIMIT reads fewer",
                )
            )
    return found


def _marks_spill(spill: Spill) -> Callable[[Node], bool]:
    def mark(node: Node) -> bool:
        return _node_spill(node) == spill

    return mark


def _indexes(
    budget: Budget, statements: Sequence[Statement], capable: CapabilityCheck | None
) -> list[Violation]:
    if not budget.require_index:
        return []
    used: set[str] = set()
    if budget.plan == "capable" and capable is not None:
        for statement in statements:
            used |= statement.indexes | capable(statement)
        how = "no captured statement can use"
    else:
        for statement in statements:
            used |= statement.indexes
        how = "no plan used"
    found = []
    for index in budget.require_index:
        if index not in used:
            seen = ", ".join(sorted(used)) or "none"
            hint = (
                "on small or shared test data the planner may rightly prefer a seq scan; "
                "plan='capable' checks that the index *can* serve the statement"
                if budget.plan == "actual"
                else "check the index exists and matches the statements' filters and operators"
            )
            found.append(
                Violation(
                    "require_index",
                    f"{how} index {index} (indexes used: {seen})",
                    subject=index,
                    hint=hint,
                    extra=tuple(s.short_sql() for s in statements[:10]),
                )
            )
    return found


def check(
    budget: Budget,
    statements: Sequence[Statement],
    *,
    latency_scale: float = 1.0,
    capable: CapabilityCheck | None = None,
) -> list[Violation]:
    """Every violation of ``budget`` by ``statements``, deterministic ones first."""
    if budget.off:
        return []
    return [
        *_counts(budget, statements),
        *_plans(budget, statements),
        *_indexes(budget, statements, capable),
        *_latency(budget, statements, latency_scale),
    ]
