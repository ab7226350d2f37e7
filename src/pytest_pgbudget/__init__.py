"""pytest-pgbudget: PostgreSQL performance budgets as failing tests."""

import pytest

from . import factories
from .budgets import Budget, BudgetError, Violation
from .capture.statements import Statement
from .databases import PgDatabase
from .errors import PgBudgetError, SchemaError, ServerError
from .factories import PgBudgetWarning
from .load import LoadError, LoadResult
from .server import PgServer

#: The budget marker: ``@pgbudget(max_queries=3)`` is ``@pytest.mark.pgbudget(max_queries=3)``.
pgbudget = pytest.mark.pgbudget

__all__ = [
    "Budget",
    "BudgetError",
    "LoadError",
    "LoadResult",
    "PgBudgetError",
    "PgBudgetWarning",
    "PgDatabase",
    "PgServer",
    "SchemaError",
    "ServerError",
    "Statement",
    "Violation",
    "factories",
    "pgbudget",
]
