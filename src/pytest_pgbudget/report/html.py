"""The HTML report: one self-contained page rendered from the JSON report document.

:func:`render_html` takes the report as a mapping (the same content as the JSON
file, format ``pytest-pgbudget-report`` version 1) and returns the page as text.
It does no I/O. The page loads nothing from anywhere: CSS, JavaScript and the
SVG charts are inline, and a Content-Security-Policy forbids any other source.
Every string taken from the report is HTML-escaped; no report data is placed
inside the ``<script>`` elements, so SQL holding ``</script>`` stays inert text.

Without JavaScript the page is complete: all tables, statements and plans are
there, plans and per-test details fold with ``<details>``. With JavaScript the
tables sort by a click on a column header, test rows expand in place and a
filter box narrows the list. Opening the page with the ``#selftest`` fragment
runs a small in-page check (sorting, expanding) and writes its verdict into the
``data-selftest`` attribute of ``<html>``; script errors are recorded in
``data-js-errors``. The browser end-to-end test reads both from the DOM.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from ..plans import PlanFormatError, analyze_plan, describe_node, iter_nodes, plan_root, render_plan

__all__ = ["COSTLY_BUFFERS", "COSTLY_SEQ_SCAN_ROWS", "MAX_PLANS", "render_html"]

COSTLY_SEQ_SCAN_ROWS: Final = 1000
"""A Seq Scan reading at least this many rows is marked costly in plan trees."""

COSTLY_BUFFERS: Final = 100
"""The node with the largest own share of a plan's buffers is marked costly from this many blocks."""

MAX_PLANS: Final = 5000
"""Plan trees a page holds by default; past it only the most telling statements keep theirs."""

_MISESTIMATE_FACTOR: Final = 10
_DASH: Final = "\u2013"  # en dash: ranges, missing values
_TIMES: Final = "\u00d7"  # multiplication sign
_AUTO_OPEN_TESTS: Final = 5  # problem tests open by default when there are at most this many
_OUTCOME_RANK: Final = {
    "error": 0,
    "failed": 1,
    "xfailed": 3,
    "xpassed": 2,
    "passed": 4,
    "skipped": 5,
}


def render_html(report: Mapping[str, Any], *, max_plans: int | None = MAX_PLANS) -> str:
    """Render ``report`` (a ``pytest-pgbudget-report`` document) as one HTML page.

    Every test and every statement is on the page. Plan trees make up most of its
    size, so when more than ``max_plans`` statements carry a plan, only that many
    keep their tree: statements named by a violation or a baseline change first,
    then those with a large Seq Scan or a spill, then the slowest. The others say
    that their plan is in the JSON report. ``None`` keeps every plan.
    """
    tests = [t for t in _list(report.get("tests")) if isinstance(t, Mapping)]
    views = [_TestView(index, test) for index, test in enumerate(tests, 1)]
    _ration_plans(views, max_plans)
    summary = _mapping(report.get("summary"))
    n_statements = _int(summary.get("statements"), sum(len(v.statements) for v in views))
    n_violations = _int(summary.get("violations"), sum(len(v.violations) for v in views))
    title = (
        f"pgbudget report: {len(views)} tests, {n_statements} statements, {n_violations} violations"
    )
    problems = [v for v in views if v.level == "bad"]
    auto_open = len(problems) <= _AUTO_OPEN_TESTS
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        '<meta name="color-scheme" content="light dark">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        f"<script>{_HEAD_JS}</script>",
        "</head>",
        "<body>",
        _header(report, views, n_statements, n_violations),
        _overview(views),
        _tests_table(views, auto_open),
        _footer(report),
        f"<script>{_JS}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# --- small helpers ------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def _int(value: object, default: int = 0) -> int:
    number = _num(value)
    return default if number is None else round(number)


def _ms(value: object) -> str:
    number = _num(value)
    if number is None:
        return _DASH
    if number < 1:
        return f"{number:.3f}"
    if number < 10:
        return f"{number:.2f}"
    if number < 100:
        return f"{number:.1f}"
    return f"{number:,.0f}"


def _count(value: object) -> str:
    number = _num(value)
    if number is None:
        return _DASH
    return f"{number:,.0f}" if float(number).is_integer() else f"{number:,.2f}"


def _sort_value(value: object) -> str:
    """``data-v`` for numeric sorting: empty (sorts as smallest) when missing."""
    number = _num(value)
    return "" if number is None else f"{number:.9g}"


def _badge(text: str, kind: str = "", title: str = "") -> str:
    tip = f' title="{_e(title)}"' if title else ""
    return f'<span class="badge {kind}"{tip}>{_e(text)}</span>'


def _percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    rank = max(1, math.ceil(fraction * len(values)))
    return values[min(rank, len(values)) - 1]


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- per-test view ------------------------------------------------------------------


class _TestView:
    """One test of the report, with what the page derives from it."""

    def __init__(self, index: int, test: Mapping[str, Any]) -> None:
        self.index = index
        self.id = f"t{index}"
        self.test = test
        self.nodeid = str(test.get("nodeid", f"test {index}"))
        self.outcome = str(test.get("outcome") or "unknown")
        self.statements = [s for s in _list(test.get("statements")) if isinstance(s, Mapping)]
        self.violations = [v for v in _list(test.get("violations")) if isinstance(v, Mapping)]
        self.loads = [run for run in _list(test.get("load")) if isinstance(run, Mapping)]
        self.budget = _mapping(test.get("budget"))
        self.latency = _mapping(test.get("latency"))
        baseline = test.get("baseline")
        self.baseline = baseline if isinstance(baseline, Mapping) else None
        self.changes = [
            c
            for c in _list(self.baseline.get("changes") if self.baseline else None)
            if isinstance(c, Mapping)
        ]
        self.durations = sorted(
            d for s in self.statements if (d := _num(s.get("duration_ms"))) is not None
        )
        self.total_ms = _num(self.latency.get("total_ms"))
        if self.total_ms is None:
            self.total_ms = sum(self.durations)
        self.p95_ms = _num(self.latency.get("p95_ms"))
        if self.p95_ms is None and self.durations:
            self.p95_ms = _percentile(self.durations, 0.95)
        self.max_buffers = max((_int(s.get("buffers")) for s in self.statements), default=0)
        self.violating = {str(v["sql"]) for v in self.violations if v.get("sql")}
        self.changed = {str(c["fingerprint"]): c for c in self.changes if c.get("fingerprint")}
        self.omitted: set[int] = set()  # statement numbers whose plan tree is left out
        status = str(self.baseline.get("status", "")) if self.baseline else ""
        self.baseline_status = status
        regressed = status == "regressed" or any(c.get("failed") for c in self.changes)
        noisy = status in ("new", "noisy") or any(not c.get("failed") for c in self.changes)
        if self.outcome in ("failed", "error") or self.violations or regressed:
            self.level = "bad"
        elif noisy:
            self.level = "warn"
        else:
            self.level = "ok" if self.outcome == "passed" else ""


