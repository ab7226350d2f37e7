"""The load runner behind the ``pg_load`` fixture.

``pg_load(work, operations=N, concurrency=C)`` runs ``work`` N times across C
connections.

- ``work`` is SQL or a callable ``work(conn, i)``. SQL (one statement, or a
  list of statements run in order as one operation) is run with ``params``: a
  tuple or mapping, or a function of the operation number returning one. One
  event loop in the calling thread drives every connection through libpq
  (:mod:`.engine`), so the client costs about what pgbench's does. A callable
  gets a thread per connection from a psycopg pool (:func:`drive`), or with
  ``processes=True`` a process (:mod:`.processes`).
- Closed loop (the default): each connection starts its next operation when the
  last one ends. Fixed rate (``rate=ops_per_second``): operation ``i`` is
  *intended* to start at ``t0 + i / rate``; its latency is measured from that
  intended start, so queueing behind a slow operation is counted instead of
  hidden (the coordinated-omission correction HdrHistogram applies).
- Every latency is kept, so percentiles are exact, not estimated from a sample.
- Lock waits are observed two ways: ``pg_locks.waitstart`` sampled while the
  run goes on (with the blocking statement from ``pg_blocking_pids``;
  :mod:`.watch`), and the
  server's ``log_lock_waits`` records (exact, for waits of at least
  ``deadlock_timeout``).
- The load's connections switch auto_explain off for themselves: load
  statements are not captured as the test's statements and cost nothing extra.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import threading
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors

from ..errors import LoadError as LoadError
from .engine import (
    Arrivals,
    Schedule,
    Statement,
    Tally,
    Watcher,
    binder,
    compile_work,
    drive_many,
    prepare,
)
from .engine import Params as Params
from .watch import LOAD_APPLICATION as LOAD_APPLICATION
from .watch import ObservedWait as ObservedWait
from .watch import Sampler

MIN_SAMPLES_FOR_P95 = 20
MIN_SAMPLES_FOR_P99 = 100
_START_TIMEOUT = 120.0

Work = str | Sequence[str] | Callable[[psycopg.Connection[Any], int], object]


@dataclass(frozen=True)
class Latency:
    """Exact latency percentiles over every operation, in milliseconds."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Latency:
        if not samples_ns:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        ordered = sorted(samples_ns)

        def rank(q: float) -> float:
            return ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6

        return cls(
            len(ordered),
            rank(0.5),
            rank(0.95),
            rank(0.99),
            ordered[-1] / 1e6,
            sum(ordered) / len(ordered) / 1e6,
        )

    def describe(self) -> str:
        if not self.count:
            return "no operations"
        note = ""
        if self.count < MIN_SAMPLES_FOR_P95:
            note = f" (only {self.count} samples: p95 and p99 are the maximum)"
        elif self.count < MIN_SAMPLES_FOR_P99:
            note = f" (only {self.count} samples: p99 is the maximum)"
        return (
            f"p50 {self.p50_ms:.2f} ms, p95 {self.p95_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, "
            f"max {self.max_ms:.2f} ms over {self.count} operations{note}"
        )


