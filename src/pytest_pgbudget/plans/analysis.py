"""Pure analysis of PostgreSQL ``EXPLAIN (FORMAT JSON)`` plans.

Nothing here talks to a database: a plan document goes in, findings come out.
Three document shapes are accepted, plus their JSON text:

* what ``EXPLAIN (FORMAT JSON)`` returns: ``[{"Plan": {...}, "Execution Time": ...}]``;
* one element of that list: ``{"Plan": {...}, ...}``;
* what ``auto_explain`` logs with ``log_format = json``: ``{"Query Text": ..., "Plan": {...}}``.

Plans recorded without ``ANALYZE`` (no ``"Actual Rows"``) are accepted too; the
findings then fall back to the planner's estimates. Trees are walked with an
explicit stack, so arbitrarily deep plans neither recurse nor copy nodes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

Node = Mapping[str, Any]
"""One plan node, as decoded from ``EXPLAIN (FORMAT JSON)``."""

MARKER: Final = ">> "
"""Prefix :func:`render_plan` puts in front of the lines of marked nodes."""

EXTERNAL_SORT: Final = "external sort"
MULTI_BATCH_HASH: Final = "multi-batch hash"
TEMP_FILE: Final = "temp file"

_INDENT_STEP: Final = 6  # EXPLAIN text: children sit 6 columns right of their parent's arrow
_SUBPLAN_STEP: Final = 2  # ... and a named subplan ("InitPlan 1", "CTE x") shifts them 2 more
_TARGET_KEYS: Final = (
    "CTE Name",
    "Function Name",
    "Table Function Name",
    "Tuplestore Name",
)
_AGGREGATE_NAMES: Final = {
    "Hashed": "HashAggregate",
    "Sorted": "GroupAggregate",
    "Mixed": "MixedAggregate",
}
_CONDITIONS: Final = (
    ("Hash Cond", None),
    ("Merge Cond", None),
    ("Join Filter", "Rows Removed by Join Filter"),
    ("Index Cond", None),
    ("Recheck Cond", "Rows Removed by Index Recheck"),
    ("TID Cond", None),
    ("Filter", "Rows Removed by Filter"),
    ("One-Time Filter", None),
)
_KEY_LISTS: Final = ("Sort Key", "Presorted Key", "Group Key")
_PLAIN_DETAILS: Final = ("Heap Fetches", "Index Searches", "Workers Planned", "Workers Launched")
_BUFFER_GROUPS: Final = (
    ("shared", ("Hit", "Read", "Dirtied", "Written")),
    ("local", ("Hit", "Read", "Dirtied", "Written")),
    ("temp", ("Read", "Written")),
)


class PlanFormatError(ValueError):
    """The object handed in is not an ``EXPLAIN (FORMAT JSON)`` plan."""


@dataclass(frozen=True)
class SeqScan:
    """A sequential scan found in a plan.

    ``rows`` is how many rows the scan *read*: the rows it returned plus those its
    filter removed, over all loops (for a parallel scan, over the leader and all
    workers). PostgreSQL before 18 reports per-loop averages rounded to whole
    rows, so multi-loop counts can be off by up to one row per loop. Without
    ``ANALYZE`` it is the planner's estimate of the rows the scan returns
    (``Plan Rows``) and ``estimated`` is true.
    """

    relation: str
    rows: int
    filter: str | None
    estimated: bool


@dataclass(frozen=True)
class Spill:
    """A node that had to write to temporary files instead of working in memory.

    ``kind`` is one of :data:`EXTERNAL_SORT`, :data:`MULTI_BATCH_HASH` or
    :data:`TEMP_FILE` (tuplestores of Materialize/CTE Scan, spilled hash
    aggregates, ...); ``node`` names the node, ``detail`` holds the evidence.
    """

    kind: str
    node: str
    detail: str


@dataclass(frozen=True)
class PlanSummary:
    """What one plan costs, and the patterns a performance budget cares about.

    Buffer counters are statement totals, read from the top node (EXPLAIN's
    counters are cumulative). ``rows`` is ``None`` when the plan was not analyzed.
    """

    seq_scans: tuple[SeqScan, ...]
    indexes: frozenset[str]
    shared_hit: int
    shared_read: int
    temp_read: int
    temp_written: int
    spills: tuple[Spill, ...]
    rows: int | None
    node_count: int


def plan_root(plan: object) -> Node:
    """Return the top plan node of ``plan``, whichever accepted shape it has."""
    document: Any = plan
    if isinstance(document, (str, bytes, bytearray)):
        document = json.loads(document)
    if isinstance(document, (list, tuple)):
        if len(document) != 1:
            raise PlanFormatError(f"expected one EXPLAIN result, got {len(document)}")
        document = document[0]
    if isinstance(document, Mapping):
        root = document.get("Plan", document)
        if isinstance(root, Mapping) and "Node Type" in root:
            return root
    raise PlanFormatError(f"not an EXPLAIN (FORMAT JSON) plan: {type(plan).__name__}")


def iter_nodes(plan: object) -> Iterator[Node]:
    """Yield every node of ``plan`` in EXPLAIN order (parents before children).

    Sub-plans, init plans and CTEs are children like any other (``"Plans"``).
    """
    stack = [plan_root(plan)]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(_children(node)))


def analyze_plan(plan: object) -> PlanSummary:
    """Summarize ``plan``: sequential scans, indexes used, buffers, spills, size."""
    root = plan_root(plan)
    seq_scans: list[SeqScan] = []
    indexes: set[str] = set()
    spills: list[Spill] = []
    spilled_ctes: set[str] = set()  # CTE Scans of one CTE share a single tuplestore
    node_count = 0
    for node in iter_nodes(root):
        node_count += 1
        if node.get("Node Type") == "Seq Scan":
            seq_scans.append(_seq_scan(node))
        index = node.get("Index Name")
        if index:
            indexes.add(str(index))
        spill = _spill(node)
        cte = node.get("CTE Name") if node.get("Node Type") == "CTE Scan" else None
        if spill is not None and cte not in spilled_ctes:
            spills.append(spill)
            if cte:
                spilled_ctes.add(cte)
    return PlanSummary(
        seq_scans=tuple(seq_scans),
        indexes=frozenset(indexes),
        shared_hit=_count(root, "Shared Hit Blocks"),
        shared_read=_count(root, "Shared Read Blocks"),
        temp_read=_count(root, "Temp Read Blocks"),
        temp_written=_count(root, "Temp Written Blocks"),
        spills=tuple(spills),
        rows=round(_number(root, "Actual Rows")) if _analyzed(root) else None,
        node_count=node_count,
    )


def describe_node(node: Node) -> str:
    """Name ``node`` the way EXPLAIN's text format does, e.g. ``Seq Scan on accounts``."""
    name = _node_name(node)
    index = node.get("Index Name")
    if node.get("Node Type") == "Bitmap Index Scan":
        return f"{name} on {index}"
    using = f" using {index}" if index else ""
    return f"{name}{using}{_target(node)}"


