#!/usr/bin/env python
"""Validate ``pg_load`` (``run_load``) against PostgreSQL's own ``pgbench``.

Run it with the virtualenv that has pytest-pgbudget installed::

    python benchmarks/bench_load.py                 # about 3 minutes
    python benchmarks/bench_load.py --repeats 1 --concurrency 8    # a quick look

What is compared
================

One throwaway server is started with the plugin's own machinery
(``pytest_pgbudget.server.provision(Settings(backend="local"))``: the tuned
test profile, unix socket only; as root the plugin runs it as ``postgres``).
A database ``bench`` is created and filled with ``pgbench -i -s SCALE``
(default scale 10: 1,000,000 accounts, 100 tellers, 10 branches). Then the
same TPC-B-like transaction, pgbench's built-in default script::

    BEGIN;
    UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
    SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
    UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
    UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
    INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
        VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
    END;

with ``aid`` uniform in 1..100000*scale, ``tid`` in 1..10*scale, ``bid`` in
1..scale and ``delta`` in -5000..5000, is driven by

(a) ``pgbench -j 2``      ``-c C -j 2 -t T -n -M prepared --log``: its
                          per-transaction log (third column: latency in
                          microseconds) gives every latency, from which p50
                          and p95 are computed here with the same nearest-rank
                          rule as ``Latency.of``; throughput is pgbench's
                          "tps ... (without initial connection time)" line.
                          The reference of the 15 % target.
(b) ``pg_load SQL``       ``run_load(dsn, TPCB, params=partial(tpcb_params,
                          scale=S), operations=C*T, concurrency=C)``: the same
                          seven statements as a script (a list of SQL strings
                          with ``%(name)s`` placeholders), which ``run_load``
                          runs on its libpq event loop (in C where it was
                          built: the header says), one thread for all C
                          connections, statements prepared like
                          ``-M prepared``. The headline.
(b') ``SQL Python loop``  the same with ``PGBUDGET_LOAD_LOOP=python``: the
                          event loop's Python fallback.
(c) ``SQL processes``     the same with ``processes=True``: one event loop per
                          CPU, each with its share of the connections and
                          every N-th operation, like pgbench's ``-j``.
(d) ``callable threads``  ``run_load(partial(tpcb, scale=S), ...)``: a Python
    ``callable procs``    callable doing the same with psycopg
                          (``with conn.transaction():`` and five
                          ``conn.execute(..., prepare=True)``), in the
                          default thread per connection and with
                          ``processes=True`` (a process per connection): what
                          a user's own Python work costs, for comparison.

The callables and the params function are module-level (``processes=True``
pickles the work; closures and lambdas are refused) and get the scale as a
keyword bound with ``functools.partial``. Each process draws its random
numbers from its own ``random.Random`` seeded from its PID (``rng()``), so no
two processes replay the same sequence of accounts.

Then, below saturation: for every concurrency, ``pgbench -j 1 --rate R -T
S`` against ``run_load(..., rate=R, arrivals="poisson")`` with R x S
transactions, where R is ``--rate-share`` (default 50 %) of pgbench's
closed-loop throughput at that concurrency and S is ``--rate-seconds``
(default 4). Both schedule Poisson arrivals and count latency from the
scheduled start. pgbench runs for a duration here, not a number of
transactions per client: with ``-t`` the clients that finish their share
early leave the schedule to fewer and fewer clients, which queues.

For every concurrency (default 8, 16 and 32) the drivers are interleaved
(round 1 of each, round 2 of each, ...) ``--repeats`` times (default 3) and the
medians are compared. Before every run, of any tool, the same clean-up as
pgbench's own: ``VACUUM pgbench_branches``, ``VACUUM pgbench_tellers``,
``TRUNCATE pgbench_history`` (hence ``-n`` for pgbench) and a ``CHECKPOINT``,
so every run starts from the same state. ``run_load`` runs with its defaults
(sampler every 20 ms).

Client CPU per transaction is printed for every driver: ``getrusage`` of the
pgbench child processes; for ``run_load`` ``time.process_time`` of this
process (the event loop or the worker threads, and the sampler thread) plus,
with ``processes=True``, the CPU of the load processes, read as the growth of
the forkserver's ``cutime + cstime`` (``/proc/PID/stat``: the CPU of the
children it reaped). Starting a run (connecting, preparing, starting
processes) is not part of any latency; its CPU, measured per driver and
concurrency with a run of one transaction per connection, is subtracted, and
its wall time (``run_load``'s wall time minus its ``duration_s``) is printed as
"start". Server CPU per transaction is the CPU of the ``bench`` database's
backends. On a 2-core machine the load generator competes with the server
for the same cores, so a client that needs more CPU per transaction slows
the server it measures: that is the difference between (b) and (d).

Runner overhead
===============

``SELECT 1`` (prepared) ``--select1-ops`` times (default 10000) over C
connections (default 1 and 8):

* a bare loop: ``psycopg.connect(autocommit=True)`` per thread, a barrier,
  then ``t = perf_counter_ns(); conn.execute("SELECT 1", prepare=True);
  lat.append(perf_counter_ns() - t)`` for the thread's share;
* ``run_load`` with the same callable (``select1``), threads: the runner's
  own overhead per operation (pool, shared counter, timing, sampler);
* ``run_load(dsn, "SELECT 1", ...)``: the SQL event loop, in C where it was
  built, and again with ``PGBUDGET_LOAD_LOOP=python`` (its Python fallback).

Each prints wall microseconds per operation (elapsed / N; median and best of
``--overhead-repeats`` interleaved runs, default 3) and client CPU per
operation.

Everything this script writes lives in one temporary directory,
``/tmp/bench-pgload-*``, removed at exit; the server is stopped with
``server.controller.stop()`` and the forkserver of the load processes with
``multiprocessing.forkserver._forkserver._stop()`` in a ``finally`` (also on
errors and on SIGTERM / SIGHUP), and the script then checks that no postgres
process of that server is left. The runner overhead section is cut short
when the run nears ``--time-budget`` (default 300 s). Exit status 1 when an
engine misses the p95 target at any concurrency, in the closed loop.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import platform
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from _cleanup import postgres_pids_under  # benchmarks/_cleanup.py
from psycopg import conninfo

from pytest_pgbudget import server as pgserver
from pytest_pgbudget.load import run_load
from pytest_pgbudget.load.cloop import LOOP_ENV, c_loop
from pytest_pgbudget.options import Settings

DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin"
DEFAULT_SCALE = 10
TARGET_P95_RATIO = 0.15  # |pg_load / pgbench - 1| at most this
RUN_TIMEOUT = 120  # seconds, per pgbench subprocess
HEADLINE = "pg_load SQL"
PYTHON_LOOP = "SQL Python loop"  # the same, on the event loop's Python fallback
# Each pg_load engine against the pgbench of the same shape: one event loop (pgbench's
# default, -j 1) or one loop per CPU (-j 2 on this 2-core machine).
REFERENCES = {HEADLINE: "pgbench -j 1", "SQL processes": "pgbench -j 2"}

# ---------------------------------------------------------------------------
# the transaction: module-level, so that processes=True can pickle it
# ---------------------------------------------------------------------------

TPCB = [
    "BEGIN",
    "UPDATE pgbench_accounts SET abalance = abalance + %(delta)s WHERE aid = %(aid)s",
    "SELECT abalance FROM pgbench_accounts WHERE aid = %(aid)s",
    "UPDATE pgbench_tellers SET tbalance = tbalance + %(delta)s WHERE tid = %(tid)s",
    "UPDATE pgbench_branches SET bbalance = bbalance + %(delta)s WHERE bid = %(bid)s",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
    "VALUES (%(tid)s, %(bid)s, %(aid)s, %(delta)s, CURRENT_TIMESTAMP)",
    "END",
]

_rng: random.Random | None = None
_rng_pid = 0


def rng() -> random.Random:
    """This process's random generator, seeded from its PID on first use in the process.

    A forked child inherits its parent's generator state; re-seeding when the
    PID changes keeps the processes of a run from drawing the same accounts.
    """
    global _rng, _rng_pid
    pid = os.getpid()
    if _rng is None or _rng_pid != pid:
        _rng, _rng_pid = random.Random(pid ^ time.time_ns()), pid
    return _rng


def tpcb_params(i: int, scale: int = DEFAULT_SCALE) -> dict[str, int]:
    """One transaction's random parameters, as pgbench draws them."""
    randint = rng().randint
    return {
        "aid": randint(1, 100_000 * scale),
        "tid": randint(1, 10 * scale),
        "bid": randint(1, scale),
        "delta": randint(-5000, 5000),
    }


