"""End-to-end runs of small example projects: servers, schema, isolation, fixtures."""

from __future__ import annotations

import os

import psycopg
import pytest

from conftest import LOCAL_BACKENDS, require_container

SCHEMA = """\
    -- accounts, with a function whose body holds semicolons
    CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL);
    INSERT INTO accounts (email) SELECT 'user' || g || '@example.org' FROM generate_series(1, 500) g;

    CREATE FUNCTION add_account(address text) RETURNS int LANGUAGE plpgsql AS $$
    DECLARE new_id int;
    BEGIN
      INSERT INTO accounts (email) VALUES (address) RETURNING id INTO new_id;  -- ; in a comment
      RETURN new_id;
    END $$;

    CREATE INDEX CONCURRENTLY accounts_email ON accounts (email);
"""

ISOLATION_TESTS = """\
    import os

    def test_commit_is_visible_in_this_test(pg_conn):
        pg_conn.execute("SELECT add_account('new@example.org')")
        pg_conn.commit()
        assert pg_conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 501

    def test_next_test_does_not_see_it(pg_conn):
        assert pg_conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 500

    def test_schema_was_analyzed(pg_conn):
        reltuples = pg_conn.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'accounts'").fetchone()[0]
        assert reltuples == 500

    def test_fixture_attributes(pg_server, pg_db, pg_conn):
        assert pg_server.backend in ("local", "embedded", "container", "external")
        assert pg_server.version[:2].isdigit()
        assert pg_server.settings["random_page_cost"] == "1.1"
        assert pg_server.settings["shared_preload_libraries"] == "pg_stat_statements,auto_explain"
        assert pg_db.name == pg_conn.info.dbname
        with pg_db.connect() as other:
            assert other.execute("SELECT current_database()").fetchone()[0] == pg_db.name
"""


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_database_isolation(project, backend: str) -> None:
    pytester = project(
        f"pgbudget_backend = {backend}\npgbudget_schema = schema.sql\n",
        **{"schema.sql": SCHEMA, "test_iso.py": ISOLATION_TESTS},
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [f"pgbudget: PostgreSQL *({backend} backend*settings: seed + test + capture*"]
    )


def test_container_backend(project) -> None:
    require_container()
    pytester = project(
        "pgbudget_backend = container\npgbudget_image = postgres:15\npgbudget_schema = schema.sql\n",
        **{"schema.sql": SCHEMA, "test_iso.py": ISOLATION_TESTS},
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["pgbudget: PostgreSQL 15* (container backend*image postgres:15*"])
    # The random password never reaches the output.
    assert "password" not in result.stdout.str().lower()


