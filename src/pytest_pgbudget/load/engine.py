"""The SQL engine of ``pg_load``: one thread drives every connection through libpq.

A SQL ``work`` (one statement, or a script of statements run in order as one
operation) needs no Python per connection. Like ``pgbench``, one event loop
owns all the connections: it sends a statement on each (server-side prepared,
parameters as text), waits on their sockets with ``epoll``/``select``, and
sends the next statement on whichever connection has its result. Per
statement that is a handful of libpq calls, made from C (``_loop.c``) where
that was built: on the TPC-B transaction the client needs 1.0-1.3x pgbench's
CPU (1.4-1.7x with the loop in Python), where psycopg calls from Python need
7-14x (``benchmarks/README.md``). On a machine with few cores the client's CPU
is taken from the server it measures, so this matters. A Python callable
needs a thread (or a process) per connection; that is
:func:`pytest_pgbudget.load.runner.drive`.

Placeholders follow psycopg: ``%s`` (positional) or ``%(name)s`` (named),
``%%`` for a literal ``%``. A script's statements take named parameters from
one mapping per operation; each statement picks the names it uses.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
import operator
import random
import re
import select
import time
from array import array
from collections import Counter
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import psycopg
from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer

from ..errors import LoadError
from .cloop import C_LOOP, PYTHON_LOOP, address, usable_c_loop

_PLACEHOLDER = re.compile(rb"%(?:\(([^)]*)\))?(.?)")
_OK = frozenset((pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY))
_ROLLBACK = b"ROLLBACK"
PREPARED_PREFIX = b"pgbudget_load_"


@dataclass(frozen=True)
class Statement:
    """One statement of SQL work, with psycopg placeholders turned into ``$n``."""

    text: str
    sql: bytes
    names: tuple[str, ...] | None  # the named placeholders, in $n order; None: positional
    count: int  # how many parameters it takes

    @classmethod
    def parse(cls, text: str) -> Statement:
        out = bytearray()
        names: list[str] = []
        positional = 0
        last = 0
        raw = text.encode()
        for found in _PLACEHOLDER.finditer(raw):
            out += raw[last : found.start()]
            last = found.end()
            name, fmt = found.group(1), found.group(2)
            if fmt == b"%" and name is None:
                out += b"%"
                continue
            if fmt not in (b"s", b"b", b"t"):
                shown = found.group(0).decode(errors="replace")
                if not fmt:
                    raise LoadError(f"incomplete placeholder {shown!r} in {text!r}")
                raise LoadError(
                    f"only '%s', '%b', '%t' (or '%(name)s') are allowed as placeholders, "
                    f"got {shown!r} in {text!r}; write '%%' for a literal '%'"
                )
            if name is None:
                if names:
                    raise LoadError(f"positional and named placeholders mixed in {text!r}")
                positional += 1
                out += b"$%d" % positional
            else:
                if positional:
                    raise LoadError(f"positional and named placeholders mixed in {text!r}")
                key = name.decode()
                if key not in names:
                    names.append(key)
                out += b"$%d" % (names.index(key) + 1)
        out += raw[last:]
        if names:
            return cls(text, bytes(out), tuple(names), len(names))
        return cls(text, bytes(out), None, positional)


def compile_work(work: str | Sequence[str]) -> tuple[Statement, ...]:
    """The statements of SQL work: a string is one statement, a sequence is a script."""
    texts = [work] if isinstance(work, str) else list(work)
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise LoadError(
            f"SQL work must be a statement or a non-empty list of statements; got {work!r}"
        )
    statements = tuple(Statement.parse(t) for t in texts)
    if len(statements) > 1:
        for statement in statements:
            if statement.names is None and statement.count:
                raise LoadError(
                    "the statements of a script take named parameters from one mapping per "
                    f"operation (%(name)s); {statement.text!r} has positional ones"
                )
    return statements


Params = Sequence[Any] | Mapping[str, Any] | Callable[[int], Any] | None


@dataclass(frozen=True)
class Arrivals:
    """When each operation of a fixed-rate load is meant to start.

    ``uniform``: operation ``i`` at ``i / rate`` seconds after the start, evenly
    spaced. ``poisson``: a Poisson process of that mean rate (exponential gaps,
    drawn from ``seed``, so every process of a run agrees), as ``pgbench
    --rate`` schedules its transactions.
    """

    rate: float
    kind: str = "uniform"
    seed: int = 0

    KINDS: ClassVar[tuple[str, ...]] = ("uniform", "poisson")

    def offsets(self, operations: int) -> Callable[[int], int]:
        """Operation number -> nanoseconds after the start."""
        if self.kind == "uniform":
            interval = 1e9 / self.rate
            return lambda i: int(i * interval)
        draw = random.Random(self.seed).expovariate
        starts = array("q", bytes(8 * operations))
        t = 0.0
        for i in range(operations):
            starts[i] = int(t)
            t += draw(self.rate) * 1e9
        return starts.__getitem__


@dataclass(frozen=True)
class Schedule:
    """Which operations a measuring loop runs, and when.

    ``next_index`` hands out operation numbers, shared by the loops of a run
    (None: 0, 1, 2... for this loop alone); a loop stops at ``operations``. At
    a fixed rate (``offset``, from :meth:`Arrivals.offsets`) operation ``i``
    starts no earlier than ``start_ns + offset(i)``, and its latency counts
    from then.
    """

    operations: int
    start_ns: int
    offset: Callable[[int], int] | None = None
    next_index: Callable[[], int] | None = None


@dataclass
class Tally:
    """What measuring loops record: each operation's latency and service time (ns),
    and the failed operations by error class."""

    latencies: array[int] = field(default_factory=lambda: array("q"))
    service: array[int] = field(default_factory=lambda: array("q"))
    failures: Counter[str] = field(default_factory=Counter)

    def update(self, other: Tally) -> None:
        self.latencies.extend(other.latencies)
        self.service.extend(other.service)
        self.failures.update(other.failures)


Dumped = Sequence[bytes | bytearray | memoryview | None]


def _picker(indexes: list[int]) -> Callable[[Dumped], Sequence[Any]]:
    """A function taking the values at ``indexes`` (in that order) out of a sequence, fast."""
    if len(indexes) == 1:
        (only,) = indexes
        return lambda dumped: (dumped[only],)
    return operator.itemgetter(*indexes)


class _Binding:
    """What binding needs to know about the statements, and the clear errors of a bad fit."""

    def __init__(self, statements: Sequence[Statement], context: Any) -> None:
        self.statements = statements
        self.tx = Transformer(context)
        self.named = any(s.names is not None for s in statements)
        self.names: tuple[str, ...] = tuple(
            dict.fromkeys(name for s in statements for name in s.names or ())
        )
        self.picks: list[Callable[[Dumped], Sequence[Any]] | None] = [
            None if s.names is None else _picker([self.names.index(n) for n in s.names])
            for s in statements
        ]
        self.width = len(self.names) if self.named else statements[0].count
        self.formats = [PyFormat.TEXT] * self.width

    def values(self, params: Any) -> list[Any]:
        """The values to dump: by name for named placeholders, else the positional ones."""
        if self.named:
            if not isinstance(params, Mapping):
                raise LoadError(
                    f"{self.statements[0].text!r} has named placeholders: params must be a "
                    f"mapping (or a function returning one), got {type(params).__name__}"
                )
            try:
                return [params[name] for name in self.names]
            except KeyError as exc:
                user = next(s for s in self.statements if exc.args[0] in (s.names or ()))
                raise LoadError(
                    f"params have no {exc.args[0]!r} for {user.text!r} "
                    f"(they have: {', '.join(map(str, params)) or 'nothing'})"
                ) from None
        if not self.width:
            return []
        statement = self.statements[0]
        if params is None or isinstance(params, Mapping | str | bytes):
            raise LoadError(
                f"{statement.text!r} has {statement.count} positional placeholder(s): params "
                f"must be a tuple or list (or a function returning one), got {params!r}"
            )
        values = list(params)
        if len(values) != statement.count:
            raise LoadError(
                f"{statement.text!r} has {statement.count} placeholder(s) but "
                f"{len(values)} parameter(s) were given: {params!r}"
            )
        return values

    def dump(self, params: Any) -> list[Dumped | None]:
        """One operation's parameters, checked, dumped and shared out to the statements."""
        values = self.values(params)
        if not self.width:
            return [None] * len(self.statements)
        dumped = self.tx.dump_sequence(values, self.formats)
        if not self.named:
            return [dumped]
        return [None if pick is None else pick(dumped) for pick in self.picks]


