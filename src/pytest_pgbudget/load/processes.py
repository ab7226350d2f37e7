"""Running a load in processes, out of the GIL's way.

With threads, every client-side microsecond of every connection is spent under
one interpreter lock, which can queue operations behind each other and
inflate the tail latency. A callable gets one process per connection, which
removes that queue (it cannot remove the client's own CPU time, which on a
machine with few cores competes with the server). SQL work gets one event
loop (:func:`~pytest_pgbudget.load.engine.drive_many`) per CPU, each driving
its share of the connections, like ``pgbench -j``, and its share of the
operations (loop n of N runs operations n, n + N, ...). The work and its
``params`` must be picklable: SQL, and module-level functions rather than
lambdas.

Children are started by a fork server that has psycopg imported already, so a
child costs a fork and a connection. Start times are shared through
``time.monotonic_ns``, which is one clock for every process on the machine.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import time
import traceback
from multiprocessing.connection import Connection as Pipe
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import psycopg

from .engine import Arrivals, Schedule, Tally, binder, compile_work, drive_many
from .runner import connect_for_load, drive

_context: Any = None


def _mp() -> Any:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["psycopg", "pytest_pgbudget.load.processes"])
    return _context


def _child(
    dsn: str,
    payload: bytes,
    connections: int,
    operations: int,
    arrivals: Arrivals | None,
    counter: Synchronized[int],
    place: tuple[int, int],
    t0: Synchronized[int],
    ready: Any,
    go: Any,
    out: Pipe,
) -> None:
    tally = Tally()
    crash = ""
    driver = "a process per connection"
    conns: list[psycopg.Connection[Any]] = []
    try:
        work, params = pickle.loads(payload)
        statements = () if callable(work) else compile_work(work)
        offset = arrivals.offsets(operations) if arrivals else None
        conns.extend(connect_for_load(dsn, statements) for _ in range(connections))
        ready.release()
        go.wait()

        def shared_index() -> int:
            with counter.get_lock():
                i = counter.value
                counter.value += 1
            return i

        if callable(work):
            drive(conns[0], work, Schedule(operations, t0.value, offset, shared_index), tally)
        else:
            # Loop n of N takes operations n, n + N, n + 2N...: no lock to share, and at a
            # fixed rate each loop's operations are still in order of their start.
            mine = Schedule(operations, t0.value, offset, itertools.count(*place).__next__)
            driver = drive_many(
                [conn.pgconn for conn in conns],
                statements,
                binder(statements, params, conns[0]),
                mine,
                tally,
            )
    except BaseException as exc:  # reported by the parent
        crash = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        ready.release()
    finally:
        for conn in conns:
            conn.close()
    out.send((tally, crash, driver))
    out.close()


def execute_in_processes(
    dsn: str,
    work: Any,
    params: Any,
    *,
    operations: int,
    concurrency: int,
    arrivals: Arrivals | None,
    start_timeout: float,
) -> tuple[Tally, list[str], float, str]:
    """Run the load; return what it measured, its crashes, elapsed seconds and what
    drove it."""
    try:
        payload = pickle.dumps((work, params))
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError(
            "processes=True needs a picklable work and params (a SQL string, module-level "
            f"functions; not lambdas or closures): {exc}"
        ) from None
    mp = _mp()
    counter = mp.Value("q", 0)
    t0 = mp.Value("q", 0, lock=False)
    ready = mp.Semaphore(0)
    go = mp.Event()
    pipes = []
    children = []
    # A callable: a process per connection. SQL: an event loop per CPU, sharing the connections.
    loops = concurrency if callable(work) else min(concurrency, os.cpu_count() or 1)
    for n in range(loops):
        share = concurrency // loops + (n < concurrency % loops)
        receive, send = mp.Pipe(duplex=False)
        child = mp.Process(
            target=_child,
            args=(
                dsn,
                payload,
                share,
                operations,
                arrivals,
                counter,
                (n, loops),
                t0,
                ready,
                go,
                send,
            ),
            daemon=True,
        )
        child.start()
        send.close()
        pipes.append(receive)
        children.append(child)
    tally = Tally()
    crashes: list[str] = []
    drivers: set[str] = set()
    try:
        deadline = time.monotonic() + start_timeout
        for _ in children:
            if not ready.acquire(timeout=max(0.0, deadline - time.monotonic())):
                crashes.append(f"a load process did not connect within {start_timeout:g} s")
                break
        t0.value = time.monotonic_ns()
        started = time.perf_counter()
        go.set()
        for receive in pipes:
            try:
                theirs, crash, driver = receive.recv()
            except EOFError:
                crashes.append("a load process died without reporting")
                continue
            tally.update(theirs)
            drivers.add(driver)
            if crash:
                crashes.append(crash)
        elapsed = time.perf_counter() - started
    finally:
        go.set()
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    each = f", {' or '.join(sorted(drivers))} each" if not callable(work) else ""
    return tally, crashes, elapsed, f"{loops} processes{each}"
