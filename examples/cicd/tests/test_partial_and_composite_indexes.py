"""Guide: "Partial Indexes for Active Records" and "Composite Indexes for Common Query Patterns".

These are the queries behind dashboards and queues: they run all the time and
must read a few pages each, however big the tables grow. max_buffers (pages
read) is the deterministic budget for that: it does not vary with the machine.
"""

from __future__ import annotations

from datetime import timedelta

import cicd_db as db

from pytest_pgbudget import pgbudget


@pgbudget(require_index="idx_workflows_active_priority", max_buffers=50)
def test_active_workflow_queue(pg_conn):
    # The partial index holds the 3% of workflows that are pending or running,
    # already in (priority DESC, created_at DESC) order: no sort, no filter.
    rows = db.active_workflow_queue(pg_conn, limit=20)
    assert len(rows) == 20
    assert {row["status"] for row in rows} <= {"pending", "running"}
    assert [row["priority"] for row in rows] == sorted((r["priority"] for r in rows), reverse=True)


@pgbudget(max_buffers=50)
def test_troubleshooting_query_running_high_priority(pg_conn):
    # The guide's "Analyze query plans" example. Running workflows are the most
    # recent ones, so the planner walks created_at backwards and stops after
    # ten matches; the budget says "reads a few pages", whichever index does it.
    rows = db.running_high_priority(pg_conn, min_priority=5)
    assert len(rows) == 10
    assert all(row["status"] == "running" and row["priority"] > 5 for row in rows)


@pgbudget(require_index="idx_workflows_env_status_priority", max_buffers=120)
def test_workflows_by_environment_and_status(pg_conn):
    rows = db.workflows_in(pg_conn, "production", "failed", limit=50)
    assert len(rows) == 50


@pgbudget(require_index="idx_pr_tracking_open_quality", max_buffers=60)
def test_open_pull_requests_by_quality(pg_conn):
    rows = db.open_prs_by_quality(pg_conn, limit=20)
    scores = [row["quality_score"] for row in rows]
    assert len(rows) == 20 and scores == sorted(scores, reverse=True)


@pgbudget(require_index="idx_pr_tracking_repo_status_updated", max_buffers=60)
def test_pull_requests_of_a_repository(pg_conn):
    rows = db.repository_prs(pg_conn, "payments", "open", limit=20)
    assert len(rows) == 20


@pgbudget(require_index="idx_agent_sessions_name_type_activity", max_buffers=20)
def test_agent_session_lookup_by_name_and_type(pg_conn):
    session = db.latest_agent_session(pg_conn, "code_reviewer-17", "code_reviewer")
    assert session is not None and session["agent_name"] == "code_reviewer-17"


@pgbudget(require_index="idx_agent_sessions_active_performance", max_buffers=60)
def test_fastest_active_agents(pg_conn):
    # The guide's partial index with its NOW() condition moved into the query
    # (see schema/004_indexes.sql).
    rows = db.fastest_active_agents(pg_conn, timedelta(hours=1), limit=10)
    assert len(rows) == 10
    times = [row["avg_response_time_ms"] for row in rows]
    assert times == sorted(times)


@pgbudget(
    max_queries=2,
    max_repeats=1,
    require_index=[
        "idx_agent_sessions_active_performance",
        "idx_agent_interactions_session_created",
    ],
    max_buffers=200,
)
def test_agent_dashboard_without_n_plus_one(pg_conn):
    # The fastest agents and their latest interactions: two queries, not 1 + 10.
    # A loop calling one query per session would break max_repeats=1.
    agents = db.fastest_active_agents(pg_conn, timedelta(hours=1), limit=10)
    interactions = db.latest_interactions(pg_conn, [a["id"] for a in agents], per_session=5)
    assert {i["session_id"] for i in interactions} <= {a["id"] for a in agents}