def tpcb(conn: psycopg.Connection[Any], i: int, scale: int = DEFAULT_SCALE) -> None:
    """The same transaction as a ``run_load`` callable (psycopg)."""
    p = tpcb_params(i, scale)
    aid, tid, bid, delta = p["aid"], p["tid"], p["bid"], p["delta"]
    with conn.transaction():
        conn.execute(
            "UPDATE pgbench_accounts SET abalance = abalance + %s WHERE aid = %s",
            (delta, aid),
            prepare=True,
        )
        conn.execute(
            "SELECT abalance FROM pgbench_accounts WHERE aid = %s", (aid,), prepare=True
        ).fetchone()
        conn.execute(
            "UPDATE pgbench_tellers SET tbalance = tbalance + %s WHERE tid = %s",
            (delta, tid),
            prepare=True,
        )
        conn.execute(
            "UPDATE pgbench_branches SET bbalance = bbalance + %s WHERE bid = %s",
            (delta, bid),
            prepare=True,
        )
        conn.execute(
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
            "VALUES (%s, %s, %s, %s, CURRENT_TIMESTAMP)",
            (tid, bid, aid, delta),
            prepare=True,
        )


def select1(conn: psycopg.Connection[Any], i: int) -> None:
    conn.execute("SELECT 1", prepare=True)