def _ration_plans(views: Sequence[_TestView], max_plans: int | None) -> None:
    """Mark the statements whose plan tree is left out (``_TestView.omitted``)."""
    planned = [
        (view, number, statement)
        for view in views
        for number, statement in enumerate(view.statements, 1)
        if statement.get("plan") is not None
    ]
    if max_plans is None or len(planned) <= max(0, max_plans):
        return

    def priority(item: tuple[_TestView, int, Mapping[str, Any]]) -> tuple[int, float]:
        view, _, statement = item
        flagged = statement.get("sql") in view.violating or (
            statement.get("fingerprint") in view.changed
        )
        costly = bool(_list(statement.get("spills"))) or any(
            isinstance(scan, Mapping) and _int(scan.get("rows")) >= COSTLY_SEQ_SCAN_ROWS
            for scan in _list(statement.get("seq_scans"))
        )
        return (0 if flagged else 1 if costly else 2, -(_num(statement.get("duration_ms")) or 0.0))

    for view, number, _ in sorted(planned, key=priority)[max(0, max_plans) :]:
        view.omitted.add(number)


# --- header ---------------------------------------------------------------------------


def _header(
    report: Mapping[str, Any], views: Sequence[_TestView], n_statements: int, n_violations: int
) -> str:
    servers = [s for s in _list(report.get("servers")) if isinstance(s, Mapping)]
    server_items = (
        "".join(
            "<li>"
            + f"PostgreSQL <b>{_e(s.get('version', '?'))}</b> ({_e(s.get('backend', '?'))})"
            + (
                f' <span class="muted">settings: {_e(s["settings_origin"])}</span>'
                if s.get("settings_origin")
                else ""
            )
            + "</li>"
            for s in servers
        )
        or '<li class="muted">no server recorded</li>'
    )
    outcomes = Counter(v.outcome for v in views)
    failed = outcomes.get("failed", 0) + outcomes.get("error", 0)
    total_ms = sum(v.total_ms or 0.0 for v in views)
    regressed = sum(1 for v in views if v.baseline_status == "regressed")
    cards = [
        _card(
            "tests", _count(len(views)), ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
        ),
        _card("failed", _count(failed), "failed or error", "bad" if failed else "ok"),
        _card("statements", _count(n_statements), f"{_ms(total_ms)} ms in the database"),
        _card(
            "violations", _count(n_violations), "budget violations", "bad" if n_violations else "ok"
        ),
    ]
    if any(v.baseline is not None for v in views):
        cards.append(
            _card(
                "regressions",
                _count(regressed),
                "against the baseline",
                "bad" if regressed else "ok",
            )
        )
    created = report.get("created")
    meta = (
        (f'<p class="meta">created <time>{_e(created)}</time>' if created else '<p class="meta">')
        + (
            f" · pytest-pgbudget {_e(report['plugin_version'])}"
            if report.get("plugin_version")
            else ""
        )
        + "</p>"
    )
    return (
        '<header class="top">'
        "<h1>PostgreSQL budget report</h1>"
        + meta
        + '<div class="head-grid">'
        + f'<section class="servers"><h2>Servers</h2><ul>{server_items}</ul></section>'
        + f'<section class="cards">{"".join(cards)}</section>'
        + _health(report.get("health"))
        + "</div>"
        + _problems(views)
        + "</header>"
    )


def _card(label: str, value: str, note: str, kind: str = "") -> str:
    return (
        f'<div class="card {kind}"><div class="value">{_e(value)}</div>'
        f'<div class="label">{_e(label)}</div><div class="note">{_e(note)}</div></div>'
    )


def _health(health: object) -> str:
    if not isinstance(health, Mapping):
        return (
            '<section class="health none"><h2>Database health</h2>'
            '<p class="muted">not checked in this run</p></section>'
        )
    breaches = [str(b) for b in _list(health.get("breaches"))]
    passed = bool(health.get("passed", not breaches)) and not breaches
    kind = "ok" if passed else "bad"
    lines = [str(line) for line in _list(health.get("lines"))]
    items = "".join(
        f'<li class="{"bad" if line in breaches else ""}">{_e(line)}</li>' for line in lines
    )
    items += "".join(f'<li class="bad">{_e(b)}</li>' for b in breaches if b not in lines)
    verdict = (
        "healthy"
        if passed
        else f"{len(breaches) or 'budget'} breach{'es' if len(breaches) != 1 else ''}"
    )
    return (
        f'<section class="health {kind}" id="health"><h2>Database health '
        f"{_badge(verdict, kind)}</h2><ul>{items}</ul></section>"
    )


def _problems(views: Sequence[_TestView]) -> str:
    items: list[str] = []
    for view in views:
        link = f'<a href="#{view.id}">{_e(view.nodeid)}</a>'
        for violation in view.violations:
            items.append(
                f'<li class="bad">{_badge(str(violation.get("keyword", "budget")), "bad")} '
                f"{link}: {_e(violation.get('headline', ''))}</li>"
            )
        for change in view.changes:
            kind = "bad" if change.get("failed") else "warn"
            label = f"baseline {change.get('metric', 'change')}" + (
                "" if change.get("failed") else " (noisy)"
            )
            items.append(
                f'<li class="{kind}">{_badge(label, kind)} {link}: '
                f"{_e(change.get('message') or _change_text(change))}</li>"
            )
        if view.outcome in ("failed", "error") and not view.violations:
            items.append(f'<li class="bad">{_badge(view.outcome, "bad")} {link}</li>')
    if not items:
        return '<section class="problems ok"><p>No budget violations and no baseline regressions.</p></section>'
    return (
        f'<section class="problems"><h2>Problems <span class="muted">({len(items)})</span></h2>'
        f"<ul>{''.join(items)}</ul></section>"
    )


def _change_text(change: Mapping[str, Any]) -> str:
    return f"{change.get('before', '?')} → {change.get('after', '?')}"


# --- overview charts -------------------------------------------------------------------


def _overview(views: Sequence[_TestView]) -> str:
    durations = sorted(d for v in views for d in v.durations)
    if not durations:
        return '<section class="overview"><h2>Statement latency</h2><p class="muted">No statements were captured.</p></section>'
    marks = [(f"p{p}", _percentile(durations, p / 100)) for p in (50, 95, 99)]
    stats = _latency_table(
        {
            "count": len(durations),
            "p50_ms": marks[0][1],
            "p95_ms": marks[1][1],
            "p99_ms": marks[2][1],
            "max_ms": durations[-1],
            "total_ms": sum(durations),
        }
    )
    chart = _histogram(
        durations,
        width=720,
        height=180,
        bins=30,
        marks=marks,
        label="Distribution of all statement durations",
    )
    return (
        '<section class="overview"><h2>Statement latency, all tests</h2>'
        f'<div class="charts"><figure>{chart}<figcaption>statement duration, all tests'
        f"</figcaption></figure>{stats}</div>"
        f"{_top_tests_chart(views)}</section>"
    )


def _latency_table(latency: Mapping[str, Any]) -> str:
    cells = "".join(
        f"<tr><th>{label}</th><td>{_ms(latency.get(key)) if key != 'count' else _count(latency.get(key))}"
        f"{'' if key == 'count' else ' ms'}</td></tr>"
        for label, key in (
            ("statements", "count"),
            ("p50", "p50_ms"),
            ("p95", "p95_ms"),
            ("p99", "p99_ms"),
            ("max", "max_ms"),
            ("total", "total_ms"),
        )
    )
    return f'<table class="latency"><tbody>{cells}</tbody></table>'


