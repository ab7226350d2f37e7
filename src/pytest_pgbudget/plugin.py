"""pytest wiring: options, hooks, fixtures and the report header. Logic lives elsewhere."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from . import factories, hookspecs
from .budgets.enforce import BudgetHelper, resolve_marker
from .budgets.spec import Budget, BudgetError, parse_ini_budget
from .factories import capture_window, capture_window_key, get_runtime
from .health import Thresholds
from .load.fixture import PgLoad
from .options import add_options
from .results import Results
from .server.header import describe_planned
from .summary import summary_lines
from .verdict import QueryLog, budget_key, capability, judge, latency_scale, record, results_key


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    runtime = get_runtime(config)  # parse and validate every option now: a bad one is a usage error
    config.stash[results_key] = Results(runtime.settings)
    config.addinivalue_line(
        "markers",
        "pgbudget(**budget): performance budget of the test's SQL: max_ms, p95_ms, total_ms, "
        "max_queries, max_repeats, no_seq_scan, seq_scan_min_rows, require_index, "
        "no_temp_spill, max_buffers, plan, off",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return describe_planned(get_runtime(config).settings)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Resolve every test's budget now, so a bad marker fails at collection."""
    results = config.stash[results_key]
    results.collected.update(item.nodeid for item in items)
    results.collected_files.update(item.nodeid.split("::", 1)[0] for item in items)
    default, keys = parse_ini_budget(get_runtime(config).settings.default_budget)
    errors = []
    for item in items:
        try:
            item.stash[budget_key] = resolve_marker(item, default, keys)
        except BudgetError as exc:
            errors.append(str(exc))
    if errors:
        raise pytest.UsageError("pytest-pgbudget: invalid budget\n  " + "\n  ".join(errors))


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
            record(item, context.statements, [])
        raise
    context.collect()
    context.recording = False
    judge(item, context.statements)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    if report.when == "call" or report.outcome != "passed":
        outcome = "error" if report.when != "call" and report.failed else report.outcome
        item.config.stash[results_key].set_outcome(item.nodeid, outcome)
    return report


@pytest.fixture
def pg_queries(request: pytest.FixtureRequest) -> Iterator[QueryLog]:
    """The statements the current test has run so far (its ``pg_db`` and ``pg_conn``)."""
    request.getfixturevalue("pg_db")
    yield QueryLog(request.node)


@pytest.fixture
def pg_load(request: pytest.FixtureRequest) -> PgLoad:
    """Run a workload concurrently against the test's database and judge it.

    ``pg_load(work, operations=N, concurrency=C, params=..., rate=...)`` returns a
    result with throughput, exact latency percentiles, errors, deadlocks, lock
    waits and peak connections; ``result.assert_budget(p95_ms=..., ...)`` checks it.
    """
    db = request.getfixturevalue("pg_db")
    return PgLoad(db, request.node)


@pytest.fixture
def pgbudget(request: pytest.FixtureRequest) -> BudgetHelper:
    """Budgets for a block: ``with pgbudget.budget(max_queries=2): ...``."""
    request.getfixturevalue("pg_db")
    item = request.node
    return BudgetHelper(
        capture_window(item),
        capability(item),
        verbose=request.config.get_verbosity() > 0,
        latency_scale=lambda: latency_scale(item, Budget(max_ms=1.0)),
    )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist: merge what a worker recorded into the controller's results."""
    payload = getattr(node, "workeroutput", {}).get("pgbudget")
    if payload:
        config = node.config
        config.stash[results_key].merge(payload, get_runtime(config).health)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    runtime = get_runtime(config)
    results = config.stash[results_key]
    if _is_worker(config):
        config.workeroutput["pgbudget"] = results.payload(runtime.health)  # type: ignore[attr-defined]
        return
    if runtime.stopped is not None:
        session.exitstatus = factories.STOPPED
        return
    health = runtime.health
    health_doc = None
    if (
        health.heap_hit
        or health.heap_read
        or health.idx_hit
        or health.lock_waits
        or results.records
    ):
        settings = runtime.settings
        captured = settings.capture and all(c.active for c in runtime.captures.values())
        breaches, lines = runtime.health_report = health.evaluate(
            Thresholds(
                cache_hit_ratio=settings.health_cache_hit_ratio,
                index_hit_ratio=settings.health_index_hit_ratio,
                lock_wait_ms=settings.health_lock_wait_ms,
                # Without capture no index is seen used: the check would be noise.
                unused_indexes=settings.health_unused_indexes if captured else "off",
            )
        )
        health_doc = {"passed": not breaches, "lines": lines, "breaches": breaches}
        if breaches and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    runtime.written = results.write(health_doc)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    runtime = get_runtime(config)
    results = config.stash.get(results_key, None)
    records = list(results.records.values()) if results is not None else []
    headers = runtime.started or [  # under xdist the workers started the servers
        f"pgbudget: PostgreSQL {s['version']} ({s['backend']} backend), settings: {s['settings_origin']}"
        for s in (results.servers if results is not None else [])
    ]
    if not headers and not records:
        return
    terminalreporter.section("pgbudget")
    for header in headers:
        terminalreporter.write_line(header)
    for line in summary_lines(records, config.get_verbosity()):
        terminalreporter.write_line(line)
    if results is not None:
        for line in results.baseline_lines():
            terminalreporter.write_line(line)
    if runtime.health_report is not None:
        breaches, lines = runtime.health_report
        verdict = f"FAILED ({len(breaches)} breached)" if breaches else "passed"
        terminalreporter.write_line(f"session health: {verdict}", red=bool(breaches), bold=True)
        for line in lines:
            mark = "BREACH " if line in breaches else ""
            terminalreporter.write_line(f"  {mark}{line}", red=bool(mark))
    for line in runtime.written:
        terminalreporter.write_line(line)


pg_server = factories.pg_server()
pg_db = factories.pg_db("pg_server")
pg_conn = factories.pg_conn("pg_db")
