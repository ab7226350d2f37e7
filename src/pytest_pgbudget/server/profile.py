"""The tuned server profile, in three documented layers.

1. :data:`SEED_PROFILE` - the ``postgresql.conf`` of the performance guide this
   project grew from (memory, planner costs, checkpoints, logging, statistics).
2. :data:`TEST_PROFILE` - test speed and plan stability. Durability is off
   (a test cluster is thrown away), autovacuum is off (the plugin runs an
   explicit ``ANALYZE`` after loading the schema, so statistics do not change
   behind a test's back), JIT is off (its compile time adds tens of
   milliseconds at random to the statements that cross its cost threshold) and
   parallel query is off (worker counts depend on the free worker slots of the
   moment, and they split rows and buffers between workers, so plans and
   buffer counts would vary from run to run).
3. :data:`CAPTURE_PROFILE` - the capture extensions, preloaded. auto_explain is
   configured here but switched on per test database only (see
   :mod:`pytest_pgbudget.capture`), so the plugin's own work is never logged.

Users layer their own settings over these with ``pgbudget_settings`` and the
``pytest_pgbudget_server_settings`` hook.
"""

from __future__ import annotations

from collections.abc import Mapping

SEED_PROFILE: Mapping[str, str] = {
    # Memory
    "shared_buffers": "256MB",
    "effective_cache_size": "1GB",
    "work_mem": "4MB",
    "maintenance_work_mem": "64MB",
    # Connections
    "max_connections": "100",
    "superuser_reserved_connections": "3",
    # Checkpoints and WAL
    "checkpoint_completion_target": "0.9",
    "checkpoint_timeout": "15min",
    "max_wal_size": "1GB",
    "min_wal_size": "80MB",
    "wal_buffers": "16MB",
    "wal_writer_delay": "200ms",
    "commit_delay": "0",
    "commit_siblings": "5",
    # Planner costs (SSD)
    "random_page_cost": "1.1",
    "seq_page_cost": "1.0",
    "effective_io_concurrency": "200",
    # Logging
    "log_min_duration_statement": "1000",
    "log_checkpoints": "on",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_lock_waits": "on",
    # Statistics
    "track_activities": "on",
    "track_counts": "on",
    "track_io_timing": "on",
    "track_functions": "pl",
}

TEST_PROFILE: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "autovacuum": "off",
    "jit": "off",
    "max_parallel_workers_per_gather": "0",
    "max_parallel_maintenance_workers": "0",
    # No replication from a test cluster: minimal WAL makes bulk loads cheaper.
    "wal_level": "minimal",
    "max_wal_senders": "0",
    # Lock waits above this are logged (the guide's KPI is 10 ms).
    "deadlock_timeout": "10ms",
}

CAPTURE_PROFILE: Mapping[str, str] = {
    "shared_preload_libraries": "pg_stat_statements,auto_explain",
    "compute_query_id": "on",
    "pg_stat_statements.track": "all",
    "auto_explain.log_min_duration": "-1",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_timing": "off",
    "auto_explain.log_nested_statements": "on",
    "auto_explain.log_format": "json",
    "auto_explain.log_level": "log",
}


def profile_layers() -> list[tuple[str, Mapping[str, str]]]:
    """The built-in layers, lowest precedence first, with their names."""
    return [("seed", SEED_PROFILE), ("test", TEST_PROFILE), ("capture", CAPTURE_PROFILE)]
