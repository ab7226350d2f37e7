"""The container backend: testcontainers' ``PostgresContainer``.

Settings are passed as ``-c`` flags; the port is published on loopback only;
the password is random and lives in a private passfile, never in a DSN. Every
container carries labels naming the pytest process that owns it, so a later
run removes the containers of runs that died, and a watchdog removes it at
once if the owner is killed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import conninfo

from ..errors import ServerError
from ..options import Settings
from .provision import private_passfile
from .rundir import _process_start, pid_alive
from .watchdog import spawn_for_container

LABEL_OWNER = "io.pytest-pgbudget.owner-pid"
LABEL_OWNER_START = "io.pytest-pgbudget.owner-start"


@dataclass
class ContainerController:
    container: Any
    watchdog_fd: int | None = None

    def alive(self) -> bool:
        try:
            self.container.get_wrapped_container().reload()
            return bool(self.container.get_wrapped_container().status == "running")
        except Exception:
            return False

    def stop(self) -> None:
        try:
            self.container.stop()
        finally:
            if self.watchdog_fd is not None:
                os.close(self.watchdog_fd)
                self.watchdog_fd = None

    def log_path(self) -> Path | None:
        return None


def sweep_containers(client: Any) -> int:
    """Remove containers whose owning pytest process is gone; return how many."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": LABEL_OWNER}):
        labels = container.labels or {}
        try:
            pid = int(labels.get(LABEL_OWNER, "0"))
        except ValueError:
            continue
        start = labels.get(LABEL_OWNER_START) or None
        if pid and pid_alive(pid) and (start is None or _process_start(pid) in (None, start)):
            continue
        try:
            container.remove(force=True, v=True)
            removed += 1
        except Exception:
            pass
    return removed


def start_container(
    settings: Settings, wanted: Mapping[str, str]
) -> tuple[ContainerController, str]:
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError:
        raise ServerError(
            "the container backend needs testcontainers: pip install 'pytest-pgbudget[container]'"
        ) from None
    password = secrets.token_urlsafe(18)
    container = PostgresContainer(
        settings.image,
        username="postgres",
        password=password,
        dbname="postgres",
        driver=None,
        labels={
            LABEL_OWNER: str(os.getpid()),
            LABEL_OWNER_START: _process_start(os.getpid()) or "",
        },
    )
    # Publish on loopback only, never on all interfaces.
    container.ports = {"5432/tcp": ("127.0.0.1", None)}  # type: ignore[dict-item]
    command = ["postgres"]
    # The jsonlog inside the container is read back over SQL by capture.
    logging = {
        "logging_collector": "on",
        "log_destination": "jsonlog",
        "log_directory": "log",
        "log_filename": "postgresql.log",
        "log_rotation_age": "0",
        "log_rotation_size": "0",
    }
    for name, value in {**wanted, **logging}.items():
        command += ["-c", f"{name}={value}"]
    container.with_command(command)
    try:
        sweep_containers(container.get_docker_client().client)
        container.start()
    except Exception as exc:
        with contextlib.suppress(Exception):
            container.stop()
        raise ServerError(
            f"the container backend could not start {settings.image!r}: "
            f"{type(exc).__name__}: {str(exc).replace(password, '***')}\n"
            "Is a Docker engine running and DOCKER_HOST set? Is the image available?"
        ) from None
    controller = ContainerController(container)
    controller.watchdog_fd = spawn_for_container(container.get_wrapped_container().id)
    params = private_passfile(
        {
            "host": container.get_container_host_ip(),
            "port": str(container.get_exposed_port(5432)),
            "user": "postgres",
            "dbname": "postgres",
            "password": password,
        }
    )
    return controller, conninfo.make_conninfo(**params)