def _top_tests_chart(views: Sequence[_TestView]) -> str:
    ranked = sorted((v for v in views if v.total_ms), key=lambda v: -(v.total_ms or 0.0))[:10]
    if len(ranked) < 2:
        return ""
    top = ranked[0].total_ms or 1.0
    row_h, label_w, bar_w = 22, 330, 330
    rows = []
    for i, view in enumerate(ranked):
        y = i * row_h
        width = max(1.0, (view.total_ms or 0.0) / top * bar_w)
        kind = f"bar {view.level}"
        rows.append(
            f'<a href="#{view.id}"><g class="row">'
            f"<title>{_e(view.nodeid)}: {_ms(view.total_ms)} ms in {len(view.statements)} statements</title>"
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" class="lbl">{_e(_short(view.nodeid, 48))}</text>'
            f'<rect class="{kind}" x="{label_w}" y="{y + 4}" width="{width:.1f}" height="{row_h - 8}" rx="2"/>'
            f'<text x="{label_w + width + 4:.1f}" y="{y + 15}" class="val">{_ms(view.total_ms)} ms</text>'
            "</g></a>"
        )
    height = len(ranked) * row_h
    return (
        '<figure class="top-tests">'
        f'<svg class="chart" viewBox="0 0 {label_w + bar_w + 80} {height}" role="img" '
        f'aria-label="Tests with the most time in the database">{"".join(rows)}</svg>'
        "<figcaption>tests with the most time in the database</figcaption></figure>"
    )


