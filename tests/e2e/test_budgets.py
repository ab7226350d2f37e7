"""End-to-end: capture from every driver, every budget keyword passing and failing."""

from __future__ import annotations

import pytest

from conftest import LOCAL_BACKENDS

SCHEMA = """\
CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL, status text NOT NULL);
INSERT INTO accounts (email, status)
  SELECT 'user' || g || '@example.org', CASE WHEN g % 10 = 0 THEN 'new' ELSE 'old' END
  FROM generate_series(1, 20000) g;
CREATE TABLE orders (id serial PRIMARY KEY, account_id int NOT NULL REFERENCES accounts (id), total int);
INSERT INTO orders (account_id, total) SELECT (g % 20000) + 1, g FROM generate_series(1, 60000) g;
CREATE INDEX orders_account ON orders (account_id);
CREATE TABLE countries (code text PRIMARY KEY, name text);
INSERT INTO countries VALUES ('fr', 'France'), ('de', 'Germany');
CREATE FUNCTION order_count(a int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  RETURN (SELECT count(*) FROM orders WHERE account_id = a);
END $$;
"""

INI = "pgbudget_schema = schema.sql\n"


def run(project, tests: str, *args: str, ini: str = INI, **files: str):
    pytester = project(ini, schema_sql=SCHEMA, test_budget_py=tests, **files)
    return pytester.runpytest_subprocess("-p", "no:randomly", *args)


DRIVERS = """\
import asyncio
import psycopg2
import sqlalchemy
import asyncpg
import pytest

QUERY = "SELECT email FROM accounts WHERE id = 7"

def check(pg_queries, expected):
    sqls = [q.sql for q in pg_queries]
    assert sqls.count(expected) == 1, sqls
    q = next(q for q in pg_queries if q.sql == expected)
    assert q.indexes == {"accounts_pkey"} and q.rows == 1 and q.buffers > 0

def test_psycopg3(pg_conn, pg_queries):
    pg_conn.execute(QUERY).fetchall()
    check(pg_queries, QUERY)

def test_psycopg2(pg_db, pg_queries):
    with psycopg2.connect(pg_db.dsn) as conn, conn.cursor() as cur:
        cur.execute(QUERY)
        cur.fetchall()
    check(pg_queries, QUERY)

def test_sqlalchemy(pg_db, pg_queries):
    engine = sqlalchemy.create_engine(pg_db.url)
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(QUERY)).fetchall()
    engine.dispose()
    check(pg_queries, QUERY)

def test_sqlalchemy_creator_with_psycopg2(pg_db, pg_queries):
    engine = sqlalchemy.create_engine("postgresql+psycopg2://", creator=lambda: psycopg2.connect(pg_db.dsn))
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(QUERY)).fetchall()
    engine.dispose()
    check(pg_queries, QUERY)

def test_asyncpg(pg_db, pg_queries):
    async def main():
        conn = await asyncpg.connect(pg_db.dsn)
        try:
            await conn.fetch(QUERY)
        finally:
            await conn.close()
    asyncio.run(main())
    check(pg_queries, QUERY)

def test_nested_function_statements(pg_conn, pg_queries):
    pg_conn.execute("SELECT order_count(7)").fetchall()
    sqls = [q.sql for q in pg_queries]
    assert "SELECT order_count(7)" in sqls
    assert any("FROM orders WHERE account_id = a" in s for s in sqls), sqls

def test_fingerprint_ignores_constants(pg_conn, pg_queries):
    pg_conn.execute("SELECT * FROM accounts WHERE id = 1").fetchall()
    pg_conn.execute("SELECT * FROM accounts WHERE id = %s", [2]).fetchall()
    a, b = list(pg_queries)
    assert a.fingerprint == b.fingerprint

def test_plugin_statements_are_not_captured(pg_conn, pg_queries):
    assert list(pg_queries) == []
"""


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_capture_from_every_driver(project, backend: str) -> None:
    result = run(project, DRIVERS, ini=INI + f"pgbudget_backend = {backend}\n")
    result.assert_outcomes(passed=8)


