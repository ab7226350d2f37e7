"""Capturing every statement a test runs, from any client, through auto_explain.

auto_explain (preloaded by the plugin's servers) writes each execution's plan,
with rows, buffers and temp-file use, into the server's jsonlog; for any
driver, and for statements nested in functions. It is switched on per test
database with ``ALTER DATABASE ... SET``, so the plugin's own work on the
maintenance database is never captured, and no statement ever runs twice.

To cut the log into tests, the plugin writes a marker into it (``RAISE LOG``)
and reads up to that marker: everything a test's connections did before the
marker was written is in the log before it.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import psycopg
from psycopg import sql

from ..health import LockWait, lock_wait
from ..server import PgServer
from .log import FileSource, LogSource, LogTail, Record, SqlSource
from .statements import Statement, from_record

#: The plugin's own connections carry this application_name and are never captured.
INTERNAL_APPLICATION = "pytest-pgbudget"
_MARKER = "pgbudget-sync "

#: Per-database settings that switch capture on (auto_explain's others are set server-wide).
CAPTURE_DB_SETTINGS = {"auto_explain.log_min_duration": "0"}
#: Needed on a server where the plugin did not preload and configure auto_explain.
_FALLBACK_DB_SETTINGS = {
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_timing": "off",
    "auto_explain.log_nested_statements": "on",
    "auto_explain.log_format": "json",
}


class Capture:
    """Statement capture for one server."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.admin = server.connect()
        self.problems: list[str] = []
        self.db_settings: dict[str, str] = dict(CAPTURE_DB_SETTINGS)
        self._pending: list[Record] = []
        self.lock_waits: list[LockWait] = []
        self.tail = self._open_log()
        self._check_auto_explain()
        if self.tail is not None:
            self.tail.skip_to_end()

    @property
    def active(self) -> bool:
        return not self.problems

    def _open_log(self) -> LogTail | None:
        if self.server.version_num < 150000:
            self.problems.append(
                f"capture reads the server's jsonlog, which needs PostgreSQL 15 or later "
                f"(this server is {self.server.version})"
            )
            return None
        path = self.server.controller.log_path()
        source: LogSource | None = None
        if path is not None:
            source = FileSource(path)
        else:
            reason = SqlSource.available(self.admin)
            if reason is None:
                source = SqlSource(self.admin)
            else:
                self.problems.append(reason)
        return LogTail(source) if source is not None else None

    def _check_auto_explain(self) -> None:
        row = self.admin.execute(
            "SELECT setting FROM pg_settings WHERE name = 'auto_explain.log_format'"
        ).fetchone()
        if row is not None and row[0] == "json":
            return
        superuser = self.admin.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if superuser and superuser[0]:
            # Not preloaded with our settings: load it per session in each test database.
            self.db_settings = dict(_FALLBACK_DB_SETTINGS)
        else:
            self.problems.append(
                "auto_explain is not preloaded with log_format = json, and the role is not "
                "a superuser, so it cannot be switched on per database"
            )

    def enable(self, conn: psycopg.Connection[Any], dbname: str) -> None:
        """Switch capture on for a new test database."""
        if not self.active:
            return
        for name, value in self.db_settings.items():
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(dbname), sql.Identifier(*name.split(".")), sql.Literal(value)
                )
            )

    def sync(
        self, timeout: float = 10.0, databases: frozenset[str] | None = None
    ) -> list[Statement]:
        """Every statement logged since the last sync, in log order.

        With ``databases``, only those databases' plans are decoded: the rest
        of the log is skipped without parsing its JSON plans.
        """
        if self.tail is None or not self.active:
            return []
        token = secrets.token_hex(8)
        self.admin.execute(
            sql.SQL("DO $pgbudget$ BEGIN RAISE LOG {}; END $pgbudget$").format(
                sql.Literal(_MARKER + token)
            )
        )
        wanted = _MARKER + token
        records = self._pending
        self._pending = []
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            for index, record in enumerate(records):
                if record.get("message") == wanted:
                    self._pending = records[index + 1 :]
                    self.lock_waits += [w for r in records[:index] if (w := lock_wait(r))]
                    return _statements(records[:index], databases)
            if time.monotonic() > deadline:
                self._pending = records
                raise TimeoutError(
                    f"the server log did not show the capture marker within {timeout}s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
            records = records + self.tail.read()

    def close(self) -> None:
        self.admin.close()


def _statements(records: list[Record], databases: frozenset[str] | None) -> list[Statement]:
    found = []
    for record in records:
        if record.get("application_name") == INTERNAL_APPLICATION:
            continue
        if databases is not None and record.get("dbname") not in databases:
            continue
        statement = from_record(record)
        if statement is not None:
            found.append(statement)
    return found


def flush(conn: psycopg.Connection[Any]) -> None:
    """Make a connection's last statement reach the log.

    Inside an open transaction the server keeps the last statement's portal
    until the next one, and auto_explain logs a statement when its portal
    closes. A ``SHOW`` (a utility statement, never captured) closes it without
    touching the transaction.
    """
    if conn.closed or conn.broken:
        return
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
        conn.execute("SHOW server_version")