def binder(
    statements: Sequence[Statement], params: Params, context: Any
) -> Callable[[int], list[Dumped | None]]:
    """A function of the operation number giving the text parameters of every statement.

    Each value is dumped once per operation (psycopg's adapters, text format),
    however many statements use it; constant ``params`` are dumped once for
    the whole run. Parameters that do not fit the placeholders raise
    :class:`LoadError` (for constant ``params``, right here).
    """
    binding = _Binding(statements, context)
    if not callable(params):
        constant = binding.dump(params)
        return lambda i: constant
    source = params
    dump, formats, picks, names = (
        binding.tx.dump_sequence,
        binding.formats,
        binding.picks,
        binding.names,
    )

    # The fast paths check nothing; whatever they trip on, the careful path explains.
    if binding.named:

        def bind_named(i: int) -> list[Dumped | None]:
            p = source(i)
            try:
                dumped = dump([p[name] for name in names], formats)
            except Exception:
                return binding.dump(p)
            return [None if pick is None else pick(dumped) for pick in picks]

        return bind_named
    if binding.width:
        count = binding.width

        def bind_positional(i: int) -> list[Dumped | None]:
            p = source(i)
            if (type(p) is not tuple and type(p) is not list) or len(p) != count:
                return binding.dump(p)
            return [dump(p, formats)]

        return bind_positional
    return lambda i: binding.dump(source(i))


