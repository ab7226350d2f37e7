# The C loop (_loop.c): see cloop.c_loop and engine.drive_many.
from collections.abc import Callable, Sequence
from typing import Any

LIBPQ_FUNCTIONS: tuple[str, ...]

def use_libpq(addresses: dict[str, int | None], /) -> int: ...
def identify(pgconn_ptr: int | None, /) -> tuple[int, int]: ...
def drive(
    pgconns: Sequence[int | None],
    names: Sequence[bytes],
    bind: Callable[[int], list[Any]],
    next_index: Callable[[], int] | None,
    operations: int,
    start_ns: int,
    offset: Callable[[int], int] | None,
    progress: Callable[[int], None] | None,
    watcher: Any,
    /,
) -> tuple[bytes, bytes, dict[bytes | None, int]]: ...
