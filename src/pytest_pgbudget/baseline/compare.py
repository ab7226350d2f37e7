"""Comparing a test's run with its baseline entry. Pure: no database here.

``--pgbudget-compare-fail`` takes comma-separated ``metric:threshold`` rules:

=============  ===========================================================
``queries:+N``  the test ran more than N statements more than the baseline
``buffers:P%``  a statement's shared buffers (hit + read) grew by more than P%
``buffers:+N``  ... by more than N buffers
``rows:P%``     a statement's rows grew by more than P% (or ``+N``)
``temp:+N``     a statement's temp blocks grew by more than N (or ``P%``)
``plan:changed``  a statement's plan shape (node types, relations, indexes) changed
``p95_ms:P%``   the test's p95 statement duration grew by more than P% (or ``+N``)
``max_ms:P%``, ``total_ms:P%``  the same for the slowest statement and the sum
=============  ===========================================================

The default, :data:`DEFAULT_RULES`, uses only deterministic metrics, so a noisy
CI machine never fails a build on timing alone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_RULES = "queries:+0,plan:changed,buffers:20%"

_STATEMENT_METRICS = {"buffers": "buffers", "rows": "rows", "temp": "temp_blocks"}
_TEST_METRICS = {"p95_ms", "max_ms", "total_ms"}
METRICS = ("queries", "plan", *_STATEMENT_METRICS, *sorted(_TEST_METRICS))
_RULE = re.compile(r"^(?P<metric>[a-z0-9_]+):(?P<value>\+?[0-9]+(?:\.[0-9]+)?%?|changed)$")


class RuleError(ValueError):
    """A ``--pgbudget-compare-fail`` expression that cannot be parsed."""


@dataclass(frozen=True)
class Rule:
    metric: str
    amount: float = 0.0
    relative: bool = False

    def exceeded(self, before: float, after: float) -> bool:
        if self.relative:
            if before == 0:
                return after > 0
            return (after - before) / before * 100 > self.amount
        return after - before > self.amount

    def __str__(self) -> str:
        if self.metric == "plan":
            return "plan:changed"
        amount = f"{self.amount:g}"
        return f"{self.metric}:{amount}%" if self.relative else f"{self.metric}:+{amount}"


def parse_rules(text: str) -> tuple[Rule, ...]:
    """Parse ``queries:+0,buffers:20%,...``; raise :class:`RuleError` naming the bad part."""
    rules = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _RULE.match(part)
        metric = match.group("metric") if match else part.partition(":")[0]
        if metric not in METRICS:
            raise RuleError(
                f"unknown metric {metric!r} in {part!r}; metrics: {', '.join(METRICS)} "
                "(e.g. queries:+0,buffers:20%,plan:changed,p95_ms:100%)"
            )
        if match is None:
            raise RuleError(
                f"cannot parse {part!r}: use metric:+N (absolute), metric:P% (relative) "
                "or plan:changed"
            )
        value = match.group("value")
        if (metric == "plan") != (value == "changed"):
            raise RuleError(f"{part!r}: only plan takes 'changed', and plan takes only 'changed'")
        if metric == "plan":
            rules.append(Rule("plan"))
        else:
            relative = value.endswith("%")
            rules.append(Rule(metric, float(value.strip("+%")), relative))
    return tuple(rules)


@dataclass(frozen=True)
class Change:
    """A difference between a test's run and its baseline."""

    metric: str
    message: str
    failed: bool
    fingerprint: str | None = None
    sql: str | None = None
    before: Any = None
    after: Any = None
    details: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "message": self.message,
            "failed": self.failed,
            "fingerprint": self.fingerprint,
            "sql": self.sql,
            "before": self.before,
            "after": self.after,
            "details": list(self.details),
        }


def _relation(node: str) -> str | None:
    match = re.search(r" on (\S+)(?: \S+)?$", node)
    return match.group(1) if match else None


