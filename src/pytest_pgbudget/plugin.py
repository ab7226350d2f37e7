"""pytest wiring: options, hooks, fixtures and the report header. Logic lives elsewhere."""

from __future__ import annotations

import pytest

from . import factories, hookspecs
from .factories import get_runtime
from .options import add_options
from .server.header import describe_planned


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    get_runtime(config)  # parse and validate every option now: a bad one is a usage error


def pytest_report_header(config: pytest.Config) -> str:
    return describe_planned(get_runtime(config).settings)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    started = get_runtime(terminalreporter.config).started
    if started:
        terminalreporter.section("pgbudget")
        for header in started:
            terminalreporter.write_line(header)


pg_server = factories.pg_server()
pg_db = factories.pg_db("pg_server")
pg_conn = factories.pg_conn("pg_db")
