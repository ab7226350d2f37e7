"""Running a load with one process per connection, out of the GIL's way.

With threads, every client-side microsecond of every connection is spent under
one interpreter lock, which can queue operations behind each other and
inflate the tail latency. A process per connection removes that queue (it
cannot remove the client's own CPU time, which on a machine with few cores
competes with the server). The work and its ``params`` must then be
picklable: a SQL string, and module-level functions rather than lambdas.

Children are started by a fork server that has psycopg imported already, so a
child costs a fork and a connection. Start times are shared through
``time.monotonic_ns``, which is one clock for every process on the machine.
"""

from __future__ import annotations

import multiprocessing
import pickle
import time
import traceback
from array import array
from collections import Counter
from multiprocessing.connection import Connection as Pipe
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import psycopg

from .runner import drive, operation_for

_context: Any = None


def _mp() -> Any:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(["psycopg", "pytest_pgbudget.load.processes"])
    return _context


def _child(
    dsn: str,
    application: str,
    payload: bytes,
    operations: int,
    interval_ns: int,
    counter: Synchronized[int],
    t0: Synchronized[int],
    ready: Any,
    go: Any,
    out: Pipe,
) -> None:
    latencies = array("q")
    service = array("q")
    failures: Counter[str] = Counter()
    crash = ""
    try:
        work, params = pickle.loads(payload)
        conn = psycopg.connect(dsn, autocommit=True, application_name=application)
        conn.execute("SET auto_explain.log_min_duration = -1")
        ready.release()
        go.wait()

        def next_index() -> int:
            with counter.get_lock():
                i = counter.value
                counter.value += 1
            return i

        drive(
            conn,
            operation_for(work, params),
            next_index,
            operations,
            t0.value,
            interval_ns,
            latencies,
            service,
            failures,
        )
        conn.close()
    except BaseException as exc:  # reported by the parent
        crash = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        ready.release()
    out.send((latencies.tobytes(), service.tobytes(), dict(failures), crash))
    out.close()


def execute_in_processes(
    dsn: str,
    application: str,
    work: Any,
    params: Any,
    *,
    operations: int,
    concurrency: int,
    rate: float | None,
    start_timeout: float,
) -> tuple[array[int], array[int], Counter[str], list[str], float]:
    """Run the load; return latencies, service times, failures, crashes and elapsed seconds."""
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
    interval_ns = int(1e9 / rate) if rate else 0
    pipes = []
    children = []
    for _ in range(concurrency):
        receive, send = mp.Pipe(duplex=False)
        child = mp.Process(
            target=_child,
            args=(dsn, application, payload, operations, interval_ns, counter, t0, ready, go, send),
            daemon=True,
        )
        child.start()
        send.close()
        pipes.append(receive)
        children.append(child)
    latencies: array[int] = array("q")
    service: array[int] = array("q")
    failures: Counter[str] = Counter()
    crashes: list[str] = []
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
                lat, serv, fails, crash = receive.recv()
            except EOFError:
                crashes.append("a load process died without reporting")
                continue
            latencies.frombytes(lat)
            service.frombytes(serv)
            failures.update(fails)
            if crash:
                crashes.append(crash)
        elapsed = time.perf_counter() - started
    finally:
        go.set()
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    return latencies, service, failures, crashes, elapsed
