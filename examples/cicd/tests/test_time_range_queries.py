"""Guide: "Optimized Time-Range Queries"."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import cicd_db as db

from pytest_pgbudget import pgbudget


@pgbudget(require_index="idx_system_metrics_timestamp", max_buffers=150)
def test_last_hour_of_metrics_reads_the_timestamp_index_backwards(pg_conn):
    # "Good: Use indexed timestamp columns". The ORDER BY ... DESC needs no
    # sort: the planner walks the index backwards.
    rows = db.recent_metrics(pg_conn, timedelta(hours=1))
    assert 500 < len(rows) < 3000  # fewer as the run goes on: the data ends at load time
    stamps = [row["timestamp"] for row in rows]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[-1] >= datetime.now(timezone.utc) - timedelta(hours=1, minutes=1)


@pgbudget(require_index="idx_audit_logs_enhanced_high_security", max_buffers=60)
def test_recent_high_security_events_use_the_partial_index(pg_conn):
    # "Good: Use partial indexes for recent data": the partial index holds only
    # the 7% of rows with security_level = 'high', so 24 hours of them are a
    # few pages.
    rows = db.high_security_events(pg_conn, timedelta(hours=24))
    assert 40 < len(rows) < 150
    assert {row["security_level"] for row in rows} == {"high"}