@dataclass(frozen=True)
class Driver:
    """One way of running the load through ``run_load``."""

    work: Any
    params: Any = None
    processes: bool = False
    loop: str = ""  # PGBUDGET_LOAD_LOOP for the run: "python" forces the Python event loop


# ---------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------


@dataclass
class Measure:
    tool: str
    p50_ms: float
    p95_ms: float
    mean_ms: float
    throughput: float
    count: int
    cpu_us_per_op: float  # client CPU (user + system) per operation
    start_s: float = 0.0  # wall time of run_load outside its measured duration
    server_cpu_us_per_op: float = math.nan  # CPU of the database's backends per operation

    @property
    def cores(self) -> tuple[float, float]:
        """Cores busy with the client and with the server's backends during the run."""
        return (
            self.cpu_us_per_op * self.throughput / 1e6,
            self.server_cpu_us_per_op * self.throughput / 1e6,
        )


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The same rule as ``Latency.of``: the ceil(q * n)-th smallest value."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def reaped_children_cpu(pid: int) -> float:
    """CPU seconds (``cutime + cstime`` of ``/proc/PID/stat``) of ``pid``'s reaped children."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def forkserver_children_cpu() -> float:
    """CPU seconds of the forkserver's reaped children (the load processes), 0 before it runs."""
    pid = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    return reaped_children_cpu(pid) if pid else 0.0


def backends_of(postmaster: int, database: str) -> list[int]:
    """The postmaster's children that serve ``database`` (their title names it) or are
    exited but not yet reaped (zombies, whose CPU is not in the postmaster's ``cutime`` yet)."""
    try:
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    except OSError:
        return []
    found = []
    for child in children:
        with contextlib.suppress(OSError, IndexError):
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            title = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            if state == "Z" or f" {database} ".encode() in title:
                found.append(int(child))
    return found


def stop_forkserver(tracker: bool = True) -> None:
    """Stop the forkserver of the load processes and multiprocessing's resource tracker.

    Both are this process's children and would exit with it anyway; stopping
    them here lets the script check that nothing it started is left. After an
    interrupted run the tracker is left to exit with this process: the
    semaphores of that run are still referenced and it has to remove them.
    """
    server = multiprocessing.forkserver._forkserver
    pid = getattr(server, "_forkserver_pid", None)
    if pid:
        try:
            server._stop()  # type: ignore[attr-defined]  # closes its "alive" pipe, then reaps it
        except Exception:  # not reaped yet, so the PID is still our child's
            with contextlib.suppress(ChildProcessError, ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
    if not tracker:
        return
    gc.collect()  # the semaphores of the last runs, before their tracker goes
    with contextlib.suppress(Exception):
        multiprocessing.resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]


