"""Guide: "Maintenance Procedures" - the functions the weekly job calls."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import cicd_db as db

from pytest_pgbudget import pgbudget


@pgbudget(require_index="idx_audit_logs_enhanced_timestamp", max_buffers=15000)
def test_cleanup_old_audit_logs(pg_conn):
    (deleted,) = pg_conn.execute("SELECT cleanup_old_audit_logs()").fetchone()
    # about 10 of the 100 days are past the 90-day retention; high and critical stay a year
    assert 8000 < deleted < 10000
    left = pg_conn.execute(
        "SELECT security_level, count(*) FROM audit_logs_enhanced "
        "WHERE timestamp < now() - interval '90 days' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [level for level, _ in left] == ["critical", "high"]


@pgbudget(require_index="idx_system_metrics_timestamp", max_buffers=1500)
def test_calculate_aggregated_metrics_is_idempotent(pg_conn):
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=2
    )
    first = pg_conn.execute("SELECT calculate_aggregated_metrics(%s)", [hour]).fetchone()[0]
    again = pg_conn.execute("SELECT calculate_aggregated_metrics(%s)", [hour]).fetchone()[0]
    assert first == again == 12  # one row per metric
    rows = pg_conn.execute(
        "SELECT metric_name, (dimensions->>'count')::int FROM system_metrics "
        "WHERE timestamp = %s AND metric_type = 'aggregate'",
        [hour],
    ).fetchall()
    assert len(rows) == 12 and all(count > 0 for _, count in rows)


@pgbudget(
    p95_ms=100, require_index=["idx_audit_logs_enhanced_timestamp", "idx_system_metrics_timestamp"]
)
def test_weekly_maintenance_procedure(pg_conn):
    # The guide's DO block, without VACUUM and ANALYZE: they cannot run inside one.
    db.weekly_maintenance(pg_conn)