def test_transaction_isolation(project) -> None:
    pytester = project(
        "pgbudget_schema = schema.sql\npgbudget_isolation = transaction\n", schema_sql=SCHEMA
    )
    pytester.makepyfile(
        test_tx="""
        def test_write(pg_conn):
            pg_conn.execute("DELETE FROM accounts")
            assert pg_conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 0

        def test_rolled_back(pg_conn, pg_db):
            assert pg_conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 500
            assert pg_db.name.endswith("_1")  # one shared database
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_external_backend_drops_only_its_own(project, pg_server) -> None:
    """Our own server stands in for a user's; the inner run gets only its DSN."""
    with pg_server.connect() as admin:
        admin.execute("CREATE DATABASE users_precious")
        before = {r[0] for r in admin.execute("SELECT datname FROM pg_database").fetchall()}
    try:
        pytester = project(
            "pgbudget_schema = schema.sql\n",
            **{"schema.sql": SCHEMA, "test_iso.py": ISOLATION_TESTS},
        )
        result = pytester.runpytest_subprocess(f"--pgbudget-dsn={pg_server.dsn}")
        result.assert_outcomes(passed=4)
        result.stdout.fnmatch_lines(["pgbudget: PostgreSQL * (external backend*"])
        with pg_server.connect() as admin:
            names = {r[0] for r in admin.execute("SELECT datname FROM pg_database").fetchall()}
        assert "users_precious" in names
        assert names == before, names - before
    finally:
        with pg_server.connect() as admin:
            admin.execute("DROP DATABASE users_precious")


def test_password_never_in_artifacts(project, pg_server) -> None:
    secret = "S3cret-Tr0mbone"
    with pg_server.connect() as admin:
        admin.execute(f"CREATE ROLE budget_user LOGIN SUPERUSER PASSWORD '{secret}'")
    try:
        dsn = psycopg.conninfo.make_conninfo(pg_server.dsn, user="budget_user", password=secret)
        pytester = project("")
        pytester.makepyfile(
            test_fail="""
            def test_fails(pg_server, pg_db):
                dsn = pg_db.dsn
                assert dsn == "something else"
            """
        )
        result = pytester.runpytest_subprocess(
            f"--pgbudget-dsn={dsn}", "--showlocals", "--junitxml=report.xml", "-v"
        )
        result.assert_outcomes(failed=1)
        assert secret not in result.stdout.str() + result.stderr.str()
        assert secret not in (pytester.path / "report.xml").read_text()
    finally:
        with pg_server.connect() as admin:
            admin.execute("DROP ROLE budget_user")


def test_schema_error_names_file_and_line(project) -> None:
    pytester = project(
        "pgbudget_schema = sql\n",
        **{
            "sql/001_tables.sql": "CREATE TABLE t (id int);\n",
            "sql/002_broken.sql": "-- comment\n\nCREATE TABLE u (id int);\nCREATE INDEX ON u (\n  missing_column);\n",
            "test_x.py": "def test_a(pg_conn): pass\ndef test_b(pg_conn): pass\n",
        },
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == 3
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        ['*002_broken.sql:4: 42703: column "missing_column" does not exist*']
    )
    assert out.count('missing_column" does not exist') == 1  # the run stopped once


@pytest.mark.parametrize(
    ("ini", "expected"),
    [
        (
            "pgbudget_backend = mainframe",
            "*pgbudget_backend must be one of auto, local, embedded, container, external*",
        ),
        (
            "pgbudget_isolation = savepoint",
            "*pgbudget_isolation must be one of database, transaction*",
        ),
        ("pgbudget_settings = work_mem 4MB", "*pgbudget_settings: expected 'name = value'*"),
        ("pgbudget_backend = external", "*external backend needs a server*"),
    ],
)
def test_bad_configuration_is_a_usage_error(project, ini: str, expected: str) -> None:
    pytester = project(ini + "\n", test_x_py="def test_a(): pass\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "Traceback" not in result.stderr.str()


def test_missing_schema_file_stops_once(project) -> None:
    pytester = project(
        "pgbudget_schema = nowhere.sql\n",
        test_x_py="def test_a(pg_db): pass\ndef test_b(pg_db): pass\n",
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == 3
    result.stdout.fnmatch_lines(["*'nowhere.sql' is neither a file nor a directory*"])


def test_unreachable_dsn_stops_once(project) -> None:
    pytester = project("", test_x_py="def test_a(pg_db): pass\ndef test_b(pg_db): pass\n")
    result = pytester.runpytest_subprocess(
        "--pgbudget-dsn=host=127.0.0.1 port=1 user=x connect_timeout=2"
    )
    assert result.ret == 3
    assert result.stdout.str().count("cannot connect to the external server") == 1


def test_settings_layers_and_hook(project) -> None:
    pytester = project(
        "pgbudget_settings =\n    work_mem = 8MB\n    random_page_cost = 2\n",
        conftest_py="""
        def pytest_pgbudget_server_settings(config, settings):
            settings["work_mem"] = "16MB"
        """,
        test_s_py="""
        def test_settings(pg_server, pg_conn):
            assert pg_server.settings["work_mem"] == "16MB"
            assert pg_server.settings["random_page_cost"] == "2"
            assert pg_conn.execute("SHOW work_mem").fetchone()[0] == "16MB"
        """,
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*settings: seed + test + capture + pgbudget_settings (2) + pytest_pgbudget_server_settings hook*"
        ]
    )


def test_loader_function_and_template_hook(project) -> None:
    pytester = project(
        "pgbudget_schema =\n    myschema:create\n",
        myschema_py="""
        def create(conn):
            conn.execute("CREATE TABLE plans (name text)")
        """,
        conftest_py="""
        import sys, os
        sys.path.insert(0, os.path.dirname(__file__))

        def pytest_pgbudget_template_loaded(config, server, connection):
            connection.execute("INSERT INTO plans VALUES ('free'), ('pro')")
        """,
        test_l_py="""
        def test_seeded(pg_conn):
            assert pg_conn.execute("SELECT count(*) FROM plans").fetchone()[0] == 2
        """,
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_factories_make_a_second_database(project) -> None:
    pytester = project(
        "pgbudget_schema = a.sql\n",
        a_sql="CREATE TABLE a (id int);",
        b_sql="CREATE TABLE b (id int);",
        conftest_py="""
        from pytest_pgbudget import factories

        pg_db_b = factories.pg_db("pg_server", schema=["b.sql"])
        pg_conn_b = factories.pg_conn("pg_db_b")
        """,
        test_f_py="""
        def test_two_schemas(pg_conn, pg_conn_b):
            tables = "SELECT string_agg(relname, ',') FROM pg_class WHERE relname IN ('a', 'b')"
            assert pg_conn.execute(tables).fetchone()[0] == "a"
            assert pg_conn_b.execute(tables).fetchone()[0] == "b"
        """,
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_leaked_connection_is_reported(project) -> None:
    pytester = project(
        "",
        test_leak_py="""
        import psycopg
        KEEP = []

        def test_leaks(pg_db):
            KEEP.append(psycopg.connect(pg_db.dsn))

        def test_next_still_gets_a_database(pg_conn):
            assert pg_conn.execute("SELECT 1").fetchone()[0] == 1
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*PgBudgetWarning: test_leak.py::test_leaks left 1 connection(s) open*"]
    )


def test_xdist_workers_are_isolated(project) -> None:
    pytester = project(
        "pgbudget_schema = schema.sql\n",
        schema_sql="CREATE TABLE marks (worker text);",
        test_x_py="""
        import os, time, pytest

        @pytest.mark.parametrize("i", range(6))
        def test_own_data(pg_conn, i):
            me = os.environ["PYTEST_XDIST_WORKER"]
            pg_conn.execute("INSERT INTO marks VALUES (%s)", [me])
            pg_conn.commit()
            time.sleep(0.05)
            assert pg_conn.execute("SELECT array_agg(DISTINCT worker) FROM marks").fetchone()[0] == [me]
        """,
    )
    pytester.runpytest_subprocess("-n", "2").assert_outcomes(passed=6)


def test_server_runs_unprivileged(pg_server) -> None:
    with pg_server.connect() as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        if pg_server.backend in ("local", "embedded"):
            assert os.stat(f"/proc/{pid}").st_uid != 0
    with psycopg.connect(pg_server.dsn) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] in ("", "localhost", "127.0.0.1")


REUSE_TESTS = """\
import pytest

SEEN = []

@pytest.fixture(autouse=True)
def remember(pg_db):
    SEEN.append(pg_db.name)
    yield

def test_01_read(pg_conn):
    assert pg_conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 500

def test_02_read_again_gets_the_same_clone(pg_conn):
    pg_conn.execute("SELECT * FROM accounts WHERE id = 1").fetchall()
    assert SEEN[-1] == SEEN[-2]

def test_03_nextval_only(pg_conn):
    assert pg_conn.execute("SELECT nextval('accounts_id_seq')").fetchone()[0] == 501
    pg_conn.commit()

def test_04_sequence_is_as_cloned(pg_conn):
    assert pg_conn.execute("SELECT nextval('accounts_id_seq')").fetchone()[0] == 501
    assert SEEN[-1] != SEEN[-2]

def test_05_ddl_only(pg_conn):
    pg_conn.execute("CREATE TABLE scratch (x int)")
    pg_conn.commit()

def test_06_no_scratch(pg_conn):
    assert pg_conn.execute("SELECT to_regclass('scratch')").fetchone()[0] is None

def test_07_truncate(pg_conn):
    pg_conn.execute("TRUNCATE accounts CASCADE")
    pg_conn.commit()

def test_08_rows_are_back(pg_conn):
    assert pg_conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 500

def test_09_rolled_back_write(pg_conn):
    pg_conn.execute("DELETE FROM accounts")
    pg_conn.rollback()

def test_10_setting(pg_conn, pg_db):
    pg_conn.autocommit = True
    pg_conn.execute(f'ALTER DATABASE "{pg_db.name}" SET work_mem = \\'77MB\\'')

def test_11_setting_is_gone(pg_conn):
    assert pg_conn.execute("SHOW work_mem").fetchone()[0] != "77MB"
"""


@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_untouched_clones_are_reused_and_changed_ones_never(project, backend: str) -> None:
    pytester = project(
        f"pgbudget_backend = {backend}\npgbudget_schema = schema.sql\n",
        **{"schema.sql": SCHEMA, "test_reuse.py": REUSE_TESTS},
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=11)
