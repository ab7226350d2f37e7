"""Fixture factories, for suites and libraries that need more than the defaults.

The plugin's own ``pg_server``, ``pg_db`` and ``pg_conn`` fixtures are made by
these factories. A suite can make more, e.g. a second server with other
settings and a database with another schema::

    # conftest.py
    from pytest_pgbudget import factories

    pg_big_server = factories.pg_server(settings={"work_mem": "64MB"})
    pg_reports_db = factories.pg_db("pg_big_server", schema=["sql/reports.sql"])
    pg_reports = factories.pg_conn("pg_reports_db")

Arguments left out fall back to the command line, the ini file, the
environment and the defaults, in that order.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import pq

from .budgets.enforce import CaptureWindow
from .capture.session import Capture
from .databases import DatabaseSupply, PgDatabase
from .errors import PgBudgetError
from .health import Health
from .options import ISOLATIONS, Settings, load_settings
from .schema.load import resolve
from .server import PgServer, provision


class PgBudgetWarning(UserWarning):
    """Something a test did that it should not (e.g. leaking a connection)."""

    __module__ = "pytest_pgbudget"


@dataclass
class Runtime:
    """The plugin's state for one pytest process, kept in ``config.stash``."""

    settings: Settings
    servers: list[PgServer] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    supplies: dict[tuple[int, tuple[str, ...], str], DatabaseSupply] = field(default_factory=dict)
    captures: dict[int, Capture] = field(default_factory=dict)
    latency_scale: float | None = None
    health: Health = field(default_factory=Health)
    health_report: tuple[list[str], list[str]] | None = None
    written: list[str] = field(default_factory=list)
    #: Why the run was stopped by an environment failure, if it was.
    stopped: str | None = None


runtime_key = pytest.StashKey[Runtime]()
capture_window_key = pytest.StashKey[CaptureWindow]()


def capture_window(item: pytest.Item) -> CaptureWindow:
    """The capture window of one test, made on first use."""
    if capture_window_key not in item.stash:
        item.stash[capture_window_key] = CaptureWindow(item.nodeid)
    return item.stash[capture_window_key]


def capture_for(runtime: Runtime, server: PgServer) -> Capture:
    if id(server) not in runtime.captures:
        capture = runtime.captures[id(server)] = Capture(server)
        if capture.problems:
            warnings.warn(
                PgBudgetWarning(
                    "statement capture is off for the "
                    f"{server.backend} server, so budgets on plans and timings cannot be "
                    "checked: " + "; ".join(capture.problems)
                ),
                stacklevel=2,
            )
    return runtime.captures[id(server)]


def get_runtime(config: pytest.Config) -> Runtime:
    if runtime_key not in config.stash:
        config.stash[runtime_key] = Runtime(load_settings(config))
    return config.stash[runtime_key]


#: Exit status of a run stopped by an environment failure (no server, schema error).
STOPPED = 3


def _stop_run(config: pytest.Config, message: str) -> None:
    """Stop the whole run once: an environment failure would fail every test alike.

    pytest.exit with status 3 would suppress the terminal summary (3 is pytest's
    internal-error status), so the run is interrupted and the status set to 3 at
    session finish (see ``plugin.pytest_sessionfinish``).
    """
    get_runtime(config).stopped = message
    pytest.exit(f"pytest-pgbudget: {message}", returncode=pytest.ExitCode.INTERRUPTED)


def pg_server(
    *,
    backend: str | None = None,
    dsn: str | None = None,
    pg_bin: str | None = None,
    image: str | None = None,
    settings: Mapping[str, str] | None = None,
) -> Any:
    """Make a session-scoped fixture that provides a :class:`PgServer`."""

    @pytest.fixture(scope="session")
    def server_fixture(request: pytest.FixtureRequest) -> Iterator[PgServer]:
        """A tuned PostgreSQL server for the session: ``.dsn``, ``.backend``,
        ``.version``, ``.settings``, ``.connect()``."""
        runtime = get_runtime(request.config)
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("backend", backend),
                ("dsn", dsn),
                ("pg_bin", pg_bin),
                ("image", image),
            )
            if value is not None
        }
        if settings:
            changes["settings"] = runtime.settings.settings + tuple(
                f"{name} = {value}" for name, value in settings.items()
            )
        effective = runtime.settings.replace(**changes) if changes else runtime.settings
        hook = request.config.hook

        def apply_hook(values: dict[str, str]) -> None:
            hook.pytest_pgbudget_server_settings(config=request.config, settings=values)

        try:
            server = provision(effective, apply_hook)
        except PgBudgetError as exc:
            _stop_run(request.config, str(exc))
            raise  # pragma: no cover - pytest.exit raised
        runtime.servers.append(server)
        runtime.started.append(server.header)
        try:
            yield server
        finally:
            for key in [key for key in runtime.supplies if key[0] == id(server)]:
                runtime.supplies.pop(key).close()
            capture = runtime.captures.pop(id(server), None)
            if capture is not None:
                if server.alive():
                    with contextlib.suppress(psycopg.Error, TimeoutError):
                        capture.sync()  # the last lock waits
                runtime.health.add_lock_waits(capture.lock_waits)
                with contextlib.suppress(psycopg.Error):
                    capture.close()
            runtime.servers.remove(server)
            server.controller.stop()

    return server_fixture


