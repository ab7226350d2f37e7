"""The ``pg_load`` fixture object: runs loads against the test's database and keeps the results."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from ..databases import PgDatabase
from .runner import LoadResult, Params, Work, run_load

load_results_key = pytest.StashKey[list[LoadResult]]()


class PgLoad:
    """Call it to run a load: ``pg_load(work, operations=1000, concurrency=50)``.

    Example::

        def test_state_transitions(pg_load):
            result = pg_load(
                "SELECT transition_workflow(%s, 'running')",
                params=lambda i: (i % 1000 + 1,),
                operations=2000,
                concurrency=20,
            )
            result.assert_budget(p95_ms=50, max_errors=0, max_lock_wait_ms=10)
    """

    def __init__(self, db: PgDatabase, item: pytest.Item) -> None:
        self._db = db
        self._item = item
        item.stash[load_results_key] = []

    @property
    def results(self) -> list[LoadResult]:
        return self._item.stash[load_results_key]

    def __call__(
        self,
        work: Work,
        *,
        operations: int,
        concurrency: int = 10,
        params: Params = None,
        rate: float | None = None,
        label: str = "",
    ) -> LoadResult:
        label = label or (work if isinstance(work, str) else getattr(work, "__name__", "load"))
        label = " ".join(label.split())[:80]
        result = run_load(
            self._db.dsn,
            work,
            operations=operations,
            concurrency=concurrency,
            params=params,
            rate=rate,
            label=label,
            progress=self._progress(label) if self._item.config.get_verbosity() > 0 else None,
        )
        self.results.append(result)
        return result

    def _progress(self, label: str) -> Callable[[int, int, float], None]:
        config = self._item.config
        reporter: Any = config.pluginmanager.get_plugin("terminalreporter")
        capman: Any = config.pluginmanager.get_plugin("capturemanager")

        def show(done: int, total: int, elapsed: float) -> None:
            if reporter is None:
                return
            suspend = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
            with suspend:
                rate = done / elapsed if elapsed else 0.0
                reporter.write_line(f"pg_load {label}: {done}/{total} operations, {rate:.0f} ops/s")

        return show
