"""Hooks that pytest-pgbudget calls; implement them in ``conftest.py`` or a plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import psycopg

    from .budgets import Budget, Violation
    from .capture.statements import Statement
    from .server import PgServer


def pytest_pgbudget_server_settings(config: pytest.Config, settings: dict[str, str]) -> None:
    """Change the settings a server the plugin starts will run with.

    ``settings`` holds the tuned profile with ``pgbudget_settings`` already
    layered on top; change it in place. Not called for the external backend,
    whose configuration belongs to its owner.

    Example::

        def pytest_pgbudget_server_settings(config, settings):
            settings["work_mem"] = "16MB"
            settings.pop("log_connections", None)
    """


def pytest_pgbudget_template_loaded(
    config: pytest.Config, server: PgServer, connection: psycopg.Connection[Any]
) -> None:
    """Called once the schema is in the template database, before ``ANALYZE``.

    ``connection`` is an autocommit connection to the template; use it to add
    seed data every test should see.

    Example::

        def pytest_pgbudget_template_loaded(config, server, connection):
            connection.execute("INSERT INTO plans (name) VALUES ('free'), ('pro')")
    """


def pytest_pgbudget_query_captured(item: pytest.Item, statement: Statement) -> None:
    """Called for every statement captured while a test runs, in execution order.

    ``statement`` has ``.sql``, ``.fingerprint``, ``.duration_ms``, ``.rows``,
    ``.plan``, ``.seq_scans``, ``.indexes``, ``.temp_blocks`` and ``.buffers``.

    Example::

        def pytest_pgbudget_query_captured(item, statement):
            if statement.duration_ms > 500:
                print(f"slow: {statement.sql} in {item.nodeid}")
    """


def pytest_pgbudget_check(
    item: pytest.Item, budget: Budget, statements: list[Statement]
) -> list[Violation] | None:
    """Add a custom check: return violations to fail the test with, or ``None``.

    Every implementation is called; their violations are reported together
    with the built-in ones.

    Example::

        from pytest_pgbudget.budgets import Violation

        def pytest_pgbudget_check(item, budget, statements):
            deletes = [s for s in statements if s.sql.lstrip().upper().startswith("DELETE")
                       and " WHERE " not in s.sql.upper()]
            return [Violation("no_unbounded_delete", "DELETE without WHERE", s) for s in deletes]
    """


def pytest_pgbudget_budget_violation(item: pytest.Item, violation: Violation) -> None:
    """Called for each violation before the test is failed with it.

    Example::

        def pytest_pgbudget_budget_violation(item, violation):
            metrics.increment("pgbudget.violation", tags=[violation.keyword])
    """
