"""The template database and the per-test databases cloned from it.

The schema is loaded once into a template. In ``database`` isolation every
test gets a clone nobody has changed, created in a background thread while
the previous test runs, so a test waits only for a clone that is already
there. Changed clones are dropped in the same background thread.

A clone costs a full copy (every database carries some 8 MB of catalogs), so
a clone the test provably did not change is handed to the next test instead
of being dropped. "Provably" means, once every connection of the test has
ended (a backend flushes its statistics before it leaves
``pg_stat_activity``): ``pg_stat_database`` counts no inserted, updated or
deleted row (DDL, TRUNCATE, ANALYZE, aborted writes and temp tables all count
rows in the catalogs), every sequence still has the template's value
(``nextval`` counts no row), no prepared transaction and no per-database
setting was added. ``pgbudget_reuse_untouched = off`` switches this off.

In ``transaction`` isolation all tests share one clone and each test's
``pg_conn`` is rolled back.

Only databases this run created are ever dropped, on every backend.
"""

from __future__ import annotations

import contextlib
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from .errors import SchemaError, ServerError
from .health import INDEXES_QUERY
from .schema.load import SchemaSource, load
from .server import PgServer

#: What a test could change in its clone that row counters miss; compared before reuse.
_STATE = """
SELECT
  (SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = %s),
  (SELECT count(*) FROM pg_prepared_xacts WHERE database = %s),
  (SELECT array_agg(c ORDER BY c) FROM pg_db_role_setting s
     JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) c
    WHERE d.datname = %s)
"""
_SEQUENCES = """
SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2
"""


def _vacuum_analyze(conn: psycopg.Connection[Any]) -> None:
    """Statistics for the planner, and a visibility map for index-only scans.

    VACUUM marks a page all-visible only once the commits on it are flushed;
    with ``synchronous_commit = off`` they may not be yet, so a CHECKPOINT
    flushes the WAL first (where the role may run one).
    """
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("CHECKPOINT")
    conn.execute("VACUUM (ANALYZE)")


