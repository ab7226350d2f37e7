"""The run's results: per-test records, the baseline comparison, the outputs written at the end.

Under pytest-xdist each worker keeps its own records and sends them, with its
health figures, to the controller in ``workeroutput``; the controller merges
them (one record per test id) and writes the reports and the baseline.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib.metadata import version as package_version
from typing import Any

import pytest

from .baseline import store
from .baseline.compare import Change, compare_entries, parse_rules
from .health import Health, LockWait
from .options import Settings
from .report.records import REPORT_FORMAT, REPORT_VERSION, dumps, write_atomically
from .server import PgServer

PLUGIN_VERSION = package_version("pytest-pgbudget")


class BaselineWarning(UserWarning):
    """The baseline was made on a server that plans differently."""

    __module__ = "pytest_pgbudget"


def _usage(exc: Exception) -> pytest.UsageError:
    return pytest.UsageError(f"pytest-pgbudget: {exc}")


def server_info(server: PgServer) -> dict[str, Any]:
    return {
        "backend": server.backend,
        "version": server.version,
        "settings_origin": server.settings_origin,
        "settings": {k: v for k, v in server.settings.items() if k in store.PLAN_SETTINGS},
    }


class Results:
    """Everything the run records, and what it writes at the end."""

    def __init__(self, settings: Settings) -> None:
        root = self.root = settings.rootdir
        self.records: dict[str, dict[str, Any]] = {}
        self.servers: list[dict[str, Any]] = []
        self.keep_plans = bool(settings.json or settings.html)
        self.keep_shapes = bool(settings.compare or settings.save_baseline)
        self.json_path = root / settings.json if settings.json else None
        self.html_path = root / settings.html if settings.html else None
        self.rules = parse_rules(settings.compare_fail)
        self.compare_path = root / settings.compare if settings.compare else None
        self.save_path = root / settings.save_baseline if settings.save_baseline else None
        self.baseline: dict[str, Any] | None = None
        self.previous: dict[str, Any] | None = None
        self.differences: list[str] | None = None
        self.collected: set[str] = set()
        self.collected_files: set[str] = set()
        try:
            if self.compare_path is not None:
                self.baseline = store.load(self.compare_path)
            if self.save_path is not None and self.save_path.exists():
                # Never overwrite a file we cannot read: it may be someone's work.
                self.previous = store.load(self.save_path)
        except store.BaselineError as exc:
            raise _usage(exc) from None

    # -- per test ---------------------------------------------------------------

    def note_server(self, server: PgServer) -> None:
        info = server_info(server)
        if info not in self.servers:
            self.servers.append(info)
        if self.baseline is not None and self.differences is None:
            self.differences = store.server_differences(self.baseline, info)
            if self.differences:
                warnings.warn(
                    BaselineWarning(
                        f"the baseline {self.compare_path} was made on a server that plans "
                        f"differently ({'; '.join(self.differences)}): plan and buffer "
                        "comparisons may flag changes that are not regressions"
                    ),
                    stacklevel=2,
                )

    def compare(self, nodeid: str, record: dict[str, Any]) -> list[Change]:
        """Compare one test with the baseline; store the result in its record."""
        if self.baseline is None:
            return []
        before = self.baseline["tests"].get(nodeid)
        if before is None:
            record["baseline"] = {"status": "new", "changes": []}
            return []
        changes = compare_entries(before, store.entry_for(record), self.rules)
        status = "regressed" if any(c.failed for c in changes) else "changed" if changes else "same"
        record["baseline"] = {"status": status, "changes": [c.as_dict() for c in changes]}
        return changes

    def add(self, record: dict[str, Any]) -> None:
        self.records[record["nodeid"]] = record

    def set_outcome(self, nodeid: str, outcome: str) -> None:
        record = self.records.get(nodeid)
        if record is not None and (record["outcome"] == "passed" or outcome != "passed"):
            record["outcome"] = outcome

    # -- xdist ------------------------------------------------------------------

    def payload(self, health: Health) -> str:
        figures = {
            f.name: getattr(health, f.name)
            for f in dataclasses.fields(health)
            if f.name.startswith(("heap_", "idx_"))
        }
        return json.dumps(
            {
                "records": self.records,
                "servers": self.servers,
                "differences": self.differences,
                "health": {
                    **figures,
                    "lock_waits": [dataclasses.asdict(w) for w in health.lock_waits],
                    "schema_indexes": health.schema_indexes,
                    "used_indexes": sorted(health.used_indexes),
                },
            },
            default=str,
        )

    def merge(self, payload: str, health: Health) -> None:
        data = json.loads(payload)
        self.records.update(data["records"])
        for server in data["servers"]:
            if server not in self.servers:
                self.servers.append(server)
        if data.get("differences") and not self.differences:
            self.differences = data["differences"]
        figures = data["health"]
        for name in ("heap_hit", "heap_read", "heap_cold", "idx_hit", "idx_read", "idx_cold"):
            setattr(health, name, getattr(health, name) + figures[name])
        health.add_lock_waits(LockWait(**w) for w in figures["lock_waits"])
        health.add_schema_indexes(figures["schema_indexes"].items())
        health.add_used(figures["used_indexes"])

    # -- at the end ---------------------------------------------------------------

    def summary_counts(self) -> dict[str, int]:
        return {
            "tests": len(self.records),
            "statements": sum(len(r["statements"]) for r in self.records.values()),
            "violations": sum(len(r["violations"]) for r in self.records.values()),
        }

    def report(self, health: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "plugin_version": PLUGIN_VERSION,
            "servers": [{k: v for k, v in s.items() if k != "settings"} for s in self.servers],
            "tests": [self.records[nodeid] for nodeid in sorted(self.records)],
            "health": health,
            "summary": self.summary_counts(),
        }

    def write(self, health: Mapping[str, Any] | None) -> list[str]:
        """Write the requested reports and baseline; return what was written, for the summary."""
        written = []
        if self.json_path is not None or self.html_path is not None:
            document = self.report(health)
            if self.json_path is not None:
                write_atomically(self.json_path, dumps(document))
                written.append(f"JSON report: {self.json_path}")
            if self.html_path is not None:
                from .report.html import render_html

                write_atomically(self.html_path, render_html(document))
                written.append(f"HTML report: {self.html_path}")
        if self.save_path is not None:
            written.append(self._save())
        return written

    def _save(self) -> str:
        assert self.save_path is not None
        entries = {nodeid: store.entry_for(r) for nodeid, r in sorted(self.records.items())}
        keep = []
        if self.previous is not None:
            for nodeid in self.previous["tests"]:
                if nodeid in entries:
                    continue
                file = nodeid.split("::", 1)[0]
                still_there = nodeid in self.collected or (
                    file not in self.collected_files and (self.root / file).exists()
                )
                if still_there:
                    keep.append(nodeid)
        server = self.servers[0] if self.servers else {}
        store.save(self.save_path, self.previous, entries, keep, server, PLUGIN_VERSION)
        pruned = (
            len(self.previous["tests"])
            - len(keep)
            - len(set(self.previous["tests"]) & set(entries))
            if self.previous
            else 0
        )
        return (
            f"baseline saved: {self.save_path} ({len(entries)} tests recorded, {len(keep)} kept"
            + (f", {pruned} removed)" if pruned else ")")
        )

    def baseline_lines(self) -> list[str]:
        if self.baseline is None:
            return []
        statuses: dict[str, list[str]] = {}
        for nodeid, record in sorted(self.records.items()):
            if record.get("baseline"):
                statuses.setdefault(record["baseline"]["status"], []).append(nodeid)
        ran = set(self.records)
        missing = sorted(set(self.baseline["tests"]) - ran)
        lines = [
            f"baseline {self.compare_path}: "
            + ", ".join(f"{len(v)} {k}" for k, v in sorted(statuses.items()))
            + (f", {len(missing)} in the baseline but not run" if missing else "")
        ]
        lines += [f"  new (not in the baseline): {nodeid}" for nodeid in statuses.get("new", [])]
        lines += [f"  regressed: {nodeid}" for nodeid in statuses.get("regressed", [])]
        if self.differences:
            lines.append("  WARNING: baseline server differs: " + "; ".join(self.differences))
        return lines
