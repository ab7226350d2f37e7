"""The SQL engine's pure parts: placeholders, scripts and parameter binding."""

from __future__ import annotations

import datetime
import decimal
import itertools

import pytest

from pytest_pgbudget import LoadError
from pytest_pgbudget.load.engine import Arrivals, Statement, binder, compile_work


@pytest.mark.parametrize(
    ("text", "sql", "names", "count"),
    [
        ("SELECT 1", b"SELECT 1", None, 0),
        ("SELECT %s, %s", b"SELECT $1, $2", None, 2),
        ("SELECT %b, %t", b"SELECT $1, $2", None, 2),
        ("SELECT %(a)s, %(b)s, %(a)s", b"SELECT $1, $2, $1", ("a", "b"), 2),
        ("SELECT '100%%', %s", b"SELECT '100%', $1", None, 1),
        ("SELECT 'é', %(x)s", "SELECT 'é', $1".encode(), ("x",), 1),
    ],
)
def test_placeholders_become_numbered_parameters(
    text: str, sql: bytes, names: tuple[str, ...] | None, count: int
) -> None:
    statement = Statement.parse(text)
    assert (statement.sql, statement.names, statement.count) == (sql, names, count)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "SELECT %d",
            r"only '%s', '%b', '%t' \(or '%\(name\)s'\) are allowed as placeholders, got '%d'",
        ),
        ("SELECT 100%", r"incomplete placeholder '%'"),
        ("SELECT %s, %(a)s", "positional and named placeholders mixed"),
        ("SELECT %(a)s, %s", "positional and named placeholders mixed"),
    ],
)
def test_bad_placeholders_are_refused(text: str, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        Statement.parse(text)


def test_a_script_needs_named_parameters() -> None:
    assert len(compile_work(["BEGIN", "UPDATE t SET n = %(n)s", "COMMIT"])) == 3
    with pytest.raises(
        LoadError, match=r"named parameters .* 'UPDATE t SET n = %s' has positional"
    ):
        compile_work(["BEGIN", "UPDATE t SET n = %s", "COMMIT"])
    # one statement may use either style
    assert compile_work("UPDATE t SET n = %s")[0].count == 1


@pytest.mark.parametrize("work", [[], "", ["SELECT 1", "  "], [1]])
def test_empty_work_is_refused(work: object) -> None:
    with pytest.raises(LoadError, match="SQL work must be a statement or a non-empty list"):
        compile_work(work)  # type: ignore[arg-type]


def test_positional_params_are_dumped_as_text() -> None:
    bind = binder(compile_work("SELECT %s, %s, %s, %s"), lambda i: (i, "x", None, 1.5), None)
    assert [bytes(v) if v is not None else None for v in bind(7)[0]] == [b"7", b"x", None, b"1.5"]


def test_named_values_are_dumped_once_and_picked_per_statement() -> None:
    statements = compile_work(
        [
            "BEGIN",
            "UPDATE a SET n = n - %(amount)s WHERE id = %(src)s",
            "UPDATE a SET n = n + %(amount)s WHERE id = %(dst)s",
            "COMMIT",
        ]
    )
    bind = binder(
        statements,
        lambda i: {"src": i, "dst": i + 1, "amount": decimal.Decimal("2.50"), "unused": object()},
        None,
    )
    begin, debit, credit, commit = bind(1)
    assert begin is None and commit is None
    assert [bytes(v) for v in debit] == [b"2.50", b"1"]  # type: ignore[union-attr]
    assert [bytes(v) for v in credit] == [b"2.50", b"2"]  # type: ignore[union-attr]


def test_constant_params_are_dumped_once() -> None:
    bind = binder(compile_work("SELECT %(day)s"), {"day": datetime.date(2026, 11, 25)}, None)
    assert bind(0) is bind(1)
    assert bytes(bind(5)[0][0]) == b"2026-11-25"  # type: ignore[index,arg-type]


@pytest.mark.parametrize(
    ("work", "params", "message"),
    [
        ("SELECT %s", None, r"1 positional placeholder\(s\): params must be a tuple or list"),
        ("SELECT %s", {"a": 1}, "params must be a tuple or list"),
        ("SELECT %s", "ab", "params must be a tuple or list"),
        ("SELECT %s, %s", (1,), r"has 2 placeholder\(s\) but 1 parameter\(s\) were given"),
        ("SELECT %(a)s", (1,), "has named placeholders: params must be a mapping"),
        (
            ["BEGIN", "SELECT %(a)s", "SELECT %(b)s"],
            {"a": 1},
            r"params have no 'b' for 'SELECT %\(b\)s' \(they have: a\)",
        ),
    ],
)
def test_params_that_do_not_fit_are_clear_errors(
    work: object, params: object, message: str
) -> None:
    with pytest.raises(LoadError, match=message):
        binder(compile_work(work), params, None)  # type: ignore[arg-type]
    with pytest.raises(LoadError, match=message):  # the same from a function, at its first call
        binder(compile_work(work), lambda i: params, None)(0)  # type: ignore[arg-type]


def test_no_params_needed() -> None:
    bind = binder(compile_work(["BEGIN", "SELECT 1", "COMMIT"]), None, None)
    assert bind(0) == [None, None, None]


def test_uniform_arrivals_are_evenly_spaced() -> None:
    offset = Arrivals(400.0).offsets(5)
    assert [offset(i) for i in range(5)] == [0, 2_500_000, 5_000_000, 7_500_000, 10_000_000]


def test_poisson_arrivals_keep_the_mean_rate_and_agree_across_processes() -> None:
    n = 20_000
    offset = Arrivals(1000.0, "poisson", seed=7).offsets(n)
    starts = [offset(i) for i in range(n)]
    assert starts[0] == 0 and all(a <= b for a, b in itertools.pairwise(starts))
    mean_gap_ms = starts[-1] / (n - 1) / 1e6
    assert 0.97 < mean_gap_ms < 1.03  # 1/rate
    gaps = sorted(b - a for a, b in itertools.pairwise(starts))
    # exponential gaps: the median is ln 2 of the mean, unlike evenly spaced ones
    assert 0.65 < gaps[len(gaps) // 2] / 1e6 / mean_gap_ms < 0.74
    again = Arrivals(1000.0, "poisson", seed=7).offsets(n)
    assert [again(i) for i in range(0, n, 997)] == starts[::997]  # same seed, same schedule


@pytest.mark.parametrize("value", ["fast", "C-loop", "0"])
def test_an_unknown_loop_choice_is_a_clear_error(monkeypatch, value: str) -> None:
    from pytest_pgbudget.load.cloop import LOOP_ENV, usable_c_loop

    monkeypatch.setenv(LOOP_ENV, value)
    with pytest.raises(LoadError, match=f"PGBUDGET_LOAD_LOOP must be 'c' .* Got '{value}'"):
        usable_c_loop([])


def test_the_loop_choice_is_read_at_each_run(monkeypatch) -> None:
    from pytest_pgbudget.load.cloop import LOOP_ENV, c_loop, usable_c_loop

    monkeypatch.setenv(LOOP_ENV, "python")
    assert usable_c_loop([]) is None
    monkeypatch.setenv(LOOP_ENV, "c")
    if c_loop()[0] is None:
        with pytest.raises(LoadError, match="PGBUDGET_LOAD_LOOP=c, but the C loop cannot run"):
            usable_c_loop([])
    else:
        assert usable_c_loop([]) is c_loop()[0]
