"""End-to-end: session health budgets (the guide's KPIs) fail the session, not a test."""

from __future__ import annotations

SCHEMA = """\
CREATE TABLE items (id int PRIMARY KEY, payload text, note text);
INSERT INTO items SELECT g, repeat('x', 200), repeat('y', 200) FROM generate_series(1, 20000) g;
CREATE INDEX items_payload ON items (payload);
"""


def test_healthy_session_reports_and_passes(project) -> None:
    pytester = project(
        "pgbudget_schema = schema.sql\n",
        schema_sql=SCHEMA,
        test_ok_py="""
        def test_lookups(pg_conn):
            for _ in range(3):
                for i in range(1, 400):
                    pg_conn.execute("SELECT * FROM items WHERE id = %s", [i]).fetchall()
        """,
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "session health: passed",
            "  index hit ratio 100.00% over * warm buffer accesses (target > 99%)",
            "  lock waits: none over 10 ms",
            "  1 of 2 indexes no test used: items_payload (on items)",
        ]
    )


def test_lock_wait_breach_fails_the_session(project) -> None:
    pytester = project(
        "pgbudget_schema = schema.sql\n",
        schema_sql=SCHEMA,
        test_lock_py="""
        import threading, time

        def test_contention(pg_db, pg_conn):
            pg_conn.execute("UPDATE items SET payload = 'a' WHERE id = 1")  # holds the row lock

            def second():
                with pg_db.connect() as other:
                    other.execute("UPDATE items SET payload = 'b' WHERE id = 1")
                    other.commit()

            waiter = threading.Thread(target=second)
            waiter.start()
            time.sleep(0.3)
            pg_conn.commit()
            waiter.join()
        """,
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)  # the test itself passed ...
    assert result.ret == 1  # ... but the session breached a health budget
    result.stdout.fnmatch_lines(
        [
            "session health: FAILED (1 breached)",
            "  BREACH lock wait of * ms for ShareLock on transaction * (target < 10 ms): UPDATE items SET payload = 'b' WHERE id = 1",
        ]
    )


def test_cache_misses_breach_the_hit_ratio(project) -> None:
    pytester = project(
        "pgbudget_schema = schema.sql\npgbudget_settings = shared_buffers = 2MB\n",
        schema_sql=SCHEMA,
        test_scan_py="""
        def test_scans(pg_conn):
            for _ in range(5):
                pg_conn.execute("SELECT count(*) FROM items WHERE length(note) > 1").fetchall()
        """,
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["  BREACH buffer cache hit ratio *% over * warm buffer accesses (target > 95%)"]
    )


def test_unused_indexes_can_fail_and_checks_can_be_switched_off(project) -> None:
    pytester = project(
        "pgbudget_schema = schema.sql\npgbudget_health_unused_indexes = fail\n"
        "pgbudget_health_cache_hit_ratio = 0\npgbudget_health_index_hit_ratio = 0\n",
        schema_sql=SCHEMA,
        test_ok_py="""
        def test_lookup(pg_conn):
            pg_conn.execute("SELECT * FROM items WHERE id = 1").fetchall()
        """,
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["  BREACH 1 of 2 indexes no test used: items_payload (on items)"])
    assert "hit ratio" not in result.stdout.str()
