"""pytest-pgbudget: PostgreSQL performance budgets as failing tests."""

from . import factories
from .databases import PgDatabase
from .errors import PgBudgetError, SchemaError, ServerError
from .factories import PgBudgetWarning
from .server import PgServer

__all__ = [
    "PgBudgetError",
    "PgBudgetWarning",
    "PgDatabase",
    "PgServer",
    "SchemaError",
    "ServerError",
    "factories",
]
