"""Private run directories, and sweeping what dead runs left behind.

Every local cluster lives in one directory ``<tmp>/pgbudget-<token>/`` of mode
0700: the data directory, the server's unix socket and its logs. A file
``owner.json`` names the pytest process that made it. A later run removes the
directories whose owner is dead, stopping their server first, but only after
checking that the process named by ``postmaster.pid`` really is a postgres
serving that very data directory: a recycled PID is never signalled.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .account import Account

#: Run directories, and only they, carry this prefix; the sweep touches nothing else.
PREFIX = "pgbudget-run-"
#: A unix socket path is limited to 107 bytes on Linux (103 on macOS).
SOCKET_PATH_LIMIT = 103
SOCKET_NAME = ".s.PGSQL.5432"


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` as the kernel reports it (Linux), else ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def temp_base(account: Account, room: int = 0) -> Path:
    """The first temporary directory the server account can reach, leaving ``room``
    bytes of socket path: ``TMPDIR`` (or the platform default), else ``/tmp``."""
    candidates = (Path(tempfile.gettempdir()), Path("/tmp"))
    for base in candidates:
        fits = len(str(base)) + room <= SOCKET_PATH_LIMIT
        if fits and base.is_dir() and account.can_reach(base, os.X_OK):
            return base
    return Path("/tmp")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunDir:
    """A cluster's private directory."""

    path: Path

    @property
    def data(self) -> Path:
        return self.path / "data"

    @property
    def logs(self) -> Path:
        return self.path / "log"

    @property
    def socket_dir(self) -> Path:
        return self.path

    @classmethod
    def create(cls, account: Account) -> RunDir:
        """Make a new private directory whose socket path fits the limit."""
        base = temp_base(account, room=30 + len(SOCKET_NAME))
        path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
        run = cls(path)
        owner = {"pid": os.getpid(), "start": _process_start(os.getpid()), "time": time.time()}
        (path / "owner.json").write_text(json.dumps(owner))
        run.logs.mkdir(mode=0o700)
        for item in (path, run.logs):
            account.chown(item)
        return run

    def owner_alive(self) -> bool:
        try:
            owner = json.loads((self.path / "owner.json").read_text())
        except (OSError, ValueError):
            # Half-made: judge by age, so a run being created right now is spared.
            try:
                return time.time() - self.path.stat().st_mtime < 60
            except OSError:
                return False
        pid = int(owner.get("pid", 0))
        if not pid or not pid_alive(pid):
            return False
        start = owner.get("start")
        return start is None or _process_start(pid) in (None, start)

    def postmaster_pid(self) -> int | None:
        """The PID in ``postmaster.pid``, if it names our postgres for this data dir."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 2 or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        return pid if is_postmaster_of(pid, self.data) else None

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def is_postmaster_of(pid: int, data: Path) -> bool:
    """True only if ``pid`` is a postgres process whose working dir is ``data``."""
    try:
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return exe in ("postgres", "postmaster") and os.path.realpath(data) == cwd


def stop_postmaster(pid: int, data: Path, timeout: float = 10.0) -> None:
    """Fast shutdown, then immediate, then kill; each only while it is still ours."""
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        if not is_postmaster_of(pid, data):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid) or not is_postmaster_of(pid, data):
                return
            time.sleep(0.02)


def sweep(bases: tuple[Path, ...] | None = None) -> list[Path]:
    """Stop and remove the clusters of runs that died; return what was removed."""
    if bases is None:
        bases = tuple({Path(tempfile.gettempdir()), Path("/tmp")})
    removed: list[Path] = []
    for base in bases:
        try:
            entries = list(base.glob(PREFIX + "*"))
        except OSError:
            continue
        for path in entries:
            if not path.is_dir() or path.is_symlink():
                continue
            try:
                if path.stat().st_uid not in (os.geteuid(),) and os.geteuid() != 0:
                    continue
            except OSError:
                continue
            run = RunDir(path)
            if run.owner_alive():
                continue
            pid = run.postmaster_pid()
            if pid is not None:
                stop_postmaster(pid, run.data, timeout=5.0)
            run.remove()
            removed.append(path)
    return removed
