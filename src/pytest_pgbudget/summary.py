"""The terminal summary: the session's worst offenders."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from .capture.statements import Statement

_TOP = 5


@dataclass
class Summary:
    """Aggregates over every captured statement of the session."""

    tests: int = 0
    statements: int = 0
    violations: int = 0
    slowest: list[tuple[float, str, str]] = field(default_factory=list)
    seq_scans: dict[tuple[str, str], int] = field(default_factory=dict)
    spills: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, nodeid: str, statements: list[Statement]) -> None:
        self.tests += 1
        self.statements += len(statements)
        for statement in statements:
            entry = (statement.duration_ms, nodeid, statement.short_sql(90))
            if len(self.slowest) < _TOP:
                heapq.heappush(self.slowest, entry)
            else:
                heapq.heappushpop(self.slowest, entry)
            for scan in statement.seq_scans:
                key = (scan.relation, nodeid)
                self.seq_scans[key] = max(self.seq_scans.get(key, 0), scan.rows)
            for spill in statement.spills:
                self.spills[(spill.node, nodeid)] = spill.kind

    def lines(self, verbosity: int = 0) -> list[str]:
        if not self.tests:
            return []
        out = [
            f"{self.statements} statements captured in {self.tests} tests; "
            f"{self.violations} budget violations"
        ]
        if self.slowest:
            out.append("slowest statements:")
            out += [
                f"  {ms:9.3f} ms  {sql}  ({nodeid})"
                for ms, nodeid, sql in sorted(self.slowest, reverse=True)
            ]
        big_scans = sorted(
            ((rows, rel, nodeid) for (rel, nodeid), rows in self.seq_scans.items()), reverse=True
        )
        big_scans = [s for s in big_scans if s[0] >= 1000 or verbosity > 0][:_TOP]
        if big_scans:
            out.append("largest seq scans:")
            out += [f"  {rows:9d} rows  {rel}  ({nodeid})" for rows, rel, nodeid in big_scans]
        if self.spills:
            out.append("temp spills:")
            out += [
                f"  {node} ({kind})  ({nodeid})"
                for (node, nodeid), kind in list(self.spills.items())[:_TOP]
            ]
        return out
