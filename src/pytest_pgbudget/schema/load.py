"""Loading the user's schema into the template database, once per session.

``pgbudget_schema`` lists SQL files, directories (their ``*.sql`` files in
sorted order) and ``package.module:function`` loaders that take a psycopg
connection. Statements run in one transaction per file, except those that
cannot run inside a transaction (``CREATE INDEX CONCURRENTLY``, ``VACUUM``),
which run on their own. A failing statement raises :class:`SchemaError` naming
the file, the line, the statement and the server's error.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ..errors import SchemaError
from .split import SchemaSyntaxError, Statement, split_sql


@dataclass(frozen=True)
class SchemaSource:
    """One entry of ``pgbudget_schema``: a SQL file or a loader function."""

    label: str
    path: Path | None = None
    loader: Callable[[psycopg.Connection[Any]], object] | None = None


def _is_loader_spec(entry: str) -> bool:
    module, sep, func = entry.partition(":")
    return bool(sep) and module.replace(".", "").replace("_", "").isalnum() and func.isidentifier()


def resolve(entries: Sequence[str], rootdir: Path) -> list[SchemaSource]:
    """Turn ``pgbudget_schema`` entries into sources, failing early on a bad one."""
    sources: list[SchemaSource] = []
    for entry in entries:
        path = (rootdir / entry).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix == ".sql" and p.is_file())
            if not files:
                raise SchemaError(f"pgbudget_schema: directory {path} holds no .sql files")
            sources += [SchemaSource(str(p), path=p) for p in files]
        elif path.is_file():
            sources.append(SchemaSource(str(path), path=path))
        elif _is_loader_spec(entry):
            sources.append(SchemaSource(entry, loader=_import_loader(entry)))
        else:
            raise SchemaError(
                f"pgbudget_schema: {entry!r} is neither a file nor a directory under "
                f"{rootdir}, nor a 'package.module:function' loader"
            )
    return sources


def _import_loader(spec: str) -> Callable[[psycopg.Connection[Any]], object]:
    module_name, _, func_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SchemaError(
            f"pgbudget_schema: cannot import {module_name!r} for {spec!r}: {exc}"
        ) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise SchemaError(f"pgbudget_schema: {module_name} has no function {func_name!r}")
    return func  # type: ignore[no-any-return]


def _statements(source: SchemaSource) -> list[Statement]:
    assert source.path is not None
    try:
        text = source.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{source.label}: cannot read: {exc}") from None
    try:
        return split_sql(text, source.label)
    except SchemaSyntaxError as exc:
        raise SchemaError(str(exc)) from None


def _batches(statements: list[Statement]) -> Iterator[tuple[bool, list[Statement]]]:
    """Runs of statements that share a transaction, and lone non-transactional ones."""
    batch: list[Statement] = []
    for statement in statements:
        if statement.transactional:
            batch.append(statement)
            continue
        if batch:
            yield True, batch
            batch = []
        yield False, [statement]
    if batch:
        yield True, batch


def _failure(statement: Statement, exc: psycopg.Error) -> SchemaError:
    diag = exc.diag
    line = statement.line
    position = diag.statement_position
    if position and position.isdigit():
        line += statement.sql[: int(position) - 1].count("\n")
    shown = statement.sql if len(statement.sql) < 600 else statement.sql[:600] + " ..."
    detail = diag.message_primary or str(exc).strip()
    extra = "".join(
        f"\n  {label}: {value}"
        for label, value in (("detail", diag.message_detail), ("hint", diag.message_hint))
        if value
    )
    return SchemaError(
        f"{statement.source}:{line}: {diag.sqlstate or 'error'}: {detail}{extra}\n"
        f"statement:\n    " + shown.replace("\n", "\n    ")
    )


def _run_file(conn: psycopg.Connection[Any], source: SchemaSource) -> int:
    count = 0
    for transactional, batch in _batches(_statements(source)):
        conn.autocommit = not transactional
        try:
            with conn.cursor() as cur:
                for statement in batch:
                    try:
                        cur.execute(statement.sql, prepare=False)
                    except psycopg.Error as exc:
                        raise _failure(statement, exc) from None
                    count += 1
            if transactional:
                conn.commit()
        except SchemaError:
            if not conn.autocommit:
                conn.rollback()
            raise
    return count


def load(conn: psycopg.Connection[Any], sources: Sequence[SchemaSource]) -> int:
    """Apply every source in order; return the statement count."""
    count = 0
    for source in sources:
        if source.loader is not None:
            conn.autocommit = False
            try:
                source.loader(conn)
                conn.commit()
            except Exception as exc:
                if not conn.closed:
                    conn.rollback()
                raise SchemaError(
                    f"{source.label}: the loader failed: {type(exc).__name__}: {exc}"
                ) from exc
            count += 1
        else:
            count += _run_file(conn, source)
    conn.autocommit = True
    return count
