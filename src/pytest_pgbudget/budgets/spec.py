"""Budgets: the ``@pgbudget(...)`` keywords, parsed and validated once."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

#: Tables smaller than this may be seq-scanned under ``no_seq_scan`` unless set otherwise:
#: for a lookup table of a few pages a seq scan is the right plan.
DEFAULT_SEQ_SCAN_MIN_ROWS = 1000


class BudgetError(ValueError):
    """A budget keyword is unknown or has a value of the wrong type."""

    __module__ = "pytest_pgbudget"


@dataclass(frozen=True)
class Budget:
    """What one test (or one ``with pgbudget.budget(...)`` block) may spend."""

    max_ms: float | None = None
    p95_ms: float | None = None
    total_ms: float | None = None
    max_queries: int | None = None
    max_repeats: int | None = None
    no_seq_scan: bool | tuple[str, ...] = False
    seq_scan_min_rows: int = DEFAULT_SEQ_SCAN_MIN_ROWS
    require_index: tuple[str, ...] = ()
    no_temp_spill: bool = False
    max_buffers: int | None = None
    load_p95_ms: float | None = None
    load_p99_ms: float | None = None
    min_throughput: float | None = None
    max_errors: int | None = None
    max_lock_wait_ms: float | None = None
    plan: str = "actual"
    off: bool = False

    @property
    def empty(self) -> bool:
        return self.off or self == Budget(seq_scan_min_rows=self.seq_scan_min_rows, plan=self.plan)

    def merged(self, closer: Budget, keys: Iterable[str]) -> Budget:
        """This budget with the ``keys`` that ``closer`` sets taken from ``closer``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in keys:
            values[key] = getattr(closer, key)
        return Budget(**values)


KEYWORDS: tuple[str, ...] = tuple(f.name for f in fields(Budget))
LATENCY_KEYWORDS = frozenset({"max_ms", "p95_ms", "total_ms"})
#: Keywords judged on the test's ``pg_load`` runs, not on its captured statements.
LOAD_KEYWORDS = {
    "load_p95_ms": "p95_ms",
    "load_p99_ms": "p99_ms",
    "min_throughput": "min_throughput",
    "max_errors": "max_errors",
    "max_lock_wait_ms": "max_lock_wait_ms",
}


def _number(key: str, value: Any, *, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if integer else "a number"
        raise BudgetError(f"{key} must be {kind}, e.g. {key}=10; got {value!r}")
    if integer and not float(value).is_integer():
        raise BudgetError(f"{key} must be an integer, e.g. {key}=10; got {value!r}")
    if math.isnan(value) or value < 0:
        raise BudgetError(f"{key} must be zero or more; got {value!r}")
    return int(value) if integer else float(value)


def _names(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, (list, tuple, set, frozenset))
        or not value
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise BudgetError(
            f"{key} must be a name or a list of names, e.g. {key}=['idx_a']; got {value!r}"
        )
    return tuple(value)


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BudgetError(f"{key} must be True or False; got {value!r}")
    return value


def parse_budget(kwargs: Mapping[str, Any]) -> tuple[Budget, frozenset[str]]:
    """Validate keywords; return the budget and the keys that were set."""
    values: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key not in KEYWORDS:
            raise BudgetError(f"unknown keyword {key!r}; valid keywords: {', '.join(KEYWORDS)}")
        if key in (
            "max_ms",
            "p95_ms",
            "total_ms",
            "load_p95_ms",
            "load_p99_ms",
            "min_throughput",
            "max_lock_wait_ms",
        ):
            values[key] = _number(key, value, integer=False)
        elif key in (
            "max_queries",
            "max_repeats",
            "max_buffers",
            "seq_scan_min_rows",
            "max_errors",
        ):
            values[key] = _number(key, value, integer=True)
        elif key == "no_seq_scan":
            values[key] = value if isinstance(value, bool) else _names(key, value)
        elif key == "require_index":
            values[key] = _names(key, value)
        elif key in ("no_temp_spill", "off"):
            values[key] = _flag(key, value)
        elif key == "plan":
            if value not in ("actual", "capable"):
                raise BudgetError(f"plan must be 'actual' or 'capable'; got {value!r}")
            values[key] = value
    return Budget(**values), frozenset(values)


def parse_ini_budget(lines: Iterable[str]) -> tuple[Budget, frozenset[str]]:
    """Parse ``pgbudget_default_budget`` lines, ``name = python literal`` each."""
    import ast

    kwargs: dict[str, Any] = {}
    for line in lines:
        name, sep, raw = line.partition("=")
        if not sep:
            raise BudgetError(f"expected 'keyword = value', e.g. 'max_queries = 20'; got {line!r}")
        try:
            kwargs[name.strip()] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise BudgetError(
                f"{name.strip()}: {raw.strip()!r} is not a value; use e.g. 10, True or ['idx_a']"
            ) from None
    return parse_budget(kwargs)
