"""Provisioning a PostgreSQL server for the session: local, embedded, container, external."""

from .provision import PgServer, provision

__all__ = ["PgServer", "provision"]
