"""The baseline file: versioned, diff-friendly JSON, written atomically.

Layout::

    {
     "format": "pytest-pgbudget-baseline",
     "version": 1,
     "plugin_version": "0.1.0",
     "server": {"backend": "local", "version": "15.18", "settings": {...plan settings...}},
     "machine": {"python": "3.11.7", "platform": "Linux-...", "cpus": 2},
     "tests": {
      "tests/test_x.py::test_y": {
       "queries": 3,
       "latency": {"p50_ms": ..., "p95_ms": ..., "max_ms": ..., "total_ms": ...},
       "statements": {
        "<fingerprint>": {"sql": "...", "calls": 1, "shapes": [["Index Scan using ..."]],
                          "buffers": 12, "rows": 1, "temp_blocks": 0,
                          "p50_ms": ..., "p95_ms": ..., "max_ms": ...}
       }
      }
     }
    }
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..budgets.check import percentile
from ..errors import PgBudgetError
from ..report.records import dumps, write_atomically

FORMAT = "pytest-pgbudget-baseline"
VERSION = 1

#: Settings that change plans or buffer counts: a baseline made with other values
#: is compared with a loud warning.
PLAN_SETTINGS = (
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "random_page_cost",
    "seq_page_cost",
    "effective_io_concurrency",
    "jit",
    "max_parallel_workers_per_gather",
    "default_statistics_target",
)


class BaselineError(PgBudgetError):
    """A baseline file is missing, corrupt, or from another format version."""

    __module__ = "pytest_pgbudget"


def entry_for(record: Mapping[str, Any]) -> dict[str, Any]:
    """The baseline entry of one test, from its report record."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for statement in record["statements"]:
        groups.setdefault(statement["fingerprint"], []).append(statement)
    statements = {}
    for fingerprint, runs in groups.items():
        durations = [r["duration_ms"] for r in runs]
        shapes = sorted({tuple(r["shape"]) for r in runs})
        statements[fingerprint] = {
            "sql": " ".join(runs[0]["sql"].split())[:500],
            "calls": len(runs),
            "shapes": [list(shape) for shape in shapes],
            "buffers": sum(r["buffers"] for r in runs),
            "rows": sum(r["rows"] or 0 for r in runs),
            "temp_blocks": sum(r["temp_blocks"] for r in runs),
            "p50_ms": round(percentile(durations, 0.5), 3),
            "p95_ms": round(percentile(durations, 0.95), 3),
            "max_ms": round(max(durations), 3),
        }
    latency = {k: v for k, v in record["latency"].items() if k != "count"}
    return {"queries": len(record["statements"]), "latency": latency, "statements": statements}


def load(path: Path) -> dict[str, Any]:
    """Read and validate a baseline; a bad one raises :class:`BaselineError` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(
            f"no baseline at {path}: make one with --pgbudget-save-baseline"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"cannot read the baseline {path}: {exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise BaselineError(
            f"the baseline {path} is corrupt (truncated or edited?): {exc}. It was left as it is; "
            "restore it from version control, or delete it and save a new one."
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BaselineError(f"{path} is not a pytest-pgbudget baseline (no format {FORMAT!r})")
    version = document.get("version")
    if version != VERSION:
        raise BaselineError(
            f"the baseline {path} has format version {version!r}; this pytest-pgbudget reads "
            f"version {VERSION}. Save a new baseline with this version."
        )
    tests = document.get("tests")
    if not isinstance(tests, dict) or not all(
        isinstance(entry, dict)
        and isinstance(entry.get("statements"), dict)
        and isinstance(entry.get("queries"), int)
        for entry in tests.values()
    ):
        raise BaselineError(f"the baseline {path} is corrupt: 'tests' entries are malformed")
    return document


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
    }


def save(
    path: Path,
    previous: Mapping[str, Any] | None,
    entries: Mapping[str, dict[str, Any]],
    keep: Iterable[str],
    server: Mapping[str, Any],
    plugin_version: str,
) -> None:
    """Write the baseline: this run's ``entries``, plus the previous entries named in ``keep``."""
    tests: dict[str, Any] = {}
    if previous is not None:
        old = previous.get("tests", {})
        tests.update({nodeid: old[nodeid] for nodeid in keep if nodeid in old})
    tests.update(entries)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "plugin_version": plugin_version,
        "server": dict(server),
        "machine": machine(),
        "tests": dict(sorted(tests.items())),
    }
    write_atomically(path, dumps(document))


def server_differences(document: Mapping[str, Any], server: Mapping[str, Any]) -> list[str]:
    """What differs between the baseline's server and this run's, in plan-relevant ways."""
    before = document.get("server", {})
    found = []
    old_major = str(before.get("version", "")).split(".")[0]
    new_major = str(server.get("version", "")).split(".")[0]
    if old_major != new_major:
        found.append(f"PostgreSQL {before.get('version')} -> {server.get('version')}")
    old_settings = before.get("settings", {})
    for name, value in server.get("settings", {}).items():
        if name in old_settings and old_settings[name] != value:
            found.append(f"{name} {old_settings[name]} -> {value}")
    return found
