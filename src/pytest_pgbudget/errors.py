"""Exceptions users may see; they carry the public module name in tracebacks."""

from __future__ import annotations


class PgBudgetError(Exception):
    """Base class of the plugin's errors."""

    __module__ = "pytest_pgbudget"


class ServerError(PgBudgetError):
    """The PostgreSQL server could not be provisioned, started or reached."""

    __module__ = "pytest_pgbudget"


class SchemaError(PgBudgetError):
    """A schema file or loader failed while building the template database."""

    __module__ = "pytest_pgbudget"


class LoadError(PgBudgetError):
    """A load run that cannot be started, or a load budget that cannot be judged."""

    __module__ = "pytest_pgbudget"
