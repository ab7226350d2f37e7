"""Plan analysis against real plans recorded from PostgreSQL 15 and 18.

The corpus lives in ``tests/data/plans`` and is produced by ``record.py`` there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_pgbudget.plans import (
    EXTERNAL_SORT,
    MARKER,
    MULTI_BATCH_HASH,
    TEMP_FILE,
    Node,
    PlanFormatError,
    PlanSummary,
    SeqScan,
    analyze_plan,
    describe_node,
    index_hint,
    iter_nodes,
    render_plan,
)

PLANS = Path(__file__).resolve().parent.parent / "data" / "plans"
VERSIONS = (15, 18)
SCENARIOS = (
    "seq_scan_large",
    "seq_scan_estimated",
    "seq_scan_tiny_lookup",
    "index_scan",
    "index_only_scan",
    "index_scan_backward",
    "bitmap_index_scan",
    "gin_jsonb_containment",
    "fulltext_gin",
    "nested_loop_join",
    "hash_join_multibatch",
    "external_sort",
    "hashagg_spill",
    "cte_spill",
    "subplan_initplan",
    "parallel_seq_scan",
    "insert_returning",
    "update_with_index",
)
AUTO_EXPLAINED = ("seq_scan_large", "nested_loop_join", "external_sort")
SUSPENDED_HIGH_SCORE = "((score > 90) AND (status = 'suspended'::text))"


def load(version: int, scenario: str) -> Any:
    """The recorded ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` document."""
    return json.loads((PLANS / f"pg{version}_{scenario}.json").read_text(encoding="utf-8"))


def summary(version: int, scenario: str) -> PlanSummary:
    """Analysis of one recorded plan."""
    return analyze_plan(load(version, scenario))


def find(plan: object, node_type: str) -> Node:
    """The first node of ``node_type`` in ``plan``."""
    return next(node for node in iter_nodes(plan) if node["Node Type"] == node_type)


@pytest.fixture(params=VERSIONS, ids=lambda version: f"pg{version}")
def pg(request: pytest.FixtureRequest) -> int:
    """Major version of the server the plans were recorded with."""
    version: int = request.param
    return version


# --- the corpus ---------------------------------------------------------------------


def test_corpus_has_every_scenario_for_every_version() -> None:
    recorded = {path.name for path in PLANS.glob("pg*.json")}
    expected = {f"pg{v}_{s}.json" for v in VERSIONS for s in SCENARIOS} | {
        f"pg{v}_autoexplain_{s}.json" for v in VERSIONS for s in AUTO_EXPLAINED
    }
    assert recorded == expected


def test_corpus_stays_small() -> None:
    assert sum(path.stat().st_size for path in PLANS.glob("*.json")) < 1_000_000


@pytest.mark.parametrize("path", sorted(PLANS.glob("pg*.json")), ids=lambda path: path.stem)
def test_every_recorded_plan_is_analyzed(path: Path) -> None:
    plan = json.loads(path.read_text(encoding="utf-8"))
    result = analyze_plan(plan)

    assert result.node_count == sum(1 for _ in iter_nodes(plan)) > 0
    if "estimated" in path.name:
        assert result.rows is None
        assert result.shared_hit == result.shared_read == 0
    else:
        assert result.rows is not None
        assert result.shared_hit + result.shared_read > 0


def test_plan_is_accepted_as_json_text(pg: int) -> None:
    text = (PLANS / f"pg{pg}_seq_scan_large.json").read_text(encoding="utf-8")

    assert analyze_plan(text) == summary(pg, "seq_scan_large")


def test_one_explain_element_and_bare_node_parse_like_the_list(pg: int) -> None:
    document = load(pg, "hash_join_multibatch")

    assert analyze_plan(document[0]) == analyze_plan(document)
    assert analyze_plan(document[0]["Plan"]) == analyze_plan(document)


@pytest.mark.parametrize("bad", [[], [{"Plan": {}}, {"Plan": {}}], {"Query Text": "x"}, 42, "[]"])
def test_non_plans_are_rejected(bad: object) -> None:
    with pytest.raises(PlanFormatError):
        analyze_plan(bad)


# --- sequential scans ---------------------------------------------------------------


def test_large_seq_scan_reports_rows_read_not_rows_returned(pg: int) -> None:
    result = summary(pg, "seq_scan_large")

    assert result.seq_scans == (SeqScan("accounts", 200_000, SUSPENDED_HIGH_SCORE, False),)
    assert result.rows == 4_000
    assert result.shared_hit + result.shared_read > 4_000  # the whole heap


def test_tiny_lookup_seq_scan(pg: int) -> None:
    (scan,) = summary(pg, "seq_scan_tiny_lookup").seq_scans

    assert scan == SeqScan("countries", 8, "(code = 'SE'::text)", False)


def test_plan_without_analyze_falls_back_to_estimates(pg: int) -> None:
    plan = load(pg, "seq_scan_estimated")
    (scan,) = analyze_plan(plan).seq_scans

    assert scan.estimated
    assert scan.rows == plan[0]["Plan"]["Plan Rows"]
    assert render_plan(plan)[0].startswith("Seq Scan on accounts  (cost=0.00..")


def test_parallel_seq_scan_counts_every_loop(pg: int) -> None:
    plan = load(pg, "parallel_seq_scan")
    scan_node = find(plan, "Seq Scan")
    (scan,) = analyze_plan(plan).seq_scans

    assert scan_node["Parallel Aware"]
    assert scan_node["Actual Loops"] == 3
    assert len(scan_node["Workers"]) == 2
    assert scan.relation == "public.accounts"  # VERBOSE adds "Schema"
    assert scan.filter == "(accounts.score < 10)"
    # PostgreSQL 15 rounds the per-loop average (6667), 18 keeps 6666.67.
    assert abs(scan.rows - 200_000) <= scan_node["Actual Loops"]


def test_statement_totals_come_from_the_top_node(pg: int) -> None:
    plan = load(pg, "parallel_seq_scan")
    result = analyze_plan(plan)

    assert result.shared_hit == plan[0]["Plan"]["Shared Hit Blocks"]
    assert result.shared_hit >= find(plan, "Seq Scan")["Shared Hit Blocks"]
    assert result.rows == 1


# --- indexes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "node_type", "indexes"),
    [
        ("index_scan", "Index Scan", {"accounts_email_idx"}),
        ("index_only_scan", "Index Only Scan", {"accounts_pkey"}),
        ("index_scan_backward", "Index Scan", {"accounts_created_at_idx"}),
        ("bitmap_index_scan", "Bitmap Index Scan", {"accounts_pkey", "accounts_email_idx"}),
        ("gin_jsonb_containment", "Bitmap Index Scan", {"accounts_profile_idx"}),
        ("fulltext_gin", "Bitmap Index Scan", {"accounts_bio_tsv_idx"}),
        ("nested_loop_join", "Index Scan", {"accounts_pkey", "orders_account_id_idx"}),
        ("subplan_initplan", "Index Only Scan", {"accounts_pkey", "orders_account_id_idx"}),
        ("update_with_index", "Index Scan", {"accounts_email_idx"}),
    ],
)
def test_indexes_are_found_in_every_index_node_type(
    pg: int, scenario: str, node_type: str, indexes: set[str]
) -> None:
    plan = load(pg, scenario)

    assert find(plan, node_type)["Index Name"] in indexes
    assert analyze_plan(plan).indexes == indexes


@pytest.mark.parametrize(
    "scenario", ["index_scan", "index_only_scan", "index_scan_backward", "bitmap_index_scan"]
)
def test_index_plans_have_no_seq_scan(pg: int, scenario: str) -> None:
    assert summary(pg, scenario).seq_scans == ()


def test_seq_scan_inside_an_init_plan_is_found(pg: int) -> None:
    (scan,) = summary(pg, "subplan_initplan").seq_scans

    assert scan == SeqScan("accounts", 200_000, None, False)


# --- spills -------------------------------------------------------------------------


def test_external_sort_is_a_spill(pg: int) -> None:
    plan = load(pg, "external_sort")
    sort = find(plan, "Sort")
    result = analyze_plan(plan)

    (spill,) = result.spills
    assert spill.kind == EXTERNAL_SORT
    assert spill.node == f"Sort (external merge, {sort['Sort Space Used']}kB)"
    assert "Sort Key: score DESC, email" in spill.detail
    assert result.temp_written > 0
    assert result.temp_read > 0


def test_multi_batch_hash_is_reported_once(pg: int) -> None:
    plan = load(pg, "hash_join_multibatch")
    batches = find(plan, "Hash")["Hash Batches"]
    result = analyze_plan(plan)

    (spill,) = result.spills  # the Hash Join's own batch files are not reported again
    assert batches > 1
    assert spill.kind == MULTI_BATCH_HASH
    assert spill.node == f"Hash ({batches} batches)"
    assert f"Batches: {batches}" in spill.detail
    assert {scan.relation for scan in result.seq_scans} == {"orders", "accounts"}


def test_hash_aggregate_spill_is_a_temp_file(pg: int) -> None:
    (spill,) = summary(pg, "hashagg_spill").spills

    assert spill.kind == TEMP_FILE
    assert spill.node.startswith("HashAggregate (")
    assert "Disk Usage: " in spill.detail


def test_materialized_cte_spill_is_reported_once_per_cte(pg: int) -> None:
    result = summary(pg, "cte_spill")

    assert [(spill.kind, spill.node) for spill in result.spills] == [(TEMP_FILE, "CTE Scan on o")]
    assert result.temp_written > 0


@pytest.mark.parametrize(
    "scenario", ["seq_scan_large", "nested_loop_join", "subplan_initplan", "insert_returning"]
)
def test_in_memory_plans_have_no_spill(pg: int, scenario: str) -> None:
    result = summary(pg, scenario)

    assert result.spills == ()
    assert result.temp_written == 0


# --- auto_explain -------------------------------------------------------------------


@pytest.mark.parametrize("scenario", AUTO_EXPLAINED)
def test_auto_explain_shape_parses_like_explain(pg: int, scenario: str) -> None:
    logged = load(pg, f"autoexplain_{scenario}")
    explained = summary(pg, scenario)

    result = analyze_plan(logged)

    assert set(logged) == {"Query Text", "Plan"}
    assert result.seq_scans == explained.seq_scans
    assert result.indexes == explained.indexes
    assert result.rows == explained.rows
    assert result.node_count == explained.node_count
    assert [spill.node for spill in result.spills] == [spill.node for spill in explained.spills]
    assert result.shared_hit + result.shared_read > 0


# --- rendering ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "header"),
    [
        ("index_scan_backward", "Index Scan Backward using accounts_created_at_idx on accounts"),
        ("index_only_scan", "Index Only Scan using accounts_pkey on accounts"),
        ("bitmap_index_scan", "Bitmap Index Scan on accounts_email_idx"),
        ("parallel_seq_scan", "Parallel Seq Scan on public.accounts"),
        ("hash_join_multibatch", "Seq Scan on orders o"),
        ("hashagg_spill", "HashAggregate"),
        ("cte_spill", "CTE Scan on o o_1"),
        ("insert_returning", "Insert on orders"),
        ("update_with_index", "Update on accounts"),
    ],
)
def test_nodes_are_described_like_explain_text(pg: int, scenario: str, header: str) -> None:
    assert header in {describe_node(node) for node in iter_nodes(load(pg, scenario))}


def test_render_draws_the_tree_with_details(pg: int) -> None:
    plan = load(pg, "hash_join_multibatch")
    batches = find(plan, "Hash")["Hash Batches"]

    lines = render_plan(plan)

    assert lines[:2] == [
        "Hash Join  (actual rows=300000 loops=1)",
        "  Hash Cond: (o.account_id = a.id)",
    ]
    assert lines[2].startswith("  Buffers: shared hit=")
    assert "  ->  Seq Scan on orders o  (actual rows=300000 loops=1)" in lines
    assert "  ->  Hash  (actual rows=200000 loops=1)" in lines
    assert any(
        line.startswith("        Buckets: ") and f"Batches: {batches} " in line for line in lines
    )
    assert "        ->  Seq Scan on accounts a  (actual rows=200000 loops=1)" in lines


def test_render_marks_the_lines_of_the_costly_node(pg: int) -> None:
    lines = render_plan(load(pg, "seq_scan_large"), mark=lambda node: "Filter" in node)

    assert lines[:3] == [
        f"{MARKER}Seq Scan on accounts  (actual rows=4000 loops=1)",
        f"{MARKER}  Filter: {SUSPENDED_HIGH_SCORE}",
        f"{MARKER}  Rows Removed by Filter: 196000",
    ]
    assert lines[3].startswith(f"{MARKER}  Buffers: shared ")
    assert len(lines) == 4


def test_render_pads_unmarked_lines_to_keep_the_tree_aligned(pg: int) -> None:
    plan = load(pg, "subplan_initplan")
    lines = render_plan(plan, mark=lambda node: node["Node Type"] == "Seq Scan")

    marked = [line for line in lines if line.startswith(MARKER)]
    assert marked[0] == f"{MARKER}          ->  Seq Scan on accounts  (actual rows=200000 loops=1)"
    assert len(marked) == 2  # the header and its Buffers line
    assert [line[len(MARKER) :] for line in lines] == render_plan(plan)


def test_render_names_init_plans_and_sub_plans(pg: int) -> None:
    lines = render_plan(load(pg, "subplan_initplan"))

    # PostgreSQL 18 dropped the "(returns $1)" suffix from init plan names.
    init_plan = "InitPlan 2 (returns $1)" if pg == 15 else "InitPlan 2"
    assert f"  {init_plan}" in lines
    assert "  SubPlan 1" in lines
    assert "    ->  Aggregate  (actual rows=1 loops=24)" in lines


def test_render_shows_fractional_rows_from_postgresql_18(pg: int) -> None:
    lines = render_plan(load(pg, "nested_loop_join"))

    rows = "2" if pg == 15 else "1.50"  # 299 rows over 199 loops
    assert (
        f"  ->  Index Scan using orders_account_id_idx on orders o  (actual rows={rows} loops=199)"
        in lines
    )


def test_render_shows_sort_method(pg: int) -> None:
    plan = load(pg, "external_sort")
    space = find(plan, "Sort")["Sort Space Used"]

    assert f"  Sort Method: external merge  Disk: {space}kB" in render_plan(plan)


# --- index hints --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "hint"),
    [
        ("seq_scan_large", "CREATE INDEX ON accounts (status, score)"),
        ("seq_scan_tiny_lookup", "CREATE INDEX ON countries (code)"),
        ("parallel_seq_scan", "CREATE INDEX ON public.accounts (score)"),
        ("subplan_initplan", None),
    ],
)
def test_index_hint_for_recorded_scans(pg: int, scenario: str, hint: str | None) -> None:
    (scan,) = summary(pg, scenario).seq_scans

    assert index_hint(scan) == hint


@pytest.mark.parametrize(
    ("filter_", "columns"),
    [
        ("(email = 'x'::text)", "email"),
        (
            "((status = 'open'::text) AND"
            " (created_at > '2024-01-01 00:00:00+00'::timestamp with time zone))",
            "status, created_at",
        ),
        (
            "((created_at > now()) AND (status = 'open'::text) AND (score < 5))",
            "status, created_at",
        ),
        ("((id >= 10) AND (id <= 20))", "id"),
        ("((status)::text = 'x'::text)", "status"),
        ("(id = ANY ('{1,2}'::integer[]))", "id"),
        ("(deleted_at IS NULL)", "deleted_at"),
        ("(note = 'a AND (b OR c'::text)", "note"),
        ("((score > 1) AND ((status = 'a'::text) OR (status = 'b'::text)))", "score"),
        ("((status = 'a'::text) OR (score > 1))", None),
        ("(lower(email) = 'x'::text)", None),
        ("(status <> 'closed'::text)", None),
        (None, None),
    ],
)
def test_index_hint_puts_equality_before_range(filter_: str | None, columns: str | None) -> None:
    hint = index_hint(SeqScan("accounts", 1_000, filter_, False))

    assert hint == (f"CREATE INDEX ON accounts ({columns})" if columns else None)


# --- big plans ----------------------------------------------------------------------


def test_thousand_node_plan_is_walked_without_recursion(pg: int) -> None:
    scan = load(pg, "seq_scan_large")[0]["Plan"]
    node: dict[str, Any] = dict(scan)
    for _ in range(999):  # deeper than Python's default recursion limit
        node = {**scan, "Plans": [node]}

    result = analyze_plan([{"Plan": node}])

    assert result.node_count == 1_000
    assert len(result.seq_scans) == 1_000
    assert set(result.seq_scans) == {SeqScan("accounts", 200_000, SUSPENDED_HIGH_SCORE, False)}
    assert len(render_plan(node)) == 1_000 * len(render_plan(scan))