def _supply(
    request: pytest.FixtureRequest, server: PgServer, schema: tuple[str, ...], isolation: str
) -> DatabaseSupply:
    runtime = get_runtime(request.config)
    key = (id(server), schema, isolation)
    supply = runtime.supplies.get(key)
    if supply is None:
        config = request.config
        try:
            sources = resolve(schema, runtime.settings.rootdir)
            supply = DatabaseSupply(
                server,
                sources,
                isolation,
                on_create=capture_for(runtime, server).enable if runtime.settings.capture else None,
                after_load=lambda conn: config.hook.pytest_pgbudget_template_loaded(
                    config=config, server=server, connection=conn
                ),
                before_drop=runtime.health.read_database,
                reuse_untouched=runtime.settings.reuse_untouched,
            )
            supply.build_template()
            runtime.health.add_schema_indexes(supply.indexes.items())
        except PgBudgetError as exc:
            _stop_run(request.config, str(exc))
            raise  # pragma: no cover - pytest.exit raised
        except psycopg.Error as exc:
            _stop_run(request.config, f"building the template database failed: {exc}")
            raise  # pragma: no cover - pytest.exit raised
        runtime.supplies[key] = supply
    return supply


def pg_db(
    server_fixture: str = "pg_server",
    *,
    schema: Sequence[str] | None = None,
    isolation: str | None = None,
) -> Any:
    """Make a function-scoped fixture that provides an isolated :class:`PgDatabase`."""
    if isolation is not None and isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}; got {isolation!r}")

    @pytest.fixture
    def db_fixture(request: pytest.FixtureRequest) -> Iterator[PgDatabase]:
        """The test's own database, with the schema loaded: ``.name``, ``.dsn``
        (any driver), ``.url`` (SQLAlchemy), ``.connect()``."""
        server: PgServer = request.getfixturevalue(server_fixture)
        runtime = get_runtime(request.config)
        mode = isolation or runtime.settings.isolation
        supply = _supply(
            request, server, tuple(schema) if schema is not None else runtime.settings.schema, mode
        )
        if not server.alive():
            _stop_run(
                request.config,
                f"the PostgreSQL server ({server.backend} backend) is no longer running",
            )
        db = supply.acquire()
        if runtime.settings.capture:
            capture_window(request.node).sources.append((capture_for(runtime, server), db.name))
        try:
            yield db
        finally:
            if server.alive():
                leaked = supply.release(db)
                if leaked:
                    warnings.warn(
                        PgBudgetWarning(
                            f"{request.node.nodeid} left {len(leaked)} connection(s) open to "
                            f"its database: " + "; ".join(leaked)
                        ),
                        stacklevel=1,
                    )

    return db_fixture


def pg_conn(db_fixture: str = "pg_db") -> Any:
    """Make a function-scoped fixture that provides a psycopg connection to a ``pg_db``.

    In ``transaction`` isolation the connection's transaction is rolled back
    after the test; otherwise it is simply closed.
    """

    @pytest.fixture
    def conn_fixture(request: pytest.FixtureRequest) -> Iterator[psycopg.Connection[Any]]:
        """A psycopg 3 connection to the test's database, rolled back and closed after it."""
        db: PgDatabase = request.getfixturevalue(db_fixture)
        conn = db.connect()
        capture_window(request.node).connections.append(conn)
        try:
            yield conn
        finally:
            if not conn.closed:
                if conn.info.transaction_status == pq.TransactionStatus.ACTIVE:
                    # A statement still running: the test was interrupted mid-query (Ctrl-C).
                    with contextlib.suppress(psycopg.Error):
                        conn.cancel_safe(timeout=5)
                elif not conn.broken:
                    conn.rollback()
                db.closed_backends.add(conn.info.backend_pid)
                conn.close()  # closing also ends any transaction still open

    return conn_fixture
