"""Budgets without a database: keyword parsing, checking recorded plans, failure messages.

The plans are the real PostgreSQL 15 and 18 plans recorded in ``tests/data/plans``
(see ``record.py`` there); statements are built from them as auto_explain would
report them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from pytest_pgbudget.budgets import (
    DEFAULT_SEQ_SCAN_MIN_ROWS,
    KEYWORDS,
    Budget,
    BudgetError,
    parse_budget,
)
from pytest_pgbudget.budgets.check import Violation, check, percentile
from pytest_pgbudget.budgets.report import format_violations
from pytest_pgbudget.budgets.spec import parse_ini_budget
from pytest_pgbudget.capture.statements import Statement
from pytest_pgbudget.plans import MARKER

PLANS = Path(__file__).resolve().parent.parent / "data" / "plans"
VERSIONS = (15, 18)


# --- helpers ----------------------------------------------------------------------


def load_plan(version: int, scenario: str) -> dict[str, Any]:
    """The element of a recorded plan document that holds ``"Plan"``."""
    document = json.loads((PLANS / f"pg{version}_{scenario}.json").read_text())
    element = document[0] if isinstance(document, list) else document
    assert "Plan" in element
    return element


def stmt(version: int, scenario: str, sql: str | None = None, ms: float = 1.0) -> Statement:
    plan = load_plan(version, scenario)
    text = sql if sql is not None else plan.get("Query Text", f"SELECT /* {scenario} */ 1")
    return Statement(sql=text, duration_ms=ms, plan=plan)


def timed(durations: Iterable[float], version: int = 15) -> list[Statement]:
    """Statements of the index scan plan with the given durations, distinct SQL each."""
    return [
        stmt(version, "index_scan", f"SELECT * FROM accounts WHERE email = 'u{i}'", ms)
        for i, ms in enumerate(durations)
    ]


def keywords(violations: list[Violation]) -> list[str]:
    return [v.keyword for v in violations]


def marked(violation: Violation) -> list[str]:
    return [line for line in violation.plan_lines() if line.startswith(MARKER)]


# --- parse_budget -----------------------------------------------------------------


VALID = {
    "max_ms": (50, 50.0),
    "p95_ms": (12.5, 12.5),
    "total_ms": (0, 0.0),
    "max_queries": (3, 3),
    "max_repeats": (1, 1),
    "no_seq_scan": (True, True),
    "seq_scan_min_rows": (10, 10),
    "require_index": (["idx_a", "idx_b"], ("idx_a", "idx_b")),
    "no_temp_spill": (True, True),
    "max_buffers": (100, 100),
    "load_p95_ms": (100, 100.0),
    "load_p99_ms": (250.5, 250.5),
    "min_throughput": (500, 500.0),
    "max_errors": (0, 0),
    "max_lock_wait_ms": (10, 10.0),
    "plan": ("capable", "capable"),
    "off": (True, True),
}


def test_valid_table_covers_every_keyword():
    assert set(VALID) == set(KEYWORDS)


@pytest.mark.parametrize("key", sorted(VALID))
def test_parse_budget_accepts_every_keyword(key):
    given, expected = VALID[key]
    budget, keys = parse_budget({key: given})
    assert keys == frozenset({key})
    assert getattr(budget, key) == expected
    assert type(getattr(budget, key)) is type(expected)
    # Everything not given keeps its default.
    for other in KEYWORDS:
        if other != key:
            assert getattr(budget, other) == getattr(Budget(), other)


def test_parse_budget_all_keywords_at_once():
    budget, keys = parse_budget({key: given for key, (given, _) in VALID.items()})
    assert keys == frozenset(KEYWORDS)
    for key, (_, expected) in VALID.items():
        assert getattr(budget, key) == expected


def test_parse_budget_nothing_is_the_default_budget():
    assert parse_budget({}) == (Budget(), frozenset())


def test_integer_valued_float_is_an_integer():
    budget, _ = parse_budget({"max_queries": 3.0})
    assert budget.max_queries == 3 and isinstance(budget.max_queries, int)


def test_latency_integer_becomes_float():
    budget, _ = parse_budget({"max_ms": 5})
    assert budget.max_ms == 5.0 and isinstance(budget.max_ms, float)


def test_unknown_keyword_lists_valid_keywords():
    with pytest.raises(BudgetError) as info:
        parse_budget({"max_query": 3})
    message = str(info.value)
    assert "unknown keyword 'max_query'" in message
    for key in KEYWORDS:
        assert key in message


def test_budget_error_is_a_value_error():
    assert issubclass(BudgetError, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"max_queries": "3"}, "max_queries must be an integer, e.g. max_queries=10; got '3'"),
        ({"max_queries": 2.5}, "max_queries must be an integer, e.g. max_queries=10; got 2.5"),
        ({"max_queries": True}, "max_queries must be an integer"),
        ({"max_ms": True}, "max_ms must be a number, e.g. max_ms=10; got True"),
        ({"max_ms": "5"}, "max_ms must be a number"),
        ({"max_ms": None}, "max_ms must be a number"),
        ({"max_ms": -1}, "max_ms must be zero or more; got -1"),
        ({"max_queries": -1}, "max_queries must be zero or more; got -1"),
        ({"max_buffers": -5}, "max_buffers must be zero or more"),
        ({"p95_ms": float("nan")}, "p95_ms must be zero or more"),
        ({"seq_scan_min_rows": 1.5}, "seq_scan_min_rows must be an integer"),
        ({"no_seq_scan": []}, "no_seq_scan must be a name or a list of names"),
        ({"no_seq_scan": [""]}, "no_seq_scan must be a name or a list of names"),
        ({"no_seq_scan": 1}, "no_seq_scan must be a name or a list of names"),
        (
            {"require_index": []},
            "require_index must be a name or a list of names, e.g. require_index=['idx_a']",
        ),
        ({"require_index": ["idx", 3]}, "require_index must be a name or a list of names"),
        ({"require_index": True}, "require_index must be a name or a list of names"),
        ({"plan": "sometimes"}, "plan must be 'actual' or 'capable'; got 'sometimes'"),
        ({"off": "yes"}, "off must be True or False; got 'yes'"),
        ({"no_temp_spill": 1}, "no_temp_spill must be True or False; got 1"),
    ],
)
def test_parse_budget_rejects_bad_values(kwargs, expected):
    with pytest.raises(BudgetError) as info:
        parse_budget(kwargs)
    assert expected in str(info.value)


def test_no_seq_scan_string_is_a_tuple_of_tables():
    budget, _ = parse_budget({"no_seq_scan": "x"})
    assert budget.no_seq_scan == ("x",)


def test_no_seq_scan_list_is_a_tuple():
    budget, _ = parse_budget({"no_seq_scan": ["accounts", "orders"]})
    assert budget.no_seq_scan == ("accounts", "orders")


def test_no_seq_scan_false_stays_a_flag():
    budget, keys = parse_budget({"no_seq_scan": False})
    assert budget.no_seq_scan is False and keys == {"no_seq_scan"}


def test_require_index_string_is_a_tuple():
    budget, _ = parse_budget({"require_index": "accounts_pkey"})
    assert budget.require_index == ("accounts_pkey",)


def test_plan_actual_accepted():
    assert parse_budget({"plan": "actual"})[0].plan == "actual"


# --- Budget.merged / Budget.empty -------------------------------------------------


def test_merged_takes_only_the_keys_the_closer_budget_sets():
    farther, far_keys = parse_budget({"max_queries": 10, "no_seq_scan": True, "max_ms": 100})
    closer, close_keys = parse_budget({"max_queries": 2, "require_index": "idx"})
    merged = Budget().merged(farther, far_keys).merged(closer, close_keys)
    assert merged.max_queries == 2  # closest wins
    assert merged.require_index == ("idx",)  # new key from the closer one
    assert merged.no_seq_scan is True  # not set by the closer one: kept
    assert merged.max_ms == 100.0


def test_merged_closer_can_reset_to_a_default_value():
    farther, _ = parse_budget({"no_seq_scan": True, "max_repeats": 3})
    closer, close_keys = parse_budget({"no_seq_scan": False})
    merged = farther.merged(closer, close_keys)
    assert merged.no_seq_scan is False
    assert merged.max_repeats == 3


def test_merged_ignores_values_of_unset_keys():
    # closer's max_queries is its default None, but it was not set: farther's value stays.
    farther = Budget(max_queries=5)
    closer = Budget(max_ms=1.0)
    assert farther.merged(closer, {"max_ms"}) == Budget(max_queries=5, max_ms=1.0)


def test_merged_returns_a_new_budget():
    base = Budget(max_queries=5)
    merged = base.merged(Budget(max_queries=1), {"max_queries"})
    assert base.max_queries == 5 and merged.max_queries == 1


@pytest.mark.parametrize(
    ("budget", "empty"),
    [
        (Budget(), True),
        (Budget(seq_scan_min_rows=5), True),  # no check is switched on by it alone
        (Budget(plan="capable"), True),
        (Budget(no_seq_scan=False), True),
        (Budget(off=True, max_queries=1, no_seq_scan=True), True),
        (Budget(max_queries=0), False),
        (Budget(no_seq_scan=True), False),
        (Budget(no_seq_scan=("accounts",)), False),
        (Budget(require_index=("idx",)), False),
        (Budget(max_ms=10.0), False),
        (Budget(no_temp_spill=True), False),
        (Budget(max_buffers=0), False),
    ],
)
def test_budget_empty(budget, empty):
    assert budget.empty is empty


# --- parse_ini_budget -------------------------------------------------------------


def test_parse_ini_budget_lines():
    budget, keys = parse_ini_budget(
        ["max_queries = 20", "no_seq_scan = True", "require_index = ['a','b']", "max_ms=12.5"]
    )
    assert keys == {"max_queries", "no_seq_scan", "require_index", "max_ms"}
    assert budget.max_queries == 20
    assert budget.no_seq_scan is True
    assert budget.require_index == ("a", "b")
    assert budget.max_ms == 12.5


def test_parse_ini_budget_empty():
    assert parse_ini_budget([]) == (Budget(), frozenset())


def test_parse_ini_budget_bad_literal():
    with pytest.raises(BudgetError) as info:
        parse_ini_budget(["max_queries = twenty"])
    assert str(info.value) == "max_queries: 'twenty' is not a value; use e.g. 10, True or ['idx_a']"


def test_parse_ini_budget_syntax_error_is_a_budget_error():
    with pytest.raises(BudgetError, match="require_index: \"\\['a'\" is not a value"):
        parse_ini_budget(["require_index = ['a'"])


def test_parse_ini_budget_missing_equals():
    with pytest.raises(BudgetError, match="expected 'keyword = value'"):
        parse_ini_budget(["max_queries 20"])


def test_parse_ini_budget_validates_like_the_marker():
    with pytest.raises(BudgetError, match="unknown keyword 'max_querys'"):
        parse_ini_budget(["max_querys = 2"])
    with pytest.raises(BudgetError, match="max_queries must be an integer"):
        parse_ini_budget(["max_queries = '2'"])


def test_parse_ini_budget_unhashable_literal_is_a_budget_error():
    with pytest.raises(BudgetError):
        parse_ini_budget(["require_index = {['a']}"])


# --- percentile -------------------------------------------------------------------


def test_percentile_fewer_than_20_values_is_the_maximum():
    assert percentile([3.0, 1.0, 9.0, 2.0], 0.95) == 9.0
    assert percentile([float(i) for i in range(1, 20)], 0.95) == 19.0


def test_percentile_nearest_rank_with_20_values():
    values = [float(i) for i in range(20, 0, -1)]  # unsorted input
    assert percentile(values, 0.95) == 19.0
    assert percentile(values, 0.5) == 10.0
    assert percentile(values, 1.0) == 20.0


def test_percentile_single_value_and_zero_fraction():
    assert percentile([4.0], 0.95) == 4.0
    assert percentile([5.0, 1.0], 0.0) == 1.0


# --- check: general ---------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_empty_budget_finds_nothing(version):
    statements = [
        stmt(version, name) for name in ("seq_scan_large", "external_sort", "hash_join_multibatch")
    ]
    assert check(Budget(), statements) == []


def test_no_statements_break_no_budget_except_nothing():
    budget = Budget(
        max_ms=0,
        p95_ms=0,
        total_ms=0,
        max_queries=0,
        max_repeats=0,
        no_seq_scan=True,
        no_temp_spill=True,
        max_buffers=0,
    )
    assert check(budget, []) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_off_disables_every_check(version):
    budget = Budget(
        max_ms=0,
        max_queries=0,
        no_seq_scan=True,
        no_temp_spill=True,
        max_buffers=0,
        require_index=("missing",),
        off=True,
    )
    statements = [stmt(version, "seq_scan_large"), stmt(version, "external_sort")]
    assert check(budget, statements) == []
    # The same budget without off breaks on every keyword.
    on = check(Budget(**{**budget.__dict__, "off": False}), statements)
    assert set(keywords(on)) == {
        "max_ms",
        "max_queries",
        "no_seq_scan",
        "no_temp_spill",
        "max_buffers",
        "require_index",
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_deterministic_violations_come_before_latency(version):
    budget = Budget(max_ms=0.5, max_queries=0, no_seq_scan=True, require_index=("missing",))
    violations = check(budget, [stmt(version, "seq_scan_large", ms=3.0)])
    assert keywords(violations) == ["max_queries", "no_seq_scan", "require_index", "max_ms"]
    assert [v.latency for v in violations] == [False, False, False, True]


# --- check: latency ---------------------------------------------------------------


def test_max_ms_passes_at_the_ceiling():
    assert check(Budget(max_ms=10), timed([2.0, 10.0])) == []


def test_max_ms_fails_on_the_slowest_statement():
    statements = timed([2.0, 12.0, 4.0])
    [violation] = check(Budget(max_ms=10), statements)
    assert violation.keyword == "max_ms"
    assert violation.headline == "slowest statement took 12.0 ms: budget max_ms=10"
    assert violation.statement is statements[1]
    assert violation.hint


def test_max_ms_sub_millisecond_format():
    [violation] = check(Budget(max_ms=0.1), timed([0.25]))
    assert violation.headline == "slowest statement took 0.250 ms: budget max_ms=0.1"


def test_p95_with_few_samples_is_the_max_and_says_so():
    statements = timed([1.0, 1.0, 1.0, 30.0])
    [violation] = check(Budget(p95_ms=20), statements)
    assert violation.keyword == "p95_ms"
    assert violation.headline == (
        "p95 of 4 statements is 30.0 ms (fewer than 20 samples: p95 is the maximum): "
        "budget p95_ms=20"
    )
    assert violation.statement is statements[3]


def test_p95_passes_when_max_is_under_with_few_samples():
    assert check(Budget(p95_ms=20), timed([1.0, 19.0, 20.0])) == []


def test_p95_with_20_samples_ignores_the_single_outlier():
    durations = [1.0] * 19 + [500.0]
    assert check(Budget(p95_ms=5), timed(durations)) == []
    # Two outliers in 20: the 19th value is an outlier, so p95 breaks; no few-samples note.
    [violation] = check(Budget(p95_ms=5), timed([1.0] * 18 + [400.0, 500.0]))
    assert violation.headline == "p95 of 20 statements is 400.0 ms: budget p95_ms=5"
    assert "fewer than 20" not in violation.headline


def test_total_ms_passes_and_fails():
    statements = timed([4.0, 4.0, 4.0])
    assert check(Budget(total_ms=12), statements) == []
    [violation] = check(Budget(total_ms=10), statements)
    assert violation.keyword == "total_ms"
    assert violation.headline == "3 statements took 12.0 ms in all: budget total_ms=10"
    assert violation.statement is None


def test_latency_scale_multiplies_every_ceiling():
    statements = timed([15.0, 15.0])
    budget = Budget(max_ms=10, p95_ms=10, total_ms=20)
    unscaled = check(budget, statements)
    assert keywords(unscaled) == ["max_ms", "p95_ms", "total_ms"]
    assert all("scaled" not in v.headline for v in unscaled)
    assert check(budget, statements, latency_scale=2.0) == []  # ceilings 20, 20, 40
    scaled = check(budget, statements, latency_scale=1.25)  # ceilings 12.5, 12.5, 25
    assert keywords(scaled) == ["max_ms", "p95_ms", "total_ms"]
    assert all(v.headline.endswith("(ceiling scaled x1.25 for this machine)") for v in scaled)


# --- check: max_queries / max_repeats ---------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_max_queries_passes_at_the_limit(version):
    statements = [stmt(version, "index_scan", f"SELECT {i}") for i in range(3)]
    assert check(Budget(max_queries=3), statements) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_max_queries_headline(version):
    statements = [stmt(version, "index_scan", f"SELECT * FROM t{i}") for i in range(5)]
    [violation] = check(Budget(max_queries=3), statements)
    assert violation.keyword == "max_queries"
    assert violation.headline == "Expected to perform 3 queries or less but 5 were done"
    assert violation.extra == tuple(f"{i + 1}. SELECT * FROM t{i}" for i in range(5))
    assert violation.statement is None


def test_max_queries_zero():
    [violation] = check(Budget(max_queries=0), timed([1.0]))
    assert violation.headline == "Expected to perform 0 queries or less but 1 were done"


@pytest.mark.parametrize("version", VERSIONS)
def test_max_repeats_groups_by_fingerprint(version):
    statements = [
        stmt(version, "index_scan", "SELECT * FROM accounts WHERE id = 1"),
        stmt(version, "index_scan", "SELECT * FROM accounts WHERE id = 2"),
        stmt(version, "index_scan", "select *  from accounts where id = 3"),
        stmt(version, "index_scan", "SELECT * FROM orders WHERE id = 1"),
    ]
    assert statements[0].fingerprint == statements[1].fingerprint == statements[2].fingerprint
    assert check(Budget(max_repeats=3), statements) == []
    [violation] = check(Budget(max_repeats=2), statements)
    assert violation.keyword == "max_repeats"
    assert violation.headline == "the same statement ran 3 times (N+1?): budget max_repeats=2"
    assert violation.statement is statements[0]
    assert "WHERE id = ANY" in (violation.hint or "")


def test_max_repeats_reports_every_repeated_statement():
    statements = [
        *timed([1.0]),
        *[stmt(15, "index_scan", f"SELECT * FROM accounts WHERE id = {i}") for i in range(4)],
        *[
            stmt(15, "nested_loop_join", f"SELECT * FROM orders WHERE account_id = {i}")
            for i in range(2)
        ],
    ]
    violations = check(Budget(max_repeats=1), statements)
    assert [v.headline for v in violations] == [
        "the same statement ran 4 times (N+1?): budget max_repeats=1",
        "the same statement ran 2 times (N+1?): budget max_repeats=1",
    ]
    assert "orders" in violations[1].statement.sql


def test_distinct_statements_are_not_repeats():
    statements = [stmt(15, "index_scan", f"SELECT * FROM t{i} WHERE id = 1") for i in range(5)]
    assert check(Budget(max_repeats=1), statements) == []


# --- check: no_seq_scan -----------------------------------------------------------


def test_default_seq_scan_min_rows():
    assert Budget().seq_scan_min_rows == DEFAULT_SEQ_SCAN_MIN_ROWS == 1000


@pytest.mark.parametrize("version", VERSIONS)
def test_no_seq_scan_allows_a_tiny_lookup_table(version):
    statement = stmt(version, "seq_scan_tiny_lookup", "SELECT * FROM countries WHERE code = 'SE'")
    assert statement.seq_scans and statement.seq_scans[0].rows < 1000
    assert check(Budget(no_seq_scan=True), [statement]) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_no_seq_scan_forbids_a_large_seq_scan(version):
    statement = stmt(version, "autoexplain_seq_scan_large")
    [violation] = check(Budget(no_seq_scan=True), [statement])
    assert violation.keyword == "no_seq_scan"
    assert violation.headline == (
        "Seq Scan on accounts (200000 rows): budget forbids seq scans over 1000 rows"
    )
    assert violation.statement is statement
    assert (
        violation.hint
        == "an index would serve the filter: CREATE INDEX ON accounts (status, score)"
    )
    lines = marked(violation)
    assert lines and lines[0].startswith(MARKER + "Seq Scan on accounts")


@pytest.mark.parametrize("version", VERSIONS)
def test_no_seq_scan_min_rows_can_be_raised_or_lowered(version):
    large = stmt(version, "seq_scan_large")
    tiny = stmt(version, "seq_scan_tiny_lookup")
    assert check(Budget(no_seq_scan=True, seq_scan_min_rows=200001), [large]) == []
    assert check(Budget(no_seq_scan=True, seq_scan_min_rows=9), [tiny]) == []
    violations = check(Budget(no_seq_scan=True, seq_scan_min_rows=5), [large, tiny])
    assert [v.statement for v in violations] == [large, tiny]
    assert (
        violations[1].headline
        == "Seq Scan on countries (8 rows): budget forbids seq scans over 5 rows"
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_no_seq_scan_estimated_plan_says_estimated(version):
    [violation] = check(Budget(no_seq_scan=True), [stmt(version, "seq_scan_estimated")])
    assert " estimated rows): budget forbids seq scans over 1000 rows" in violation.headline
    assert violation.headline.startswith("Seq Scan on accounts (")


@pytest.mark.parametrize("version", VERSIONS)
def test_no_seq_scan_reports_each_large_scan_in_a_join(version):
    statement = stmt(version, "hash_join_multibatch")
    violations = check(Budget(no_seq_scan=True), [statement])
    assert [v.headline.split(" (")[0] for v in violations] == [
        "Seq Scan on orders",
        "Seq Scan on accounts",
    ]
    # Each violation marks only its own scan.
    assert [len(marked(v)) > 0 for v in violations] == [True, True]
    assert all("orders" in line or "Buffers" in line for line in marked(violations[0]))
    assert not any("accounts" in line for line in marked(violations[0]))
    assert not any("orders" in line for line in marked(violations[1]))
    assert all("accounts" in line or "Buffers" in line for line in marked(violations[1]))


@pytest.mark.parametrize("version", VERSIONS)
def test_no_seq_scan_false_allows_everything(version):
    assert check(Budget(no_seq_scan=False), [stmt(version, "seq_scan_large")]) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_no_seq_scan_list_only_checks_the_listed_tables(version):
    join = stmt(version, "hash_join_multibatch")
    [violation] = check(Budget(no_seq_scan=("orders",)), [join])
    assert (
        violation.headline == "Seq Scan on orders (300000 rows): budget forbids seq scans on orders"
    )
    assert check(Budget(no_seq_scan=("countries",)), [join]) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_no_seq_scan_list_matches_schema_qualified_scans(version):
    parallel = stmt(version, "parallel_seq_scan")
    assert parallel.seq_scans[0].relation == "public.accounts"
    for tables in (("accounts",), ("public.accounts",)):
        [violation] = check(Budget(no_seq_scan=tables), [parallel])
        assert violation.headline.startswith("Seq Scan on public.accounts (")
        assert violation.headline.endswith(f"budget forbids seq scans on {tables[0]}")
        assert any("Parallel Seq Scan on public.accounts" in line for line in marked(violation))
    assert check(Budget(no_seq_scan=("other.accounts",)), [parallel]) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_no_seq_scan_list_applies_whatever_the_table_size(version):
    tiny = stmt(version, "seq_scan_tiny_lookup")
    [violation] = check(Budget(no_seq_scan=("countries", "orders")), [tiny])
    assert (
        violation.headline
        == "Seq Scan on countries (8 rows): budget forbids seq scans on countries, orders"
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_no_seq_scan_passes_on_index_plans(version):
    statements = [
        stmt(version, name)
        for name in (
            "index_scan",
            "index_only_scan",
            "bitmap_index_scan",
            "nested_loop_join",
            "update_with_index",
        )
    ]
    assert check(Budget(no_seq_scan=True), statements) == []


# --- check: require_index ---------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("scenario", "index"),
    [
        ("index_scan", "accounts_email_idx"),
        ("index_only_scan", "accounts_pkey"),
        ("bitmap_index_scan", "accounts_email_idx"),
        ("bitmap_index_scan", "accounts_pkey"),
        ("fulltext_gin", "accounts_bio_tsv_idx"),
        ("gin_jsonb_containment", "accounts_profile_idx"),
        ("autoexplain_nested_loop_join", "orders_account_id_idx"),
        ("subplan_initplan", "orders_account_id_idx"),  # an Index Only Scan inside a SubPlan
    ],
)
def test_require_index_counts_every_index_scan_kind(version, scenario, index):
    assert check(Budget(require_index=(index,)), [stmt(version, scenario)]) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_require_index_node_types_of_the_recorded_plans(version):
    from pytest_pgbudget.plans import iter_nodes

    types = {
        name: {n["Node Type"] for n in iter_nodes(load_plan(version, name))}
        for name in ("index_scan", "index_only_scan", "bitmap_index_scan")
    }
    assert "Index Scan" in types["index_scan"]
    assert "Index Only Scan" in types["index_only_scan"]
    assert "Bitmap Index Scan" in types["bitmap_index_scan"]


@pytest.mark.parametrize("version", VERSIONS)
def test_require_index_any_statement_may_use_it(version):
    statements = [stmt(version, "seq_scan_large"), stmt(version, "index_only_scan")]
    assert check(Budget(require_index=("accounts_pkey",)), statements) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_require_index_fails_when_no_plan_used_it(version):
    statements = [
        stmt(version, "seq_scan_large", "SELECT 1"),
        stmt(version, "index_scan", "SELECT 2"),
    ]
    violations = check(
        Budget(require_index=("accounts_status_idx", "accounts_email_idx", "nope")), statements
    )
    assert [v.headline for v in violations] == [
        "no plan used index accounts_status_idx (indexes used: accounts_email_idx)",
        "no plan used index nope (indexes used: accounts_email_idx)",
    ]
    assert violations[0].extra == ("SELECT 1", "SELECT 2")
    assert "plan='capable'" in (violations[0].hint or "")


@pytest.mark.parametrize("version", VERSIONS)
def test_require_index_none_used(version):
    [violation] = check(Budget(require_index=("idx",)), [stmt(version, "seq_scan_large")])
    assert violation.headline == "no plan used index idx (indexes used: none)"


class FakeCapability:
    """Pretends to re-plan with seq scans off: a fixed answer per SQL text."""

    def __init__(self, answers: dict[str, frozenset[str]]) -> None:
        self.answers = answers
        self.calls: list[Statement] = []

    def __call__(self, statement: Statement) -> frozenset[str]:
        self.calls.append(statement)
        return self.answers.get(statement.sql, frozenset())


@pytest.mark.parametrize("version", VERSIONS)
def test_require_index_capable_passes_when_the_index_can_serve(version):
    statement = stmt(version, "seq_scan_large", "SELECT id FROM accounts WHERE status = $1")
    capable = FakeCapability({statement.sql: frozenset({"accounts_status_idx"})})
    budget = Budget(require_index=("accounts_status_idx",), plan="capable")
    assert check(budget, [statement], capable=capable) == []
    assert capable.calls == [statement]
    # plan='actual' looks at the real plan only, which used no index.
    [violation] = check(
        Budget(require_index=("accounts_status_idx",)), [statement], capable=capable
    )
    assert violation.headline.startswith("no plan used index accounts_status_idx")
    assert len(capable.calls) == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_require_index_capable_fails_when_no_statement_can_use_it(version):
    statements = [
        stmt(version, "seq_scan_large", "SELECT a"),
        stmt(version, "seq_scan_tiny_lookup", "SELECT b"),
    ]
    capable = FakeCapability(
        {"SELECT a": frozenset({"accounts_pkey"}), "SELECT b": frozenset({"countries_pkey"})}
    )
    [violation] = check(
        Budget(require_index=("accounts_status_idx",), plan="capable"), statements, capable=capable
    )
    assert violation.keyword == "require_index"
    assert violation.headline == (
        "no captured statement can use index accounts_status_idx "
        "(indexes used: accounts_pkey, countries_pkey)"
    )
    assert "check the index exists" in (violation.hint or "")
    assert capable.calls == statements


def test_capable_is_not_consulted_without_require_index():
    capable = FakeCapability({})
    assert (
        check(Budget(plan="capable", no_seq_scan=True), [stmt(15, "index_scan")], capable=capable)
        == []
    )
    assert capable.calls == []


@pytest.mark.parametrize("version", VERSIONS)
def test_require_index_capable_without_a_capability_uses_actual_plans(version):
    statement = stmt(version, "index_scan")
    assert check(Budget(require_index=("accounts_email_idx",), plan="capable"), [statement]) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_require_index_capable_counts_indexes_actually_used(version):
    statement = stmt(version, "index_scan")
    capable = FakeCapability({})  # re-plan failed
    assert (
        check(
            Budget(require_index=("accounts_email_idx",), plan="capable"),
            [statement],
            capable=capable,
        )
        == []
    )


# --- check: no_temp_spill ---------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("scenario", ["external_sort", "autoexplain_external_sort"])
def test_no_temp_spill_external_sort(version, scenario):
    statement = stmt(version, scenario)
    [violation] = check(Budget(no_temp_spill=True), [statement])
    assert violation.keyword == "no_temp_spill"
    assert violation.headline == (
        "Sort (external merge, 8288kB) spilled to disk (external sort): budget forbids temp spills"
    )
    assert "work_mem" in (violation.hint or "")
    assert violation.extra and "external merge" in violation.extra[0]
    lines = marked(violation)
    assert lines[0].startswith(MARKER + "Sort  (actual rows=200000")
    assert not any("Seq Scan" in line for line in lines)


@pytest.mark.parametrize("version", VERSIONS)
def test_no_temp_spill_multi_batch_hash(version):
    statement = stmt(version, "hash_join_multibatch")
    [violation] = check(Budget(no_temp_spill=True), [statement])
    assert violation.headline.startswith("Hash (")
    assert violation.headline.endswith(
        " batches) spilled to disk (multi-batch hash): budget forbids temp spills"
    )
    lines = marked(violation)
    assert lines[0].startswith(MARKER) and "->  Hash  (actual rows=200000" in lines[0]
    assert not any("Hash Join" in line or "Seq Scan" in line for line in lines)


@pytest.mark.parametrize("version", VERSIONS)
def test_no_temp_spill_hash_aggregate_and_cte(version):
    violations = check(
        Budget(no_temp_spill=True), [stmt(version, "hashagg_spill"), stmt(version, "cte_spill")]
    )
    assert [v.headline for v in violations] == [
        "HashAggregate (85 batches) spilled to disk (temp file): budget forbids temp spills",
        "CTE Scan on o spilled to disk (temp file): budget forbids temp spills",
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_no_temp_spill_passes_in_memory(version):
    statements = [
        stmt(version, name) for name in ("seq_scan_large", "index_scan", "nested_loop_join")
    ]
    assert check(Budget(no_temp_spill=True), statements) == []
    assert check(Budget(no_temp_spill=False), [stmt(version, "external_sort")]) == []


def test_no_temp_spill_marks_only_the_spilling_node():
    # A spilling HashAggregate above an in-memory hash join (recorded nodes, recombined).
    aggregate = copy.deepcopy(load_plan(15, "hashagg_spill"))
    join = copy.deepcopy(load_plan(15, "hash_join_multibatch")["Plan"])
    hash_node = join["Plans"][1]
    assert hash_node["Node Type"] == "Hash"
    hash_node["Hash Batches"] = hash_node["Original Hash Batches"] = 1
    aggregate["Plan"]["Plans"] = [join]
    [violation] = check(Budget(no_temp_spill=True), [Statement("SELECT 1", 1.0, aggregate)])
    assert violation.headline.startswith("HashAggregate")
    assert not any("->  Hash " in line for line in marked(violation))


# --- check: max_buffers -----------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_max_buffers(version):
    statement = stmt(version, "seq_scan_large")
    assert statement.buffers == 4756
    assert check(Budget(max_buffers=4756), [statement]) == []
    [violation] = check(Budget(max_buffers=100), [statement])
    assert violation.keyword == "max_buffers"
    assert violation.headline == (
        "statement touched 4756 shared buffers (hit 4756, read 0): budget max_buffers=100"
    )
    assert violation.statement is statement
    assert violation.hint


@pytest.mark.parametrize("version", VERSIONS)
def test_max_buffers_counts_reads_and_hits_per_statement(version):
    index = stmt(version, "index_scan")  # hit 1 read 3
    assert index.buffers == 4
    assert check(Budget(max_buffers=4), [index, index]) == []  # per statement, not summed
    [violation] = check(Budget(max_buffers=3), [index])
    assert "(hit 1, read 3)" in violation.headline


# --- format_violations ------------------------------------------------------------


def _several(version: int) -> tuple[list[Violation], list[Statement]]:
    statements = [
        stmt(version, "autoexplain_seq_scan_large", ms=2.0),
        stmt(version, "index_scan", "SELECT * FROM accounts WHERE email = $1", ms=1.0),
        stmt(version, "index_scan", "SELECT * FROM accounts WHERE email = $1", ms=1.0),
    ]
    budget = Budget(max_queries=2, no_seq_scan=True, max_buffers=1000)
    return check(budget, statements), statements


@pytest.mark.parametrize("version", VERSIONS)
def test_format_reports_all_violations_numbered(version):
    violations, statements = _several(version)
    assert keywords(violations) == ["max_queries", "no_seq_scan", "max_buffers"]
    text = format_violations("test_listing", violations, statements)
    lines = text.splitlines()
    assert lines[0] == "3 pgbudget violations in test_listing:"
    for number, violation in enumerate(violations, 1):
        assert f"[{number}] {violation.headline}" in lines
    assert (
        lines.index("[1] " + violations[0].headline)
        < lines.index("[2] " + violations[1].headline)
        < lines.index("[3] " + violations[2].headline)
    )
    assert "    (add -v to list the queries)" in lines
    assert (
        "    statement: SELECT id, email FROM accounts WHERE status = 'suspended' AND score > 90"
        in lines
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_format_marks_the_seq_scan_plan_line(version):
    violations, statements = _several(version)
    text = format_violations("t", violations, statements)
    seq_block = text.split("[2] ")[1].split("[3] ")[0]
    assert "    plan:" in seq_block
    assert (
        f"      {MARKER}Seq Scan on accounts  (actual rows=4000 loops=1)" in seq_block.splitlines()
    )
    # The max_buffers violation shows the same plan without a marker.
    buffers_block = text.split("[3] ")[1]
    assert MARKER not in buffers_block
    assert "Seq Scan on accounts" in buffers_block


@pytest.mark.parametrize("version", VERSIONS)
def test_format_has_hint_lines(version):
    violations, statements = _several(version)
    lines = format_violations("t", violations, statements).splitlines()
    hints = [line for line in lines if line.startswith("    hint: ")]
    assert (
        "    hint: an index would serve the filter: CREATE INDEX ON accounts (status, score)"
        in hints
    )
    assert any("buffers count pages read" in line for line in hints)
    assert len(hints) == 2  # max_queries has no hint


@pytest.mark.parametrize("version", VERSIONS)
def test_format_single_violation_is_its_headline(version):
    statement = stmt(version, "seq_scan_large", "SELECT * FROM accounts")
    violations = check(Budget(no_seq_scan=True), [statement])
    lines = format_violations("t", violations, [statement]).splitlines()
    assert lines[0] == "Seq Scan on accounts (200000 rows): budget forbids seq scans over 1000 rows"
    assert not any(line.startswith("[1]") for line in lines)
    assert "    statement: SELECT * FROM accounts" in lines


@pytest.mark.parametrize("version", VERSIONS)
def test_format_verbose_lists_every_statement_and_query(version):
    violations, statements = _several(version)
    text = format_violations("t", violations, statements, verbose=True)
    lines = text.splitlines()
    assert "all 3 captured statements:" in lines
    tail = lines[lines.index("all 3 captured statements:") + 1 :]
    assert len(tail) == 3
    for line, statement in zip(tail, statements, strict=True):
        assert line.endswith(statement.short_sql(160))
        assert f"{statement.buffers} buf" in line
    # max_queries lists the queries instead of pointing at -v.
    assert "(add -v to list the queries)" not in text
    assert (
        "    1. SELECT id, email FROM accounts WHERE status = 'suspended' AND score > 90" in lines
    )
    assert "    3. SELECT * FROM accounts WHERE email = $1" in lines
    # Non-verbose output lists no statements.
    assert "captured statements" not in format_violations("t", violations, statements)


@pytest.mark.parametrize("version", VERSIONS)
def test_format_long_plans_are_cut_around_the_mark_unless_verbose(version):
    statement = stmt(version, "subplan_initplan")
    violations = check(Budget(no_seq_scan=True), [statement])
    full = violations[0].plan_lines()
    assert len(full) > 12
    short = format_violations("t", violations, [statement]).splitlines()
    verbose = format_violations("t", violations, [statement], verbose=True).splitlines()
    assert "         ..." in short
    assert any(
        line.startswith(f"      {MARKER}") and "Seq Scan on accounts" in line for line in short
    )
    assert all(f"      {line}" in verbose for line in full)
    assert "         ..." not in verbose


def test_format_latency_only_note():
    statements = timed([30.0, 2.0])
    latency = check(Budget(max_ms=10, total_ms=5), statements)
    text = format_violations("t", latency, statements)
    assert "(latency only: timings vary on shared machines; max_buffers is deterministic)" in text
    mixed = check(Budget(max_ms=10, max_queries=1), statements)
    assert "latency only" not in format_violations("t", mixed, statements)


def test_format_truncates_long_extra_unless_verbose():
    statements = [stmt(15, "seq_scan_large", f"SELECT {i}") for i in range(12)]
    violations = check(Budget(require_index=("idx",)), statements)
    assert len(violations[0].extra) == 10  # require_index shows the first ten statements
    text = format_violations("t", violations, statements)
    assert "    SELECT 9" in text.splitlines() and "    SELECT 10" not in text.splitlines()
