"""Session health budgets: the guide's KPIs, checked over the whole session.

- buffer cache hit ratio (heap blocks, default > 95%) and index hit ratio
  (index blocks, default > 99%), from ``pg_statio_user_tables`` and
  ``pg_statio_user_indexes`` of every test database, read just before it is
  dropped. Every test database starts with a cold cache, so the first read of
  each block (at most the relation's size in blocks) is not counted as a miss:
  what remains are the misses a warm production server would also see, i.e. a
  working set larger than ``shared_buffers``;
- lock waits (default < 10 ms), from the server's ``log_lock_waits`` records
  (``deadlock_timeout`` is set to the budget, so every longer wait is logged);
  the waits of ``pg_load`` runs are judged by their own load budgets instead;
- indexes of the schema that no captured plan used: a report by default,
  a failure with ``pgbudget_health_unused_indexes = fail``.

A breach fails the session (exit status 1) with a summary; it is never only
a warning.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

_STATIO = """
SELECT
  coalesce(sum(heap_blks_hit), 0),
  coalesce(sum(heap_blks_read), 0),
  coalesce(sum(least(heap_blks_read,
      pg_relation_size(relid) / current_setting('block_size')::int)), 0)
FROM pg_statio_user_tables
"""
_STATIO_INDEXES = """
SELECT
  coalesce(sum(idx_blks_hit), 0),
  coalesce(sum(idx_blks_read), 0),
  coalesce(sum(least(idx_blks_read,
      pg_relation_size(indexrelid) / current_setting('block_size')::int)), 0)
FROM pg_statio_user_indexes
"""
INDEXES_QUERY = """
SELECT indexrelname, relname FROM pg_stat_user_indexes ORDER BY relname, indexrelname
"""
_WAITED = re.compile(
    r"^process \d+ (?:still waiting for|acquired) (?P<lock>.+?) after (?P<ms>[0-9.]+) ms"
)
_HOLDERS = re.compile(r"Process(?:es)? holding the lock: (?P<pids>[0-9, ]+)\.")


@dataclass(frozen=True)
class LockWait:
    """A lock wait the server logged (``log_lock_waits``)."""

    waited_ms: float
    lock: str
    dbname: str
    statement: str
    application: str = ""
    holders: tuple[int, ...] = ()  # from "still waiting" records: who held the lock


def lock_wait(record: dict[str, Any]) -> LockWait | None:
    """The lock wait in one jsonlog record, or ``None``."""
    match = _WAITED.match(record.get("message", ""))
    if match is None:
        return None
    holders = _HOLDERS.search(record.get("detail", ""))
    return LockWait(
        float(match.group("ms")),
        match.group("lock"),
        record.get("dbname", ""),
        record.get("statement", ""),
        record.get("application_name", ""),
        tuple(int(p) for p in holders.group("pids").split(",")) if holders else (),
    )


@dataclass(frozen=True)
class Thresholds:
    cache_hit_ratio: float = 95.0
    index_hit_ratio: float = 99.0
    lock_wait_ms: float = 10.0
    unused_indexes: str = "report"
    min_accesses: int = 1000


@dataclass
class Health:
    """Aggregates collected over the session, from any thread."""

    heap_hit: int = 0
    heap_read: int = 0
    heap_cold: int = 0
    idx_hit: int = 0
    idx_read: int = 0
    idx_cold: int = 0
    lock_waits: list[LockWait] = field(default_factory=list)
    schema_indexes: dict[str, str] = field(default_factory=dict)
    used_indexes: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def read_database(self, conn: psycopg.Connection[Any]) -> None:
        """Add one test database's buffer statistics (call just before dropping it)."""
        heap = conn.execute(_STATIO).fetchone()
        idx = conn.execute(_STATIO_INDEXES).fetchone()
        assert heap is not None and idx is not None
        with self._lock:
            self.heap_hit += int(heap[0])
            self.heap_read += int(heap[1])
            self.heap_cold += int(heap[2])
            self.idx_hit += int(idx[0])
            self.idx_read += int(idx[1])
            self.idx_cold += int(idx[2])

    def add_lock_waits(self, waits: Iterable[LockWait]) -> None:
        """Add the waits of the tests' own sessions; ``pg_load``'s are judged by load budgets."""
        with self._lock:
            self.lock_waits.extend(w for w in waits if w.application != "pytest-pgbudget-load")

    def add_schema_indexes(self, pairs: Iterable[tuple[str, str]]) -> None:
        with self._lock:
            self.schema_indexes.update(pairs)

    def add_used(self, indexes: Iterable[str]) -> None:
        with self._lock:
            self.used_indexes.update(indexes)

    @staticmethod
    def _ratio(hit: int, read: int, cold: int) -> tuple[float | None, int]:
        misses = max(0, read - cold)
        accesses = hit + misses
        return (100.0 * hit / accesses if accesses else None), accesses

    def cache_hit_ratio(self) -> tuple[float | None, int]:
        return self._ratio(self.heap_hit, self.heap_read, self.heap_cold)

    def index_hit_ratio(self) -> tuple[float | None, int]:
        return self._ratio(self.idx_hit, self.idx_read, self.idx_cold)

    def unused_indexes(self) -> list[tuple[str, str]]:
        return sorted(
            (name, table)
            for name, table in self.schema_indexes.items()
            if name not in self.used_indexes
        )

    def evaluate(self, limits: Thresholds) -> tuple[list[str], list[str]]:
        """``(breaches, report lines)`` for the terminal summary."""
        breaches: list[str] = []
        lines: list[str] = []
        for label, (ratio, accesses), target in (
            ("buffer cache hit ratio", self.cache_hit_ratio(), limits.cache_hit_ratio),
            ("index hit ratio", self.index_hit_ratio(), limits.index_hit_ratio),
        ):
            if target <= 0:
                continue
            if ratio is None or accesses < limits.min_accesses:
                lines.append(f"{label}: not judged, only {accesses} warm buffer accesses")
                continue
            line = (
                f"{label} {ratio:.2f}% over {accesses} warm buffer accesses (target > {target:g}%)"
            )
            lines.append(line)
            if ratio <= target:
                breaches.append(line)
        if limits.lock_wait_ms > 0:
            worst = max(self.lock_waits, key=lambda w: w.waited_ms, default=None)
            if worst is None:
                lines.append(f"lock waits: none over {limits.lock_wait_ms:g} ms")
            else:
                line = (
                    f"lock wait of {worst.waited_ms:.1f} ms for {worst.lock} "
                    f"(target < {limits.lock_wait_ms:g} ms)"
                    + (f": {' '.join(worst.statement.split())[:120]}" if worst.statement else "")
                )
                lines.append(line)
                if worst.waited_ms >= limits.lock_wait_ms:
                    breaches.append(line)
        if limits.unused_indexes != "off" and self.schema_indexes:
            unused = self.unused_indexes()
            if unused:
                line = (
                    f"{len(unused)} of {len(self.schema_indexes)} indexes no test used: "
                    + ", ".join(f"{name} (on {table})" for name, table in unused)
                )
                lines.append(line)
                if limits.unused_indexes == "fail":
                    breaches.append(line)
            else:
                lines.append(f"every one of the {len(self.schema_indexes)} indexes was used")
        return breaches, lines