def plan_diff(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """Readable differences between two plan shapes, e.g.
    ``Index Scan using idx_x on workflows became Seq Scan on workflows``."""
    removed = list((Counter(before) - Counter(after)).elements())
    added = list((Counter(after) - Counter(before)).elements())
    lines = []
    for old in list(removed):
        relation = _relation(old)
        twin = next((new for new in added if relation and _relation(new) == relation), None)
        if twin is not None:
            lines.append(f"{old} became {twin}")
            removed.remove(old)
            added.remove(twin)
    lines += [f"{old} is gone" for old in removed]
    lines += [f"{new} is new" for new in added]
    return lines or ["the order of the plan's nodes changed"]


def _pct(before: float, after: float) -> str:
    if before == 0:
        return "new"
    return f"{(after - before) / before * 100:+.0f}%"


def compare_entries(
    before: Mapping[str, Any], after: Mapping[str, Any], rules: Sequence[Rule]
) -> list[Change]:
    """Every change between a baseline entry and this run's entry, failing or not."""
    by_metric = {rule.metric: rule for rule in rules}
    changes: list[Change] = []
    old_statements: Mapping[str, Any] = before["statements"]
    new_statements: Mapping[str, Any] = after["statements"]

    # Query count, with the statements added and removed by fingerprint.
    if after["queries"] != before["queries"] or set(old_statements) != set(new_statements):
        rule = by_metric.get("queries")
        details = []
        for fp in sorted(set(old_statements) | set(new_statements)):
            old_calls = old_statements.get(fp, {}).get("calls", 0)
            new_calls = new_statements.get(fp, {}).get("calls", 0)
            example = (new_statements.get(fp) or old_statements[fp])["sql"]
            if new_calls > old_calls:
                details.append(
                    f"added {new_calls - old_calls}x ({old_calls} -> {new_calls}): {example}  [{fp}]"
                )
            elif new_calls < old_calls:
                details.append(
                    f"removed {old_calls - new_calls}x ({old_calls} -> {new_calls}): {example}  [{fp}]"
                )
        failed = rule is not None and rule.exceeded(before["queries"], after["queries"])
        allowed = f", allowed {rule}" if rule else ""
        changes.append(
            Change(
                "queries",
                f"queries: {before['queries']} -> {after['queries']}{allowed}",
                failed,
                before=before["queries"],
                after=after["queries"],
                details=tuple(details),
            )
        )

    for fp, new in sorted(new_statements.items()):
        old = old_statements.get(fp)
        if old is None:
            changes.append(Change("new", f"new statement: {new['sql']}", False, fp, new["sql"]))
            continue
        if old["shapes"] != new["shapes"]:
            rule = by_metric.get("plan")
            diff = plan_diff(old["shapes"][0], new["shapes"][0])
            changes.append(
                Change(
                    "plan",
                    f"plan of {new['sql']}: " + "; ".join(diff),
                    rule is not None,
                    fp,
                    new["sql"],
                    " > ".join(old["shapes"][0]),
                    " > ".join(new["shapes"][0]),
                )
            )
        for metric, key in _STATEMENT_METRICS.items():
            rule = by_metric.get(metric)
            if rule is None or old[key] == new[key]:
                continue
            if rule.exceeded(old[key], new[key]):
                changes.append(
                    Change(
                        metric,
                        f"{metric} of {new['sql']}: {old[key]} -> {new[key]} ({_pct(old[key], new[key])}, allowed {rule})",
                        True,
                        fp,
                        new["sql"],
                        old[key],
                        new[key],
                    )
                )
    for fp, old in sorted(old_statements.items()):
        if fp not in new_statements:
            changes.append(
                Change("gone", f"statement no longer run: {old['sql']}", False, fp, old["sql"])
            )

    for metric in sorted(_TEST_METRICS):
        rule = by_metric.get(metric)
        old_value = before.get("latency", {}).get(metric)
        new_value = after.get("latency", {}).get(metric)
        if rule is None or old_value is None or new_value is None:
            continue
        if rule.exceeded(old_value, new_value):
            changes.append(
                Change(
                    metric,
                    f"{metric}: {old_value:g} -> {new_value:g} ({_pct(old_value, new_value)}, allowed {rule})",
                    True,
                    before=old_value,
                    after=new_value,
                )
            )
    return changes


def format_regressions(nodeid: str, path: str, changes: Sequence[Change]) -> str:
    failing = [c for c in changes if c.failed]
    lines = [f"baseline regression ({len(failing)}) against {path}:"]
    for number, change in enumerate(failing, 1):
        lines.append(f"[{number}] {change.message}")
        lines += [f"      {detail}" for detail in change.details]
        if change.metric == "plan":
            lines.append(f"      before: {change.before}")
            lines.append(f"      after:  {change.after}")
    others = [c for c in changes if not c.failed]
    if others:
        lines.append("also changed (not failing): " + "; ".join(c.message for c in others))
    return "\n".join(lines)
