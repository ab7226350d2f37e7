"""The terminal summary: the session's worst offenders, from the per-test records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_TOP = 5


def summary_lines(records: Iterable[Mapping[str, Any]], verbosity: int = 0) -> list[str]:
    records = list(records)
    if not records:
        return []
    statements = [(r["nodeid"], s) for r in records for s in r["statements"]]
    violations = sum(len(r["violations"]) for r in records)
    out = [
        f"{len(statements)} statements captured in {len(records)} tests; "
        f"{violations} budget violations"
    ]
    slowest = sorted(statements, key=lambda item: item[1]["duration_ms"], reverse=True)[:_TOP]
    if slowest:
        out.append("slowest statements:")
        out += [
            f"  {s['duration_ms']:9.3f} ms  {_short(s['sql'])}  ({nodeid})" for nodeid, s in slowest
        ]
    scans: dict[tuple[str, str], int] = {}
    for nodeid, s in statements:
        for scan in s["seq_scans"]:
            key = (scan["relation"], nodeid)
            scans[key] = max(scans.get(key, 0), scan["rows"])
    big = sorted(((rows, rel, nodeid) for (rel, nodeid), rows in scans.items()), reverse=True)
    big = [b for b in big if b[0] >= 1000 or verbosity > 0][:_TOP]
    if big:
        out.append("largest seq scans:")
        out += [f"  {rows:9d} rows  {rel}  ({nodeid})" for rows, rel, nodeid in big]
    spills = {(sp["node"], nodeid): sp["kind"] for nodeid, s in statements for sp in s["spills"]}
    if spills:
        out.append("temp spills:")
        out += [
            f"  {node} ({kind})  ({nodeid})" for (node, nodeid), kind in list(spills.items())[:_TOP]
        ]
    return out


def _short(sql: str, width: int = 90) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= width else text[: width - 3] + "..."
