"""One timed pytest session in a subprocess: the measurement the benchmark scripts share."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def timed_pytest(
    argv: Sequence[str],
    *,
    cwd: Path | str,
    env: Mapping[str, str],
    passed: int,
    what: str,
    timeout: float,
) -> tuple[float, str]:
    """Run ``argv``; return its wall seconds and output. Exit the benchmark, showing the
    output's tail, unless it passed exactly ``passed`` tests."""
    started = time.perf_counter()
    proc = subprocess.run(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - started
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0 or f"{passed} passed" not in out:
        raise SystemExit(
            f"\n{what}: pytest failed (exit {proc.returncode}):\n"
            + "\n".join(out.splitlines()[-40:])
        )
    return wall, out
