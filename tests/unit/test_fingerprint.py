"""Unit tests for statement normalization and fingerprints."""

from __future__ import annotations

import re

import pytest

from pytest_pgbudget.capture.fingerprint import fingerprint, normalize

SAME_SHAPE = {
    "select * from t where id = ?": [
        "SELECT * FROM t WHERE id = 1",
        "select *  from t where id=2",
        "SELECT * FROM t WHERE id = $1",
        "SELECT * FROM t WHERE id = %s",
        "SELECT * FROM t WHERE id = %(id)s",
        "SELECT * FROM t WHERE id = :id",
        "SELECT * FROM t WHERE id = ?",
        "SELECT * FROM t WHERE id = -42;",
        "SELECT * FROM t WHERE id=-1.5e3",
        "SELECT *\n  FROM t\n WHERE id = 'abc'  -- by key\n;",
        "/* app=web */ SELECT * FROM T WHERE ID = E'it\\'s';;",
        'SELECT * FROM "t" WHERE "id" = $$dollar$$',
    ],
    "select id from t where id in (?, ...)": [
        "SELECT id FROM t WHERE id IN (1)",
        "SELECT id FROM t WHERE id IN (1, 2, 3)",
        "SELECT id FROM t WHERE id IN ($1, $2)",
        "SELECT id FROM t WHERE id IN (%s, %s, %s, %s)",
        "SELECT id FROM t WHERE id IN ('a', 'b')",
        "SELECT id FROM t WHERE id IN (-1, +2)",
    ],
    "insert into t(a, b) values (?, ?)": [
        "INSERT INTO t (a, b) VALUES (1, 'x')",
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')",
        "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)",
        "insert into t(a,b) values(%(a)s,%(b)s)",
    ],
    "insert into t(a, b) values (?::varchar, ?::integer) returning id": [
        "INSERT INTO t (a, b) VALUES ($1::VARCHAR, $2::INTEGER) RETURNING id",
        "INSERT INTO t (a, b) VALUES ($1::VARCHAR, $2::INTEGER), ($3::VARCHAR, $4::INTEGER)"
        " RETURNING id",
    ],
    "select * from t where tags && array[?, ...]": [
        "SELECT * FROM t WHERE tags && ARRAY['a']",
        "SELECT * FROM t WHERE tags && ARRAY['a', 'b', 'c']",
    ],
    "select * from t where (a, b) in ((?, ?))": [
        "SELECT * FROM t WHERE (a, b) IN ((1, 2))",
        "SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4), (5, 6))",
    ],
}


