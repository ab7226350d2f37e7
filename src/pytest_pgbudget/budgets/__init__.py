"""Budgets: the ``@pgbudget`` keywords, checking them, and the failure messages."""

from .check import Violation, check
from .spec import DEFAULT_SEQ_SCAN_MIN_ROWS, KEYWORDS, Budget, BudgetError, parse_budget

__all__ = [
    "DEFAULT_SEQ_SCAN_MIN_ROWS",
    "KEYWORDS",
    "Budget",
    "BudgetError",
    "Violation",
    "check",
    "parse_budget",
]
