"""Watching a load's connections: how many there are, and who waits for whose lock.

Every ``interval`` seconds a sample is taken over one more connection. A
sample first glances at ``pg_stat_activity`` (one row back: how many load
connections there are, and which of them wait for a lock, in which
statement). Only a wait seen by two glances in a row, the same statement
still waiting, so one of at least ``interval``, is looked at closely:
``pg_locks`` for how long it has waited and ``pg_blocking_pids`` (of the
waiting backends only) for the statements at the head of its wait chain.
Both take every lock-manager partition lock, so every backend that takes a
lock meanwhile waits for it: doing that at each short wait of a busy load
would slow the load it measures. On pgbench's TPC-B at 32 connections,
where some backend is nearly always waiting, looking closely whenever a
*backend* was waiting at two glances cost 5 % of the throughput. Waits of ``deadlock_timeout`` or more (10 ms in the
tuned profile) are also logged by the server, with their exact length.

A sample is a conversation (:meth:`Sampler.sample`: a generator that yields
SQL and receives its rows), so it can run two ways without repeating itself:
in a thread of its own over a blocking connection (:meth:`Sampler.run`), or
inside the SQL engine's event loop, which then needs no second thread whose
share of the interpreter lock would delay the load it measures.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

LOAD_APPLICATION = "pytest-pgbudget-load"
WATCH_APPLICATION = "pytest-pgbudget"

Rows = list[tuple[Any, ...]]
Conversation = Generator[bytes, Rows, None]

# Prepared once per sampler, over pg_stat_get_activity() itself: the pg_stat_activity view
# joins two catalogs, and planning that 50 times a second measurably slowed a busy load.
# A waiting statement is known by its backend and its start: seen in two glances, it has
# waited at least one interval (another wait of the same backend is another statement).
_PREPARE_GLANCE = f"""
PREPARE pgbudget_glance AS
SELECT count(*),
       array_agg(pid) FILTER (WHERE wait_event_type = 'Lock'),
       array_agg(query_start) FILTER (WHERE wait_event_type = 'Lock')
FROM pg_stat_get_activity(NULL)
WHERE datid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND application_name = '{LOAD_APPLICATION}'
""".encode()
_GLANCE = b"EXECUTE pgbudget_glance"
# pg_blocking_pids() locks the whole lock manager each time: only for the waiting backends.
_SAMPLE = b"""
SELECT a.pid, a.application_name, a.state, a.query,
       l.waitstart::text, extract(epoch FROM now() - l.waitstart) * 1000,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END,
       l.locktype || coalesce(' on ' || l.relation::regclass::text, '')
FROM pg_stat_activity a
LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
"""
_SAMPLE_PRE14 = b"""
SELECT a.pid, a.application_name, a.state, a.query, NULL::text, NULL::float8,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END, ''
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
"""


@dataclass(frozen=True)
class ObservedWait:
    """A lock wait seen during the run."""

    waited_ms: float
    waiting_statement: str
    blocking_statement: str
    lock: str = ""


def _roots(pid: int, blockers: Mapping[int, Sequence[int]]) -> list[int]:
    """The processes at the head of ``pid``'s wait chain: those that wait for nobody."""
    roots: list[int] = []
    seen = {pid}
    todo = list(blockers.get(pid, ()))
    while todo:
        other = todo.pop()
        if other in seen:
            continue
        seen.add(other)
        if blockers.get(other):
            todo.extend(blockers[other])
        else:
            roots.append(other)
    return roots


@dataclass
class Sampler:
    """Peak connection count and lock waits (with their blockers) of one load run.

    Its connection (``conn``) is opened by :meth:`open`, before the load's own.
    """

    interval: float
    conn: psycopg.Connection[Any]
    peak: int = 0
    waits: dict[tuple[int, Any], ObservedWait] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    # (pid, query_start) of the load statements waiting for a lock at the last glance
    _waiting: set[tuple[int, Any]] = field(default_factory=set)

    @classmethod
    def open(cls, dsn: str, interval: float) -> Sampler:
        conn = psycopg.connect(dsn, autocommit=True, application_name=WATCH_APPLICATION)
        try:
            conn.execute(_PREPARE_GLANCE)
        except BaseException:
            conn.close()
            raise
        return cls(interval, conn)

    def sample(self) -> Conversation:
        """One sample: yields the SQL to run and receives its rows."""
        rows = yield _GLANCE
        count, pids, starts = rows[0] if rows else (0, None, None)
        self.peak = max(self.peak, int(count or 0))
        waiting = set(zip(pids or (), starts or (), strict=True))
        still, self._waiting = waiting & self._waiting, waiting
        if still:
            pg14 = self.conn.info.server_version >= 140000
            self.record((yield _SAMPLE if pg14 else _SAMPLE_PRE14))

    def record(self, rows: Rows) -> None:
        """Note the waits of a full sample's rows."""
        load_pids = {r[0] for r in rows if r[1] == LOAD_APPLICATION}
        self.peak = max(self.peak, len(load_pids))
        blockers = {r[0]: list(r[6] or []) for r in rows}
        described = {r[0]: f"pid {r[0]} ({r[2]}): {r[3]}" for r in rows}
        for pid, _app, _state, sql_text, waitstart, waited, blocking_pids, lock in rows:
            # No blocker left: the lock was just released, the waiter not yet woken.
            if waitstart is None or pid not in load_pids or not blocking_pids:
                continue
            waited = float(waited)
            blocking = "; ".join(
                described.get(root, f"pid {root}") for root in _roots(pid, blockers)
            )
            key = (pid, waitstart)
            seen = self.waits.get(key)
            if seen is not None:
                # The first blocker caused the wait; later ones are queued behind it.
                causes = seen.blocking_statement.split("; ")
                causes += [b for b in blocking.split("; ") if b and b not in causes]
                blocking = "; ".join(c for c in causes if c)
                waited = max(waited, seen.waited_ms)
            self.waits[key] = ObservedWait(waited, sql_text, blocking, lock or "")

    def run(self) -> None:
        """Sample in this thread until ``stop`` is set; an error is kept in ``error``."""
        try:
            while not self.stop.is_set():
                conversation = self.sample()
                try:
                    query = next(conversation)
                    while True:
                        query = conversation.send(self.conn.execute(query).fetchall())
                except StopIteration:
                    pass
                self.stop.wait(self.interval)
        except BaseException as exc:  # reported by run_load once the load is over
            self.error = exc

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="pgbudget-load-sampler", daemon=True)
        thread.start()
        return thread