def _histogram(
    values: Sequence[float],
    *,
    width: int,
    height: int,
    bins: int,
    marks: Sequence[tuple[str, float]],
    label: str,
) -> str:
    """An inline SVG histogram of durations (log-scaled when they span a wide range)."""
    data = sorted(v for v in values if v >= 0)
    if not data:
        return '<p class="muted">no statements</p>'
    left, right, top, bottom = 34, 10, 16, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    lo, hi = data[0], data[-1]
    log = lo > 0 and hi / lo > 20

    def scale(value: float) -> float:
        return math.log10(value) if log else value

    span = scale(hi) - scale(lo)
    n = bins if span > 0 else 1

    def position(value: float) -> float:
        if span <= 0:
            return left + plot_w / 2
        fraction = (scale(min(max(value, lo), hi)) - scale(lo)) / span
        return left + fraction * plot_w

    def edge(i: int) -> float:
        if span <= 0:
            return lo
        s = scale(lo) + span * i / n
        return 10**s if log else s

    counts = [0] * n
    for value in data:
        i = 0 if span <= 0 else min(n - 1, int((scale(value) - scale(lo)) / span * n))
        counts[i] += 1
    peak = max(counts)
    parts = [
        f'<svg class="chart hist" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">',
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"/>',
        f'<text class="tick" x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>',
        f'<text class="tick" x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    bar_w = plot_w / n
    for i, count in enumerate(counts):
        if not count:
            continue
        h = max(1.0, count / peak * plot_h)
        x = left + i * bar_w if span > 0 else left + plot_w / 2 - 12
        w = max(1.0, bar_w - 1) if span > 0 else 24
        low, high = edge(i), edge(i + 1)
        rng = f"{_ms(low)}{_DASH}{_ms(high)} ms" if span > 0 else f"{_ms(lo)} ms"
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{w:.1f}" height="{h:.1f}">'
            f"<title>{rng}: {count} statement{'s' if count != 1 else ''}</title></rect>"
        )
    # x ticks: both ends, plus decades in between on a log scale
    ticks: list[tuple[float, str, str]] = [(position(lo), _ms(lo), "start")]
    if span > 0:
        ticks.append((position(hi), f"{_ms(hi)} ms", "end"))
        if log:
            for k in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1):
                x = position(10.0**k)
                if x - left > 40 and left + plot_w - x > 60:
                    ticks.append((x, _ms(10.0**k), "middle"))
    else:
        ticks = [(position(lo), f"{_ms(lo)} ms", "middle")]
    for x, text, anchor in ticks:
        parts.append(
            f'<line class="axis" x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}"/>'
            f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 15}" text-anchor="{anchor}">{_e(text)}</text>'
        )
    parts.append(
        f'<text class="tick muted" x="{left + plot_w / 2:.1f}" y="{height - 2}" text-anchor="middle">'
        f"duration, ms{' (log scale)' if log else ''}</text>"
    )
    # percentile markers; labels of markers that would overlap are merged
    merged: list[tuple[float, list[str], float]] = []
    for name, value in marks:
        x = position(value)
        if merged and abs(merged[-1][0] - x) < 24:
            merged[-1][1].append(name)
        else:
            merged.append((x, [name], value))
    for x, names, value in merged:
        anchor = "end" if x > left + plot_w - 24 else "start" if x < left + 24 else "middle"
        parts.append(
            f'<g class="mark"><title>{"/".join(names)} = {_ms(value)} ms</title>'
            f'<line x1="{x:.1f}" y1="{top - 2}" x2="{x:.1f}" y2="{top + plot_h}"/>'
            f'<text x="{x:.1f}" y="{top - 5}" text-anchor="{anchor}">{"/".join(names)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


# --- tests table -----------------------------------------------------------------------

_TEST_COLUMNS: Final = (
    ("name", "test", "str"),
    ("outcome", "outcome", "num"),
    ("statements", "statements", "num"),
    ("total", "total ms", "num"),
    ("p95", "p95 ms", "num"),
    ("buffers", "max buffers", "num"),
    ("violations", "violations", "num"),
)


def _tests_table(views: Sequence[_TestView], auto_open: bool) -> str:
    head = "".join(
        f'<th data-col="{key}" data-sort="{kind}" class="{kind}"><button type="button">{_e(label)}</button></th>'
        for key, label, kind in _TEST_COLUMNS
    )
    bodies = "".join(_test_body(view, auto_open and view.level == "bad") for view in views)
    if not views:
        bodies = (
            '<tbody><tr><td colspan="7" class="muted">No tests were recorded.</td></tr></tbody>'
        )
    return (
        '<main><section class="tests"><h2>Tests</h2>'
        '<div class="toolbar">'
        '<input type="search" id="filter" placeholder="filter tests…" aria-label="filter tests">'
        '<label><input type="checkbox" id="problems-only"> problems only</label>'
        '<button type="button" id="expand-all">expand all</button>'
        '<button type="button" id="collapse-all">collapse all</button>'
        '<span id="shown" class="muted"></span></div>'
        f'<table id="tests" class="sortable grouped"><thead><tr>{head}</tr></thead>{bodies}</table>'
        "</section></main>"
    )


def _test_body(view: _TestView, open_: bool) -> str:
    badges = ""
    if view.baseline_status:
        kind = {"regressed": "bad", "new": "warn", "noisy": "warn"}.get(view.baseline_status, "")
        badges += " " + _badge(view.baseline_status, kind, "baseline")
    outcome_kind = {"passed": "ok", "failed": "bad", "error": "bad"}.get(view.outcome, "")
    n_viol = len(view.violations)
    cells = [
        f'<td class="name" data-v="{_e(view.nodeid)}"><span class="twisty" aria-hidden="true"></span>'
        f'<a class="anchor" href="#{view.id}">{_e(view.nodeid)}</a>{badges}</td>',
        f'<td data-v="{_OUTCOME_RANK.get(view.outcome, 2)}">{_badge(view.outcome, outcome_kind)}</td>',
        f'<td class="num" data-v="{len(view.statements)}">{len(view.statements)}</td>',
        f'<td class="num" data-v="{_sort_value(view.total_ms)}">{_ms(view.total_ms)}</td>',
        f'<td class="num" data-v="{_sort_value(view.p95_ms)}">{_ms(view.p95_ms)}</td>',
        f'<td class="num" data-v="{view.max_buffers}">{_count(view.max_buffers)}</td>',
        f'<td class="num{" bad" if n_viol else ""}" data-v="{n_viol}">{n_viol}</td>',
    ]
    summary_bits = [f"{len(view.statements)} statement{'s' if len(view.statements) != 1 else ''}"]
    if n_viol:
        summary_bits.append(f"{n_viol} violation{'s' if n_viol != 1 else ''}")
    if view.changes:
        summary_bits.append(
            f"{len(view.changes)} baseline change{'s' if len(view.changes) != 1 else ''}"
        )
    if view.loads:
        summary_bits.append(f"{len(view.loads)} load run{'s' if len(view.loads) != 1 else ''}")
    open_attr = " open" if open_ else ""
    return (
        f'<tbody id="{view.id}" class="test {view.level}{" open" if open_ else ""}" '
        f'data-name="{_e(view.nodeid.lower())}">'
        f'<tr class="row">{"".join(cells)}</tr>'
        f'<tr class="more"><td colspan="7"><details class="test-details"{open_attr}>'
        f"<summary>{_e(' · '.join(summary_bits))}</summary>"
        f"{_test_details(view)}</details></td></tr></tbody>"
    )


def _test_details(view: _TestView) -> str:
    parts: list[str] = []
    if view.budget:
        chips = "".join(
            f'<code class="chip">{_e(key)}={_e(_value_text(value))}</code>'
            for key, value in view.budget.items()
        )
        parts.append(f'<div class="budget"><span class="muted">budget:</span> {chips}</div>')
    if view.violations:
        items = "".join(_violation_item(v) for v in view.violations)
        parts.append(
            f'<section class="violations"><h3>Budget violations</h3><ul>{items}</ul></section>'
        )
    if view.baseline is not None:
        parts.append(_baseline_section(view))
    if view.loads:
        parts.append(_load_section(view.loads))
    if view.statements:
        marks = [
            (f"p{p}", value)
            for p in (50, 95, 99)
            if (value := _num(view.latency.get(f"p{p}_ms"))) is not None
        ]
        if not marks and view.durations:
            marks = [(f"p{p}", _percentile(view.durations, p / 100)) for p in (50, 95, 99)]
        latency = (
            dict(view.latency)
            if view.latency.get("count")
            else {
                "count": len(view.durations),
                **{f"{name}_ms": value for name, value in marks},
                "max_ms": view.durations[-1] if view.durations else None,
                "total_ms": view.total_ms,
            }
        )
        chart = _histogram(
            view.durations,
            width=440,
            height=130,
            bins=20,
            marks=marks,
            label=f"Statement durations of {view.nodeid}",
        )
        parts.append(f'<div class="charts"><figure>{chart}</figure>{_latency_table(latency)}</div>')
        parts.append(_statements_table(view))
    else:
        parts.append('<p class="muted">No SQL statements were captured in this test.</p>')
    return "".join(parts)


_LOAD_COLUMNS: Final = (
    "run",
    "operations",
    "connections",
    "arrivals",
    "ops/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "errors",
    "max lock wait ms",
)


def _load_section(runs: Sequence[Mapping[str, Any]]) -> str:
    """The test's ``pg_load`` runs: one row each (with what drove it), and the worst lock
    wait's blocker."""
    head = "".join(
        f'<th class="{"" if i == 0 else "num"}">{_e(name)}</th>'
        for i, name in enumerate(_LOAD_COLUMNS)
    )
    rows = []
    for run in runs:
        latency = _mapping(run.get("latency"))
        rate = _num(run.get("rate"))
        arrivals = "closed loop"
        if run.get("mode") == "rate" and rate is not None:
            arrivals = f"{rate:g}/s" + (", Poisson" if run.get("arrivals") == "poisson" else "")
        errors = _int(run.get("errors"))
        error_types = _mapping(run.get("error_types"))
        errors_text = _count(errors) + (
            f' <span class="muted">{_e(", ".join(f"{k} {v}" for k, v in error_types.items()))}</span>'
            if errors
            else ""
        )
        wait = _num(run.get("max_lock_wait_ms"))
        throughput = _num(run.get("throughput"))
        driver = run.get("driver")
        cells = [
            f'<td class="name">{_e(run.get("label") or "load")}'
            + (f' <span class="muted">({_e(driver)})</span>' if driver else "")
            + "</td>",
            f'<td class="num">{_count(run.get("operations"))}</td>',
            f'<td class="num">{_count(run.get("concurrency"))}'
            f' <span class="muted">(peak {_count(run.get("peak_connections"))})</span></td>',
            f"<td>{_e(arrivals)}</td>",
            f'<td class="num">{_count(None if throughput is None else round(throughput))}</td>',
            *(
                f'<td class="num">{_ms(latency.get(k))}</td>'
                for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")
            ),
            f'<td class="num{" bad" if errors else ""}">{errors_text}</td>',
            f'<td class="num">{_ms(wait)}</td>',
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
        blocker = run.get("blocking_statement")
        if blocker and wait:
            rows.append(
                f'<tr class="blocker"><td colspan="{len(_LOAD_COLUMNS)}">'
                f'<span class="muted">longest lock wait blocked by:</span>'
                f'<pre class="sql">{_e(blocker)}</pre></td></tr>'
            )
    return (
        '<section class="load"><h3>Load</h3>'
        f'<table class="load-runs"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _value_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def _violation_item(violation: Mapping[str, Any]) -> str:
    sql = violation.get("sql")
    hint = violation.get("hint")
    return (
        f'<li class="bad">{_badge(str(violation.get("keyword", "budget")), "bad")} '
        f'<span class="headline">{_e(violation.get("headline", ""))}</span>'
        + (f'<pre class="sql">{_e(sql)}</pre>' if sql else "")
        + (f'<div class="hint">{_e(hint)}</div>' if hint else "")
        + "</li>"
    )


def _baseline_section(view: _TestView) -> str:
    status = view.baseline_status or "unknown"
    kind = {"regressed": "bad", "new": "warn", "noisy": "warn", "same": "ok"}.get(status, "")
    items = []
    for change in view.changes:
        ckind = "bad" if change.get("failed") else "warn"
        note = "" if change.get("failed") else " (noisy, not failing)"
        before, after = change.get("before"), change.get("after")
        diff = (
            f'<div class="diff"><del>{_e(before)}</del> → <ins>{_e(after)}</ins></div>'
            if before is not None or after is not None
            else ""
        )
        items.append(
            f'<li class="{ckind}">{_badge(str(change.get("metric", "change")) + note, ckind)} '
            f"{_e(change.get('message') or _change_text(change))}{diff}"
            + (f'<pre class="sql">{_e(change["sql"])}</pre>' if change.get("sql") else "")
            + "</li>"
        )
    body = f"<ul>{''.join(items)}</ul>" if items else '<p class="muted">no changes</p>'
    return (
        f'<section class="baseline {kind}"><h3>Baseline {_badge(status, kind)}</h3>{body}</section>'
    )


# --- statements -------------------------------------------------------------------------

_STATEMENT_COLUMNS: Final = (
    ("n", "#", "num"),
    ("duration", "duration ms", "num"),
    ("rows", "rows", "num"),
    ("buffers", "buffers", "num"),
    ("temp", "temp blocks", "num"),
    ("sql", "statement", ""),
)


def _statements_table(view: _TestView) -> str:
    head = "".join(
        f'<th data-col="{key}" data-sort="{kind}" class="{kind}"><button type="button">{_e(label)}</button></th>'
        if kind
        else f'<th data-col="{key}">{_e(label)}</th>'
        for key, label, kind in _STATEMENT_COLUMNS
    )
    repeats = Counter(str(s.get("fingerprint")) for s in view.statements if s.get("fingerprint"))
    rows = "".join(
        _statement_row(view, number, statement, repeats)
        for number, statement in enumerate(view.statements, 1)
    )
    return (
        f'<table class="statements sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _statement_row(
    view: _TestView,
    number: int,
    statement: Mapping[str, Any],
    repeats: Counter[str],
) -> str:
    sql = str(statement.get("sql", ""))
    fingerprint = str(statement.get("fingerprint") or "")
    badges: list[str] = []
    costly = False
    for scan in _list(statement.get("seq_scans")):
        if not isinstance(scan, Mapping):
            continue
        rows = _int(scan.get("rows"))
        big = rows >= COSTLY_SEQ_SCAN_ROWS
        costly |= big
        badges.append(
            _badge(
                f"Seq Scan {scan.get('relation', '?')} ({_count(rows)} rows)",
                "costly" if big else "",
                f"filter: {scan['filter']}" if scan.get("filter") else "no filter",
            )
        )
    for spill in _list(statement.get("spills")):
        if isinstance(spill, Mapping):
            costly = True
            badges.append(
                _badge(
                    f"spill: {spill.get('kind', '?')}",
                    "costly",
                    f"{spill.get('node', '')} {spill.get('detail', '')}",
                )
            )
    for index in _list(statement.get("indexes")):
        badges.append(_badge(f"index {index}", "idx"))
    if repeats.get(fingerprint, 0) > 1:
        badges.append(
            _badge(
                f"{_TIMES}{repeats[fingerprint]}",
                "",
                "same fingerprint in this test",
            )
        )
    change = view.changed.get(fingerprint)
    if change is not None:
        kind = "bad" if change.get("failed") else "warn"
        badges.append(
            _badge(
                f"baseline: {change.get('metric', 'changed')}", kind, str(change.get("message", ""))
            )
        )
    classes = ["stmt"]
    if sql in view.violating:
        classes.append("violating")
        badges.insert(0, _badge("violation", "bad"))
    if costly:
        classes.append("costly")
    hit, read = statement.get("shared_hit"), statement.get("shared_read")
    buffers_tip = f"shared hit {_count(hit)} · read {_count(read)}"
    duration = statement.get("duration_ms")
    return (
        f'<tr id="{view.id}s{number}" class="{" ".join(classes)}">'
        f'<td class="num" data-v="{number}">{number}</td>'
        f'<td class="num" data-v="{_sort_value(duration)}">{_ms(duration)}</td>'
        f'<td class="num" data-v="{_sort_value(statement.get("rows"))}">{_count(statement.get("rows"))}</td>'
        f'<td class="num" data-v="{_sort_value(statement.get("buffers"))}" title="{_e(buffers_tip)}">'
        f"{_count(statement.get('buffers'))}</td>"
        f'<td class="num" data-v="{_sort_value(statement.get("temp_blocks"))}">{_count(statement.get("temp_blocks"))}</td>'
        f'<td class="sqlcell"><code class="sql clamp">{_e(sql)}</code>'
        f'<div class="badges">{"".join(badges)}'
        + (f'<span class="fp">{_e(fingerprint)}</span>' if fingerprint else "")
        + f"</div>{_plan_details(statement, omitted=number in view.omitted)}</td></tr>"
    )


# --- plan trees -------------------------------------------------------------------------


def _node_buffers(node: Mapping[str, Any]) -> int:
    return _int(node.get("Shared Hit Blocks")) + _int(node.get("Shared Read Blocks"))


def _plan_details(statement: Mapping[str, Any], *, omitted: bool = False) -> str:
    plan = statement.get("plan")
    if plan is None:
        return '<p class="muted noplan">no plan recorded</p>'
    if omitted:
        return '<p class="muted noplan">plan: in the JSON report (left out of this page)</p>'
    try:
        root = plan_root(plan)
        nodes = list(iter_nodes(root))
    except (PlanFormatError, ValueError, TypeError):
        raw = json.dumps(plan, indent=1, default=str) if not isinstance(plan, str) else plan
        return (
            '<details class="plan"><summary>plan (unreadable)</summary>'
            f'<pre class="raw">{_e(raw)}</pre></details>'
        )
    own: dict[int, int] = {}
    for node in nodes:
        children = node.get("Plans") or []
        own[id(node)] = max(0, _node_buffers(node) - sum(_node_buffers(c) for c in children))
    total_own = sum(own.values())
    hottest = max(nodes, key=lambda n: own[id(n)])
    hot_id = id(hottest) if own[id(hottest)] >= COSTLY_BUFFERS else None
    costly_names: list[str] = []
    out: list[str] = ['<ul class="tree">']
    stack: list[tuple[Mapping[str, Any], bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        children = [c for c in (node.get("Plans") or []) if isinstance(c, Mapping)]
        if closing:
            out.append("</ul></details></li>")
            continue
        marks = _node_marks(node, own[id(node)], total_own, id(node) == hot_id)
        if marks:
            costly_names.append(describe_node(node))
        classes = "node costly" if marks else "node"
        if node.get("Actual Loops") == 0:
            classes += " never"
        head = _node_head(node, marks, own[id(node)], total_own)
        body = _node_lines(node)
        if children:
            out.append(f'<li class="{classes}"><details open><summary>{head}</summary>{body}<ul>')
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(children))
        else:
            out.append(f'<li class="{classes} leaf"><div class="nodehead">{head}</div>{body}</li>')
    out.append("</ul>")
    extra = _plan_extras(plan)
    costly = (
        f' · <span class="costly-note">{len(costly_names)} costly: {_e(", ".join(dict.fromkeys(costly_names)))}</span>'
        if costly_names
        else ""
    )
    return (
        f'<details class="plan{" has-costly" if costly_names else ""}">'
        f"<summary>plan · {len(nodes)} node{'s' if len(nodes) != 1 else ''}{costly}</summary>"
        f"{extra}{''.join(out)}</details>"
    )


def _plan_extras(plan: object) -> str:
    document: Any = plan
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    if not isinstance(document, Mapping):
        return ""
    bits = [
        f"{label} {_ms(document.get(key))} ms"
        for label, key in (("planning", "Planning Time"), ("execution", "Execution Time"))
        if _num(document.get(key)) is not None
    ]
    return f'<p class="muted plan-times">{_e(" · ".join(bits))}</p>' if bits else ""


def _node_marks(node: Mapping[str, Any], own: int, total_own: int, hottest: bool) -> list[str]:
    """Badges (HTML) saying why ``node`` is costly; empty when it is not."""
    own_temp = _int(node.get("Temp Written Blocks")) - sum(
        _int(c.get("Temp Written Blocks"))
        for c in (node.get("Plans") or [])
        if isinstance(c, Mapping)
    )
    alone = {**node, "Plans": [], "Temp Written Blocks": max(0, own_temp)}
    summary = analyze_plan(alone)
    marks: list[str] = []
    for scan in summary.seq_scans:
        if scan.rows >= COSTLY_SEQ_SCAN_ROWS:
            approx = "~" if scan.estimated else ""
            marks.append(
                _badge(
                    f"Seq Scan: {approx}{_count(scan.rows)} rows read",
                    "costly",
                    f"filter: {scan.filter}" if scan.filter else "no filter",
                )
            )
    for spill in summary.spills:
        marks.append(_badge(f"spill: {spill.kind}", "costly", f"{spill.node}: {spill.detail}"))
    if hottest and total_own:
        share = 100 * own / total_own
        marks.append(
            _badge(
                f"hottest: {share:.0f}% of buffers",
                "costly",
                f"{_count(own)} of {_count(total_own)} shared blocks",
            )
        )
    return marks


def _node_head(node: Mapping[str, Any], marks: Iterable[str], own: int, total_own: int) -> str:
    prefix = node.get("Subplan Name") or (
        node.get("Parent Relationship")
        if node.get("Parent Relationship") not in (None, "Outer", "Inner", "Member")
        else None
    )
    name = describe_node(node)
    stats: list[str] = []
    if "Actual Rows" in node:
        loops = _int(node.get("Actual Loops"))
        if loops == 0:
            stats.append("never executed")
        else:
            rows = _num(node.get("Actual Rows")) or 0.0
            stats.append(f"rows {_count(rows)}" + (f" {_TIMES} {loops} loops" if loops > 1 else ""))
            estimate = _num(node.get("Plan Rows"))
            if estimate is not None:
                high, low = max(rows, estimate), max(min(rows, estimate), 1.0)
                if high >= 100 and high / low >= _MISESTIMATE_FACTOR:
                    stats.append(
                        _badge(
                            f"est {_count(estimate)}",
                            "warn",
                            f"the planner's row estimate is off by {_MISESTIMATE_FACTOR}{_TIMES} or more",
                        )
                    )
            time = _num(node.get("Actual Total Time"))
            if time is not None:
                stats.append(f"{_ms(time * max(loops, 1))} ms")
    elif "Plan Rows" in node:
        stats.append(f"est. rows {_count(node.get('Plan Rows'))}")
    buffers = _node_buffers(node)
    if buffers:
        stats.append(f"buffers {_count(buffers)}")
    # the node's own share of the plan's buffer accesses, as a small bar
    bar = (
        f'<span class="share" style="--w:{100 * own / total_own:.0f}%"></span>' if total_own else ""
    )
    text_stats = " · ".join(s if s.startswith("<span") else _e(s) for s in stats)
    return (
        (f'<span class="rel">{_e(prefix)}</span> ' if prefix else "")
        + f'<span class="nname">{_e(name)}</span> '
        + f'<span class="nstats">{text_stats}</span>{bar}'
        + "".join(marks)
    )


def _node_lines(node: Mapping[str, Any]) -> str:
    try:
        lines = render_plan({**node, "Plans": []})[1:]
    except (PlanFormatError, ValueError, TypeError, KeyError):
        return ""
    if not lines:
        return ""
    return f'<pre class="ndetail">{_e(chr(10).join(line.strip() for line in lines))}</pre>'


def _footer(report: Mapping[str, Any]) -> str:
    return (
        f'<footer class="muted">report format {_e(report.get("format", "?"))} '
        f"v{_e(report.get('version', '?'))} · self-contained page, no external resources</footer>"
    )


# --- static assets ----------------------------------------------------------------------

_CSS: Final = """
:root{--fg:#1d2330;--bg:#fff;--panel:#f6f7fa;--muted:#687082;--border:#dde1ea;--accent:#3559c7;
--bad:#c62828;--bad-bg:#fdecea;--warn:#9a5b00;--warn-bg:#fff3dc;--ok:#2e7d32;--ok-bg:#e7f5e9;--bar:#6d8ee0;
color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--fg:#e4e7ee;--bg:#15181e;--panel:#1e222b;--muted:#9aa3b5;
--border:#333a48;--accent:#8aa6ff;--bad:#ff7b72;--bad-bg:#3b1d1d;--warn:#f0b45a;--warn-bg:#3a2c12;
--ok:#7ccf83;--ok-bg:#17301b;--bar:#6d8ee0}}
*{box-sizing:border-box}
body{margin:0;padding:0 24px 40px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
h1{font-size:22px;margin:18px 0 2px}h2{font-size:16px;margin:0 0 8px}h3{font-size:14px;margin:10px 0 6px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.muted{color:var(--muted)}.meta{margin:0 0 14px;color:var(--muted)}
code,pre,.fp{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{white-space:pre-wrap;word-break:break-word;margin:6px 0}
.head-grid{display:grid;grid-template-columns:minmax(220px,1fr) minmax(320px,2fr) minmax(260px,1.5fr);gap:14px}
@media (max-width:1000px){.head-grid{grid-template-columns:1fr}}
.head-grid>section,.problems,.overview{background:var(--panel);border:1px solid var(--border);border-radius:8px;padding:12px 14px}
.servers ul,.health ul,.problems ul{margin:0;padding-left:18px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(104px,1fr));gap:10px;align-content:start}
.card{border-radius:8px;padding:8px 10px;background:var(--bg);border:1px solid var(--border)}
.card .value{font-size:24px;font-weight:650}.card .label{font-weight:600}.card .note{font-size:12px;color:var(--muted)}
.card.bad{border-color:var(--bad);background:var(--bad-bg)}.card.bad .value{color:var(--bad)}
.card.ok .value{color:var(--ok)}
.health.bad{border-color:var(--bad);background:var(--bad-bg)}.health.ok{border-color:var(--ok)}
.health li.bad{color:var(--bad);font-weight:600}
.problems{margin-top:14px}.problems.ok{color:var(--ok)}.problems p{margin:0}
.problems li{margin:3px 0}
li.bad,.violations li{color:inherit}
.badge{display:inline-block;border-radius:10px;padding:0 7px;font-size:12px;line-height:18px;margin:1px 3px 1px 0;
background:var(--panel);border:1px solid var(--border);color:var(--fg);white-space:nowrap;font-weight:500}
.badge.bad,.badge.costly{background:var(--bad-bg);border-color:var(--bad);color:var(--bad)}
.badge.warn{background:var(--warn-bg);border-color:var(--warn);color:var(--warn)}
.badge.ok{background:var(--ok-bg);border-color:var(--ok);color:var(--ok)}
.badge.idx{color:var(--ok)}
.overview{margin-top:14px}
.charts{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
figure{margin:0}figcaption{font-size:12px;color:var(--muted);text-align:center}
.chart{display:block;max-width:100%;height:auto}.hist{width:720px}.test-details .hist{width:440px}
.top-tests{margin-top:10px}.top-tests .chart{width:740px}
.chart .bar{fill:var(--bar)}.chart .bar.bad{fill:var(--bad)}.chart .bar.warn{fill:var(--warn)}
.chart .axis{stroke:var(--muted);stroke-width:1}
.chart text{font-size:10.5px;fill:var(--fg)}.chart .tick{fill:var(--muted)}.chart .lbl{font-size:11px}
.chart .mark line{stroke:var(--bad);stroke-dasharray:3 3;stroke-width:1.2}.chart .mark text{fill:var(--bad);font-size:10px}
.chart a:hover .lbl{fill:var(--accent)}
table.latency{border-collapse:collapse;font-size:13px}
table.latency th{text-align:left;padding:2px 12px 2px 0;color:var(--muted);font-weight:500}
table.latency td{text-align:right;font-variant-numeric:tabular-nums}
table.load-runs{border-collapse:collapse;font-size:13px;margin:4px 0 10px}
table.load-runs th{text-align:left;padding:3px 8px;color:var(--muted);font-weight:500;border-bottom:1px solid var(--border)}
table.load-runs th.num{text-align:right}
table.load-runs td{padding:3px 8px;border-bottom:1px solid var(--border);vertical-align:top}
table.load-runs tr.blocker pre.sql{margin:2px 0 0}
.tests{margin-top:18px}
.toolbar{display:flex;gap:10px;align-items:center;margin:0 0 8px;flex-wrap:wrap}
.toolbar input[type=search]{padding:4px 8px;min-width:260px;border:1px solid var(--border);border-radius:6px;
background:var(--bg);color:var(--fg)}
.toolbar button{padding:3px 10px;border:1px solid var(--border);border-radius:6px;background:var(--panel);color:var(--fg);cursor:pointer}
html:not(.js) .toolbar{display:none}
table.sortable{border-collapse:collapse;width:100%}
table.sortable>thead>tr>th{text-align:left;border-bottom:2px solid var(--border);padding:0;white-space:nowrap;
position:sticky;top:0;background:var(--bg);z-index:1}
table.sortable>thead>tr>th.num{text-align:right}
table.sortable>thead>tr>th>button{all:unset;display:block;padding:6px 8px;cursor:pointer;font-weight:600}
html:not(.js) table.sortable>thead>tr>th>button{cursor:default}
table.sortable th[aria-sort=ascending] button::after{content:" ▲";font-size:10px}
table.sortable th[aria-sort=descending] button::after{content:" ▼";font-size:10px}
table.sortable>tbody>tr>td{padding:5px 8px;border-bottom:1px solid var(--border);vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.bad{color:var(--bad);font-weight:700}
#tests>tbody.test>tr.row td{border-bottom:1px solid var(--border)}
#tests>tbody.test.bad>tr.row{background:var(--bad-bg)}
#tests>tbody.test.bad>tr.row td.name{box-shadow:inset 4px 0 var(--bad)}
#tests>tbody.test.warn>tr.row{background:var(--warn-bg)}
#tests>tbody.test.warn>tr.row td.name{box-shadow:inset 4px 0 var(--warn)}
td.name{word-break:break-all}td.name a.anchor{color:var(--fg)}
html.js #tests tr.row{cursor:pointer}
html.js #tests tr.row:hover td{background:rgba(127,127,127,.08)}
.twisty{display:none}
html.js .twisty{display:inline-block;width:14px;color:var(--muted)}
html.js .twisty::before{content:"▸"}
html.js tbody.test.open .twisty::before{content:"▾"}
html.js tbody.test:not(.open)>tr.more{display:none}
html.js tbody.test>tr.more>td>details>summary{display:none}
tr.more>td{padding:6px 8px 14px 22px;background:var(--bg)}
.test-details>summary{cursor:pointer;color:var(--muted)}
.budget{margin:4px 0 8px}.chip{display:inline-block;background:var(--panel);border:1px solid var(--border);
border-radius:4px;padding:0 5px;margin:0 4px 2px 0}
.violations,.baseline{border-left:4px solid var(--bad);background:var(--bad-bg);padding:6px 12px;margin:8px 0;border-radius:0 6px 6px 0}
.baseline.warn{border-color:var(--warn);background:var(--warn-bg)}
.baseline.ok,.baseline:not(.bad):not(.warn){border-color:var(--border);background:var(--panel)}
.violations ul,.baseline ul{margin:0;padding-left:18px}
.violations .headline{font-weight:600;color:var(--bad)}
.hint{white-space:pre-wrap;color:var(--muted);font-size:13px}
.diff del{color:var(--bad)}.diff ins{color:var(--ok);text-decoration:none}
.baseline li.bad{color:var(--bad)}.baseline li.warn{color:var(--warn)}
table.statements{margin-top:10px}
table.statements tr.costly td:first-child{box-shadow:inset 3px 0 var(--warn)}
table.statements tr.violating td{background:var(--bad-bg)}
table.statements tr.violating td:first-child{box-shadow:inset 4px 0 var(--bad)}
td.sqlcell{width:70%}
code.sql{display:block;white-space:pre-wrap;word-break:break-word}
code.clamp{display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical;overflow:hidden}
.badges{margin:3px 0}.fp{color:var(--muted);font-size:11px;margin-left:4px}
details.plan{margin-top:2px}
details.plan>summary{cursor:pointer;color:var(--accent);font-size:12.5px}
details.plan.has-costly>summary .costly-note{color:var(--bad)}
details.plan[open]{background:var(--panel);border:1px solid var(--border);border-radius:6px;padding:4px 8px 8px}
td.sqlcell:has(details.plan[open]) code.clamp{display:block;-webkit-line-clamp:unset;overflow:visible}
p.noplan{margin:0;font-size:12px}
ul.tree,ul.tree ul{list-style:none;margin:0;padding-left:18px}
ul.tree{padding-left:0}
ul.tree ul{border-left:1px dashed var(--border);margin-left:6px}
ul.tree li{margin:2px 0}
ul.tree summary,ul.tree .nodehead{cursor:default;padding:1px 4px;border-radius:4px}
ul.tree summary{cursor:pointer}
ul.tree li.leaf>.nodehead{padding-left:18px}
li.node.costly>details>summary,li.node.costly>.nodehead{background:var(--bad-bg);outline:1px solid var(--bad)}
li.node.never{opacity:.55}
.nname{font-weight:600}.rel{color:var(--muted);font-style:italic}.nstats{color:var(--muted);font-size:12.5px;margin-right:6px}
.share{display:inline-block;width:60px;height:6px;background:var(--border);border-radius:3px;vertical-align:middle;margin-right:6px}
.share::before{content:"";display:block;height:100%;width:var(--w);background:var(--bar);border-radius:3px}
li.node.costly .share::before{background:var(--bad)}
pre.ndetail{margin:0 0 2px 22px;color:var(--muted);font-size:12px}
footer{margin-top:24px;font-size:12px}
"""

_HEAD_JS: Final = """
(function(){var root=document.documentElement,errors=[];window.__pgbErrors=errors;
function rec(m){errors.push(String(m));root.setAttribute('data-js-errors',JSON.stringify(errors));}
root.setAttribute('data-js-errors','[]');root.classList.add('js');
window.addEventListener('error',function(e){rec((e.message||'error')+(e.lineno?' (line '+e.lineno+')':''));});
window.addEventListener('unhandledrejection',function(e){rec('unhandled rejection: '+e.reason);});
document.addEventListener('securitypolicyviolation',function(e){rec('blocked '+e.blockedURI+' ('+e.violatedDirective+')');});
var ce=console.error;console.error=function(){rec(Array.prototype.join.call(arguments,' '));return ce.apply(console,arguments);};
})();
"""

_JS: Final = r"""
(function(){
'use strict';
const root=document.documentElement;
const table=document.getElementById('tests');
function num(v){const n=parseFloat(v);return isNaN(n)?-Infinity:n;}
function cellValue(unit,idx){
  const row=unit.tagName==='TBODY'?unit.rows[0]:unit;const cell=row&&row.cells[idx];
  if(!cell)return '';const v=cell.getAttribute('data-v');return v===null?cell.textContent.trim():v;}
function units(t){return t.classList.contains('grouped')?Array.from(t.tBodies):Array.from(t.tBodies[0].rows);}
function sortBy(th,dir){
  const t=th.closest('table'),idx=th.cellIndex,type=th.getAttribute('data-sort');
  if(!dir){const cur=th.getAttribute('aria-sort');
    dir=cur?(cur==='ascending'?'descending':'ascending'):(type==='num'?'descending':'ascending');}
  for(const c of th.parentNode.cells)c.removeAttribute('aria-sort');
  th.setAttribute('aria-sort',dir);
  const list=units(t).map((u,i)=>[cellValue(u,idx),i,u]);
  const sign=dir==='ascending'?1:-1;
  list.sort((a,b)=>{const r=type==='num'?num(a[0])-num(b[0]):String(a[0]).localeCompare(String(b[0]));
    return r?sign*r:a[1]-b[1];});
  const parent=t.classList.contains('grouped')?t:t.tBodies[0];
  for(const d of list)parent.appendChild(d[2]);
  return dir;}
document.querySelectorAll('table.sortable th[data-sort]').forEach(th=>{
  th.addEventListener('click',e=>{e.stopPropagation();sortBy(th);});});
function setOpen(tb,open){
  tb.classList.toggle('open',open);const d=tb.querySelector('tr.more details.test-details');
  if(d)d.open=open;}
if(table){
  table.addEventListener('click',e=>{
    const row=e.target.closest('tr.row');if(!row||e.target.closest('a,button,input,summary'))return;
    const tb=row.parentNode;setOpen(tb,!tb.classList.contains('open'));});
}
function reveal(){
  const id=decodeURIComponent(location.hash.slice(1));if(!id||id==='selftest')return;
  const el=document.getElementById(id);if(!el)return;
  const tb=el.closest('tbody.test');if(tb)setOpen(tb,true);
  if(el.tagName==='TR'&&el.classList.contains('stmt')){const p=el.querySelector('details.plan');if(p)p.open=true;}
  el.scrollIntoView({block:'start'});}
window.addEventListener('hashchange',reveal);
const filter=document.getElementById('filter'),only=document.getElementById('problems-only'),shown=document.getElementById('shown');
function applyFilter(){
  if(!table)return;const q=(filter.value||'').trim().toLowerCase();let n=0;const all=table.querySelectorAll('tbody.test');
  all.forEach(tb=>{const ok=(!q||tb.dataset.name.indexOf(q)>=0)&&(!only.checked||tb.classList.contains('bad')||tb.classList.contains('warn'));
    tb.hidden=!ok;if(ok)n++;});
  shown.textContent=n===all.length?all.length+' tests':n+' of '+all.length+' tests shown';}
if(filter){filter.addEventListener('input',applyFilter);only.addEventListener('change',applyFilter);applyFilter();}
const ex=document.getElementById('expand-all'),co=document.getElementById('collapse-all');
if(ex)ex.addEventListener('click',()=>document.querySelectorAll('tbody.test:not([hidden])').forEach(tb=>setOpen(tb,true)));
if(co)co.addEventListener('click',()=>document.querySelectorAll('tbody.test').forEach(tb=>setOpen(tb,false)));

function visible(el){return el.checkVisibility?el.checkVisibility():el.offsetHeight>0;}
function sortedBy(values,dir){for(let i=1;i<values.length;i++){
  const r=typeof values[i]==='number'?values[i]-values[i-1]:String(values[i]).localeCompare(String(values[i-1]));
  if(dir==='ascending'?r<0:r>0)return false;}return true;}
function selftest(){
  const out={checks:{}};const ok=(name,cond)=>{out.checks[name]=!!cond;};
  try{
    const names=()=>Array.from(table.tBodies).map(tb=>tb.dataset.name);
    const before=names();
    const thStmts=table.querySelector('th[data-col="statements"]');
    const counts=()=>Array.from(table.tBodies).map(tb=>num(cellValue(tb,thStmts.cellIndex)));
    thStmts.querySelector('button').click();
    const dir1=thStmts.getAttribute('aria-sort');
    ok('tests sorted by statements '+dir1,sortedBy(counts(),dir1));
    const after1=names();
    thStmts.querySelector('button').click();
    const dir2=thStmts.getAttribute('aria-sort');
    ok('tests re-sorted '+dir2,dir2!==dir1&&sortedBy(counts(),dir2));
    const thName=table.querySelector('th[data-col="name"]');thName.querySelector('button').click();
    ok('tests sorted by name',sortedBy(names(),thName.getAttribute('aria-sort')));
    ok('test order changed',JSON.stringify(before)!==JSON.stringify(after1)||JSON.stringify(after1)!==JSON.stringify(names()));
    out.order={before:before,byStatements:after1,byName:names()};
    const tb=Array.from(table.tBodies).find(b=>b.querySelectorAll('table.statements tr.stmt').length>=2);
    ok('a test with two statements',tb);
    const row=tb.querySelector('tr.row');setOpen(tb,false);row.cells[2].click();
    ok('test row expands',tb.classList.contains('open')&&visible(tb.querySelector('table.statements')));
    const st=tb.querySelector('table.statements');const thDur=st.querySelector('th[data-col="duration"]');
    const durs=()=>Array.from(st.tBodies[0].rows).map(r=>num(cellValue(r,thDur.cellIndex)));
    const ids=()=>Array.from(st.tBodies[0].rows).map(r=>r.id);
    const idsBefore=ids();thDur.querySelector('button').click();
    ok('statements sorted by duration '+thDur.getAttribute('aria-sort'),sortedBy(durs(),thDur.getAttribute('aria-sort')));
    const thN=st.querySelector('th[data-col="n"]');thN.querySelector('button').click();
    if(thN.getAttribute('aria-sort')!=='ascending')thN.querySelector('button').click();
    ok('statement order restored',JSON.stringify(ids())===JSON.stringify(idsBefore));
    const plan=tb.querySelector('details.plan');const node=plan.querySelector('ul.tree li.node');
    ok('plan closed at first',!plan.open&&!visible(node));
    plan.querySelector('summary').click();
    ok('plan expands',plan.open&&visible(node));
    out.expandedNode=node.querySelector('.nname').textContent;
    const costly=document.querySelectorAll('li.node.costly').length;out.costlyNodes=costly;
    row.cells[2].click();ok('test row collapses',!tb.classList.contains('open'));
  }catch(e){out.error=String(e&&e.stack||e);}
  out.ok=!out.error&&Object.values(out.checks).every(Boolean);
  root.setAttribute('data-selftest',JSON.stringify(out));}
if(location.hash==='#selftest')selftest();else reveal();
root.setAttribute('data-js-ready','1');
})();
"""