def render_plan(plan: object, *, mark: Callable[[Node], bool] | None = None) -> list[str]:
    """Render ``plan`` as EXPLAIN-style text lines, one node header plus its details.

    When ``mark`` is given, every line of a node it returns true for starts with
    :data:`MARKER` and all other lines are padded to keep the tree aligned, so a
    failure message can point at the costly node.
    """
    lines: list[str] = []
    pad = " " * len(MARKER)
    stack: list[tuple[Node, int | None]] = [(plan_root(plan), None)]
    while stack:
        node, arrow = stack.pop()
        node_lines, child_arrow = _node_lines(node, arrow)
        if mark is not None:
            prefix = MARKER if mark(node) else pad
            node_lines = [prefix + line for line in node_lines]
        lines.extend(node_lines)
        stack.extend((child, child_arrow) for child in reversed(_children(node)))
    return lines


def index_hint(scan: SeqScan) -> str | None:
    """Suggest an index that would let ``scan``'s filter avoid a sequential scan.

    Only plain ``column <op> value`` conditions joined by ``AND`` are considered:
    equality columns (``=``, ``= ANY``, ``IS NULL``) come first in filter order,
    then the first range column (``<``, ``<=``, ``>``, ``>=``). Filters with a
    top-level ``OR``, or without any usable column, give ``None``.
    """
    if not scan.filter:
        return None
    conjuncts = _split_conjunction(scan.filter)
    if conjuncts is None:
        return None
    equality: list[str] = []
    ranges: list[str] = []
    for conjunct in conjuncts:
        comparison = _split_conjunction(conjunct)  # None for an OR nested in the AND
        match = _COMPARISON.match(comparison[0]) if comparison else None
        if match is None:
            continue
        column = match["column"].rsplit(".", 1)[-1]
        target = ranges if match["op"] in _RANGE_OPS else equality
        if column not in equality and column not in target:
            target.append(column)
    columns = equality + [column for column in ranges[:1] if column not in equality]
    if not columns:
        return None
    return f"CREATE INDEX ON {scan.relation} ({', '.join(columns)})"


