"""Hooks that pytest-pgbudget calls; implement them in ``conftest.py`` or a plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import psycopg

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
