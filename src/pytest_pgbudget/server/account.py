"""The operating-system account a local server runs as.

``initdb`` and ``postgres`` refuse to run as root. When pytest runs as root (as
it does in many CI containers), the server runs as an unprivileged account
instead: ``postgres`` when it exists, else ``nobody``. Everything the server
touches (binaries, data directory, socket directory) must then be reachable by
that account, which this module checks and arranges.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ServerError
from .binaries import Binaries

_UNPRIVILEGED = ("postgres", "nobody")


@dataclass(frozen=True)
class Account:
    """Who owns the cluster files and runs the server processes."""

    name: str
    uid: int
    gid: int

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid()

    def chown(self, path: Path) -> None:
        if not self.is_current:
            os.chown(path, self.uid, self.gid)

    def popen_kwargs(self) -> dict[str, object]:
        """Keyword arguments for :class:`subprocess.Popen` to run as this account."""
        if self.is_current:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def can_reach(self, path: Path, mode: int = os.R_OK | os.X_OK) -> bool:
        """Whether this account may traverse to ``path`` and use it with ``mode``."""
        if self.is_current or self.uid == 0:
            return os.access(path, mode)
        path = path.resolve()
        for parent in reversed(path.parents):
            if not _allowed(parent, self, os.X_OK):
                return False
        return _allowed(path, self, mode)


def _allowed(path: Path, account: Account, mode: int) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_uid == account.uid:
        shift = 6
    elif st.st_gid == account.gid:
        shift = 3
    else:
        shift = 0
    bits = (st.st_mode >> shift) & 0o7
    wanted = (
        (4 if mode & os.R_OK else 0) | (2 if mode & os.W_OK else 0) | (1 if mode & os.X_OK else 0)
    )
    return bits & wanted == wanted


def server_account() -> Account:
    """The current user, or an unprivileged account when running as root."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
    for name in _UNPRIVILEGED:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
    raise ServerError(
        "running as root, and PostgreSQL refuses to run as root; no unprivileged "
        f"account ({', '.join(_UNPRIVILEGED)}) exists to run it. Create one, e.g. "
        "'useradd --system postgres', or run pytest as a normal user."
    )


def reachable_binaries(binaries: Binaries, account: Account, cache_root: Path) -> Binaries:
    """Binaries the account can execute, copied to a shared cache if need be.

    A virtualenv under ``/root`` is unreachable for the ``postgres`` account, so
    the install tree (``bin``, ``lib``, ``share``) is copied once into a
    world-readable cache directory and reused by later runs.
    """
    if account.can_reach(binaries.bindir / "postgres"):
        return binaries
    install = binaries.bindir.parent
    st = (binaries.bindir / "postgres").stat()
    target = cache_root / f"pginstall-{st.st_size}-{int(st.st_mtime)}"
    if not (target / "bin" / "postgres").is_file():
        partial = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=cache_root))
        for part in ("bin", "lib", "share"):
            if (install / part).is_dir():
                shutil.copytree(install / part, partial / part, symlinks=True)
        _open_up(partial)
        try:
            partial.rename(target)
        except OSError:  # another run won the race; use its copy
            shutil.rmtree(partial, ignore_errors=True)
    return Binaries(target / "bin", f"{binaries.origin} (copied to {target})")


def _open_up(root: Path) -> None:
    """Make a copied tree readable (and dirs traversable) by every account."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            path.chmod(mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def shared_cache_root(account: Account) -> Path:
    """A cache directory the server account can read, e.g. ``/tmp/pgbudget-cache-0``."""
    from .rundir import temp_base

    root = temp_base(account) / f"pgbudget-cache-{os.geteuid()}"
    root.mkdir(mode=0o755, exist_ok=True)
    st = root.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise ServerError(f"{root} is not a directory owned by you; refusing to use it as a cache")
    if st.st_mode & 0o022:
        raise ServerError(f"{root} is writable by others; refusing to use it as a cache")
    return root
