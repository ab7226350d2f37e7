"""The demo switch: ``--drop-index NAME`` builds the template without one index.

    python -m pytest --drop-index idx_workflows_tags_gin

shows what CI reports when a migration drops (or never creates) an index the
application's queries need. ``PGBUDGET_DEMO_DROP_INDEX=name[,name]`` does the
same from the environment.
"""

from __future__ import annotations

import os
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--drop-index",
        action="append",
        default=[],
        metavar="NAME",
        help="drop this index from the template after the schema is loaded (demo; repeatable)",
    )


def _indexes_to_drop(config: pytest.Config) -> list[str]:
    names = list(config.getoption("--drop-index"))
    names += [
        n.strip() for n in os.environ.get("PGBUDGET_DEMO_DROP_INDEX", "").split(",") if n.strip()
    ]
    return names


def pytest_pgbudget_template_loaded(config: pytest.Config, server: Any, connection: Any) -> None:
    for name in _indexes_to_drop(config):
        if connection.execute("SELECT to_regclass(%s)", [name]).fetchone()[0] is None:
            known = [
                row[0]
                for row in connection.execute(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
                )
            ]
            pytest.exit(
                f"--drop-index: no index {name!r}; indexes: {', '.join(known)}", returncode=4
            )
        connection.execute(f'DROP INDEX "{name}"')


def pytest_report_header(config: pytest.Config) -> str | None:
    names = _indexes_to_drop(config)
    return f"demo: template built without {', '.join(names)}" if names else None