@dataclass(frozen=True)
class LoadResult:
    """What a load run measured; ``assert_budget`` judges it."""

    operations: int
    concurrency: int
    mode: str
    rate: float | None
    duration_s: float
    throughput: float
    latency: Latency
    service: Latency
    errors: int
    error_types: Mapping[str, int]
    deadlocks: int
    lock_waits: tuple[ObservedWait, ...]
    peak_connections: int
    label: str = ""
    arrivals: str = ""  # of a fixed-rate load: "uniform" or "poisson"
    driver: str = ""  # what ran the work: an event loop (SQL), threads or processes

    @property
    def max_lock_wait_ms(self) -> float:
        return max((w.waited_ms for w in self.lock_waits), default=0.0)

    @property
    def worst_wait(self) -> ObservedWait | None:
        return max(self.lock_waits, key=lambda w: w.waited_ms, default=None)

    def describe(self) -> str:
        mode = "closed loop"
        if self.mode == "rate":
            mode = f"fixed rate {self.rate:g}/s" + (
                ", Poisson arrivals" if self.arrivals == "poisson" else ""
            )
        lines = [
            f"{self.label or 'load'}: {self.operations} operations, {self.concurrency} connections, "
            f"{mode}, {self.duration_s:.2f} s, {self.throughput:.0f} ops/s"
            + (f" ({self.driver})" if self.driver else ""),
            f"  latency{' (from intended start)' if self.mode == 'rate' else ''}: {self.latency.describe()}",
            f"  errors {self.errors}"
            + (f" {dict(self.error_types)}" if self.errors else "")
            + f", deadlocks {self.deadlocks}, peak connections {self.peak_connections}, "
            f"max lock wait {self.max_lock_wait_ms:.1f} ms",
        ]
        return "\n".join(lines)

    def violations(self, **budget: float | None) -> list[str]:
        """Each broken keyword as a one-line message; raises :class:`LoadError` for a
        percentile that too few operations cannot support."""
        found = []
        checks = {
            "p50_ms": ("p50", self.latency.p50_ms, 1),
            "p95_ms": ("p95", self.latency.p95_ms, MIN_SAMPLES_FOR_P95),
            "p99_ms": ("p99", self.latency.p99_ms, MIN_SAMPLES_FOR_P99),
            "max_ms": ("max", self.latency.max_ms, 1),
        }
        for key, limit in budget.items():
            if limit is None:
                continue
            if key in checks:
                name, value, needed = checks[key]
                if self.latency.count < needed:
                    raise LoadError(
                        f"{name} of {self.latency.count} operations is only their maximum; "
                        f"run at least {needed} operations to judge {key}"
                    )
                if value > limit:
                    found.append(
                        f"{name} latency {value:.2f} ms: budget {key}={limit:g} "
                        f"({self.latency.describe()})"
                    )
            elif key == "min_throughput":
                if self.throughput < limit:
                    found.append(
                        f"throughput {self.throughput:.0f} ops/s: budget min_throughput={limit:g}"
                    )
            elif key == "max_errors":
                if self.errors > limit:
                    found.append(
                        f"{self.errors} operations failed: budget max_errors={limit:g} "
                        f"({dict(self.error_types)})"
                    )
            elif key == "max_deadlocks":
                if self.deadlocks > limit:
                    found.append(f"{self.deadlocks} deadlocks: budget max_deadlocks={limit:g}")
            elif key == "max_lock_wait_ms":
                worst = self.worst_wait
                if worst is not None and worst.waited_ms >= limit:
                    found.append(
                        f"a lock wait of {worst.waited_ms:.1f} ms: budget max_lock_wait_ms={limit:g}\n"
                        f"    waiting:  {' '.join(worst.waiting_statement.split())[:200]}\n"
                        f"    blocked by: {' '.join(worst.blocking_statement.split())[:200] or '(unknown)'}"
                    )
            else:
                raise LoadError(
                    f"unknown load budget keyword {key!r}; valid: p50_ms, p95_ms, p99_ms, max_ms, "
                    "min_throughput, max_errors, max_deadlocks, max_lock_wait_ms"
                )
        return found

    def assert_budget(
        self,
        *,
        p50_ms: float | None = None,
        p95_ms: float | None = None,
        p99_ms: float | None = None,
        max_ms: float | None = None,
        min_throughput: float | None = None,
        max_errors: int | None = None,
        max_deadlocks: int | None = None,
        max_lock_wait_ms: float | None = None,
    ) -> None:
        """Raise ``AssertionError`` listing every broken keyword."""
        __tracebackhide__ = True
        found = self.violations(
            p50_ms=p50_ms,
            p95_ms=p95_ms,
            p99_ms=p99_ms,
            max_ms=max_ms,
            min_throughput=min_throughput,
            max_errors=max_errors,
            max_deadlocks=max_deadlocks,
            max_lock_wait_ms=max_lock_wait_ms,
        )
        if found:
            raise AssertionError(
                "load budget broken:\n"
                + "\n".join(f"  {f}" for f in found)
                + "\n"
                + self.describe()
            )

    def as_dict(self) -> dict[str, Any]:
        worst = self.worst_wait
        return {
            "label": self.label,
            "operations": self.operations,
            "concurrency": self.concurrency,
            "mode": self.mode,
            "rate": self.rate,
            "arrivals": self.arrivals or None,
            "duration_s": round(self.duration_s, 4),
            "throughput": round(self.throughput, 2),
            "latency": {
                k: (None if isinstance(v, float) and math.isnan(v) else round(v, 3))
                for k, v in vars(self.latency).items()
            },
            "errors": self.errors,
            "error_types": dict(self.error_types),
            "deadlocks": self.deadlocks,
            "max_lock_wait_ms": round(self.max_lock_wait_ms, 2),
            "blocking_statement": worst.blocking_statement if worst else None,
            "peak_connections": self.peak_connections,
            "driver": self.driver or None,
        }


