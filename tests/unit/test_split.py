"""Unit tests for splitting schema scripts into statements."""

from __future__ import annotations

import pytest

from pytest_pgbudget.schema.split import SchemaSyntaxError, Statement, split_sql

PLPGSQL_FUNCTION = """\
CREATE OR REPLACE FUNCTION audit.log_change() RETURNS trigger
LANGUAGE plpgsql AS $body$
DECLARE
    query text := $q$INSERT INTO audit.log (tbl, op) VALUES ($1, $2);$q$;
BEGIN
    -- a comment with a ; inside the body
    IF TG_OP = 'DELETE' THEN
        EXECUTE query USING TG_TABLE_NAME, 'd;';
        RETURN OLD;
    END IF;
    EXECUTE query USING TG_TABLE_NAME, $$it's; $$ || TG_OP;
    RETURN NEW;
END;
$body$"""

AUDIT_TRIGGER = """\
CREATE TRIGGER accounts_audit
    AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION audit.log_change()"""

SQL_STANDARD_FUNCTION = """\
CREATE FUNCTION sign_label(n int) RETURNS text
LANGUAGE sql
BEGIN ATOMIC
    SELECT CASE WHEN n < 0 THEN 'negative' ELSE 'non-negative' END;
END"""


def sqls(text: str) -> list[str]:
    return [statement.sql for statement in split_sql(text)]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param(
            "CREATE TABLE a (id int);\nCREATE TABLE b (id int);",
            ["CREATE TABLE a (id int)", "CREATE TABLE b (id int)"],
            id="plain",
        ),
        pytest.param(
            "CREATE TABLE a (id int);\nSELECT 1",
            ["CREATE TABLE a (id int)", "SELECT 1"],
            id="last-statement-without-semicolon",
        ),
        pytest.param(
            f"{PLPGSQL_FUNCTION};\n{AUDIT_TRIGGER};\n",
            [PLPGSQL_FUNCTION, AUDIT_TRIGGER],
            id="plpgsql-function-with-nested-dollar-quotes-and-trigger",
        ),
        pytest.param(
            "DO $$ BEGIN PERFORM 1; END $$; SELECT 2;",
            ["DO $$ BEGIN PERFORM 1; END $$", "SELECT 2"],
            id="anonymous-dollar-tag",
        ),
        pytest.param(
            "SELECT $a$ $b$ ; $b$ $a$; SELECT 2;",
            ["SELECT $a$ $b$ ; $b$ $a$", "SELECT 2"],
            id="different-tag-inside-dollar-quote",
        ),
        pytest.param(
            "SELECT 'a;b', 'it''s;'; SELECT 2;",
            ["SELECT 'a;b', 'it''s;'", "SELECT 2"],
            id="semicolon-in-string",
        ),
        pytest.param(
            "SELECT E'it\\'s; fine'; SELECT 2;",
            ["SELECT E'it\\'s; fine'", "SELECT 2"],
            id="escaped-quote-in-e-string",
        ),
        pytest.param(
            "SELECT E'\\\\'; SELECT ';';",
            ["SELECT E'\\\\'", "SELECT ';'"],
            id="escaped-backslash-in-e-string",
        ),
        pytest.param(
            "SELECT 'C:\\'; SELECT 'x;y';",
            ["SELECT 'C:\\'", "SELECT 'x;y'"],
            id="backslash-ends-standard-string",
        ),
        pytest.param(
            'CREATE TABLE "a;""b" (id int); SELECT 2;',
            ['CREATE TABLE "a;""b" (id int)', "SELECT 2"],
            id="semicolon-in-quoted-identifier",
        ),
        pytest.param(
            "SELECT 1 -- not; the end\n+ 1; /* nor; this */ SELECT 2;",
            ["SELECT 1 -- not; the end\n+ 1", "SELECT 2"],
            id="semicolon-in-comments",
        ),
        pytest.param(
            "/* outer /* inner; */ still; comment */ SELECT 1; SELECT 2;",
            ["SELECT 1", "SELECT 2"],
            id="nested-block-comment",
        ),
        pytest.param(
            "SELECT 5 # 3; SELECT 2;",
            ["SELECT 5 # 3", "SELECT 2"],
            id="hash-is-xor-not-comment",
        ),
        pytest.param(
            "BEGIN ISOLATION LEVEL SERIALIZABLE; CREATE TABLE a (id int); COMMIT;",
            ["BEGIN ISOLATION LEVEL SERIALIZABLE", "CREATE TABLE a (id int)", "COMMIT"],
            id="begin-with-transaction-mode",
        ),
        pytest.param(
            f"{SQL_STANDARD_FUNCTION};\nSELECT sign_label(1)\n",
            [SQL_STANDARD_FUNCTION, "SELECT sign_label(1)"],
            id="begin-atomic-body-with-case",
        ),
        pytest.param(
            "CREATE RULE r AS ON INSERT TO a DO ALSO (NOTIFY a; NOTIFY b); SELECT 2;",
            ["CREATE RULE r AS ON INSERT TO a DO ALSO (NOTIFY a; NOTIFY b)", "SELECT 2"],
            id="rule-with-several-actions",
        ),
        pytest.param(
            "SELECT $1, a$b FROM t$1; SELECT 2;",
            ["SELECT $1, a$b FROM t$1", "SELECT 2"],
            id="dollar-in-parameters-and-names",
        ),
    ],
)
def test_splits_at_top_level_semicolons(script: str, expected: list[str]) -> None:
    assert sqls(script) == expected


