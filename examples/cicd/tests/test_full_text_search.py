"""Guide: "Text Search Indexes".

An expression index serves only queries that repeat its expression exactly:
to_tsvector('english', name || ' ' || COALESCE(description, '')). Without the
'english' argument, or without the COALESCE, the planner cannot match it and
reads every row, computing to_tsvector for each.
"""

from __future__ import annotations

import cicd_db as db

from pytest_pgbudget import pgbudget


@pgbudget(require_index="idx_workflows_text_search", max_buffers=300)
def test_search_workflows(pg_conn):
    rows = db.search_workflows(pg_conn, "flaky regression")
    assert len(rows) == 20
    assert all("flaky" in row["description"].lower() for row in rows)
    ranks = [row["rank"] for row in rows]
    assert ranks == sorted(ranks, reverse=True)


@pgbudget(require_index="idx_pr_tracking_text_search", max_buffers=1000)
def test_search_pull_requests(pg_conn):
    rows = db.search_pull_requests(pg_conn, "flaky integration test")
    assert len(rows) == 20