def prepare(pgconn: pq.abc.PGconn, statements: Sequence[Statement]) -> None:
    """Prepare the statements on one connection (the server infers parameter types)."""
    for n, statement in enumerate(statements):
        result = pgconn.prepare(PREPARED_PREFIX + b"%d" % n, statement.sql)
        if result.status not in _OK:
            field = result.error_field
            message = field(pq.DiagnosticField.MESSAGE_PRIMARY) or result.error_message or b""
            hint = field(pq.DiagnosticField.MESSAGE_HINT)
            raise LoadError(
                f"the load's SQL {statement.text!r} cannot be prepared: "
                + message.decode(errors="replace").strip()
                + (f" (hint: {hint.decode(errors='replace')})" if hint else "")
            )


def _error_name(result: pq.abc.PGresult, cache: dict[bytes, str]) -> str:
    return _sqlstate_name(result.error_field(pq.DiagnosticField.SQLSTATE) or b"", cache)


def _sqlstate_name(sqlstate: bytes, cache: dict[bytes, str]) -> str:
    """psycopg's class name for an error's SQLSTATE (``DatabaseError`` for none)."""
    name = cache.get(sqlstate)
    if name is None:
        try:
            name = errors.lookup(sqlstate.decode()).__name__
        except KeyError:
            name = psycopg.DatabaseError.__name__
        cache[sqlstate] = name
    return name


class _Slot:
    """One connection's place in the loop."""

    __slots__ = (
        "began",
        "failed",
        "fd",
        "in_flight",
        "intended",
        "params",
        "pgconn",
        "rolling_back",
        "step",
    )

    def __init__(self, pgconn: pq.abc.PGconn) -> None:
        self.pgconn = pgconn
        self.fd = pgconn.socket
        self.step = 0
        self.params: list[Any] = []
        self.intended = 0
        self.began = 0
        self.failed = ""
        self.rolling_back = False
        self.in_flight = False  # an operation is running; False while it waits for its start