KEYWORDS = """\
import pytest
from pytest_pgbudget import pgbudget

# -- passing ---------------------------------------------------------------
@pgbudget(max_queries=2, max_repeats=1, no_seq_scan=True, require_index="accounts_pkey",
          no_temp_spill=True, max_buffers=50, max_ms=5000, p95_ms=5000, total_ms=10000)
def test_all_within_budget(pg_conn):
    pg_conn.execute("SELECT * FROM accounts WHERE id = 1").fetchall()
    pg_conn.execute("SELECT * FROM countries WHERE code = 'fr'").fetchall()

@pgbudget(no_seq_scan=True)
def test_tiny_lookup_seq_scan_passes(pg_conn):
    pg_conn.execute("SELECT * FROM countries WHERE name = 'France'").fetchall()

@pgbudget(require_index="orders_account", plan="capable")
def test_capable_index(pg_conn):
    pg_conn.execute("SELECT count(*) FROM orders WHERE account_id = %s", [3]).fetchall()

# -- failing ---------------------------------------------------------------
@pgbudget(max_queries=3)
def test_fail_max_queries(pg_conn):
    for i in range(5):
        pg_conn.execute("SELECT %s::int", [i]).fetchall()

@pgbudget(max_repeats=2)
def test_fail_n_plus_one(pg_conn):
    for account in range(1, 6):
        pg_conn.execute("SELECT * FROM orders WHERE account_id = %s", [account]).fetchall()

@pgbudget(no_seq_scan=True)
def test_fail_seq_scan(pg_conn):
    pg_conn.execute("SELECT * FROM accounts WHERE email = %s", ["user5@example.org"]).fetchall()

@pgbudget(no_seq_scan=["countries"])
def test_fail_seq_scan_listed_table(pg_conn):
    pg_conn.execute("SELECT * FROM countries WHERE name = 'France'").fetchall()

@pgbudget(require_index="accounts_email_idx")
def test_fail_require_index(pg_conn):
    pg_conn.execute("SELECT * FROM accounts WHERE id = 3").fetchall()

@pgbudget(no_temp_spill=True)
def test_fail_spill(pg_conn):
    pg_conn.execute("SET work_mem = '64kB'")
    pg_conn.execute("SELECT * FROM orders ORDER BY total DESC").fetchall()

@pgbudget(max_buffers=10)
def test_fail_buffers(pg_conn):
    pg_conn.execute("SELECT count(*) FROM orders").fetchall()

@pgbudget(max_ms=0.000001)
def test_fail_max_ms(pg_conn):
    pg_conn.execute("SELECT count(*) FROM orders").fetchall()

@pgbudget(p95_ms=0.000001)
def test_fail_p95(pg_conn):
    pg_conn.execute("SELECT count(*) FROM orders").fetchall()

@pgbudget(total_ms=0.000001)
def test_fail_total(pg_conn):
    pg_conn.execute("SELECT count(*) FROM orders").fetchall()

@pgbudget(max_queries=0, no_seq_scan=True)
def test_fail_several_reported_together(pg_conn):
    pg_conn.execute("SELECT * FROM accounts WHERE status = 'new'").fetchall()
"""


def test_every_keyword_passes_and_fails(project) -> None:
    result = run(project, KEYWORDS)
    result.assert_outcomes(passed=3, failed=11)
    result.stdout.fnmatch_lines_random(
        [
            "*Expected to perform 3 queries or less but 5 were done*",
            "*the same statement ran 5 times (N+1?): budget max_repeats=2*",
            "*hint: fetch the rows in one query*",
            "*Seq Scan on accounts (20000 rows): budget forbids seq scans over 1000 rows*",
            "*>> Seq Scan on accounts*",
            "*hint: an index would serve the filter: CREATE INDEX ON accounts (email)*",
            "*Seq Scan on countries (2 rows): budget forbids seq scans on countries*",
            "*index accounts_email_idx does not exist in the test database*",
            "*Sort (external merge*spilled to disk (external sort): budget forbids temp spills*",
            "*hint: raise work_mem*",
            "*shared buffers (hit*budget max_buffers=10*",
            "*slowest statement took*budget max_ms=1e-06*",
            "*p95 of 1 statements is*(fewer than 20 samples: p95 is the maximum)*",
            "*1 statements took*budget total_ms=1e-06*",
            "*2 pgbudget violations in test_budget.py::test_fail_several_reported_together*",
            "*latency only: timings vary*",
        ]
    )


def test_verbose_lists_every_statement(project) -> None:
    tests = """\
    from pytest_pgbudget import pgbudget

    @pgbudget(max_queries=1)
    def test_many(pg_conn):
        pg_conn.execute("SELECT 1").fetchall()
        pg_conn.execute("SELECT 2").fetchall()
    """
    result = run(project, tests, "-v")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*1. SELECT 1*", "*2. SELECT 2*", "*all 2 captured statements:*"])


