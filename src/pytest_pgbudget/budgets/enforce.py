"""Applying budgets to tests: marker resolution, the per-test capture window, re-planning."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from ..capture.session import INTERNAL_APPLICATION, Capture, flush
from ..capture.statements import Statement
from ..plans import analyze_plan
from .check import Violation, check
from .report import format_violations
from .spec import Budget, BudgetError, parse_budget


def resolve_marker(item: pytest.Item, default: Budget, default_keys: frozenset[str]) -> Budget:
    """The budget of a test: ini defaults, then module, class and function markers.

    The closest marker wins for each keyword it sets. Raises :class:`BudgetError`
    naming the test for a bad keyword or value.
    """
    budget = default.merged(default, default_keys)
    for marker in reversed(list(item.iter_markers("pgbudget"))):
        if marker.args:
            raise BudgetError(
                f"{item.nodeid}: @pgbudget takes keywords only, e.g. @pgbudget(max_queries=3); "
                f"got positional {marker.args!r}"
            )
        try:
            closer, keys = parse_budget(marker.kwargs)
        except BudgetError as exc:
            raise BudgetError(f"{item.nodeid}: @pgbudget: {exc}") from None
        budget = budget.merged(closer, keys)
    return budget


@dataclass
class CaptureWindow:
    """The statements one test runs, across its databases and connections."""

    nodeid: str
    sources: list[tuple[Capture, str]] = field(default_factory=list)
    connections: list[psycopg.Connection[Any]] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    recording: bool = False

    def collect(self) -> list[Statement]:
        """Read what the test's databases logged since the last collect."""
        for conn in self.connections:
            flush(conn)
        new: list[Statement] = []
        for capture in {id(c): c for c, _ in self.sources}.values():
            names = {name for c, name in self.sources if c is capture}
            new += capture.sync(databases=frozenset(names))
        if self.recording:
            self.statements += new
        return new


class Capability:
    """Re-plans captured statements with plain EXPLAIN (nothing runs) and seq scans off."""

    def __init__(self, server_version: int, dsn_for_db: dict[str, str]) -> None:
        self.version = server_version
        self.dsn_for_db = dsn_for_db
        self._cache: dict[tuple[str, str], frozenset[str]] = {}

    def __call__(self, statement: Statement) -> frozenset[str]:
        key = (statement.dbname, statement.sql)
        if key not in self._cache:
            self._cache[key] = self._replan(statement)
        return self._cache[key]

    def _replan(self, statement: Statement) -> frozenset[str]:
        dsn = self.dsn_for_db.get(statement.dbname)
        if dsn is None:
            return frozenset()
        params = max((int(n) for n in re.findall(r"\$(\d+)", statement.sql)), default=0)
        with psycopg.connect(dsn, application_name=INTERNAL_APPLICATION) as conn:
            conn.execute("SET LOCAL enable_seqscan = off")
            try:
                if params and self.version >= 160000:
                    plan = conn.execute(
                        f"EXPLAIN (FORMAT JSON, GENERIC_PLAN) {statement.sql}"
                    ).fetchone()
                elif params:
                    # PG15 has no GENERIC_PLAN: a prepared statement planned generically
                    # shows the same plan whatever the (NULL) parameter values.
                    conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                    conn.execute(f"PREPARE pgbudget_capable AS {statement.sql}")
                    nulls = ", ".join(["NULL"] * params)
                    plan = conn.execute(
                        f"EXPLAIN (FORMAT JSON) EXECUTE pgbudget_capable({nulls})"
                    ).fetchone()
                else:
                    plan = conn.execute(f"EXPLAIN (FORMAT JSON) {statement.sql}").fetchone()
            except psycopg.Error:
                return frozenset()
            finally:
                conn.rollback()
        return analyze_plan(plan[0]).indexes if plan else frozenset()


def calibrate(capture: Capture, rounds: int = 5) -> float:
    """How much slower than the reference machine this server runs a fixed workload.

    Latency ceilings are multiplied by this factor when it is above 1, so a
    budget written on a developer's laptop does not flake on a loaded CI runner.
    """
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        capture.admin.execute("SELECT sum(g) FROM generate_series(1, 200000) g").fetchone()
        timings.append((time.perf_counter() - start) * 1000)
    return max(1.0, statistics.median(timings) / REFERENCE_MS)


#: The calibration workload's median on the reference machine: a 2-core CI machine
#: measured 18.8-19.7 ms on PostgreSQL 15 and 18 (2026-11-25).
REFERENCE_MS = 20.0


def enforce(
    where: str,
    budget: Budget,
    statements: list[Statement],
    *,
    latency_scale: float,
    capable: Capability | None,
    verbose: bool,
) -> tuple[list[Violation], str]:
    violations = check(budget, statements, latency_scale=latency_scale, capable=capable)
    return violations, format_violations(
        where, violations, statements, verbose=verbose
    ) if violations else ""


class BudgetHelper:
    """The ``pgbudget`` fixture: budgets for a block of a test.

    Example::

        def test_listing(pgbudget, client):
            with pgbudget.budget(max_queries=2, no_seq_scan=True):
                client.get("/accounts")
    """

    def __init__(
        self,
        context: CaptureWindow,
        capable: Capability | None,
        verbose: bool,
        latency_scale: Callable[[], float] = lambda: 1.0,
    ) -> None:
        self._context = context
        self._capable = capable
        self._verbose = verbose
        self._latency_scale = latency_scale

    def budget(self, **keywords: Any) -> BudgetBlock:
        """Check the statements run inside the block; raise ``AssertionError`` on a breach.

        The block's value is the list of statements captured inside it.
        """
        try:
            spec, _ = parse_budget(keywords)
        except BudgetError as exc:
            raise TypeError(f"pgbudget.budget(): {exc}") from None
        scale = (
            self._latency_scale()
            if any(getattr(spec, key) is not None for key in ("max_ms", "p95_ms", "total_ms"))
            else 1.0
        )
        return BudgetBlock(spec, self._context, self._capable, self._verbose, scale)


class BudgetBlock:
    """The context manager returned by ``pgbudget.budget(...)``."""

    def __init__(
        self,
        spec: Budget,
        context: CaptureWindow,
        capable: Capability | None,
        verbose: bool,
        latency_scale: float = 1.0,
    ) -> None:
        self._latency_scale = latency_scale
        self.spec = spec
        self.statements: list[Statement] = []
        self._context = context
        self._capable = capable
        self._verbose = verbose

    def __enter__(self) -> list[Statement]:
        self._context.collect()
        return self.statements

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        __tracebackhide__ = True
        self.statements += self._context.collect()
        if exc_type is not None:
            return
        violations, message = enforce(
            "this block",
            self.spec,
            self.statements,
            latency_scale=self._latency_scale,
            capable=self._capable,
            verbose=self._verbose,
        )
        if violations:
            raise AssertionError(message)