def drive(
    conn: psycopg.Connection[Any],
    operation: Callable[[psycopg.Connection[Any], int], object],
    schedule: Schedule,
    tally: Tally,
) -> None:
    """The measuring loop of one connection, in a thread or a process of its own.

    Runs the ``schedule``'s operations until none is left. At a fixed rate an
    operation waits for its intended start and its latency counts from there;
    service time counts from when it really began.
    """
    next_index = schedule.next_index or itertools.count().__next__
    operations, start_ns, offset = schedule.operations, schedule.start_ns, schedule.offset
    latencies, service, failures = tally.latencies, tally.service, tally.failures
    intended = 0
    while (i := next_index()) < operations:
        if offset is not None:
            intended = start_ns + offset(i)
            delay = intended - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
        began = time.monotonic_ns()
        try:
            operation(conn, i)
        except psycopg.Error as exc:
            failures[type(exc).__name__] += 1
            if conn.broken:
                return
        ended = time.monotonic_ns()
        service.append(ended - began)
        latencies.append(ended - (began if offset is None else intended))


def _available_connections(conn: psycopg.Connection[Any]) -> tuple[int, str]:
    row = conn.execute(
        "SELECT current_setting('max_connections')::int, "
        "current_setting('superuser_reserved_connections')::int, "
        "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
    ).fetchone()
    assert row is not None
    max_connections, reserved, used = (int(v) for v in row)
    free = max_connections - reserved - used
    return free, f"max_connections={max_connections}, {reserved} reserved, {used} in use"


def run_load(
    dsn: str,
    work: Work,
    *,
    operations: int,
    concurrency: int,
    params: Params = None,
    rate: float | None = None,
    arrivals: str = "uniform",
    label: str = "",
    sample_interval: float = 0.02,
    progress: Callable[[int, int, float], None] | None = None,
    processes: bool = False,
) -> LoadResult:
    """Run the load; see the module docstring.

    ``processes=True`` gives every connection its own process instead of a
    thread (see :mod:`pytest_pgbudget.load.processes`). ``arrivals`` spaces a
    fixed-rate load evenly (``"uniform"``) or as a Poisson process
    (``"poisson"``, like ``pgbench --rate``).
    """
    if operations < 1 or concurrency < 1:
        raise LoadError(
            f"operations and concurrency must be at least 1; got {operations}, {concurrency}"
        )
    if rate is not None and rate <= 0:
        raise LoadError(f"rate must be positive (operations per second); got {rate!r}")
    if arrivals not in Arrivals.KINDS:
        raise LoadError(f"arrivals must be 'uniform' or 'poisson'; got {arrivals!r}")
    if arrivals != "uniform" and rate is None:
        raise LoadError(f"arrivals={arrivals!r} spaces a fixed-rate load: give a rate as well")
    fixed_rate = Arrivals(rate, arrivals, random.randrange(1 << 32)) if rate else None
    statements = None if callable(work) else compile_work(work)

    # The sampler's connection is the load's first: it checks there is room for the rest.
    sampler = Sampler.open(dsn, sample_interval)
    try:
        free, detail = _available_connections(sampler.conn)
        if concurrency > free:
            raise LoadError(
                f"asked for {concurrency} concurrent connections, but the server accepts only "
                f"{max(0, free)} more ({detail}, one of them watching the load). Lower "
                "concurrency or raise max_connections "
                "(pgbudget_settings = max_connections = 300)."
            )
        run = _Run(dsn, operations, concurrency, fixed_rate, label, progress, sampler)
        if processes:
            return _run_in_processes(run, work, params)
        if statements is not None:
            return _run_statements(run, statements, params)
        assert callable(work)
        return _run_threads(run, work)
    finally:
        sampler.conn.close()


