"""Regression baselines: store what each test's SQL did, and compare later runs with it."""

from .compare import DEFAULT_RULES, Change, Rule, RuleError, compare_entries, parse_rules, plan_diff
from .store import BaselineError, entry_for, load, save

__all__ = [
    "DEFAULT_RULES",
    "BaselineError",
    "Change",
    "Rule",
    "RuleError",
    "compare_entries",
    "entry_for",
    "load",
    "parse_rules",
    "plan_diff",
    "save",
]
