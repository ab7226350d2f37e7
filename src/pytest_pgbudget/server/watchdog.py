"""A watchdog that stops a cluster when the pytest process that owns it dies.

Started as ``python -m pytest_pgbudget.server.watchdog FD postmaster PID DATA
RUNDIR`` (or ``FD container ID``) in a session of its own, so a Ctrl-C to
pytest's process group does not reach it. It blocks reading the pipe ``FD``
whose only writer is the owning pytest process. The read returns when that
process closes the pipe or dies for any reason, ``kill -9`` included; the
watchdog then stops the postmaster ``PID`` (only if it still serves ``DATA``)
and removes ``RUNDIR``, or removes the container ``ID``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from .rundir import RunDir, stop_postmaster


def spawn_for_postmaster(postmaster_pid: int, run: RunDir) -> int:
    """Start a watchdog for ``postmaster_pid``; return the write end of its pipe.

    The caller keeps the returned descriptor open for as long as the cluster
    should live; closing it (or dying) releases the watchdog.
    """
    return _spawn(["postmaster", str(postmaster_pid), str(run.data), str(run.path)])


def spawn_for_container(container_id: str) -> int:
    """Start a watchdog that removes a container; see :func:`spawn_for_postmaster`."""
    return _spawn(["container", container_id])


def _spawn(args: list[str]) -> int:
    read_fd, write_fd = os.pipe()
    subprocess.Popen(
        [sys.executable, "-m", __name__, str(read_fd), *args],
        pass_fds=(read_fd,),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )
    os.close(read_fd)
    return write_fd


def _remove_container(container_id: str) -> None:
    import docker  # type: ignore[import-untyped]

    with contextlib.suppress(Exception):  # already gone, or the engine went away with it
        docker.from_env().containers.get(container_id).remove(force=True, v=True)


def main(argv: list[str]) -> int:
    read_fd = int(argv[0])
    while True:
        try:
            if not os.read(read_fd, 1):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    if argv[1] == "container":
        _remove_container(argv[2])
    else:
        stop_postmaster(int(argv[2]), Path(argv[3]))
        RunDir(Path(argv[4])).remove()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