class _Poller:
    """``epoll`` where there is one (Linux), else ``poll``: ``poll(seconds or None)``.

    Both count their timeout in whole milliseconds, rounded up, which would
    start a fixed-rate operation up to 1 ms late (and count that as latency).
    ``precise(seconds)`` waits with ``select``, to the microsecond, when every
    socket fits in its ``FD_SETSIZE``; pgbench waits with ``ppoll`` for the same
    reason.
    """

    _FD_SETSIZE = 1024

    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._poll = select.poll()
        self._fds: list[int] = []
        self.poll: Callable[[float | None], list[tuple[int, int]]] = (
            self._epoll.poll if self._epoll is not None else self._poll_seconds
        )

    def _poll_seconds(self, timeout: float | None) -> list[tuple[int, int]]:
        return self._poll.poll(None if timeout is None else timeout * 1000)

    def precise(self, timeout: float) -> list[tuple[int, int]]:
        if not self._fds or max(self._fds) >= self._FD_SETSIZE:
            return self.poll(timeout)
        readable, _, _ = select.select(self._fds, (), (), timeout)
        return [(fd, 1) for fd in readable]

    def register(self, fd: int) -> None:
        self._fds.append(fd)
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            self._poll.register(fd, select.POLLIN)

    def unregister(self, fd: int) -> None:
        with contextlib.suppress(ValueError):
            self._fds.remove(fd)
        # libpq closes the socket of a lost connection, and a closed socket has left epoll
        with contextlib.suppress(OSError, KeyError):
            (self._epoll or self._poll).unregister(fd)

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()


