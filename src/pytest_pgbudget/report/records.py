"""What a run records per test: the data behind the JSON and HTML reports and the baseline.

Records are plain JSON-ready dicts, so that pytest-xdist workers can send them
to the controller unchanged (``workeroutput``) and the controller can merge
them: nothing lost, nothing doubled (one record per test id).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..budgets.check import Violation, percentile
from ..capture.statements import Statement
from ..plans import describe_node, iter_nodes

REPORT_FORMAT = "pytest-pgbudget-report"
REPORT_VERSION = 1


def plan_shape(plan: Mapping[str, Any]) -> list[str]:
    """The plan's nodes, named as EXPLAIN names them, in tree order: what a baseline compares."""
    return [describe_node(node) for node in iter_nodes(plan)]


def statement_record(
    statement: Statement, *, with_plan: bool = True, with_shape: bool = True
) -> dict[str, Any]:
    summary = statement.summary
    record = {
        "sql": statement.sql,
        "fingerprint": statement.fingerprint,
        "duration_ms": round(statement.duration_ms, 3),
        "rows": statement.rows,
        "shared_hit": summary.shared_hit,
        "shared_read": summary.shared_read,
        "buffers": statement.buffers,
        "temp_blocks": statement.temp_blocks,
        "seq_scans": [
            {"relation": s.relation, "rows": s.rows, "filter": s.filter}
            for s in statement.seq_scans
        ],
        "indexes": sorted(statement.indexes),
        "spills": [{"kind": s.kind, "node": s.node, "detail": s.detail} for s in statement.spills],
    }
    if with_shape:  # what baselines compare; the rest of a run does not need it
        record["shape"] = plan_shape(statement.plan)
    if with_plan:
        record["plan"] = statement.plan
    return record


def latency(durations: Sequence[float]) -> dict[str, Any]:
    if not durations:
        return {"count": 0}
    return {
        "count": len(durations),
        "p50_ms": round(percentile(durations, 0.50), 3),
        "p95_ms": round(percentile(durations, 0.95), 3),
        "p99_ms": round(percentile(durations, 0.99), 3),
        "max_ms": round(max(durations), 3),
        "total_ms": round(sum(durations), 3),
    }


def violation_record(violation: Violation) -> dict[str, Any]:
    return {
        "keyword": violation.keyword,
        "headline": violation.headline,
        "sql": violation.statement.sql if violation.statement is not None else None,
        "hint": violation.hint,
    }


def record_for_test(
    nodeid: str,
    statements: Sequence[Statement],
    budget: Mapping[str, Any],
    violations: Iterable[Violation],
    *,
    with_plans: bool = True,
    with_shapes: bool = True,
) -> dict[str, Any]:
    return {
        "nodeid": nodeid,
        "outcome": "passed",
        "budget": dict(budget),
        "statements": [
            statement_record(s, with_plan=with_plans, with_shape=with_shapes) for s in statements
        ],
        "latency": latency([s.duration_ms for s in statements]),
        "violations": [violation_record(v) for v in violations],
        "baseline": None,
    }


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # an ordinary file, as if written with open()
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def dumps(document: Mapping[str, Any]) -> str:
    """Stable, diff-friendly JSON: sorted keys, one item per line, final newline."""
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False, default=str) + "\n"


_BENCHMARK_TIMES = ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3")


def benchmark_stats(item: Any) -> dict[str, Any] | None:
    """pytest-benchmark's statistics for a test that used its ``benchmark`` fixture.

    Times are converted to milliseconds, like every other figure in the report.
    """
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    metadata = getattr(fixture, "stats", None)
    stats = getattr(metadata, "stats", None)
    if not stats:
        return None
    figures = stats.as_dict()
    result = {f"{name}_ms": round(figures[name] * 1000, 4) for name in _BENCHMARK_TIMES}
    result["rounds"] = figures["rounds"]
    result["ops"] = round(figures["ops"], 2)
    return result
