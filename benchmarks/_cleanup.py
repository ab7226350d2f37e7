"""Leaving nothing behind: the clean-up shared by the benchmark scripts."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path


def postgres_pids_under(root: Path | str) -> list[int]:
    """PIDs of postgres processes whose working directory or command line is under ``root``."""
    root = str(root)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.path.basename(os.readlink(entry / "exe"))
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if exe in ("postgres", "postmaster") and (cwd.startswith(root) or root in cmdline):
            found.append(int(entry.name))
    return found


def cleanup(root: Path) -> list[int]:
    """Stop leftover postgres processes started under ``root`` (by PID), then remove it."""
    leftovers = postgres_pids_under(root)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + 10
    while leftovers and time.monotonic() < deadline and postgres_pids_under(root):
        time.sleep(0.1)
    for pid in postgres_pids_under(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)
    return leftovers
