"""Pure logic of baselines and session health: rules, plan diffs, comparisons, ratios."""

from __future__ import annotations

import pytest

from pytest_pgbudget.baseline import RuleError, compare_entries, parse_rules, plan_diff
from pytest_pgbudget.baseline.compare import DEFAULT_RULES, Rule, format_regressions
from pytest_pgbudget.health import Health, LockWait, Thresholds, lock_wait


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("queries:+0", (Rule("queries", 0.0, False),)),
        ("buffers:20%", (Rule("buffers", 20.0, True),)),
        ("plan:changed", (Rule("plan"),)),
        ("p95_ms:100%, temp:+3", (Rule("p95_ms", 100.0, True), Rule("temp", 3.0, False))),
        ("rows:2.5%", (Rule("rows", 2.5, True),)),
        ("", ()),
    ],
)
def test_parse_rules(text: str, expected: tuple[Rule, ...]) -> None:
    assert parse_rules(text) == expected


def test_default_rules_are_deterministic() -> None:
    assert {rule.metric for rule in parse_rules(DEFAULT_RULES)} == {"queries", "plan", "buffers"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("querys:+0", "unknown metric 'querys'"),
        ("buffers:lots", "cannot parse 'buffers:lots'"),
        ("plan:20%", "only plan takes 'changed'"),
        ("buffers:changed", "only plan takes 'changed'"),
        ("queries", "cannot parse 'queries'"),
    ],
)
def test_bad_rules_name_the_part(text: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rules(text)


@pytest.mark.parametrize(
    ("rule", "before", "after", "exceeded"),
    [
        (Rule("queries", 0), 3, 3, False),
        (Rule("queries", 0), 3, 4, True),
        (Rule("queries", 2), 3, 5, False),
        (Rule("buffers", 20, True), 100, 120, False),
        (Rule("buffers", 20, True), 100, 121, True),
        (Rule("buffers", 20, True), 0, 1, True),
        (Rule("buffers", 20, True), 100, 10, False),
    ],
)
def test_rule_thresholds(rule: Rule, before: float, after: float, exceeded: bool) -> None:
    assert rule.exceeded(before, after) is exceeded


def test_plan_diff_pairs_nodes_by_relation() -> None:
    before = ["Limit", "Index Scan using idx_workflows_name on workflows"]
    after = ["Limit", "Seq Scan on workflows"]
    assert plan_diff(before, after) == [
        "Index Scan using idx_workflows_name on workflows became Seq Scan on workflows"
    ]


def test_plan_diff_reports_new_and_gone_nodes() -> None:
    assert plan_diff(["Hash Join", "Seq Scan on a", "Hash"], ["Nested Loop", "Seq Scan on a"]) == [
        "Hash Join is gone",
        "Hash is gone",
        "Nested Loop is new",
    ]


def _entry(calls: int, shape: list[str], buffers: int, p95: float = 1.0) -> dict[str, object]:
    return {
        "queries": calls,
        "latency": {"p95_ms": p95, "max_ms": p95, "total_ms": p95 * calls},
        "statements": {
            "fp1": {
                "sql": "SELECT * FROM t WHERE id = $1",
                "calls": calls,
                "shapes": [shape],
                "buffers": buffers,
                "rows": calls,
                "temp_blocks": 0,
            }
        },
    }


def test_same_entry_has_no_changes() -> None:
    entry = _entry(1, ["Index Scan using t_pkey on t"], 3)
    assert compare_entries(entry, entry, parse_rules(DEFAULT_RULES)) == []


def test_regressions_fail_and_format() -> None:
    before = _entry(1, ["Index Scan using t_pkey on t"], 3)
    after = _entry(3, ["Seq Scan on t"], 300)
    changes = compare_entries(before, after, parse_rules(DEFAULT_RULES))
    assert [(c.metric, c.failed) for c in changes] == [
        ("queries", True),
        ("plan", True),
        ("buffers", True),
    ]
    text = format_regressions("t.py::test", "base.json", changes)
    assert "baseline regression (3) against base.json:" in text
    assert "added 2x (1 -> 3): SELECT * FROM t WHERE id = $1  [fp1]" in text
    assert "Index Scan using t_pkey on t became Seq Scan on t" in text
    assert (
        "buffers of SELECT * FROM t WHERE id = $1: 3 -> 300 (+9900%, allowed buffers:20%)" in text
    )


def test_timing_changes_fail_only_under_timing_rules() -> None:
    before = _entry(1, ["Seq Scan on t"], 3, p95=1.0)
    after = _entry(1, ["Seq Scan on t"], 3, p95=50.0)
    assert compare_entries(before, after, parse_rules(DEFAULT_RULES)) == []
    (change,) = compare_entries(before, after, parse_rules("p95_ms:100%"))
    assert change.metric == "p95_ms" and change.failed


def test_new_and_gone_statements_are_reported_not_failed() -> None:
    before = _entry(1, ["Seq Scan on t"], 3)
    after = {**before, "statements": {"fp2": {**before["statements"]["fp1"], "sql": "SELECT 2"}}}
    changes = compare_entries(before, after, parse_rules("plan:changed,buffers:20%"))
    assert {c.metric: c.failed for c in changes} == {"queries": False, "new": False, "gone": False}


def test_lock_wait_records() -> None:
    record = {
        "message": "process 42 acquired ShareLock on transaction 7 after 123.456 ms",
        "dbname": "db",
        "statement": "UPDATE t SET x = 1",
        "application_name": "app",
    }
    assert lock_wait(record) == LockWait(
        123.456, "ShareLock on transaction 7", "db", "UPDATE t SET x = 1", "app"
    )
    assert lock_wait({"message": "duration: 1.0 ms  plan:\n{}"}) is None
    still = {
        "message": "process 42 still waiting for ShareLock on transaction 7 after 10.041 ms",
        "detail": "Processes holding the lock: 40, 41. Wait queue: 42.",
        "dbname": "db",
    }
    assert lock_wait(still) == LockWait(
        10.041, "ShareLock on transaction 7", "db", "", "", (40, 41)
    )


def test_health_ratios_exclude_cold_reads_and_judge_with_enough_accesses() -> None:
    health = Health(
        heap_hit=9000, heap_read=1500, heap_cold=500, idx_hit=50, idx_read=10, idx_cold=10
    )
    ratio, accesses = health.cache_hit_ratio()
    assert accesses == 10000 and ratio == pytest.approx(90.0)
    breaches, lines = health.evaluate(Thresholds())
    assert breaches == [
        "buffer cache hit ratio 90.00% over 10000 warm buffer accesses (target > 95%)"
    ]
    assert "index hit ratio: not judged, only 50 warm buffer accesses" in lines


def test_health_lock_waits_of_loads_are_left_to_load_budgets() -> None:
    health = Health()
    health.add_lock_waits(
        [
            LockWait(50.0, "lock", "db", "UPDATE a", "pytest-pgbudget-load"),
            LockWait(12.0, "lock", "db", "UPDATE b", "myapp"),
        ]
    )
    breaches, _ = health.evaluate(Thresholds())
    assert breaches == ["lock wait of 12.0 ms for lock (target < 10 ms): UPDATE b"]


def test_unused_indexes_report_or_fail() -> None:
    health = Health()
    health.add_schema_indexes([("a_pkey", "a"), ("a_name", "a")])
    health.add_used(["a_pkey"])
    breaches, lines = health.evaluate(Thresholds(unused_indexes="report"))
    assert breaches == [] and "1 of 2 indexes no test used: a_name (on a)" in lines
    breaches, _ = health.evaluate(Thresholds(unused_indexes="fail"))
    assert breaches == ["1 of 2 indexes no test used: a_name (on a)"]
    _, lines = health.evaluate(Thresholds(unused_indexes="off"))
    assert not any("indexes" in line for line in lines)