@dataclass
class PgDatabase:
    """A database for one test (the ``pg_db`` fixture)."""

    name: str
    server: PgServer = field(repr=False)
    #: Backends of connections the plugin itself closed: not leaks, and not waited for.
    closed_backends: set[int] = field(default_factory=set, repr=False, compare=False)

    @property
    def dsn(self) -> str:
        """A libpq connection string that psycopg, psycopg2 and asyncpg accept."""
        return self.server.dsn_for(self.name)

    @property
    def url(self) -> str:
        """A SQLAlchemy URL using psycopg 3, e.g. for ``create_engine(pg_db.url)``."""
        return "postgresql+psycopg" + self.dsn[len("postgresql") :]

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A new psycopg 3 connection to this database."""
        return psycopg.connect(self.dsn, **kwargs)


#: Called on every new test database, on an autocommit connection to the server's
#: maintenance database, e.g. to switch capture on with ``ALTER DATABASE ... SET``.
DatabaseHook = Callable[[psycopg.Connection[Any], str], None]


class DatabaseSupply:
    """Builds the template and hands out isolated databases."""

    def __init__(
        self,
        server: PgServer,
        sources: Sequence[SchemaSource],
        isolation: str,
        on_create: DatabaseHook | None = None,
        after_load: Callable[[psycopg.Connection[Any]], None] | None = None,
        before_drop: Callable[[psycopg.Connection[Any]], None] | None = None,
        reuse_untouched: bool = True,
    ) -> None:
        self.server = server
        self.sources = sources
        self.isolation = isolation
        self.on_create = on_create
        self.after_load = after_load
        self.before_drop = before_drop
        self.reuse_untouched = reuse_untouched
        self._sequences: list[tuple[Any, ...]] = []
        self._fresh_state: dict[str, tuple[Any, ...]] = {}
        #: The schema's indexes, ``{index: table}``, read from the template.
        self.indexes: dict[str, str] = {}
        self.prefix = f"pgbudget_{secrets.token_hex(4)}"
        self.template = f"{self.prefix}_tpl"
        self._created: set[str] = set()
        self._counter = 0
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._tasks: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._shared: PgDatabase | None = None
        self._admin = server.connect()

    # -- template -------------------------------------------------------------

    def build_template(self) -> int:
        """Create the template, load the schema and ``ANALYZE``; return the statement count."""
        self._execute("CREATE DATABASE {}", self.template)
        self._created.add(self.template)
        try:
            with self.server.connect(self.template) as conn:
                count = load(conn, self.sources)
                if self.after_load is not None:
                    self.after_load(conn)
                conn.autocommit = True
                _vacuum_analyze(conn)
                rows = conn.execute(INDEXES_QUERY).fetchall()
                self.indexes = {str(name): str(table) for name, table in rows}
                self._sequences = conn.execute(_SEQUENCES).fetchall()
        except BaseException:
            # A half-built template never survives: drop it before reporting.
            self._drop(self.template)
            raise
        self._execute("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", self.template)
        return count

    # -- clones -----------------------------------------------------------------

    def _execute(self, template: str, *names: str) -> None:
        query = sql.SQL(template).format(*(sql.Identifier(name) for name in names))
        self._admin.execute(query)

    def _clone(self, conn: psycopg.Connection[Any]) -> str:
        self._counter += 1
        name = f"{self.prefix}_{self._counter}"
        strategy = (
            sql.SQL(" STRATEGY FILE_COPY") if self.server.version_num >= 150000 else sql.SQL("")
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(self.template)
            )
            + strategy
        )
        self._created.add(name)
        if self.on_create is not None:
            self.on_create(conn, name)
        if self.reuse_untouched:
            self._fresh_state[name] = self._state(conn, name)
        return name

    @staticmethod
    def _state(conn: psycopg.Connection[Any], name: str) -> tuple[Any, ...]:
        row = conn.execute(_STATE, [name, name, name]).fetchone()
        assert row is not None
        return tuple(row)

    def _untouched(self, name: str) -> bool:
        """Whether the test provably left its clone as it got it (see the module docstring)."""
        fresh = self._fresh_state.get(name)
        if fresh is None or self._state(self._admin, name) != fresh:
            return False
        if self._sequences:
            with self.server.connect(name) as conn:
                if conn.execute(_SEQUENCES).fetchall() != self._sequences:
                    return False
        return True

    def _drop(self, name: str, conn: psycopg.Connection[Any] | None = None) -> None:
        conn = conn or self._admin
        if self.before_drop is not None and name != self.template:
            try:
                with self.server.connect(name) as db_conn:
                    self.before_drop(db_conn)
            except psycopg.Error:
                pass  # statistics are a report; a database that cannot be read is still dropped
        force = sql.SQL(" WITH (FORCE)") if self.server.version_num >= 130000 else sql.SQL("")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)) + force)
        self._created.discard(name)

    def _work(self) -> None:
        """Background thread: create clones ahead of need and drop used ones."""
        with self.server.connect() as conn:
            while (task := self._tasks.get()) is not None:
                action, name = task
                try:
                    if action == "create":
                        self._ready.put(self._clone(conn))
                    else:
                        self._drop(name, conn)
                except BaseException as exc:  # handed to the test that waits for it
                    if action == "create":
                        self._ready.put(exc)

    def _ensure_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="pgbudget-clones", daemon=True)
            self._worker.start()
            self._tasks.put(("create", ""))

    def acquire(self) -> PgDatabase:
        """A database for the next test."""
        if self.isolation == "transaction":
            if self._shared is None:
                self._shared = PgDatabase(self._clone(self._admin), self.server)
            return self._shared
        self._ensure_worker()
        try:
            got = self._ready.get(timeout=120)
        except queue.Empty:
            raise ServerError("no test database could be created within 120 s") from None
        if isinstance(got, BaseException):
            raise ServerError(f"creating a test database failed: {got}") from got
        if self._ready.empty():
            self._tasks.put(("create", ""))  # the next test's clone, made while this one runs
        return PgDatabase(got, self.server)

    def release(self, db: PgDatabase) -> list[str]:
        """Give back a test's database; return descriptions of leaked connections.

        A closed connection's server process exits a moment after the client
        lets go, so connections are only reported once they outlive a grace period.
        """
        deadline = time.monotonic() + 1.0
        while True:
            rows = self._admin.execute(
                "SELECT pid, application_name, state, query FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid() AND pid <> ALL(%s)",
                [db.name, list(db.closed_backends) if self.isolation == "transaction" else []],
            ).fetchall()
            if not rows or time.monotonic() > deadline:
                break
            time.sleep(0.001)
        if self.isolation == "database":
            if not rows and self.reuse_untouched and self._untouched(db.name):
                self._ready.put(db.name)
            else:
                self._fresh_state.pop(db.name, None)
                self._tasks.put(("drop", db.name))
        return [
            f"pid {pid} ({app or 'no application_name'}, {state}): {query[:80]}"
            for pid, app, state, query in rows
        ]

    def close(self) -> None:
        """Drop every database this run created, then disconnect."""
        if self._worker is not None:
            self._tasks.put(None)
            self._worker.join(timeout=60)
            self._worker = None
        while not self._ready.empty():
            self._ready.get_nowait()
        try:
            for name in sorted(self._created):
                self._drop(name)
        except psycopg.Error:
            if self.server.alive():
                raise
        finally:
            self._admin.close()


__all__ = ["DatabaseSupply", "PgDatabase", "SchemaError"]