@dataclass(frozen=True)
class _Run:
    """What every way of running a load needs to know."""

    dsn: str
    operations: int
    concurrency: int
    arrivals: Arrivals | None
    label: str
    progress: Callable[[int, int, float], None] | None
    sampler: Sampler

    def offsets(self) -> Callable[[int], int] | None:
        return self.arrivals.offsets(self.operations) if self.arrivals else None

    def result(self, tally: Tally, elapsed: float, driver: str) -> LoadResult:
        sampler, arrivals = self.sampler, self.arrivals
        latencies, failures = tally.latencies, tally.failures
        if sampler.error is not None:
            raise LoadError(
                f"watching the load's connections failed: {sampler.error}"
            ) from sampler.error
        completed = len(latencies)
        return LoadResult(
            operations=completed,
            concurrency=self.concurrency,
            mode="rate" if arrivals else "closed",
            rate=arrivals.rate if arrivals else None,
            arrivals=arrivals.kind if arrivals else "",
            duration_s=elapsed,
            throughput=completed / elapsed if elapsed > 0 else 0.0,
            latency=Latency.of(latencies),
            service=Latency.of(tally.service),
            errors=sum(failures.values()),
            error_types=dict(failures),
            deadlocks=failures.get(errors.DeadlockDetected.__name__, 0),
            lock_waits=tuple(sorted(sampler.waits.values(), key=lambda w: -w.waited_ms)),
            peak_connections=sampler.peak,
            label=self.label,
            driver=driver,
        )


def _run_threads(run: _Run, work: Callable[[psycopg.Connection[Any], int], object]) -> LoadResult:
    """A callable: one thread per connection, each running :func:`drive`."""
    from psycopg_pool import ConnectionPool

    dsn, operations, concurrency, progress = run.dsn, run.operations, run.concurrency, run.progress

    pool = ConnectionPool(
        dsn,
        min_size=concurrency,
        max_size=concurrency,
        open=False,
        configure=_quiet,
        kwargs={"autocommit": True, "application_name": LOAD_APPLICATION},
        timeout=60,
    )
    pool.open(wait=True, timeout=60)
    tally = Tally()
    counter = itertools.count()
    lock = threading.Lock()
    t0 = 0
    offset = run.offsets()

    progress_arrays: list[array[int]] = []

    crashes: list[BaseException] = []

    def worker() -> None:
        mine = Tally()
        progress_arrays.append(mine.latencies)
        try:
            with pool.connection() as conn:
                start_barrier.wait(timeout=_START_TIMEOUT)
                drive(conn, work, Schedule(operations, t0, offset, counter.__next__), mine)
        except threading.BrokenBarrierError:
            pass  # another worker could not start; it reports why
        except BaseException as exc:  # the work itself is broken: report it after the run
            crashes.append(exc)
            start_barrier.abort()
        finally:
            with lock:
                tally.update(mine)

    sampler = run.sampler
    start_barrier = threading.Barrier(concurrency + 1)
    threads = [
        threading.Thread(target=worker, name=f"pgbudget-load-{n}", daemon=True)
        for n in range(concurrency)
    ]
    try:
        sampler_thread = sampler.start_thread()
        for thread in threads:
            thread.start()
        t0 = time.monotonic_ns()
        with contextlib.suppress(threading.BrokenBarrierError):  # reported below
            start_barrier.wait(timeout=_START_TIMEOUT)
        started = time.perf_counter()
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(timeout=1.0)
            if progress is not None and alive[0].is_alive():
                finished = sum(len(a) for a in progress_arrays)
                progress(finished, operations, time.perf_counter() - started)
        elapsed = time.perf_counter() - started
    finally:
        sampler.stop.set()
        sampler_thread.join(timeout=5)
        pool.close()
    if crashes:
        first = crashes[0]
        raise LoadError(
            f"the load's work raised {type(first).__name__}: {first} "
            f"({len(crashes)} of {concurrency} workers stopped)"
        ) from first
    return run.result(tally, elapsed, f"{concurrency} threads")