@dataclass
class Bench:
    root: Path
    pg_bin: Path
    dsn: str  # the bench database
    env: dict[str, str]  # PGHOST & co. for pgbench
    scale: int
    postmaster: int
    drivers: dict[str, Driver]
    start_cpu: dict[tuple[str, int], float] = field(default_factory=dict)  # CPU s of a start
    server_cpu0: float = 0.0

    def server_cpu(self) -> float:
        """CPU seconds of the ``bench`` backends that have exited so far.

        The postmaster reaps every backend, so its ``cutime`` grows by a
        backend's CPU when that connection ends; wait (up to 2 s) until no
        backend of ``bench`` is left, then read it.
        """
        deadline = time.monotonic() + 2
        while backends_of(self.postmaster, "bench") and time.monotonic() < deadline:
            time.sleep(0.005)
        return reaped_children_cpu(self.postmaster)

    def reset(self) -> None:
        """pgbench's own pre-run clean-up, done here for both tools alike."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("VACUUM pgbench_branches")
            conn.execute("VACUUM pgbench_tellers")
            conn.execute("TRUNCATE pgbench_history")
            conn.execute("CHECKPOINT")
        self.server_cpu0 = self.server_cpu()

    def server_us_per_op(self, operations: int) -> float:
        """Backend CPU per operation since the last ``reset``."""
        return (self.server_cpu() - self.server_cpu0) / operations * 1e6

    def pgbench(
        self, clients: int, per_client: int, tag: str, threads: int = 2, rate: float | None = None
    ) -> Measure:
        """A pgbench run. With a ``rate`` it runs for ``-T`` seconds (``per_client`` x
        clients / rate) instead of ``-t`` transactions per client: with ``-t``, clients
        that finish their share early leave the schedule to fewer and fewer clients."""
        self.reset()
        prefix = self.root / f"pgbench-{tag}"
        jobs = min(threads, clients)
        argv = [
            str(self.pg_bin / "pgbench"),
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(jobs),
            *(
                ["-T", str(max(1, round(per_client * clients / rate)))]
                if rate
                else ["-t", str(per_client)]
            ),
            "--log",
            f"--log-prefix={prefix}",
            *(["--rate", f"{rate:g}"] if rate else []),
        ]
        cpu = children_cpu()
        proc = subprocess.run(
            argv,
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        cpu = children_cpu() - cpu
        if proc.returncode != 0:
            raise SystemExit(
                f"pgbench failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", proc.stdout)
        if found is None:
            raise SystemExit(f"no tps line in pgbench's output:\n{proc.stdout}")
        latencies_us: list[int] = []
        logs = sorted(self.root.glob(f"pgbench-{tag}.*"))
        for log in logs:
            for line in log.read_text().splitlines():
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    latencies_us.append(int(fields[2]))
            log.unlink()
        expected = len(latencies_us) if rate else clients * per_client
        if len(latencies_us) != expected or not expected:
            raise SystemExit(
                f"pgbench logged {len(latencies_us)} transactions in {len(logs)} file(s), "
                f"expected {expected}"
            )
        latencies_us.sort()
        return Measure(
            f"pgbench -j {jobs}",
            nearest_rank(latencies_us, 0.5) / 1000,
            nearest_rank(latencies_us, 0.95) / 1000,
            statistics.fmean(latencies_us) / 1000,
            float(found.group(1)),
            len(latencies_us),
            cpu / expected * 1e6,
            server_cpu_us_per_op=self.server_us_per_op(expected),
        )

    def pg_load(
        self,
        name: str,
        operations: int,
        concurrency: int,
        tag: str = "",
        rate: float | None = None,
    ) -> Measure:
        """A run of ``run_load`` with driver ``name``; CPU of starting it is subtracted.

        With a ``rate``, the arrivals are a Poisson process, as pgbench's ``--rate``."""
        self.reset()
        result, cpu, wall = self._run(name, operations, concurrency, rate)
        cpu -= self.start_cpu.get((name, concurrency), 0.0)
        if result.errors or result.operations != operations:
            raise SystemExit(f"run_load: {result.describe()}")
        return Measure(
            name,
            result.latency.p50_ms,
            result.latency.p95_ms,
            result.latency.mean_ms,
            result.throughput,
            result.operations,
            cpu / operations * 1e6,
            wall - result.duration_s,
            self.server_us_per_op(operations),
        )

    def _run(
        self, name: str, operations: int, concurrency: int, rate: float | None = None
    ) -> tuple[Any, float, float]:
        driver = self.drivers[name]
        cpu = time.process_time()
        kids = forkserver_children_cpu()
        wall = time.perf_counter()
        saved = os.environ.get(LOOP_ENV)
        os.environ[LOOP_ENV] = driver.loop
        try:
            result = run_load(
                self.dsn,
                driver.work,
                params=driver.params,
                operations=operations,
                concurrency=concurrency,
                processes=driver.processes,
                rate=rate,
                arrivals="poisson" if rate else "uniform",
            )
        finally:
            if saved is None:
                del os.environ[LOOP_ENV]
            else:
                os.environ[LOOP_ENV] = saved
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        if driver.processes:  # the load processes are joined (and so reaped) before it returns
            cpu += forkserver_children_cpu() - kids
        return result, cpu, wall

    def measure_start(self, name: str, concurrency: int) -> tuple[float, float]:
        """CPU and wall seconds of a run of one operation per connection: starting a run."""
        _, cpu, wall = self._run(name, concurrency, concurrency)
        self.start_cpu[name, concurrency] = cpu
        return cpu, wall

    def bare(
        self,
        work: Callable[[psycopg.Connection[Any], int], object],
        operations: int,
        concurrency: int,
        tool: str = "bare loop",
    ) -> Measure:
        """The same work from plain threads: no pool, no sampler, no shared counter."""
        self.reset()
        conns = [psycopg.connect(self.dsn, autocommit=True) for _ in range(concurrency)]
        shares = [
            operations // concurrency + (n < operations % concurrency) for n in range(concurrency)
        ]
        results: list[list[int]] = [[] for _ in range(concurrency)]
        barrier = threading.Barrier(concurrency + 1)
        perf = time.perf_counter_ns

        def loop(n: int) -> None:
            conn, mine, count = conns[n], results[n], shares[n]
            try:
                barrier.wait(timeout=30)
            except threading.BrokenBarrierError:
                return
            for i in range(count):
                began = perf()
                work(conn, i)
                mine.append(perf() - began)

        threads = [
            threading.Thread(target=loop, args=(n,), daemon=True) for n in range(concurrency)
        ]
        try:
            for thread in threads:
                thread.start()
            cpu = time.process_time()
            barrier.wait(timeout=30)
            started = time.perf_counter()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
        finally:
            barrier.abort()
            for conn in conns:
                conn.close()
        latencies = sorted(ns for mine in results for ns in mine)
        if len(latencies) != operations:
            raise SystemExit(f"{tool}: {len(latencies)} of {operations} operations completed")
        return Measure(
            tool,
            nearest_rank(latencies, 0.5) / 1e6,
            nearest_rank(latencies, 0.95) / 1e6,
            statistics.fmean(latencies) / 1e6,
            operations / elapsed,
            operations,
            cpu / operations * 1e6,
            server_cpu_us_per_op=self.server_us_per_op(operations),
        )