class Watcher:
    """A connection the loop serves besides the load: every ``interval_ns`` it holds a
    conversation (a generator that yields SQL and receives the rows), such as
    :meth:`~pytest_pgbudget.load.watch.Sampler.sample`. An error stops the watching,
    not the load, and is kept in ``error``."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        interval_ns: int,
        conversation: Callable[[], Generator[bytes, list[tuple[Any, ...]], None]],
    ) -> None:
        self.pgconn = conn.pgconn
        self.fd = self.pgconn.socket
        self.interval_ns = interval_ns
        self.conversation = conversation
        self.error: BaseException | None = None
        self._tx = Transformer(conn)
        self._talk: Generator[bytes, list[tuple[Any, ...]], None] | None = None
        self._rows: list[tuple[Any, ...]] = []
        self.due = 0  # when the next conversation starts; 0 while one is going on

    def begin(self) -> bool:
        """Start a conversation; False when the watching has failed and must stop."""
        self._talk = self.conversation()
        self.due = 0
        try:
            self._send(next(self._talk))
        except Exception as exc:
            self.error = exc
            return False
        return True

    def _send(self, query: bytes) -> None:
        self._rows = []
        self.pgconn.send_query(query)

    def readable(self, now: int) -> bool:
        """Read what arrived; False when the watching has failed and must stop."""
        pgconn = self.pgconn
        try:
            pgconn.consume_input()
            if self._talk is None:  # between conversations: only the server's goodbye
                if pgconn.status == pq.ConnStatus.BAD:
                    said = (pgconn.error_message or b"").decode(errors="replace").strip()
                    raise psycopg.OperationalError(f"the connection was closed: {said}")
                return True
            while not pgconn.is_busy():
                result = pgconn.get_result()
                if result is not None:
                    if result.status == pq.ExecStatus.TUPLES_OK:
                        self._tx.set_pgresult(result)
                        self._rows = self._tx.load_rows(0, result.ntuples, tuple)
                    elif result.status not in _OK:
                        message = (result.error_message or b"").decode(errors="replace")
                        raise psycopg.DatabaseError(message.strip())
                    continue
                try:
                    self._send(self._talk.send(self._rows))
                except StopIteration:
                    self._talk = None
                    self.due = now + self.interval_ns
                return True
        except Exception as exc:
            self.error = exc
            return False
        return True


def drive_many(
    pgconns: Sequence[pq.abc.PGconn],
    statements: Sequence[Statement],
    bind: Callable[[int], list[Any]],
    schedule: Schedule,
    tally: Tally,
    progress: Callable[[int], None] | None = None,
    watcher: Watcher | None = None,
) -> str:
    """Run the ``schedule``'s operations on all ``pgconns`` at once, into ``tally``;
    return which loop ran them (:data:`C_LOOP` or :data:`PYTHON_LOOP`).

    The statements must be prepared on every connection (:func:`prepare`). A
    failed statement ends its operation (rolled back if it left a transaction
    open) and is counted by error class; a lost connection leaves the loop. ``progress(done)`` is called about once a second, and the
    ``watcher``'s conversations are held between operations.

    The loop runs in C (``_loop.c``) when that was built, else in Python; the
    two behave alike, and the tests run both. The C loop also makes operations
    ahead (calls ``next_index``, ``bind`` and ``offset``) while it has nothing
    to read, up to one per connection, so that a connection with a result goes
    on without waiting for Python. In the Python loop that measured no gain.
    """
    loop = usable_c_loop(pgconns)
    # The loops allocate a few objects per operation, none of them in cycles: the
    # cyclic collector would only add pauses to the latencies they measure.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if loop is None:
            _drive_python(pgconns, statements, bind, schedule, tally, progress, watcher)
            return PYTHON_LOOP
        latencies, service, by_sqlstate = loop.drive(
            [address(pgconn) for pgconn in pgconns],
            [PREPARED_PREFIX + b"%d" % n for n in range(len(statements))],
            bind,
            schedule.next_index,
            schedule.operations,
            schedule.start_ns,
            schedule.offset,
            progress,
            watcher,
        )
    finally:
        if collecting:
            gc.enable()
    tally.latencies.frombytes(latencies)
    tally.service.frombytes(service)
    names: dict[bytes, str] = {}
    for sqlstate, count in by_sqlstate.items():
        if sqlstate is None:  # a lost connection, as psycopg reports it
            tally.failures[psycopg.OperationalError.__name__] += count
        else:
            tally.failures[_sqlstate_name(sqlstate, names)] += count
    return C_LOOP


def _drive_python(
    pgconns: Sequence[pq.abc.PGconn],
    statements: Sequence[Statement],
    bind: Callable[[int], list[Any]],
    schedule: Schedule,
    tally: Tally,
    progress: Callable[[int], None] | None,
    watcher: Watcher | None,
) -> None:
    """:func:`drive_many` in Python: the reference the C loop (``_loop.c``) follows."""
    operations, start_ns, offset = schedule.operations, schedule.start_ns, schedule.offset
    next_index = schedule.next_index or itertools.count().__next__
    latencies, service, failures = tally.latencies, tally.service, tally.failures
    names = [PREPARED_PREFIX + b"%d" % n for n in range(len(statements))]
    last = len(statements) - 1
    clock = time.monotonic_ns
    idle = pq.TransactionStatus.IDLE
    bad = pq.ConnStatus.BAD
    error_names: dict[bytes, str] = {}
    waiting: list[tuple[int, int, _Slot]] = []  # (intended start, index, slot): fixed rate
    poller = _Poller()
    by_fd: dict[int, _Slot] = {}
    done = 0
    reported = clock()

    def start(slot: _Slot, now: int) -> None:
        """Give ``slot`` its next operation, or retire it when none is left."""
        i = next_index()
        if i >= operations:
            retire(slot)
            return
        slot.step, slot.failed = 0, ""
        slot.params = bind(i)
        if offset is not None:
            slot.intended = start_ns + offset(i)
            if slot.intended > now:
                heapq.heappush(waiting, (slot.intended, i, slot))
                return
        else:
            slot.intended = now
        slot.began, slot.in_flight = now, True
        slot.pgconn.send_query_prepared(names[0], slot.params[0])

    def retire(slot: _Slot) -> None:
        if by_fd.pop(slot.fd, None) is not None:
            poller.unregister(slot.fd)

    slots = [_Slot(pgconn) for pgconn in pgconns]
    for slot in slots:
        by_fd[slot.fd] = slot
        poller.register(slot.fd)
    if watcher is not None:
        poller.register(watcher.fd)
        if not watcher.begin():
            poller.unregister(watcher.fd)
            watcher = None
    now = clock()
    for slot in slots:
        try:
            start(slot, now)
        except psycopg.OperationalError:
            failures[psycopg.OperationalError.__name__] += 1
            retire(slot)
    poll, precise = poller.poll, poller.precise
    try:
        while by_fd:
            timeout = None
            scheduled = False  # waiting for an operation's intended start: to the microsecond
            if waiting or (watcher is not None and watcher.due):
                start_at = waiting[0][0] if waiting else 1 << 62
                wake = min(
                    start_at, watcher.due if watcher is not None and watcher.due else 1 << 62
                )
                timeout = max(0.0, (wake - clock()) / 1e9)
                scheduled = wake == start_at and timeout > 0
            for fd, _ in precise(timeout) if scheduled and timeout else poll(timeout):
                slot = by_fd.get(fd)  # type: ignore[assignment]
                if slot is None:  # the watcher's, or a slot retired in this round
                    if watcher is not None and fd == watcher.fd and not watcher.readable(clock()):
                        poller.unregister(watcher.fd)
                        watcher = None
                    continue
                pgconn = slot.pgconn
                try:
                    pgconn.consume_input()
                    if not slot.in_flight:  # waiting for its start: only the server's goodbye
                        if pgconn.status == bad:
                            raise psycopg.OperationalError("the connection was closed")
                        continue
                    while not pgconn.is_busy():
                        result = pgconn.get_result()
                        if result is not None:
                            if result.status not in _OK and not slot.failed:
                                slot.failed = _error_name(result, error_names)
                            continue
                        # The statement is complete.
                        if slot.rolling_back:
                            slot.rolling_back = False
                        elif slot.failed:
                            if pgconn.transaction_status != idle and pgconn.status != bad:
                                slot.rolling_back = True
                                pgconn.send_query(_ROLLBACK)
                                break
                        elif (step := slot.step) < last:
                            slot.step = step = step + 1
                            pgconn.send_query_prepared(names[step], slot.params[step])
                            break
                        now = clock()
                        slot.in_flight = False
                        if slot.failed:
                            failures[slot.failed] += 1
                        service.append(now - slot.began)
                        latencies.append(now - slot.intended)
                        done += 1
                        if pgconn.status == bad:
                            retire(slot)
                        else:
                            start(slot, now)
                        break
                except psycopg.OperationalError:  # the connection is lost: the others go on
                    failures[psycopg.OperationalError.__name__] += 1
                    retire(slot)
            if waiting:
                now = clock()
                while waiting and waiting[0][0] <= now:
                    slot = heapq.heappop(waiting)[2]
                    if slot.fd not in by_fd:  # its connection was lost while it waited
                        continue
                    slot.began, slot.in_flight = now, True
                    try:
                        slot.pgconn.send_query_prepared(names[0], slot.params[0])
                    except psycopg.OperationalError:
                        failures[psycopg.OperationalError.__name__] += 1
                        retire(slot)
            due = watcher is not None and watcher.due and clock() >= watcher.due
            if due and watcher is not None and not watcher.begin():  # the next sample failed
                poller.unregister(watcher.fd)
                watcher = None
            if progress is not None and clock() - reported > 1_000_000_000:
                reported = clock()
                progress(done)
    finally:
        poller.close()