def test_markers_merge_closest_wins_and_defaults(project) -> None:
    tests = """\
    import pytest
    from pytest_pgbudget import pgbudget

    pytestmark = pgbudget(max_queries=1)

    @pgbudget(max_queries=5)
    class TestOrders:
        def test_class_marker_wins(self, pg_conn):
            for i in range(3):
                pg_conn.execute("SELECT %s::int", [i]).fetchall()

        @pgbudget(max_queries=2)
        def test_function_marker_wins(self, pg_conn):
            for i in range(3):
                pg_conn.execute("SELECT %s::int", [i]).fetchall()

    def test_module_marker(pg_conn):
        for i in range(2):
            pg_conn.execute("SELECT %s::int", [i]).fetchall()

    @pgbudget(off=True)
    def test_opted_out(pg_conn):
        pg_conn.execute("SELECT * FROM accounts WHERE email = 'x'").fetchall()
    """
    result = run(project, tests, ini=INI + "pgbudget_default_budget =\n    no_seq_scan = True\n")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ TestOrders.test_function_marker_wins _*",
            "Expected to perform 2 queries or less but 3 were done",
            "*_ test_module_marker _*",
            "Expected to perform 1 queries or less but 2 were done",
        ]
    )


def test_default_budget_applies_without_marker(project) -> None:
    tests = """\
    def test_scan(pg_conn):
        pg_conn.execute("SELECT * FROM accounts WHERE email = 'x'").fetchall()
    """
    result = run(project, tests, ini=INI + "pgbudget_default_budget =\n    no_seq_scan = True\n")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Seq Scan on accounts (20000 rows)*"])


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        (
            "max_querys=3",
            "*test_budget.py::test_x: @pgbudget: unknown keyword 'max_querys'; valid keywords: max_ms, p95_ms*",
        ),
        (
            "max_queries='3'",
            "*test_budget.py::test_x: @pgbudget: max_queries must be an integer, e.g. max_queries=10; got '3'*",
        ),
        ("no_seq_scan=[]", "*no_seq_scan must be a name or a list of names*"),
        ("plan='sometimes'", "*plan must be 'actual' or 'capable'; got 'sometimes'*"),
    ],
)
def test_bad_marker_fails_at_collection(project, marker: str, expected: str) -> None:
    tests = f"""\
    from pytest_pgbudget import pgbudget

    @pgbudget({marker})
    def test_x(pg_conn):
        pass
    """
    result = run(project, tests)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


def test_scoped_helper_counts_only_its_block(project) -> None:
    tests = """\
    import pytest

    def test_block_passes(pg_conn, pgbudget):
        pg_conn.execute("SELECT 1").fetchall()
        pg_conn.execute("SELECT 2").fetchall()
        with pgbudget.budget(max_queries=1) as inside:
            pg_conn.execute("SELECT 3").fetchall()
        assert [s.sql for s in inside] == ["SELECT 3"]

    def test_block_fails(pg_conn, pgbudget):
        with pgbudget.budget(max_repeats=1):
            for i in range(3):
                pg_conn.execute("SELECT * FROM orders WHERE account_id = %s", [i]).fetchall()

    def test_bad_keyword(pgbudget):
        with pytest.raises(TypeError, match="unknown keyword 'fast'"):
            pgbudget.budget(fast=True)
    """
    result = run(project, tests)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: the same statement ran 3 times (N+1?)*"])


def test_hooks_capture_check_and_violation(project) -> None:
    conftest = """\
    from pytest_pgbudget.budgets import Violation

    SEEN = []

    def pytest_pgbudget_query_captured(item, statement):
        SEEN.append(statement.sql)

    def pytest_pgbudget_check(item, budget, statements):
        return [Violation("no_delete", "DELETE is forbidden here", s)
                for s in statements if s.sql.upper().startswith("DELETE")]

    def pytest_pgbudget_budget_violation(item, violation):
        print(f"VIOLATION-HOOK {violation.keyword}")

    def pytest_sessionfinish(session):
        print(f"CAPTURED-HOOK {len(SEEN)}")
    """
    tests = """\
    def test_delete(pg_conn):
        pg_conn.execute("DELETE FROM orders WHERE id = 1")
    """
    result = run(project, tests, "-s", conftest_py=conftest)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines_random(
        ["*DELETE is forbidden here*", "*VIOLATION-HOOK no_delete*", "*CAPTURED-HOOK 1*"]
    )


def test_terminal_summary_names_worst_offenders(project) -> None:
    tests = """\
    def test_scan(pg_conn):
        pg_conn.execute("SELECT * FROM accounts WHERE email = 'x'").fetchall()
    """
    result = run(project, tests)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= pgbudget =*",
            "*1 statements captured in 1 tests; 0 budget violations*",
            "*slowest statements:*",
            "*largest seq scans:*",
            "*20000 rows  accounts  (test_budget.py::test_scan)*",
        ]
    )


