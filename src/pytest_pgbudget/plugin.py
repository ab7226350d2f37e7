"""pytest wiring: options, hooks, fixtures and the report header. Logic lives elsewhere."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from . import factories, hookspecs
from .baseline.compare import Change, format_regressions
from .budgets.check import Violation
from .budgets.enforce import BudgetHelper, Capability, calibrate, enforce, resolve_marker
from .budgets.report import format_violations
from .budgets.spec import LATENCY_KEYWORDS, LOAD_KEYWORDS, Budget, BudgetError, parse_ini_budget
from .capture.statements import Statement
from .factories import capture_window, capture_window_key, get_runtime
from .health import Thresholds
from .load.fixture import PgLoad, load_results_key
from .load.runner import LoadError
from .options import add_options
from .report.records import benchmark_stats, record_for_test
from .results import Results
from .server.header import describe_planned
from .summary import summary_lines

budget_key = pytest.StashKey[Budget]()
results_key = pytest.StashKey[Results]()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    runtime = get_runtime(config)  # parse and validate every option now: a bad one is a usage error
    factories.stopped.clear()
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


def _latency_scale(item: pytest.Item, budget: Budget) -> float:
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
            _record(item, context.statements, [])
        raise
    context.collect()
    context.recording = False
    _judge(item, context.statements)
    return result


def _judge(item: pytest.Item, statements: list[Statement]) -> None:
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
        found, _ = enforce(
            item.nodeid,
            budget,
            statements,
            latency_scale=_latency_scale(item, budget),
            capable=_capability(item) if budget.plan == "capable" else None,
            verbose=verbose,
        )
        violations = found + violations
    violations = _name_missing_indexes(item, violations)
    violations += _load_violations(item, budget)
    for violation in violations:
        config.hook.pytest_pgbudget_budget_violation(item=item, violation=violation)
    changes = _record(item, statements, violations)
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
    scale = _latency_scale(item, budget)
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


def _record(
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
        _capability(item),
        verbose=request.config.get_verbosity() > 0,
        latency_scale=lambda: _latency_scale(item, Budget(max_ms=1.0)),
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
    if factories.stopped:
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