@pytest.mark.parametrize(
    "script",
    ["", "   \n\t\n", ";", ";;\n ; ;", "-- just a comment\n", "/* a */ ; -- b\n;"],
    ids=["empty", "blank", "lone-semicolon", "semicolons", "line-comment", "comments"],
)
def test_skips_empty_and_comment_only_statements(script: str) -> None:
    assert split_sql(script) == []


def test_statement_text_excludes_surrounding_comments() -> None:
    script = "-- leading\n/* block */ SELECT 1 /* inner */ + 1 -- trailing\n; -- after\n"

    assert sqls(script) == ["SELECT 1 /* inner */ + 1"]


SCHEMA = """\
-- accounts schema
-- (two comment lines, then a blank one)

CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    email text NOT NULL  -- no ; here
);
/* the index is built without
   blocking writes */
CREATE INDEX CONCURRENTLY accounts_email ON accounts (email);

  INSERT INTO accounts VALUES (1, 'a@example.com'); SELECT 1;
CREATE FUNCTION one() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    RETURN 1;
END $$;
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_reports_the_line_of_each_statements_first_token(newline: str) -> None:
    statements = split_sql(SCHEMA.replace("\n", newline), source="schema.sql")

    assert [(s.line, s.sql.split()[0]) for s in statements] == [
        (4, "CREATE"),
        (10, "CREATE"),
        (12, "INSERT"),
        (12, "SELECT"),
        (13, "CREATE"),
    ]
    assert {s.source for s in statements} == {"schema.sql"}


def test_keeps_crlf_inside_statements_but_not_around_them() -> None:
    statements = split_sql("SELECT 1,\r\n       2;\r\n\r\nSELECT 3;\r\n")

    assert [s.sql for s in statements] == ["SELECT 1,\r\n       2", "SELECT 3"]
    assert [s.line for s in statements] == [1, 4]


def test_source_defaults_to_string_label() -> None:
    assert split_sql("SELECT 1") == [
        Statement(sql="SELECT 1", source="<string>", line=1, transactional=True)
    ]


@pytest.mark.parametrize(
    ("sql", "transactional"),
    [
        ("CREATE INDEX CONCURRENTLY i ON t (a)", False),
        ("create unique index concurrently if not exists i on t (a)", False),
        ("-- build online\n/* really */ CREATE INDEX CONCURRENTLY i ON t (a)", False),
        ("DROP INDEX CONCURRENTLY IF EXISTS i", False),
        ("REINDEX INDEX CONCURRENTLY i", False),
        ("REINDEX (VERBOSE) TABLE CONCURRENTLY t", False),
        ("REINDEX SCHEMA public", False),
        ("REINDEX DATABASE app", False),
        ("VACUUM", False),
        ("vacuum (analyze) t", False),
        ("CREATE DATABASE app TEMPLATE template0", False),
        ("DROP DATABASE IF EXISTS app", False),
        ("ALTER SYSTEM SET work_mem = '64MB'", False),
        ("CREATE TABLESPACE fast LOCATION '/ssd'", False),
        ("DROP TABLESPACE fast", False),
        ('ALTER DATABASE "my app" SET TABLESPACE fast', False),
        ("CREATE INDEX i ON t (a)", True),
        ("CREATE INDEX concurrently_built ON t (a)", True),
        ("CREATE UNIQUE INDEX i ON t (a)", True),
        ("REINDEX TABLE t", True),
        ("REINDEX INDEX database_idx", True),
        ("ALTER TYPE mood ADD VALUE 'meh'", True),
        ("ALTER DATABASE app SET default_tablespace = fast", True),
        ("ANALYZE t", True),
        ("CREATE TABLE vacuum_log (id int)", True),
        ("SELECT 'VACUUM'", True),
        ("BEGIN", True),
    ],
)
def test_flags_statements_that_refuse_a_transaction_block(sql: str, transactional: bool) -> None:
    [statement] = split_sql(sql + ";")

    assert statement.transactional is transactional


def test_psql_meta_command_is_rejected_with_source_and_line() -> None:
    script = "CREATE TABLE a (id int);\n\n\\connect other\nCREATE TABLE b (id int);\n"

    with pytest.raises(SchemaSyntaxError, match=r"^schema\.sql:3: .*'\\\\connect'") as error:
        split_sql(script, source="schema.sql")

    assert (error.value.source, error.value.line) == ("schema.sql", 3)


def test_backslash_inside_quotes_is_not_a_meta_command() -> None:
    assert sqls("SELECT '\\connect', E'\\n', $$\\i$$;") == ["SELECT '\\connect', E'\\n', $$\\i$$"]


@pytest.mark.parametrize(
    ("script", "message", "line"),
    [
        ("SELECT 1;\nSELECT 'open;\nSELECT 2;", "unterminated quoted string", 2),
        ('SELECT 1;\n\nSELECT "open FROM t;', "unterminated quoted identifier", 3),
        ("SELECT 1;\nSELECT $fn$ body; SELECT 2;", "unterminated dollar-quoted string $fn$", 2),
        ("SELECT 1; /* open /* nested */ SELECT 2;", "unterminated /* comment", 1),
    ],
    ids=["string", "identifier", "dollar-quote", "nested-comment"],
)
def test_unterminated_quotes_are_rejected(script: str, message: str, line: int) -> None:
    with pytest.raises(SchemaSyntaxError) as error:
        split_sql(script, source="broken.sql")

    assert str(error.value) == f"broken.sql:{line}: {message}"
    assert isinstance(error.value, ValueError)