def test_capture_in_a_container(project) -> None:
    from conftest import require_container

    require_container()
    tests = """\
    from pytest_pgbudget import pgbudget

    def test_captured(pg_conn, pg_queries):
        pg_conn.execute("SELECT * FROM accounts WHERE id = 3").fetchall()
        assert [q.indexes for q in pg_queries] == [{"accounts_pkey"}]

    @pgbudget(no_seq_scan=True)
    def test_budget_fails(pg_conn):
        pg_conn.execute("SELECT * FROM accounts WHERE email = 'x'").fetchall()
    """
    ini = INI + "pgbudget_backend = container\npgbudget_image = postgres:15\n"
    result = run(project, tests, ini=ini)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Seq Scan on accounts (20000 rows)*"])


def test_pytest_benchmark_stats_feed_the_report(project, monkeypatch) -> None:
    # pytest-benchmark switches itself off inside an xdist worker's environment.
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)
    tests = """\
    from pytest_pgbudget import pgbudget

    @pgbudget(max_buffers=20, no_seq_scan=True)
    def test_lookup_speed(benchmark, pg_conn):
        benchmark.pedantic(
            lambda: pg_conn.execute("SELECT * FROM accounts WHERE id = %s", [42]).fetchall(),
            rounds=25,
        )
    """
    pytester = project(INI, schema_sql=SCHEMA, test_budget_py=tests)
    result = pytester.runpytest_subprocess("--pgbudget-json=report.json")
    result.assert_outcomes(passed=1)
    import json

    (record,) = json.loads((pytester.path / "report.json").read_text())["tests"]
    assert record["benchmark"]["rounds"] == 25
    assert 0 < record["benchmark"]["min_ms"] <= record["benchmark"]["median_ms"]
    assert len(record["statements"]) == 25  # every round was captured and judged


def test_budget_without_capture_fails_clearly(project, pg_server) -> None:
    """A role that may neither read the server log nor set auto_explain cannot capture."""
    with pg_server.connect() as admin:
        admin.execute("CREATE ROLE plain_user LOGIN CREATEDB")
    try:
        import psycopg

        dsn = psycopg.conninfo.make_conninfo(pg_server.dsn, user="plain_user")
        tests = """\
        from pytest_pgbudget import pgbudget

        @pgbudget(max_queries=1)
        def test_budgeted(pg_conn):
            pg_conn.execute("SELECT 1")

        def test_unbudgeted(pg_conn):
            pg_conn.execute("SELECT 1")
        """
        pytester = project("", test_budget_py=tests)
        result = pytester.runpytest_subprocess(f"--pgbudget-dsn={dsn}")
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(
            [
                "pgbudget cannot check this test's budget: statement capture is off (external server: *",
                "*PgBudgetWarning: statement capture is off for the external server*",
            ]
        )
    finally:
        with pg_server.connect() as admin:
            for (name,) in admin.execute(
                "SELECT datname FROM pg_database WHERE datdba = 'plain_user'::regrole"
            ).fetchall():
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.execute("DROP ROLE plain_user")


def test_a_runner_that_got_busier_is_measured_again_before_a_timing_fails(project) -> None:
    # The session calibrates once, before its first timed test. Lowering the reference
    # afterwards makes this machine look far slower from then on, as a runner that
    # other jobs crowd in on midway: a re-measure when a ceiling breaks then scales it.
    tests = """\
    from pytest_pgbudget import pgbudget
    from pytest_pgbudget.budgets import enforce

    @pgbudget(max_ms=10_000)
    def test_1_calibrates(pg_conn):
        pg_conn.execute("SELECT 1").fetchall()

    @pgbudget(max_ms=2)
    def test_2_slower_than_its_ceiling(pg_conn):
        enforce.REFERENCE_MS = 20.0 / 1000  # every run now looks a thousand times slow
        pg_conn.execute("SELECT pg_sleep(0.02)").fetchall()

    @pgbudget(max_ms=2, max_queries=0)
    def test_3_a_count_is_never_rescued(pg_conn):
        pg_conn.execute("SELECT pg_sleep(0.02)").fetchall()
    """
    result = run(project, tests)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_3_a_count_is_never_rescued*",
            "Expected to perform 0 queries or less but 1 were done",
        ]
    )
    # test 2 slept 20 ms under a 2 ms ceiling: only the re-measured scale let it pass
    assert "budget max_ms" not in result.stdout.str()
