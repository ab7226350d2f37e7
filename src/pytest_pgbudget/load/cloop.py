"""Finding the SQL engine's C event loop (``_loop.c``) and the libpq it must call.

The loop is an optional extension, built on Linux when ``pip install`` finds
a C compiler; without it :func:`~pytest_pgbudget.load.engine.drive_many` runs
the same loop in Python. ``PGBUDGET_LOAD_LOOP=python`` forces the Python loop,
``PGBUDGET_LOAD_LOOP=c`` makes a missing C loop an error.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from psycopg import pq

from ..errors import LoadError

C_LOOP = "C event loop"
PYTHON_LOOP = "Python event loop"
LOOP_ENV = "PGBUDGET_LOAD_LOOP"  # "python": never the C loop; "c": the C loop or an error


def _libpq_paths() -> list[str]:
    """Where the libpq that psycopg calls may be, for the implementation it uses."""
    if pq.__impl__ == "python":
        from psycopg.pq import _pq_ctypes

        return [_pq_ctypes.pq._name]  # type: ignore[attr-defined]
    if pq.__impl__ == "binary":  # bundled beside the wheel's package, under a hashed name
        spec = importlib.util.find_spec("psycopg_binary")
        if spec is None or spec.origin is None:
            return []
        package = os.path.dirname(spec.origin)
        return sorted(glob.glob(os.path.join(package + ".libs", "libpq*.so*")))
    from psycopg.pq.misc import find_libpq_full_path

    found = find_libpq_full_path()  # psycopg's C implementation links the system's libpq
    return [found] if found else []


@functools.cache
def c_loop() -> tuple[ModuleType | None, str]:
    """The C loop, ready to call psycopg's libpq; or None and why not.

    The loop (``_loop.c``) does not link libpq: it must call the very library
    psycopg's connections belong to, so that library is found here, opened with
    ctypes (which gives back the copy already loaded) and its functions handed
    over. The library must report the version psycopg reports.
    """
    try:
        from . import _loop
    except ImportError as exc:
        reason = "Linux only" if not sys.platform.startswith("linux") else "not built"
        return None, f"the C loop is not installed ({reason}: {exc})"
    for path in _libpq_paths():
        try:
            lib = ctypes.CDLL(path)
            addresses = {
                name: ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
                for name in _loop.LIBPQ_FUNCTIONS
            }
            version = _loop.use_libpq(addresses)
        except (OSError, AttributeError, KeyError, ValueError):
            continue
        if version == pq.version():
            return _loop, ""
    return None, f"psycopg's libpq ({pq.__impl__} implementation) was not found"


def address(pgconn: pq.abc.PGconn) -> int | None:
    """The address of libpq's ``PGconn`` under psycopg's wrapper (every implementation has it)."""
    return pgconn.pgconn_ptr  # type: ignore[attr-defined,no-any-return]


def usable_c_loop(pgconns: Sequence[pq.abc.PGconn]) -> ModuleType | None:
    """The C loop if it drives these connections, else None (or :class:`LoadError` when
    ``PGBUDGET_LOAD_LOOP=c`` asked for it)."""
    asked = os.environ.get(LOOP_ENV, "").lower()
    if asked not in ("", "c", "python"):
        raise LoadError(
            f"{LOOP_ENV} must be 'c' (the C event loop, or an error) or 'python' (the Python "
            f"one); unset, the C loop runs where it was built. Got {os.environ[LOOP_ENV]!r}"
        )
    if asked == "python":
        return None
    loop, why = c_loop()
    if loop is not None and pgconns:
        first = pgconns[0]
        if loop.identify(address(first)) != (first.socket, first.backend_pid):
            loop, why = None, "its libpq does not know psycopg's connections"
    if loop is None and asked == "c":
        raise LoadError(f"{LOOP_ENV}=c, but the C loop cannot run: {why}")
    return loop