@pytest.mark.parametrize(
    ("sql", "expected"),
    [(sql, shape) for shape, sqls in SAME_SHAPE.items() for sql in sqls],
)
def test_statements_of_one_shape_normalize_alike(sql: str, expected: str) -> None:
    assert normalize(sql) == expected


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param("SELECT '{\"a\": 1}'::jsonb", "select ?::jsonb", id="cast-keeps-type"),
        pytest.param("SELECT CAST('1' AS int)", "select cast(? as int)", id="cast-function"),
        pytest.param("SELECT now() - interval '1 day'", "select now() - interval ?", id="typed"),
        pytest.param("SELECT B'0101', X'ff', U&'\\0061', N'n'", "select ?, ?, ?, ?", id="prefixed"),
        pytest.param("SELECT 0xff, 1_000, .5, 1e-3", "select ?, ?, ?, ?", id="numbers"),
        pytest.param("SELECT $tag$ a ' b $$ c $tag$", "select ?", id="dollar-quote-with-tag"),
        pytest.param("SELECT 'it''s'", "select ?", id="doubled-quote"),
        pytest.param("SELECT 'C:\\', 2", "select ?, ?", id="backslash-ends-string"),
        pytest.param(
            "SELECT a FROM t WHERE b IS NULL", "select a from t where b is null", id="null"
        ),
        pytest.param("SELECT a WHERE b = TRUE", "select a where b = true", id="boolean-kept"),
        pytest.param('SELECT "Name", "name", "x""y"', 'select "Name", name, "x""y"', id="quoted"),
        pytest.param(
            'INSERT INTO "values" ("select") VALUES (1)',
            'insert into "values"("select") values (?)',
            id="quoted-keywords-stay-quoted",
        ),
        pytest.param("SELECT Été FROM T", "select Été from t", id="ascii-only-folding"),
        pytest.param("SELECT t.a::text[] FROM s.t", "select t.a::text[] from s.t", id="qualified"),
        pytest.param("SELECT x - 1, -1, y*-2", "select x - ?, ?, y * ?", id="signs"),
        pytest.param("SELECT CASE WHEN x THEN -1 END", "select case when x then ? end", id="then"),
        pytest.param("SELECT a<=b, a!=b, a<>-1", "select a <= b, a != b, a <> ?", id="operators"),
        pytest.param(
            "SELECT d ? 'k', d ?| array['k'], d #>> '{a}'",
            "select d ? ?, d ?| array[?, ...], d #>> ?",
            id="jsonb",
        ),
        pytest.param("SELECT a % 2, a %s", "select a % ?, a ?", id="modulo-and-param"),
        pytest.param("SELECT 1 /* a /* nested */ b */ + 2", "select ? + ?", id="nested-comment"),
        pytest.param(
            "SELECT count(*) FROM t GROUP BY 1", "select count(*) from t group by ?", id="func"
        ),
        pytest.param(
            "SELECT a FROM t WHERE b IN (SELECT c FROM u)",
            "select a from t where b in (select c from u)",
            id="subquery",
        ),
        pytest.param(
            "SELECT a FROM t WHERE b = ANY(%s)", "select a from t where b = any (?)", id="any"
        ),
        pytest.param("SELECT 1; SELECT 2;", "select ?; select ?", id="two-statements"),
    ],
)
def test_normalized_text(sql: str, expected: str) -> None:
    assert normalize(sql) == expected


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ('SELECT * FROM "Users"', "SELECT * FROM users"),
        ("SELECT * FROM t WHERE a = TRUE", "SELECT * FROM t WHERE a = FALSE"),
        ("SELECT * FROM t WHERE a IS NULL", "SELECT * FROM t WHERE a = 1"),
        ("SELECT '{}'::jsonb", "SELECT '{}'::json"),
        ("SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE b = 1"),
        ("SELECT a FROM t WHERE x - 1 > 0", "SELECT a FROM t WHERE x > 0"),
        ("INSERT INTO t VALUES (1, 2)", "INSERT INTO t VALUES (1, 2, 3)"),
        ("SELECT * FROM t WHERE a IN (1, 2)", "SELECT * FROM t WHERE a = ANY(ARRAY[1, 2])"),
        ("SELECT * FROM t ORDER BY a LIMIT 1", "SELECT * FROM t ORDER BY b LIMIT 1"),
    ],
)
def test_different_shapes_get_different_fingerprints(first: str, second: str) -> None:
    assert normalize(first) != normalize(second)
    assert fingerprint(first) != fingerprint(second)


def test_fingerprint_is_short_hex_and_shared_by_one_shape() -> None:
    ids = {fingerprint(sql) for sql in SAME_SHAPE["select * from t where id = ?"]}

    assert len(ids) == 1
    assert re.fullmatch(r"[0-9a-f]{16}", ids.pop())


def test_fingerprint_is_stable_across_runs_and_versions() -> None:
    assert fingerprint("SELECT * FROM t WHERE id = 1") == "2074cf2f5ec6514f"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 'open", "select ?"),
        ("SELECT $x$ open", "select ?"),
        ('SELECT "open', 'select "open'),
        ("SELECT 1 /* open", "select ?"),
        ("SELECT a @@@ b {", "select a @@@ b {"),
        ("", ""),
        (" ;\n", ""),
    ],
)
def test_malformed_sql_still_normalizes(sql: str, expected: str) -> None:
    assert normalize(sql) == expected