def median_of(runs: list[Measure]) -> Measure:
    return Measure(
        runs[0].tool,
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p95_ms for r in runs),
        statistics.median(r.mean_ms for r in runs),
        statistics.median(r.throughput for r in runs),
        runs[0].count,
        statistics.median(r.cpu_us_per_op for r in runs),
        statistics.median(r.start_s for r in runs),
        statistics.median(r.server_cpu_us_per_op for r in runs),
    )


def fmt(m: Measure) -> str:
    start = f"  start {m.start_s:4.2f} s" if m.start_s else ""
    return (
        f"p50 {m.p50_ms:6.2f} ms  p95 {m.p95_ms:6.2f} ms  mean {m.mean_ms:6.2f} ms  "
        f"{m.throughput:6.0f} tps  CPU us/tx client {m.cpu_us_per_op:4.0f} "
        f"server {m.server_cpu_us_per_op:4.0f}{start}"
    )


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--concurrency", default="8,16,32", help="comma-separated client counts (default 8,16,32)"
    )
    parser.add_argument(
        "--transactions",
        type=int,
        default=4800,
        help="transactions per run, rounded to a multiple of the concurrency (default 4800)",
    )
    parser.add_argument(
        "--scale", type=int, default=DEFAULT_SCALE, help="pgbench scale factor (default 10)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each (median)")
    parser.add_argument(
        "--select1-ops", type=int, default=10000, help="operations per SELECT 1 run"
    )
    parser.add_argument(
        "--overhead-concurrency", default="1,8", help="connections for the SELECT 1 runs"
    )
    parser.add_argument(
        "--overhead-repeats", type=int, default=3, help="interleaved SELECT 1 runs (default 3)"
    )
    parser.add_argument(
        "--rate-share",
        type=float,
        default=0.5,
        help="fixed-rate runs at this share of pgbench's closed-loop throughput (default 0.5)",
    )
    parser.add_argument(
        "--rate-seconds", type=float, default=4.0, help="length of a fixed-rate run (default 4)"
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=300,
        help="seconds; the runner overhead section is cut short to stay within it (default 300)",
    )
    parser.add_argument("--pg-bin", default=DEFAULT_PG_BIN, help="PostgreSQL bin directory")
    args = parser.parse_args()
    args.started = time.perf_counter()
    pg_bin = Path(args.pg_bin)
    if not (pg_bin / "pgbench").is_file():
        parser.error(f"{pg_bin / 'pgbench'} not found (use --pg-bin)")
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    overhead_concurrencies = [int(c) for c in args.overhead_concurrency.split(",") if c.strip()]

    root = Path(tempfile.mkdtemp(prefix="bench-pgload-"))
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def on_signal(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in previous:
        signal.signal(sig, on_signal)
    bench_started = time.perf_counter()
    server = None
    run_dir = ""
    completed = False
    try:
        started = time.perf_counter()
        server = pgserver.provision(Settings(backend="local", pg_bin=str(pg_bin)))
        params = conninfo.conninfo_to_dict(server.dsn)
        run_dir = str(params["host"])
        print(
            f"pg_load vs pgbench: PostgreSQL {server.version} ({server.backend} backend, "
            f"socket {run_dir}) started in {time.perf_counter() - started:.2f} s; "
            f"{os.cpu_count()} CPU(s), {platform.platform()}, Python {platform.python_version()}, "
            f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        loop, why = c_loop()
        print(f"{HEADLINE}: " + ("the C event loop" if loop else f"the Python event loop ({why})"))
        if os.getloadavg()[0] > (os.cpu_count() or 1) / 2:
            print("warning: the machine is busy (load average above half the CPUs); expect noise")
        status = bench(args, root, pg_bin, server, concurrencies, overhead_concurrencies)
        completed = True
        return status
    finally:
        stop_forkserver(tracker=completed)
        if server is not None:
            server.controller.stop()
        leftovers = postgres_pids_under(run_dir) if run_dir else []
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print(
            f"\nserver and load processes' helpers stopped, {root} removed"
            + (f" (killed leftover postgres PIDs {leftovers})" if leftovers else "")
            + f"; total benchmark time {time.perf_counter() - bench_started:.0f} s"
        )


def bench(
    args: argparse.Namespace,
    root: Path,
    pg_bin: Path,
    server: Any,
    concurrencies: list[int],
    overhead_concurrencies: list[int],
) -> int:
    with server.connect() as conn:
        conn.execute("CREATE DATABASE bench")
        row = conn.execute("SHOW max_connections").fetchone()
    max_connections = int(row[0]) if row else 100
    if max(concurrencies) + 5 > max_connections:
        raise SystemExit(
            f"concurrency {max(concurrencies)} needs more than max_connections={max_connections}"
        )
    params = conninfo.conninfo_to_dict(server.dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        PGHOST=str(params["host"]),
        PGPORT=str(params.get("port") or 5432),
        PGUSER=str(params["user"]),
        PGDATABASE="bench",
    )
    with psycopg.connect(server.dsn_for("bench")) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        stat = Path(f"/proc/{row[0]}/stat").read_text()  # while the backend is alive
    postmaster = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: the parent
    transaction_params = partial(tpcb_params, scale=args.scale)
    work = partial(tpcb, scale=args.scale)
    drivers = {
        HEADLINE: Driver(TPCB, transaction_params),
        PYTHON_LOOP: Driver(TPCB, transaction_params, loop="python"),
        "SQL processes": Driver(TPCB, transaction_params, processes=True),
        "callable threads": Driver(work),
        "callable procs": Driver(work, processes=True),
        # runner overhead
        "run_load callable": Driver(select1),
        "run_load SQL": Driver("SELECT 1"),
        "run_load SQL py": Driver("SELECT 1", loop="python"),
    }
    b = Bench(root, pg_bin, server.dsn_for("bench"), env, args.scale, postmaster, drivers)
    started = time.perf_counter()
    init = subprocess.run(
        [str(pg_bin / "pgbench"), "-i", "-q", "-s", str(args.scale)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    if init.returncode != 0:
        raise SystemExit(f"pgbench -i failed:\n{init.stderr}")
    print(f"pgbench -i -s {args.scale}: {time.perf_counter() - started:.2f} s")
    compared = [HEADLINE, PYTHON_LOOP, "SQL processes", "callable threads", "callable procs"]

    # Warm-up, untimed: fills shared_buffers with the accounts and its index for both tools,
    # starts the forkserver; then what starting a run costs, per driver and concurrency.
    b.pgbench(concurrencies[0], 200, "warmup", threads=1)
    for name in compared:
        b.pg_load(name, concurrencies[0] * 20, concurrencies[0])
    for c in concurrencies:
        starts = {name: b.measure_start(name, c) for name in compared}
        print(
            f"starting a run at C={c} (outside the latencies): "
            + ", ".join(
                f"{n} {cpu * 1e3:.0f} ms CPU, {wall:.2f} s" for n, (cpu, wall) in starts.items()
            )
        )

    # -- pgbench vs pg_load -----------------------------------------------------
    results: dict[int, dict[str, Measure]] = {}
    for c in concurrencies:
        per_client = max(1, args.transactions // c)
        total = per_client * c
        tools: list[tuple[str, Callable[[str], Measure]]] = [
            ("pgbench -j 1", partial(b.pgbench, c, per_client, threads=1)),
            ("pgbench -j 2", partial(b.pgbench, c, per_client, threads=2)),
            *((name, partial(b.pg_load, name, total, c)) for name in compared),
        ]
        runs: dict[str, list[Measure]] = {name: [] for name, _ in tools}
        print(f"\nTPC-B-like, {c} clients, {total} transactions per run ({per_client} per client)")
        for rnd in range(1, args.repeats + 1):
            for n, (name, run) in enumerate(tools):
                runs[name].append(run(f"c{c}-r{rnd}-t{n}"))
                print(f"  round {rnd} {name:<16} {fmt(runs[name][-1])}", flush=True)
        results[c] = {name: median_of(runs[name]) for name, _ in tools}

    def ratio(c: int, name: str, reference: str) -> float:
        return results[c][name].p95_ms / results[c][reference].p95_ms

    agrees = {
        name: all(abs(ratio(c, name, reference) - 1) <= TARGET_P95_RATIO for c in results)
        for name, reference in REFERENCES.items()
    }

    # -- fixed rate, below saturation --------------------------------------------
    rated: dict[int, dict[str, Measure]] = {}
    rates: dict[int, float] = {}
    for c in concurrencies:
        rate = max(100.0, round(args.rate_share * results[c]["pgbench -j 1"].throughput, -2))
        rates[c] = rate
        per_client = max(1, int(rate * args.rate_seconds) // c)
        total = per_client * c
        rate_tools: list[tuple[str, Callable[[str], Measure]]] = [
            ("pgbench -j 1", partial(b.pgbench, c, per_client, threads=1, rate=rate)),
            (HEADLINE, partial(b.pg_load, HEADLINE, total, c, rate=rate)),
        ]
        rate_runs: dict[str, list[Measure]] = {name: [] for name, _ in rate_tools}
        print(
            f"\nfixed rate {rate:g}/s ({args.rate_share:.0%} of pgbench's closed-loop throughput), "
            f"Poisson arrivals, {c} clients, {total} transactions per run"
        )
        for rnd in range(1, args.repeats + 1):
            for n, (name, run) in enumerate(rate_tools):
                rate_runs[name].append(run(f"rate-c{c}-r{rnd}-t{n}"))
                print(f"  round {rnd} {name:<16} {fmt(rate_runs[name][-1])}", flush=True)
        rated[c] = {name: median_of(rate_runs[name]) for name, _ in rate_tools}
    rate_agrees = all(
        abs(by[HEADLINE].p95_ms / by["pgbench -j 1"].p95_ms - 1) <= TARGET_P95_RATIO
        for by in rated.values()
    )

    # -- runner overhead --------------------------------------------------------
    overhead: dict[int, dict[str, Measure]] = {}
    best: dict[int, dict[str, float]] = {}  # best-of throughput: noise only ever slows a run
    ops = args.select1_ops
    print(f"\nrunner overhead: SELECT 1 (prepared), {ops} operations per run")
    kinds = ["bare threads", "run_load callable", "run_load SQL", "run_load SQL py"]
    for c in overhead_concurrencies:
        if time.perf_counter() - args.started > args.time_budget * 0.8:
            print(f"  C={c} skipped: too little of --time-budget left")
            continue
        for name in kinds[1:]:
            b.measure_start(name, c)
        measure: dict[str, Callable[[], Measure]] = {
            "bare threads": partial(b.bare, select1, ops, c),
            **{name: partial(b.pg_load, name, ops, c) for name in kinds[1:]},
        }
        oruns: dict[str, list[Measure]] = {name: [] for name in kinds}
        for rnd in range(1, args.overhead_repeats + 1):
            if rnd > 1 and time.perf_counter() - args.started > args.time_budget * 0.9:
                print(f"  (stopped after {rnd - 1} rounds: --time-budget)")
                break
            for name in kinds:
                oruns[name].append(measure[name]())
            print(
                f"  round {rnd} C={c}: "
                + ", ".join(
                    f"{name} {1e6 / oruns[name][-1].throughput:6.1f} us/op" for name in kinds
                ),
                flush=True,
            )
        overhead[c] = {name: median_of(oruns[name]) for name in kinds}
        best[c] = {name: max(m.throughput for m in oruns[name]) for name in kinds}

    # -- summary ----------------------------------------------------------------
    print()
    print(f"Results: medians of {args.repeats} interleaved runs; TPC-B-like at scale {args.scale}")
    header = (
        f"{'clients':>7} {'driver':<16} {'p50 ms':>7} {'p95 ms':>7} {'mean ms':>8} {'tps':>6} "
        f"{'CPU us/tx client':>16} {'server':>6} {'cores c+s':>9} {'p95 / -j 1':>10} "
        f"{'p95 / -j 2':>10}"
    )
    print(header)
    print("-" * len(header))
    for c, by_tool in results.items():
        for name, m in by_tool.items():
            shown = []
            for reference in ("pgbench -j 1", "pgbench -j 2"):
                value = ratio(c, name, reference)
                text = "" if name == reference else f"{value:.2f}"
                if REFERENCES.get(name) == reference:
                    text += " OK" if abs(value - 1) <= TARGET_P95_RATIO else " MISS"
                shown.append(text)
            client, backend = m.cores
            print(
                f"{c:>7} {name:<16} {m.p50_ms:>7.2f} {m.p95_ms:>7.2f} {m.mean_ms:>8.2f} "
                f"{m.throughput:>6.0f} {m.cpu_us_per_op:>16.0f} {m.server_cpu_us_per_op:>6.0f} "
                f"{client:>4.2f}+{backend:<4.2f} {shown[0]:>10} {shown[1]:>10}"
            )
    print(
        f"target: p95 within {TARGET_P95_RATIO:.0%} of pgbench of the same shape at every "
        "concurrency: "
        + ", ".join(
            f"{name} vs {REFERENCES[name]} {'OK' if ok else 'MISSED'}"
            for name, ok in agrees.items()
        )
    )
    print()
    print(
        f"Fixed rate below saturation, Poisson arrivals, medians of {args.repeats} interleaved runs"
    )
    for c, by_tool in rated.items():
        theirs = by_tool["pgbench -j 1"]
        for name, m in by_tool.items():
            shown = "" if m is theirs else f"  p95 / pgbench {m.p95_ms / theirs.p95_ms:.2f}"
            print(f"  C={c:<3} {rates[c]:>6g}/s {name:<13} {fmt(m)}{shown}")
    print(
        f"target at a fixed rate: p95 within {TARGET_P95_RATIO:.0%} of pgbench -j 1 --rate at "
        f"every concurrency: {'OK' if rate_agrees else 'MISSED'}"
    )
    print()
    print(
        f"Runner overhead, SELECT 1 prepared, {args.overhead_repeats} interleaved runs: "
        "us/op = elapsed / operations (difference to the bare loop)"
    )
    for c, by_kind in overhead.items():
        bare_us = 1e6 / by_kind["bare threads"].throughput
        bare_best = 1e6 / best[c]["bare threads"]
        for name, m in by_kind.items():
            us, us_best = 1e6 / m.throughput, 1e6 / best[c][name]
            diff = "" if name == "bare threads" else f" ({us - bare_us:+5.1f})"
            diff_best = "" if name == "bare threads" else f" ({us_best - bare_best:+5.1f})"
            print(
                f"  C={c:<3} {name:<17} median {us:5.1f}{diff:<8} us/op   "
                f"best-of {us_best:5.1f}{diff_best:<8} us/op   "
                f"client CPU {m.cpu_us_per_op:5.1f} us/op"
            )
    print(
        f"\nload average at the end: {os.getloadavg()[0]:.2f} (other work on the machine adds noise)"
    )
    return 0 if all(agrees.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