# --- node accessors ---------------------------------------------------------------


def _children(node: Node) -> list[Node]:
    children: list[Node] = node.get("Plans", [])
    return children


def _number(node: Mapping[str, Any], key: str) -> float:
    value = node.get(key, 0)
    return float(value) if isinstance(value, (int, float)) else 0.0


def _count(node: Mapping[str, Any], key: str) -> int:
    return round(_number(node, key))


def _analyzed(node: Node) -> bool:
    return "Actual Rows" in node


def _relation(node: Node) -> str:
    relation = str(node.get("Relation Name", "?"))
    schema = node.get("Schema")
    return f"{schema}.{relation}" if schema else relation


def _format_rows(value: float) -> str:
    """Format a row count like EXPLAIN: PostgreSQL 18 reports per-loop fractions."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


# --- findings ---------------------------------------------------------------------


def _seq_scan(node: Node) -> SeqScan:
    filter_ = node.get("Filter")
    if not _analyzed(node):
        return SeqScan(_relation(node), _count(node, "Plan Rows"), filter_, estimated=True)
    # Actual Rows and Rows Removed by Filter are per-loop averages; parallel scans
    # count the leader and every worker as one loop each.
    per_loop = _number(node, "Actual Rows") + _number(node, "Rows Removed by Filter")
    loops = _number(node, "Actual Loops")
    return SeqScan(_relation(node), round(per_loop * loops), filter_, estimated=False)


def _spill(node: Node) -> Spill | None:
    node_type = node.get("Node Type")
    if node_type in ("Sort", "Incremental Sort"):
        return _sort_spill(node)
    if node_type == "Hash":
        return _hash_spill(node)
    if node_type == "Hash Join":  # its batch files are reported on its Hash child
        return None
    if node_type == "Aggregate" and node.get("Strategy") in ("Hashed", "Mixed"):
        return _hash_aggregate_spill(node)
    return _temp_file_spill(node)


def _sort_spill(node: Node) -> Spill | None:
    for sort in (node, *node.get("Workers", ())):
        if sort.get("Sort Space Type") == "Disk":
            method = sort.get("Sort Method", "external")
            space = _count(sort, "Sort Space Used")
            detail = [_sort_method_line(sort), *_key_lines(node)]
            return Spill(
                EXTERNAL_SORT, f"{describe_node(node)} ({method}, {space}kB)", "; ".join(detail)
            )
    for group in ("Full-sort Groups", "Pre-sorted Groups"):  # Incremental Sort
        if "Sort Space Disk" in node.get(group, {}):
            return Spill(EXTERNAL_SORT, describe_node(node), f"{group} sorted on disk")
    return None


def _hash_spill(node: Node) -> Spill | None:
    batches = _count(node, "Hash Batches")
    if batches <= 1:
        return None
    return Spill(MULTI_BATCH_HASH, f"{describe_node(node)} ({batches} batches)", _hash_line(node))


def _hash_aggregate_spill(node: Node) -> Spill | None:
    batches = _count(node, "HashAgg Batches")
    if batches <= 1 and _count(node, "Disk Usage") == 0:
        return None
    return Spill(
        TEMP_FILE, f"{describe_node(node)} ({batches} batches)", _hash_aggregate_line(node)
    )


def _temp_file_spill(node: Node) -> Spill | None:
    own_written = _count(node, "Temp Written Blocks") - sum(
        _count(child, "Temp Written Blocks") for child in _children(node)
    )
    if node.get("Storage") != "Disk" and own_written <= 0:
        return None
    detail = _storage_line(node) or f"Temp Written Blocks: {own_written}"
    return Spill(TEMP_FILE, describe_node(node), detail)


# --- node naming ------------------------------------------------------------------


def _node_name(node: Node) -> str:
    name = str(node.get("Node Type", "?"))
    if name == "Aggregate":
        name = _AGGREGATE_NAMES.get(node.get("Strategy", ""), name)
    elif name == "SetOp" and node.get("Strategy") == "Hashed":
        name = "HashSetOp"
    elif name == "ModifyTable":
        name = str(node.get("Operation", name))
    join_type = node.get("Join Type")
    if join_type and join_type != "Inner":
        name = f"{name.removesuffix(' Join')} {join_type} Join"
    if node.get("Scan Direction") == "Backward":
        name += " Backward"
    partial = node.get("Partial Mode", "Simple")
    prefixes = (
        "Parallel " if node.get("Parallel Aware") else "",
        "Async " if node.get("Async Capable") else "",
        f"{partial} " if partial != "Simple" else "",
    )
    return "".join(prefixes) + name


def _target(node: Node) -> str:
    alias = node.get("Alias")
    if "Relation Name" in node:
        target = _relation(node)
        bare = node["Relation Name"]
    else:
        target = next((str(node[key]) for key in _TARGET_KEYS if key in node), "")
        bare = target
    if not target:
        return f" on {alias}" if alias else ""
    return f" on {target} {alias}" if alias and alias != bare else f" on {target}"


# --- rendering --------------------------------------------------------------------


def _node_lines(node: Node, arrow: int | None) -> tuple[list[str], int]:
    """Lines for one node and the arrow column of its children.

    ``arrow`` is the column of this node's ``->`` arrow, ``None`` for the root.
    """
    lines: list[str] = []
    if arrow is None:
        lines.append(f"{describe_node(node)}  {_statistics(node)}".rstrip())
        detail_column = 2
    else:
        subplan = node.get("Subplan Name")
        if subplan:
            lines.append(" " * arrow + str(subplan))
            arrow += _SUBPLAN_STEP
        lines.append(f"{' ' * arrow}->  {describe_node(node)}  {_statistics(node)}".rstrip())
        detail_column = arrow + _INDENT_STEP
    lines.extend(" " * detail_column + detail for detail in _detail_lines(node))
    return lines, detail_column


def _statistics(node: Node) -> str:
    if _analyzed(node):
        loops = _count(node, "Actual Loops")
        if loops == 0:
            return "(never executed)"
        return f"(actual rows={_format_rows(_number(node, 'Actual Rows'))} loops={loops})"
    if "Total Cost" not in node:
        return ""
    return (
        f"(cost={_number(node, 'Startup Cost'):.2f}..{_number(node, 'Total Cost'):.2f}"
        f" rows={_count(node, 'Plan Rows')} width={_count(node, 'Plan Width')})"
    )


def _detail_lines(node: Node) -> list[str]:
    lines = _key_lines(node)
    for condition, removed in _CONDITIONS:
        if condition in node:
            lines.append(f"{condition}: {node[condition]}")
            if removed and node.get(removed):
                lines.append(f"{removed}: {_format_rows(_number(node, removed))}")
    if "Exact Heap Blocks" in node:
        lossy = _count(node, "Lossy Heap Blocks")
        lines.append(f"Heap Blocks: exact={_count(node, 'Exact Heap Blocks')} lossy={lossy}")
    lines.extend(f"{key}: {node[key]}" for key in _PLAIN_DETAILS if key in node)
    optional = (
        _sort_method_line(node),
        _hash_line(node),
        _hash_aggregate_line(node),
        _storage_line(node),
        _buffers_line(node),
    )
    lines.extend(line for line in optional if line)
    return lines


def _key_lines(node: Node) -> list[str]:
    return [f"{key}: {', '.join(node[key])}" for key in _KEY_LISTS if key in node]


def _sort_method_line(node: Mapping[str, Any]) -> str:
    if "Sort Method" not in node:
        return ""
    space = "Disk" if node.get("Sort Space Type") == "Disk" else "Memory"
    return f"Sort Method: {node['Sort Method']}  {space}: {_count(node, 'Sort Space Used')}kB"


def _hash_line(node: Node) -> str:
    if "Hash Batches" not in node:
        return ""
    buckets = _with_original(node, "Hash Buckets")
    batches = _with_original(node, "Hash Batches")
    memory = _count(node, "Peak Memory Usage")
    return f"Buckets: {buckets}  Batches: {batches}  Memory Usage: {memory}kB"


def _with_original(node: Node, key: str) -> str:
    """``value``, or ``value (originally n)`` when the executor had to grow it."""
    value = _count(node, key)
    original = node.get(f"Original {key}", value)
    return f"{value} (originally {original})" if original != value else str(value)


def _hash_aggregate_line(node: Node) -> str:
    if "HashAgg Batches" not in node:
        return ""
    line = (
        f"Batches: {_count(node, 'HashAgg Batches')}"
        f"  Memory Usage: {_count(node, 'Peak Memory Usage')}kB"
    )
    disk = _count(node, "Disk Usage")
    return f"{line}  Disk Usage: {disk}kB" if disk else line


def _storage_line(node: Node) -> str:
    if "Storage" not in node:
        return ""
    return f"Storage: {node['Storage']}  Maximum Storage: {_count(node, 'Maximum Storage')}kB"


def _buffers_line(node: Node) -> str:
    groups = []
    for group, kinds in _BUFFER_GROUPS:
        counts = [
            f"{kind.lower()}={count}"
            for kind in kinds
            if (count := _count(node, f"{group.title()} {kind} Blocks"))
        ]
        if counts:
            groups.append(f"{group} {' '.join(counts)}")
    return f"Buffers: {', '.join(groups)}" if groups else ""


# --- index hints ------------------------------------------------------------------

_IDENTIFIER: Final = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)'
_COMPARISON: Final = re.compile(
    rf"""
    \(?(?P<column>{_IDENTIFIER}(?:\.{_IDENTIFIER})?)\)?  # column, maybe "(col)::type"
    (?:::[A-Za-z ]+(?:\[\])?)?                          # optional cast of the column
    \s+(?P<op>=\s+ANY\b|IS\s+NULL\b|<=|>=|=|<|>)(?:\s|$)
    """,
    re.VERBOSE,
)
_RANGE_OPS: Final = frozenset({"<", "<=", ">", ">="})


def _strip_parens(text: str) -> str:
    """Remove parentheses that wrap the whole of ``text``."""
    text = text.strip()
    while text.startswith("(") and _closing_paren(text) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _closing_paren(text: str) -> int:
    """Index of the parenthesis closing the one at ``text[0]`` (-1 if unbalanced)."""
    depth = 0
    quoted = False
    for position, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
            if depth == 0:
                return position
    return -1


def _split_conjunction(condition: str) -> list[str] | None:
    """Split a deparsed condition on its top-level ``AND``; ``None`` if it has an ``OR``."""
    text = _strip_parens(condition)
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    for position, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and depth == 0 and char == " ":
            word = text[position + 1 : position + 5]
            if word.startswith("OR "):
                return None
            if word == "AND ":
                parts.append(text[start:position])
                start = position + 5
    parts.append(text[start:])
    return parts
