"""pytest wiring: options, hooks, fixtures and the report header. Logic lives elsewhere."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from . import factories, hookspecs
from .budgets.enforce import BudgetHelper, Capability, calibrate, enforce, resolve_marker
from .budgets.spec import LATENCY_KEYWORDS, Budget, BudgetError, parse_ini_budget
from .capture.statements import Statement
from .factories import capture_window, capture_window_key, get_runtime
from .health import Thresholds
from .options import add_options
from .server.header import describe_planned
from .summary import Summary

budget_key = pytest.StashKey[Budget]()
summary_key = pytest.StashKey[Summary]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    get_runtime(config)  # parse and validate every option now: a bad one is a usage error
    factories.stopped.clear()
    config.stash[summary_key] = Summary()
    config.addinivalue_line(
        "markers",
        "pgbudget(**budget): performance budget of the test's SQL: max_ms, p95_ms, total_ms, "
        "max_queries, max_repeats, no_seq_scan, seq_scan_min_rows, require_index, "
        "no_temp_spill, max_buffers, plan, off",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return describe_planned(get_runtime(config).settings)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Resolve every test's budget now, so a bad marker fails at collection."""
    default, keys = parse_ini_budget(get_runtime(config).settings.default_budget)
    errors = []
    for item in items:
        try:
            item.stash[budget_key] = resolve_marker(item, default, keys)
        except BudgetError as exc:
            errors.append(str(exc))
    if errors:
        raise pytest.UsageError("pytest-pgbudget: invalid budget\n  " + "\n  ".join(errors))


def _latency_scale(item: pytest.Item, budget: Budget) -> float:
    runtime = get_runtime(item.config)
    if runtime.latency_scale is None:
        uses_latency = any(getattr(budget, key) is not None for key in LATENCY_KEYWORDS)
        if not uses_latency or not runtime.captures:
            return 1.0
        runtime.latency_scale = calibrate(next(iter(runtime.captures.values())))
    return runtime.latency_scale


def _capability(item: pytest.Item) -> Capability | None:
    context = item.stash.get(capture_window_key, None)
    if context is None or not context.sources:
        return None
    capture = context.sources[0][0]
    return Capability(
        capture.server.version_num, {name: c.server.dsn_for(name) for c, name in context.sources}
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    context = item.stash.get(capture_window_key, None)
    if context is None or not context.sources:
        return (yield)
    context.collect()  # what fixtures did during set-up does not count
    context.recording = True
    try:
        result = yield
    except BaseException:
        context.recording = False
        with contextlib.suppress(Exception):  # the test's own error is the one to show
            context.collect()
        raise
    context.collect()
    context.recording = False
    statements = context.statements
    for statement in statements:
        item.config.hook.pytest_pgbudget_query_captured(item=item, statement=statement)
    item.config.stash[summary_key].add(item.nodeid, statements)
    get_runtime(item.config).health.add_used(i for s in statements for i in s.indexes)
    budget = item.stash.get(budget_key, Budget())
    custom = [
        v
        for found in item.config.hook.pytest_pgbudget_check(
            item=item, budget=budget, statements=statements
        )
        if found
        for v in found
    ]
    if budget.empty and not custom:
        return result
    violations, _ = enforce(
        item.nodeid,
        budget,
        statements,
        latency_scale=_latency_scale(item, budget),
        capable=_capability(item) if budget.plan == "capable" else None,
        verbose=item.config.get_verbosity() > 0,
    )
    violations += custom
    if violations:
        from .budgets.report import format_violations

        item.config.stash[summary_key].violations += len(violations)
        for violation in violations:
            item.config.hook.pytest_pgbudget_budget_violation(item=item, violation=violation)
        pytest.fail(
            format_violations(
                item.nodeid, violations, statements, verbose=item.config.get_verbosity() > 0
            ),
            pytrace=False,
        )
    return result


@pytest.fixture
def pg_queries(request: pytest.FixtureRequest) -> Iterator[QueryLog]:
    """The statements the current test has run so far (its ``pg_db`` and ``pg_conn``)."""
    request.getfixturevalue("pg_db")
    yield QueryLog(request.node)


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


@pytest.fixture
def pgbudget(request: pytest.FixtureRequest) -> BudgetHelper:
    """Budgets for a block: ``with pgbudget.budget(max_queries=2): ...``."""
    request.getfixturevalue("pg_db")
    item = request.node
    return BudgetHelper(
        capture_window(item), _capability(item), verbose=request.config.get_verbosity() > 0
    )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if factories.stopped:
        session.exitstatus = factories.STOPPED
        return
    runtime = get_runtime(session.config)
    health = runtime.health
    if not (health.heap_hit or health.heap_read or health.idx_hit or health.lock_waits):
        return  # no test database was used
    settings = runtime.settings
    runtime.health_report = health.evaluate(
        Thresholds(
            cache_hit_ratio=settings.health_cache_hit_ratio,
            index_hit_ratio=settings.health_index_hit_ratio,
            lock_wait_ms=settings.health_lock_wait_ms,
            unused_indexes=settings.health_unused_indexes,
        )
    )
    if runtime.health_report[0] and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    runtime = get_runtime(terminalreporter.config)
    summary = terminalreporter.config.stash.get(summary_key, None)
    if not runtime.started and not (summary and summary.tests):
        return
    terminalreporter.section("pgbudget")
    for header in runtime.started:
        terminalreporter.write_line(header)
    if summary is not None:
        for line in summary.lines(terminalreporter.config.get_verbosity()):
            terminalreporter.write_line(line)
    if runtime.health_report is not None:
        breaches, lines = runtime.health_report
        verdict = f"FAILED ({len(breaches)} breached)" if breaches else "passed"
        terminalreporter.write_line(f"session health: {verdict}", red=bool(breaches), bold=True)
        for line in lines:
            mark = "BREACH " if line in breaches else ""
            terminalreporter.write_line(f"  {mark}{line}", red=bool(mark))


pg_server = factories.pg_server()
pg_db = factories.pg_db("pg_server")
pg_conn = factories.pg_conn("pg_db")
