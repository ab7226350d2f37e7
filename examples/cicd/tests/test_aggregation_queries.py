"""Guide: "Efficient Aggregation Queries"."""

from __future__ import annotations

from datetime import timedelta

import cicd_db as db

from pytest_pgbudget import pgbudget


def plan_nodes(plan):
    """Every node of an auto_explain plan, depth first."""
    stack = [plan.get("Plan", plan)]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", []))


@pgbudget(require_index="idx_workflows_created_at_covering", max_buffers=400)
def test_filter_aggregation_is_an_index_only_scan(pg_conn, pg_queries):
    # "Good: Use covering indexes": created_at finds the last 30 days, and the
    # INCLUDEd workflow_type and status answer the query without the table.
    report = db.workflow_type_report(pg_conn, timedelta(days=30))
    assert len(report) == 7
    assert all(0 < row["completed"] <= row["total"] for row in report)

    (query,) = pg_queries
    scan = next(n for n in plan_nodes(query.plan) if "Index Name" in n)
    assert scan["Node Type"] == "Index Only Scan"
    assert scan["Heap Fetches"] == 0  # the template is vacuumed: the visibility map is set


@pgbudget(require_index="idx_system_metrics_timestamp", max_buffers=2000)
def test_window_function_over_the_last_day(pg_conn):
    # "Good: Use window functions for running totals": LAG over hourly averages.
    rows = db.hourly_metric_trend(pg_conn, timedelta(hours=24))
    assert {row["metric_name"] for row in rows} >= {"cpu_percent", "query_latency_ms"}
    first_hours = {}
    for row in sorted(rows, key=lambda r: r["hour"]):
        first_hours.setdefault(row["metric_name"], row)
    assert all(row["prev_avg"] is None for row in first_hours.values())