def _quiet(conn: psycopg.Connection[Any]) -> None:
    """The load's statements are not the test's: auto_explain leaves them out."""
    conn.execute("SET auto_explain.log_min_duration = -1")


def connect_for_load(dsn: str, statements: Sequence[Statement]) -> psycopg.Connection[Any]:
    """A connection of the load: autocommit, not captured, the SQL work prepared."""
    conn = psycopg.connect(dsn, autocommit=True, application_name=LOAD_APPLICATION)
    try:
        _quiet(conn)
        prepare(conn.pgconn, statements)
    except BaseException:
        conn.close()
        raise
    return conn


def _run_statements(run: _Run, statements: Sequence[Statement], params: Params) -> LoadResult:
    """SQL work: one event loop in this thread drives every connection (:mod:`.engine`),
    and the sampler's connection too."""
    conns: list[psycopg.Connection[Any]] = []
    with ThreadPoolExecutor(max_workers=min(run.concurrency, 16)) as pool:
        opening = [
            pool.submit(connect_for_load, run.dsn, statements) for _ in range(run.concurrency)
        ]
        failed: BaseException | None = None
        for future in opening:
            try:
                conns.append(future.result())
            except BaseException as exc:
                failed = failed or exc
    try:
        if isinstance(failed, LoadError):
            raise failed
        if failed is not None:
            raise LoadError(f"the load's connections could not start: {failed}") from failed
        sampler = run.sampler
        watcher = Watcher(sampler.conn, int(sampler.interval * 1e9), sampler.sample)
        tally = Tally()
        started = time.perf_counter()
        report = None
        if run.progress is not None:
            progress, operations = run.progress, run.operations
            report = lambda done: progress(done, operations, time.perf_counter() - started)  # noqa: E731
        driver = drive_many(
            [conn.pgconn for conn in conns],
            statements,
            binder(statements, params, conns[0]),
            Schedule(run.operations, time.monotonic_ns(), run.offsets()),
            tally,
            report,
            watcher,
        )
        elapsed = time.perf_counter() - started
        sampler.error = watcher.error
    finally:
        for conn in conns:
            conn.close()
    return run.result(tally, elapsed, driver)


def _run_in_processes(run: _Run, work: Work, params: Params) -> LoadResult:
    from .processes import execute_in_processes

    sampler_thread = run.sampler.start_thread()
    try:
        tally, crashes, elapsed, driver = execute_in_processes(
            run.dsn,
            work,
            params,
            operations=run.operations,
            concurrency=run.concurrency,
            arrivals=run.arrivals,
            start_timeout=_START_TIMEOUT,
        )
    finally:
        run.sampler.stop.set()
        sampler_thread.join(timeout=5)
    if crashes:
        raise LoadError(
            f"the load's work failed in {len(crashes)} of {run.concurrency} processes: {crashes[0]}"
        )
    return run.result(tally, elapsed, driver)
