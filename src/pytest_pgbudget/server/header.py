"""The report header line, describing the server a run will use without starting it."""

from __future__ import annotations

import psycopg

from ..errors import PgBudgetError
from ..options import Settings
from .binaries import find_embedded, find_local
from .profile import profile_layers
from .provision import redact


def _origin(settings: Settings) -> str:
    layers = [name for name, _ in profile_layers()]
    if settings.settings:
        layers.append(f"pgbudget_settings ({len(settings.settings)})")
    return " + ".join(layers)


def describe_planned(settings: Settings) -> str:
    """One line: backend, version and where the settings come from. Never raises."""
    try:
        return _describe(settings)
    except (PgBudgetError, OSError, ValueError) as exc:
        return f"pgbudget: backend {settings.backend} (not usable yet: {exc})"


def _describe(settings: Settings) -> str:
    backend = settings.backend
    if backend == "external" or (backend == "auto" and settings.dsn):
        try:
            with psycopg.connect(settings.dsn, connect_timeout=3) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        except psycopg.Error:
            version = "unreachable"
        return f"pgbudget: PostgreSQL {version} (external backend {redact(settings.dsn)})"
    local = find_local(settings.pg_bin) if backend in ("auto", "local") else None
    if local is not None:
        return f"pgbudget: PostgreSQL {local.version} (local backend, {local.origin}), settings: {_origin(settings)}"
    embedded = find_embedded() if backend in ("auto", "embedded") else None
    if embedded is not None:
        return f"pgbudget: PostgreSQL {embedded.version} (embedded backend), settings: {_origin(settings)}"
    if backend in ("auto", "container"):
        return (
            f"pgbudget: image {settings.image} (container backend), settings: {_origin(settings)}"
        )
    return f"pgbudget: backend {backend} (no binaries found)"
