"""Guide target: "Workflow State Transitions: <50ms completion time".

transition_workflow_status() (schema/002_functions.sql) locks the workflow,
validates the transition, updates it and writes an audit_logs_enhanced row.
auto_explain captures the statements inside the function too, so the budget
covers each of them as well as the call.
"""

from __future__ import annotations

from datetime import timedelta

import cicd_db as db
import psycopg
import pytest

from pytest_pgbudget import pgbudget

pytestmark = pgbudget(max_ms=50)


def a_workflow(conn, status: str, environment: str = "staging") -> int:
    (row,) = db.workflows_in(conn, environment, status, limit=1)
    return row["id"]


@pytest.fixture
def pending_workflow(pg_conn) -> int:
    # Fixture set-up is not budgeted: only what the test itself runs counts.
    return a_workflow(pg_conn, "pending")


# status is in three of the nine indexes on workflows (a key column, an INCLUDE
# column, a partial-index predicate), so the UPDATE cannot be HOT: all nine
# indexes get an entry for the new row version. That is most of the few hundred
# pages a transition touches.
@pgbudget(require_index="workflows_pkey", max_buffers=500)
def test_pending_running_completed(pg_conn, pending_workflow):
    running = db.transition(pg_conn, pending_workflow, "running")
    assert running["status"] == "running" and running["started_at"] is not None

    completed = db.transition(pg_conn, pending_workflow, "completed")
    assert completed["status"] == "completed" and completed["completed_at"] is not None

    audit = pg_conn.execute(
        "SELECT entity_id, old_values->>'status', new_values->>'status', security_level "
        "FROM audit_logs_enhanced ORDER BY id DESC LIMIT 2"
    ).fetchall()
    assert audit == [
        (pending_workflow, "running", "completed", "low"),
        (pending_workflow, "pending", "running", "low"),
    ]


@pgbudget(require_index="workflows_pkey")
def test_failed_workflow_can_be_retried(pg_conn, pending_workflow):
    for status in ("running", "failed", "pending"):
        row = db.transition(pg_conn, pending_workflow, status)
    assert row["status"] == "pending" and row["started_at"] is None


def test_invalid_transition_is_rejected(pg_conn):
    completed = a_workflow(pg_conn, "completed")
    with pytest.raises(
        psycopg.errors.CheckViolation, match="invalid status transition completed -> running"
    ):
        db.transition(pg_conn, completed, "running")


@pgbudget(require_index=["workflows_pkey", "idx_audit_logs_enhanced_high_security"])
def test_production_transition_is_a_high_security_event(pg_conn):
    workflow = a_workflow(pg_conn, "pending", environment="production")
    db.transition(pg_conn, workflow, "running", actor="release-manager")

    events = db.high_security_events(pg_conn, timedelta(minutes=5))
    assert (workflow, "release-manager") in [(e["entity_id"], e["actor"]) for e in events]
