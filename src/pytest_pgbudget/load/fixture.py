"""The ``pg_load`` fixture object: runs loads against the test's database and keeps the results."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from ..databases import PgDatabase
from ..factories import capture_window_key
from ..health import LockWait
from .runner import LoadResult, ObservedWait, Params, Work, run_load

load_results_key = pytest.StashKey[list[LoadResult]]()


def _holders(wait: LockWait) -> str:
    """The processes the server log names as holding the lock, if it names any."""
    if not wait.holders:
        return ""
    pids = ", ".join(f"pid {pid}" for pid in wait.holders)
    return f"{pids} (held the lock; too short a wait to sample)"


def with_logged_waits(result: LoadResult, logged: list[LockWait]) -> LoadResult:
    """Add the server's ``log_lock_waits`` records to the sampled waits.

    The log's figure is exact ("acquired ... after 123.4 ms"); the sampler knows
    the blocking statement. A logged wait of a statement the sampler saw too
    lengthens that wait; one the sampler missed is added with the processes the
    log names as holding the lock.
    """
    waits = list(result.lock_waits)
    for wait in logged:
        match = next(
            (i for i, w in enumerate(waits) if w.waiting_statement == wait.statement), None
        )
        if match is None:
            waits.append(ObservedWait(wait.waited_ms, wait.statement, _holders(wait), wait.lock))
        else:
            seen = waits[match]
            if seen.waited_ms < wait.waited_ms:
                seen = dataclasses.replace(seen, waited_ms=wait.waited_ms)
            if not seen.blocking_statement and wait.holders:
                seen = dataclasses.replace(seen, blocking_statement=_holders(wait))
            waits[match] = seen
    return dataclasses.replace(result, lock_waits=tuple(sorted(waits, key=lambda w: -w.waited_ms)))


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

    ``work`` may also be a list of statements run as one operation (named
    parameters from one mapping per operation), or a callable
    ``work(conn, i)``; see :func:`pytest_pgbudget.load.runner.run_load`.
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
        arrivals: str = "uniform",
        label: str = "",
        sample_interval: float = 0.02,
        processes: bool = False,
    ) -> LoadResult:
        label = label or (work if isinstance(work, str) else getattr(work, "__name__", "load"))
        label = " ".join(label.split())[:80]
        window = self._item.stash.get(capture_window_key, None)
        sources = window.sources if window is not None else []
        seen = {id(capture): len(capture.lock_waits) for capture, _ in sources}
        result = run_load(
            self._db.dsn,
            work,
            operations=operations,
            concurrency=concurrency,
            params=params,
            rate=rate,
            arrivals=arrivals,
            label=label,
            sample_interval=sample_interval,
            processes=processes,
            progress=self._progress(label) if self._item.config.get_verbosity() > 0 else None,
        )
        if window is not None and sources:
            window.collect()  # the server log's lock waits since the load started
            logged = [
                wait
                for capture, _ in sources
                for wait in capture.lock_waits[seen.get(id(capture), 0) :]
                if wait.dbname == self._db.name
            ]
            result = with_logged_waits(result, logged)
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
