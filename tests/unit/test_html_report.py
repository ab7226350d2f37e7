"""The HTML report page, rendered from a report built out of the recorded real plans.

``build_report`` is also used by ``tests/e2e/test_html_browser.py``, which opens
the page in a headless Chromium.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pytest_pgbudget.load.runner import Latency, LoadResult, ObservedWait
from pytest_pgbudget.plans import analyze_plan, iter_nodes, plan_root
from pytest_pgbudget.report.html import render_html

PLANS = Path(__file__).resolve().parent.parent / "data" / "plans"
EVIL_SQL = "SELECT '</script><script>alert(1)</script>', '<b>bold</b>' AS \"x&y\""


def load(name: str) -> Any:
    return json.loads((PLANS / f"{name}.json").read_text(encoding="utf-8"))


#: What the recorded EXPLAIN documents ran (auto_explain ones carry their "Query Text").
QUERIES = {
    "seq_scan_large": "SELECT * FROM accounts WHERE score > 90 AND status = 'suspended'",
    "index_scan": "SELECT * FROM accounts WHERE id = 42",
}


def statement(plan_name: str, duration_ms: float, sql: str | None = None) -> dict[str, Any]:
    """A statement record as the JSON report holds it, derived from a recorded plan."""
    plan = load(plan_name)
    document = plan[0] if isinstance(plan, list) else plan
    summary = analyze_plan(plan)
    scenario = plan_name.split("_", 1)[1]
    text = sql or document.get("Query Text") or QUERIES.get(scenario) or f"-- {plan_name}\nSELECT 1"
    return {
        "sql": text,
        "fingerprint": hashlib.sha1(text.encode()).hexdigest()[:16],
        "duration_ms": duration_ms,
        "rows": summary.rows,
        "shared_hit": summary.shared_hit,
        "shared_read": summary.shared_read,
        "buffers": summary.shared_hit + summary.shared_read,
        "temp_blocks": summary.temp_read + summary.temp_written,
        "seq_scans": [
            {"relation": s.relation, "rows": s.rows, "filter": s.filter} for s in summary.seq_scans
        ],
        "indexes": sorted(summary.indexes),
        "spills": [{"kind": s.kind, "node": s.node, "detail": s.detail} for s in summary.spills],
        "plan": plan,
    }


def latency(statements: list[dict[str, Any]]) -> dict[str, Any]:
    durations = sorted(s["duration_ms"] for s in statements)
    if not durations:
        return {"count": 0}

    def rank(p: int) -> float:
        return durations[max(1, math.ceil(len(durations) * p / 100)) - 1]

    return {
        "count": len(durations),
        "p50_ms": rank(50),
        "p95_ms": rank(95),
        "p99_ms": rank(99),
        "max_ms": durations[-1],
        "total_ms": round(sum(durations), 3),
    }


def load_runs() -> list[dict[str, Any]]:
    """Two ``pg_load`` results as the JSON report holds them (``LoadResult.as_dict``)."""
    samples = [200_000 + 1_000 * i for i in range(400)]  # 0.2 .. 0.6 ms
    rated = LoadResult(
        operations=400,
        concurrency=8,
        mode="rate",
        rate=400.0,
        duration_s=1.0,
        throughput=399.6,
        latency=Latency.of(samples),
        service=Latency.of(samples),
        errors=3,
        error_types={"UniqueViolation": 3},
        deadlocks=0,
        lock_waits=(
            ObservedWait(
                23.5,
                "UPDATE counters SET n = n + 1 WHERE id = 1",
                "pid 7 (idle in transaction): UPDATE counters SET n = 0 /* <nightly> */",
            ),
        ),
        peak_connections=8,
        label="counter updates <hot>",
        arrivals="poisson",
        driver="C event loop",
    )
    closed = LoadResult(
        operations=1000,
        concurrency=4,
        mode="closed",
        rate=None,
        duration_s=0.5,
        throughput=2000.0,
        latency=Latency.of(samples),
        service=Latency.of(samples),
        errors=0,
        error_types={},
        deadlocks=0,
        lock_waits=(),
        peak_connections=4,
        label="reads",
    )
    return [rated.as_dict(), closed.as_dict()]


def build_report() -> dict[str, Any]:
    """A report with six tests covering every section of the page."""
    slow = [
        statement("pg15_seq_scan_large", 16.3),
        statement("pg15_autoexplain_external_sort", 141.2),
        statement("pg15_index_scan", 0.05, sql=EVIL_SQL),
    ]
    lookups = [statement("pg18_index_scan", 0.04 + i * 0.01) for i in range(6)]
    lookups.append(statement("pg18_nested_loop_join", 2.5))
    joins = [
        statement("pg15_hash_join_multibatch", 60.1),
        statement("pg15_hashagg_spill", 33.0),
        statement("pg15_cte_spill", 12.0),
        statement("pg15_subplan_initplan", 3.3),
        statement("pg18_parallel_seq_scan", 25.0),
    ]
    writes = [
        statement("pg15_insert_returning", 0.9),
        statement("pg18_update_with_index", 0.7),
        statement("pg15_seq_scan_estimated", 0.2),
    ]
    tests: list[dict[str, Any]] = [
        {
            "nodeid": "tests/test_accounts.py::test_report[<b>x</b>]",
            "outcome": "failed",
            "budget": {"no_seq_scan": True, "max_queries": 2},
            "statements": slow,
            "latency": latency(slow),
            "violations": [
                {
                    "keyword": "no_seq_scan",
                    "headline": "Seq Scan on accounts (200000 rows): <script>x</script>",
                    "sql": slow[0]["sql"],
                    "hint": "CREATE INDEX ON accounts (status, score)",
                },
                {
                    "keyword": "max_queries",
                    "headline": "3 queries, budget 2",
                    "sql": None,
                    "hint": None,
                },
            ],
            "baseline": {
                "status": "regressed",
                "changes": [
                    {
                        "metric": "plan",
                        "fingerprint": slow[0]["fingerprint"],
                        "sql": slow[0]["sql"],
                        "before": "Index Scan using accounts_status on accounts",
                        "after": "Seq Scan on accounts",
                        "message": "Index Scan using accounts_status on accounts became Seq Scan on accounts",
                        "failed": True,
                    },
                    {
                        "metric": "duration",
                        "fingerprint": slow[1]["fingerprint"],
                        "sql": slow[1]["sql"],
                        "before": 90.0,
                        "after": 141.2,
                        "message": "duration 90 ms -> 141 ms (noisy)",
                        "failed": False,
                    },
                ],
            },
        },
        {
            "nodeid": "tests/test_lookups.py::test_lookup_many",
            "outcome": "passed",
            "budget": {"max_queries": 10},
            "statements": lookups,
            "latency": latency(lookups),
            "violations": [],
            "baseline": {"status": "same", "changes": []},
        },
        {
            "nodeid": "tests/test_reports.py::test_joins",
            "outcome": "passed",
            "budget": {},
            "statements": joins,
            "latency": latency(joins),
            "violations": [],
            "baseline": {"status": "new", "changes": []},
        },
        {
            "nodeid": "tests/test_writes.py::test_write",
            "outcome": "passed",
            "budget": {},
            "statements": writes,
            "latency": latency(writes),
            "violations": [],
            "baseline": None,
            "load": load_runs(),
        },
        {
            "nodeid": "tests/test_skip.py::test_skipped",
            "outcome": "skipped",
            "budget": {},
            "statements": [],
            "latency": {"count": 0},
            "violations": [],
            "baseline": None,
        },
        {
            "nodeid": "tests/test_err.py::test_error",
            "outcome": "error",
            "budget": {},
            "statements": [statement("pg18_bitmap_index_scan", 1.1)],
            "latency": latency([statement("pg18_bitmap_index_scan", 1.1)]),
            "violations": [],
            "baseline": None,
        },
    ]
    n_statements = sum(len(t["statements"]) for t in tests)
    return {
        "format": "pytest-pgbudget-report",
        "version": 1,
        "created": "2026-11-25T10:00:00+00:00",
        "plugin_version": "0.1.0",
        "servers": [
            {"backend": "local", "version": "15.18", "settings_origin": "seed + test + capture"}
        ],
        "tests": tests,
        "health": {
            "passed": False,
            "lines": [
                "buffer cache hit ratio 99.20% over 5000 warm buffer accesses (target > 99%)",
                "index hit ratio 97.00% over 4000 warm buffer accesses (target > 99%)",
            ],
            "breaches": ["index hit ratio 97.00% over 4000 warm buffer accesses (target > 99%)"],
        },
        "summary": {"tests": len(tests), "statements": n_statements, "violations": 2},
    }


class Page(HTMLParser):
    """Collects tags with their attributes, and text per element id."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        """Tags named ``tag`` whose attributes hold the values (``class_``: one of the classes;
        ``http_equiv`` stands for ``http-equiv``)."""
        wanted = {name.rstrip("_").replace("_", "-"): value for name, value in attrs.items()}
        return [
            a
            for t, a in self.tags
            if t == tag
            and all(
                name in a and (a[name] == value or value in (a[name] or "").split())
                for name, value in wanted.items()
            )
        ]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return build_report()


@pytest.fixture(scope="module")
def page_html(report: dict[str, Any]) -> str:
    return render_html(report)


@pytest.fixture(scope="module")
def page(page_html: str) -> Page:
    return Page(page_html)


def test_is_one_complete_document(page_html: str, page: Page) -> None:
    assert page_html.startswith("<!DOCTYPE html>")
    assert page_html.rstrip().endswith("</html>")
    assert [t for t, _ in page.tags].count("script") == 2
    assert [t for t, _ in page.tags].count("style") == 1


def test_render_is_pure(report: dict[str, Any]) -> None:
    before = copy.deepcopy(report)
    assert render_html(report) == render_html(report)
    assert report == before


def test_sql_and_names_are_escaped(page_html: str, page: Page) -> None:
    # the only <script> elements are the page's own, and no report string ends them early
    assert page_html.count("<script") == 2
    assert page_html.count("</script>") == 2
    assert "<b>bold" not in page_html
    assert "<b>x</b>" not in page_html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page_html
    assert "&lt;b&gt;bold&lt;/b&gt;" in page_html
    assert "&quot;x&amp;y&quot;" in page_html
    text = "".join(page.text)
    assert EVIL_SQL in text
    assert "tests/test_accounts.py::test_report[<b>x</b>]" in text
    assert "Seq Scan on accounts (200000 rows): <script>x</script>" in text
    for script in page.scripts:
        assert "alert(1)" not in script


def test_no_external_resources(page_html: str, page: Page) -> None:
    assert "http://" not in page_html
    assert "https://" not in page_html
    assert not re.search(r"(?i)\b(?:src|href)\s*=\s*[\"']?\s*(?://|[a-z][a-z0-9+.-]*:)", page_html)
    assert not re.search(r"(?i)@import|url\(", page_html)
    assert not page.find("link")
    assert all("src" not in attrs for tag, attrs in page.tags if tag in ("script", "img", "iframe"))
    (csp,) = page.find("meta", http_equiv="Content-Security-Policy")
    assert "default-src 'none'" in (csp["content"] or "")


def test_header(page: Page) -> None:
    text = " ".join(page.text)
    assert "PostgreSQL" in text and "15.18" in text and "local" in text
    assert "2026-11-25T10:00:00+00:00" in text
    (health,) = page.find("section", class_="health")
    assert "bad" in (health["class"] or "").split()
    assert "index hit ratio 97.00%" in text
    cards = {c["class"] for c in page.find("div", class_="card")}
    assert "card bad" in cards


def test_healthy_and_missing_health_boxes(report: dict[str, Any]) -> None:
    healthy = dict(report, health={"passed": True, "lines": ["all good"], "breaches": []})
    assert Page(render_html(healthy)).find("section", class_="health ok")
    unknown = Page(render_html(dict(report, health=None)))
    assert unknown.find("section", class_="health none")


def test_every_test_and_statement_is_present(report: dict[str, Any], page: Page) -> None:
    bodies = page.find("tbody", class_="test")
    assert [b["data-name"] for b in bodies] == [t["nodeid"].lower() for t in report["tests"]]
    assert [b["id"] for b in bodies] == [f"t{i}" for i in range(1, len(report["tests"]) + 1)]
    rows = page.find("tr", class_="stmt")
    expected = [
        f"t{i}s{j}"
        for i, test in enumerate(report["tests"], 1)
        for j in range(1, len(test["statements"]) + 1)
    ]
    assert [r["id"] for r in rows] == expected
    text = "".join(page.text)
    for test in report["tests"]:
        for stmt in test["statements"]:
            assert stmt["sql"] in text
    plans = page.find("details", class_="plan")
    assert len(plans) == len(expected)


def test_sortable_headers(page: Page) -> None:
    (tests,) = page.find("table", id="tests")
    assert "sortable" in (tests["class"] or "")
    columns = [th["data-col"] for th in page.find("th") if th.get("data-col")]
    assert columns[:7] == ["name", "outcome", "statements", "total", "p95", "buffers", "violations"]
    for key in ("duration", "rows", "buffers", "temp"):
        assert key in columns[7:]
    # every sortable cell carries its sort value
    for row in page.find("tr", class_="stmt"):
        assert row["id"]


def test_test_levels(page: Page) -> None:
    levels = {b["id"]: (b["class"] or "").split() for b in page.find("tbody", class_="test")}
    assert "bad" in levels["t1"]  # failed, violations, regressed
    assert "ok" in levels["t2"]
    assert "warn" in levels["t3"]  # baseline "new"
    assert "bad" in levels["t6"]  # error
    assert "open" in levels["t1"]  # few problem tests: they start open


def test_violations_and_baseline_highlighted(page_html: str, page: Page) -> None:
    assert page.find("section", class_="violations")
    assert page.find("section", class_="baseline bad")
    assert page.find("section", class_="baseline warn")  # the "new" test
    violating = page.find("tr", class_="violating")
    assert [r["id"] for r in violating] == ["t1s1"]
    assert '<span class="badge warn">duration (noisy, not failing)</span>' in page_html
    assert "became Seq Scan on accounts" in "".join(page.text)
    assert page.find("del") and page.find("ins")


def _tree_nodes(page_html: str, row_id: str) -> list[str]:
    """The ``<li class="node ...">`` tags of the plan in the statement row ``row_id``."""
    start = page_html.index(f'id="{row_id}"')
    end = page_html.index("</tr>", start)
    return re.findall(r'<li class="(node[^"]*)">', page_html[start:end])


def test_costly_plan_nodes_are_marked(page_html: str) -> None:
    # seq scan of 200000 rows: the only node, costly (seq scan and hottest)
    assert _tree_nodes(page_html, "t1s1") == ["node costly leaf"]
    # external sort: the Sort spills, the Seq Scan under it reads 200000 rows
    assert _tree_nodes(page_html, "t1s2") == ["node costly", "node costly leaf"]
    # a primary key lookup is cheap
    assert _tree_nodes(page_html, "t1s3") == ["node leaf"]
    assert _tree_nodes(page_html, "t2s1") == ["node leaf"]
    start = page_html.index('id="t1s2"')
    row = page_html[start : page_html.index("</tr>", start)]
    assert "spill: external sort" in row
    assert "Seq Scan: 200,000 rows read" in row
    assert 'class="badge costly"' in row


def test_every_spill_is_marked(report: dict[str, Any], page_html: str) -> None:
    for i, test in enumerate(report["tests"], 1):
        for j, stmt in enumerate(test["statements"], 1):
            start = page_html.index(f'id="t{i}s{j}"')
            row = page_html[start : page_html.index("</tr>", start)]
            assert row.count('<span class="badge costly" title') >= len(stmt["spills"])
            nodes = list(iter_nodes(plan_root(stmt["plan"])))
            assert len(_tree_nodes(page_html, f"t{i}s{j}")) == len(nodes)
            if stmt["spills"]:
                assert "costly" in row


def test_tree_nests_children(page_html: str) -> None:
    start = page_html.index('id="t3s4"')  # subplan/initplan: a deep tree
    row = page_html[start : page_html.index("</tr>", start)]
    assert row.count("<details open>") >= 1
    assert row.count("<ul") == row.count("</ul>")
    assert row.count("<li") == row.count("</li>")
    assert "InitPlan" in row or "SubPlan" in row


def test_charts(page: Page, report: dict[str, Any]) -> None:
    svgs = page.find("svg")
    hist = [s for s in svgs if "hist" in (s["class"] or "")]
    with_statements = [t for t in report["tests"] if t["statements"]]
    assert len(hist) == 1 + len(with_statements)  # one overall, one per test with statements
    assert page.find("g", class_="mark")
    bars = page.find("rect", class_="bar")
    assert bars
    assert page.find("table", class_="latency")


def test_histogram_counts_every_statement(page_html: str, report: dict[str, Any]) -> None:
    start = page_html.index('<section class="overview">')
    first_svg = page_html[start : page_html.index("</svg>", start)]
    counts = [int(n) for n in re.findall(r": (\d+) statements?</title>", first_svg)]
    assert sum(counts) == sum(len(t["statements"]) for t in report["tests"])


def test_renders_edge_cases() -> None:
    empty = render_html({"format": "pytest-pgbudget-report", "version": 1, "tests": []})
    assert "No tests were recorded" in empty
    odd = render_html(
        {
            "tests": [
                {
                    "nodeid": "t::one",
                    "statements": [
                        {"sql": "SELECT 1", "duration_ms": 0.5},  # no plan, no counters
                        {"sql": "SELECT 2", "duration_ms": 0.5, "plan": {"nope": 1}},
                        {"sql": "SELECT 3", "duration_ms": None, "rows": None, "plan": "garbage"},
                    ],
                    "latency": {"count": 2},
                }
            ],
            "summary": {},
            "health": {"passed": True, "lines": []},
        }
    )
    assert "no plan recorded" in odd
    assert odd.count("plan (unreadable)") == 2


def test_deep_plan_does_not_recurse() -> None:
    node: dict[str, Any] = {"Node Type": "Result", "Actual Rows": 1, "Actual Loops": 1}
    root = node
    for _ in range(3000):
        child: dict[str, Any] = {"Node Type": "Result", "Actual Rows": 1, "Actual Loops": 1}
        node["Plans"] = [child]
        node = child
    page = render_html(
        {"tests": [{"nodeid": "t", "statements": [{"sql": "x", "plan": {"Plan": root}}]}]}
    )
    assert page.count('<li class="node') == 3001


def test_plan_trees_are_rationed_on_huge_reports(report: dict[str, Any]) -> None:
    total = sum(len(t["statements"]) for t in report["tests"])
    html = render_html(report, max_plans=3)
    page = Page(html)
    assert len(page.find("tr", class_="stmt")) == total  # every statement is still listed
    assert len(page.find("details", class_="plan")) == 3
    assert html.count("plan: in the JSON report") == total - 3
    # the violating statement keeps its tree first, then costly ones (spills, big scans)
    assert _tree_nodes(html, "t1s1") == ["node costly leaf"]
    assert _tree_nodes(html, "t1s2")  # baseline change
    assert not _tree_nodes(html, "t2s1")  # a cheap primary key lookup
    assert render_html(report, max_plans=None) == render_html(report)  # under the default


def test_load_runs_are_shown(page_html: str, page: Page) -> None:
    section = page_html.split('<section class="load">', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>", 1)[1])
    assert len(rows) == 2  # one per run; the blocker has a row of its own
    rated, closed = (re.sub(r"<[^>]+>", " ", row) for row in rows)
    assert "counter updates &lt;hot&gt;" in rated and "<hot>" not in section
    assert "400/s, Poisson" in rated and "UniqueViolation 3" in rated and "(peak 8)" in rated
    assert " 0.399 " in rated and " 0.579 " in rated  # p50 and p95 (nearest rank) of 0.2-0.6 ms
    assert "closed loop" in closed and "2,000" in closed
    assert "(C event loop)" in rated and "event loop" not in closed  # the run that says so
    assert "longest lock wait blocked by:" in section
    assert "/* &lt;nightly&gt; */" in section
    assert "2 load runs" in page_html
