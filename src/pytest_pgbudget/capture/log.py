"""Reading the server's machine-readable log (``jsonlog``), from an offset on.

A local cluster's log file is read directly. A container's or an external
server's is read through ``pg_read_binary_file(pg_current_logfile('jsonlog'))``,
which needs superuser rights (or ``pg_read_server_files``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import psycopg

Record = dict[str, Any]


class LogSource(Protocol):
    """Something that returns the log's bytes after an offset."""

    def read(self, offset: int) -> bytes: ...


class FileSource:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, offset: int) -> bytes:
        try:
            with open(self.path, "rb") as log:
                log.seek(offset)
                return log.read()
        except FileNotFoundError:
            return b""


class SqlSource:
    """Reads the current jsonlog file over a (superuser) connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def read(self, offset: int) -> bytes:
        row = self.conn.execute(
            "SELECT pg_read_binary_file(pg_current_logfile('jsonlog'), %s, 16777216, true)",
            [offset],
        ).fetchone()
        return bytes(row[0]) if row and row[0] is not None else b""

    @staticmethod
    def available(conn: psycopg.Connection[Any]) -> str | None:
        """``None`` if the log can be read, else the reason it cannot."""
        try:
            row = conn.execute("SELECT pg_current_logfile('jsonlog')").fetchone()
        except psycopg.Error as exc:
            return f"pg_current_logfile() failed: {exc.diag.message_primary}"
        if not row or not row[0]:
            return "the server does not write a jsonlog (log_destination lacks 'jsonlog')"
        try:
            conn.execute("SELECT pg_read_binary_file(pg_current_logfile('jsonlog'), 0, 1, true)")
        except psycopg.Error as exc:
            return f"the server log cannot be read: {exc.diag.message_primary}"
        return None


class LogTail:
    """Parses the records appended to a jsonlog since the last read."""

    def __init__(self, source: LogSource) -> None:
        self.source = source
        self.offset = 0
        self._partial = b""

    def skip_to_end(self) -> None:
        """Start reading from the current end of the log."""
        self.offset += len(self.source.read(self.offset))
        self._partial = b""

    def read(self) -> list[Record]:
        chunk = self.source.read(self.offset)
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next read
        records = []
        for line in lines:
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records
