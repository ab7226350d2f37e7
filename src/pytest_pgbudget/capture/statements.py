"""Captured statements, as auto_explain reports them in the server log."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..plans import PlanSummary, SeqScan, Spill, analyze_plan
from .fingerprint import fingerprint

#: auto_explain's message: "duration: 1.234 ms  plan:\n{...json...}"
_AUTO_EXPLAIN = re.compile(r"duration: (?P<ms>[0-9.]+) ms  plan:\n(?P<plan>.*)", re.DOTALL)


@dataclass(frozen=True)
class Statement:
    """One execution of one statement, with its plan (the items of ``pg_queries``)."""

    sql: str
    duration_ms: float
    plan: dict[str, Any] = field(repr=False)
    dbname: str = ""
    pid: int = 0
    application_name: str = ""

    @cached_property
    def summary(self) -> PlanSummary:
        return analyze_plan(self.plan)

    @cached_property
    def fingerprint(self) -> str:
        """Stable id of the statement with constants and parameters stripped."""
        return fingerprint(self.sql)

    @property
    def rows(self) -> int | None:
        """Rows the statement returned or changed (the plan's top node)."""
        return self.summary.rows

    @property
    def seq_scans(self) -> tuple[SeqScan, ...]:
        return self.summary.seq_scans

    @property
    def indexes(self) -> frozenset[str]:
        return self.summary.indexes

    @property
    def temp_blocks(self) -> int:
        """Temp blocks written plus read: work that spilled to disk."""
        return self.summary.temp_written + self.summary.temp_read

    @property
    def spills(self) -> tuple[Spill, ...]:
        return self.summary.spills

    @property
    def buffers(self) -> int:
        """Shared buffers hit plus read: deterministic work, independent of the machine."""
        return self.summary.shared_hit + self.summary.shared_read

    def short_sql(self, width: int = 120) -> str:
        text = " ".join(self.sql.split())
        return text if len(text) <= width else text[: width - 3] + "..."


def from_record(record: dict[str, Any]) -> Statement | None:
    """The statement in one jsonlog record, or ``None`` if it holds no plan."""
    match = _AUTO_EXPLAIN.match(record.get("message", ""))
    if match is None:
        return None
    try:
        plan = json.loads(match.group("plan"))
    except ValueError:
        return None
    return Statement(
        sql=str(plan.get("Query Text", "")).strip(),
        duration_ms=float(match.group("ms")),
        plan=plan,
        dbname=record.get("dbname", ""),
        pid=int(record.get("pid", 0)),
        application_name=record.get("application_name", ""),
    )
