"""Judging one test: its budgets, its load runs and its baseline, then its record.

Called by the plugin's hooks once a test's call phase has ended (see
``plugin.pytest_runtest_call``); ``pg_queries`` and ``pgbudget`` use the same
capture window while the test runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from .baseline.compare import Change, format_regressions
from .budgets.check import Violation
from .budgets.enforce import Capability, calibrate, enforce
from .budgets.report import format_violations
from .budgets.spec import LATENCY_KEYWORDS, LOAD_KEYWORDS, Budget
from .capture.statements import Statement
from .factories import capture_window, capture_window_key, get_runtime
from .load.fixture import load_results_key
from .load.runner import LoadError
from .report.records import benchmark_stats, record_for_test
from .results import Results

budget_key = pytest.StashKey[Budget]()
results_key = pytest.StashKey[Results]()


def latency_scale(item: pytest.Item, budget: Budget) -> float:
    runtime = get_runtime(item.config)
    if runtime.latency_scale is None:
        uses_latency = any(
            getattr(budget, key) is not None
            for key in (*LATENCY_KEYWORDS, "load_p95_ms", "load_p99_ms", "min_throughput")
        )
        if not uses_latency or not runtime.captures:
            return 1.0
        runtime.latency_scale = calibrate(next(iter(runtime.captures.values())))
    return runtime.latency_scale


def capability(item: pytest.Item) -> Capability | None:
    context = item.stash.get(capture_window_key, None)
    if context is None or not context.sources:
        return None
    capture = context.sources[0][0]
    return Capability(
        capture.server.version_num, {name: c.server.dsn_for(name) for c, name in context.sources}
    )


def judge(item: pytest.Item, statements: list[Statement]) -> None:
    """Check the test's budgets and baseline; fail it with every finding at once."""
    config = item.config
    runtime = get_runtime(config)
    results = config.stash[results_key]
    verbose = config.get_verbosity() > 0
    for statement in statements:
        config.hook.pytest_pgbudget_query_captured(item=item, statement=statement)
    runtime.health.add_used(i for s in statements for i in s.indexes)
    budget = item.stash.get(budget_key, Budget())
    context = item.stash[capture_window_key]
    blind = {c.server.backend: c.problems for c, _ in context.sources if c.problems}
    if blind and not budget.empty:
        reasons = "; ".join(f"{backend} server: {'; '.join(p)}" for backend, p in blind.items())
        pytest.fail(
            f"pgbudget cannot check this test's budget: statement capture is off ({reasons})",
            pytrace=False,
        )
    violations = [
        v
        for found in config.hook.pytest_pgbudget_check(
            item=item, budget=budget, statements=statements
        )
        if found
        for v in found
    ]
    if not budget.empty:
        capable = capability(item) if budget.plan == "capable" else None
        scale = latency_scale(item, budget)
        found, _ = enforce(
            item.nodeid, budget, statements, latency_scale=scale, capable=capable, verbose=verbose
        )
        if any(v.keyword in LATENCY_KEYWORDS for v in found) and runtime.captures:
            # The session calibrated once, at its start; a runner that got busier since
            # would fail timings it did not cause. Measure again before failing one.
            now = calibrate(next(iter(runtime.captures.values())))
            if now > scale:
                found, _ = enforce(
                    item.nodeid,
                    budget,
                    statements,
                    latency_scale=now,
                    capable=capable,
                    verbose=verbose,
                )
        violations = found + violations
    violations = _name_missing_indexes(item, violations)
    violations += _load_violations(item, budget)
    for violation in violations:
        config.hook.pytest_pgbudget_budget_violation(item=item, violation=violation)
    changes = record(item, statements, violations)
    messages = []
    if violations:
        messages.append(format_violations(item.nodeid, violations, statements, verbose=verbose))
    if any(change.failed for change in changes):
        messages.append(format_regressions(item.nodeid, str(results.compare_path), changes))
    if messages:
        pytest.fail("\n\n".join(messages), pytrace=False)


def _name_missing_indexes(item: pytest.Item, violations: list[Violation]) -> list[Violation]:
    """A required index that does not exist is the likelier story: say so."""
    wanted = [v for v in violations if v.keyword == "require_index" and v.subject]
    context = item.stash.get(capture_window_key, None)
    if not wanted or context is None or not context.sources:
        return violations
    capture, dbname = context.sources[0]
    with capture.server.connect(dbname) as conn:
        missing = {
            v.subject
            for v in wanted
            if conn.execute("SELECT to_regclass(%s)", [v.subject]).fetchone() == (None,)
        }
    return [
        dataclasses.replace(
            v,
            headline=f"index {v.subject} does not exist in the test database",
            hint="was it dropped or renamed by a migration, or never created by the schema?",
        )
        if v.subject in missing
        else v
        for v in violations
    ]


def _load_violations(item: pytest.Item, budget: Budget) -> list[Violation]:
    """The marker's load keywords, judged on every ``pg_load`` run of the test."""
    wanted = {load_key: getattr(budget, key) for key, load_key in LOAD_KEYWORDS.items()}
    if budget.off or all(v is None for v in wanted.values()):
        return []
    # Latency ceilings scale with the machine, as the statement budgets' do.
    scale = latency_scale(item, budget)
    for key in ("p95_ms", "p99_ms"):
        if wanted[key] is not None:
            wanted[key] *= scale
    if wanted["min_throughput"] is not None:
        wanted["min_throughput"] /= scale
    found = []
    for result in item.stash.get(load_results_key, []):
        try:
            messages = result.violations(**wanted)
        except LoadError as exc:
            messages = [str(exc)]
        found += [Violation("load", f"{result.label}: {message}") for message in messages]
    return found


def record(
    item: pytest.Item, statements: list[Statement], violations: list[Violation]
) -> list[Change]:
    """Record the test for the reports and the baseline; return its baseline changes."""
    runtime = get_runtime(item.config)
    results = item.config.stash[results_key]
    budget = item.stash.get(budget_key, Budget())
    default = Budget()
    in_force = {
        f.name: getattr(budget, f.name)
        for f in dataclasses.fields(budget)
        if getattr(budget, f.name) != getattr(default, f.name)
    }
    record = record_for_test(
        item.nodeid,
        statements,
        in_force,
        violations,
        with_plans=results.keep_plans,
        with_shapes=results.keep_shapes,
    )
    record["load"] = [r.as_dict() for r in item.stash.get(load_results_key, [])]
    record["benchmark"] = benchmark_stats(item)
    for server in runtime.servers:
        results.note_server(server)
    changes = results.compare(item.nodeid, record)
    results.add(record)
    return changes


class QueryLog:
    """A live view of the current test's captured statements."""

    def __init__(self, item: pytest.Item) -> None:
        self._item = item

    def _statements(self) -> list[Statement]:
        context = capture_window(self._item)
        context.collect()
        return context.statements

    def __iter__(self) -> Iterator[Statement]:
        return iter(self._statements())

    def __len__(self) -> int:
        return len(self._statements())

    def __getitem__(self, index: int) -> Statement:
        return self._statements()[index]

    def __repr__(self) -> str:
        return f"<pg_queries: {len(self)} statements>"
