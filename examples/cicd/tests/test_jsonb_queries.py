"""Guide: "Efficient JSONB Queries" and "JSONB Indexes for Metadata Queries".

pytest.ini gives every test the guide's targets (p95 under 100 ms, no seq scan
over 1000 rows, no temp spill); the markers add what each query must use.
"""

from __future__ import annotations

import cicd_db as db
import pytest

from pytest_pgbudget import pgbudget


@pgbudget(require_index="idx_workflows_tags_gin", max_buffers=4000)
def test_tag_containment_uses_the_gin_index(pg_conn):
    # "Good: Use GIN index with containment operator": tags @> '["urgent"]'
    rows = db.workflows_tagged(pg_conn, "urgent")
    assert 2000 < len(rows) < 4000
    assert all("urgent" in row["tags"] for row in rows)


@pgbudget(require_index="idx_workflows_configuration_gin", max_buffers=4000)
def test_key_existence_uses_a_gin_index(pg_conn):
    # "Good: Use existence operator": configuration ? 'auto_deploy'. The guide
    # has no index for it (its configuration index is on the expression
    # configuration->'environment'); schema/004_indexes.sql adds one.
    rows = db.workflows_with_config_key(pg_conn, "auto_deploy")
    assert rows
    assert {row["workflow_type"] for row in rows} == {"deployment", "release"}


@pgbudget(require_index="idx_workflows_metadata_gin", max_buffers=1500)
def test_metadata_containment(pg_conn):
    rows = db.workflows_by_metadata(pg_conn, repository="payments", triggered_by="schedule")
    assert 500 < len(rows) < 1200


@pgbudget(require_index="idx_workflows_config_environment", max_buffers=3500)
def test_jsonb_path_index_on_configuration_environment(pg_conn):
    # The index is on the expression configuration->'environment': the query
    # must use that same expression.
    rows = db.workflows_by_target(pg_conn, region="ap-south-1", approval_required=True)
    assert rows and {row["environment"] for row in rows} == {"production"}


@pgbudget(require_index="idx_agent_sessions_context_type", max_buffers=800)
def test_jsonb_path_index_on_agent_context_type(pg_conn):
    rows = db.agent_sessions_of_context(pg_conn, "incident")
    assert 300 < len(rows) < 1000


@pgbudget(require_index="idx_system_metrics_dimensions_gin", max_buffers=2500)
def test_metric_dimensions_containment(pg_conn):
    summary = db.metrics_summary_for(pg_conn, host="runner-33", service="db")
    assert len(summary) == 12  # every metric the host's db service reports
    assert all(row["samples"] > 0 for row in summary)


# 60% of workflows run on main. Reading the whole table in order is cheaper than
# 60,000 index lookups, so the planner rightly picks a seq scan, here as in
# production. no_seq_scan would fail the test for a good plan; plan="capable"
# instead re-plans the statement with seq scans disabled and checks the index
# *can* serve it. Dropping the index, or writing the filter so that it cannot
# use it, still fails the test.
@pgbudget(no_seq_scan=False, require_index="idx_workflows_metadata_gin", plan="capable")
def test_common_value_seq_scan_is_right_but_the_index_must_be_usable(pg_conn, pg_queries):
    assert 55_000 < db.count_workflows_by_metadata(pg_conn, branch="main") < 65_000
    (query,) = pg_queries
    assert [scan.relation for scan in query.seq_scans] == ["workflows"]


@pytest.mark.xfail(
    strict=True,
    raises=pytest.fail.Exception,
    reason="the guide's 'Avoid' pattern: no index can serve jsonb_array_length(tags) > 2, "
    "so every workflow is read (run with --runxfail to see the budget failure)",
)
@pgbudget(no_seq_scan=True)
def test_avoid_functional_expressions_on_jsonb(pg_conn):
    # "Avoid: Functional expressions that can't use indexes". The query is
    # correct, only slow at scale: the budget fails it, the xfail documents it.
    rows = db.workflows_with_many_tags(pg_conn, 2)
    assert rows and all(len(row["tags"]) > 2 for row in rows)
