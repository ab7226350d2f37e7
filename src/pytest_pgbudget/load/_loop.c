/*
 * The SQL engine's event loop in C: pytest_pgbudget.load._loop.
 *
 * The same loop as engine.drive_many (read that first: this file follows it
 * step by step), without CPython's few microseconds per statement. On a
 * 2-core machine the client's CPU is taken from the server it measures, and
 * those microseconds are what kept pg_load's p95 above pgbench's.
 *
 * libpq is not linked: the loop drives psycopg's own connections, so it must
 * call the very libpq psycopg uses. Python (cloop.py) finds that library,
 * opens it with ctypes and hands its function addresses to use_libpq().
 * Linux only (epoll, timerfd); elsewhere, or when this module could not be
 * built, the Python loop runs.
 *
 * Python code is called once per operation (the next index, its start, its
 * parameters), once per sample of the watcher and once a second for
 * progress; never per statement.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* libpq, declared as libpq-fe.h does; these values have been stable since 7.4. */
typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
enum { PGRES_EMPTY_QUERY = 0, PGRES_COMMAND_OK = 1, PGRES_TUPLES_OK = 2 };
enum { CONNECTION_BAD = 1 };
enum { PQTRANS_IDLE = 0 };
enum { PG_DIAG_SQLSTATE = 'C' };

static struct {
    int (*sendQueryPrepared)(PGconn *, const char *, int, const char *const *, const int *,
                             const int *, int);
    int (*sendQuery)(PGconn *, const char *);
    int (*consumeInput)(PGconn *);
    int (*isBusy)(PGconn *);
    PGresult *(*getResult)(PGconn *);
    int (*resultStatus)(const PGresult *);
    char *(*resultErrorField)(const PGresult *, int);
    void (*clear)(PGresult *);
    int (*status)(const PGconn *);
    int (*transactionStatus)(const PGconn *);
    int (*socket)(const PGconn *);
    int (*backendPID)(const PGconn *);
    int (*libVersion)(void);
} pq;
static int pq_ready = 0;

static const struct {
    const char *name;
    void **slot;
} pq_functions[] = {
    {"PQsendQueryPrepared", (void **)&pq.sendQueryPrepared},
    {"PQsendQuery", (void **)&pq.sendQuery},
    {"PQconsumeInput", (void **)&pq.consumeInput},
    {"PQisBusy", (void **)&pq.isBusy},
    {"PQgetResult", (void **)&pq.getResult},
    {"PQresultStatus", (void **)&pq.resultStatus},
    {"PQresultErrorField", (void **)&pq.resultErrorField},
    {"PQclear", (void **)&pq.clear},
    {"PQstatus", (void **)&pq.status},
    {"PQtransactionStatus", (void **)&pq.transactionStatus},
    {"PQsocket", (void **)&pq.socket},
    {"PQbackendPID", (void **)&pq.backendPID},
    {"PQlibVersion", (void **)&pq.libVersion},
};
#define PQ_FUNCTIONS (sizeof(pq_functions) / sizeof(pq_functions[0]))

static PyObject *
use_libpq(PyObject *module, PyObject *addresses)
{
    void *found[PQ_FUNCTIONS];
    if (!PyDict_Check(addresses)) {
        PyErr_SetString(PyExc_TypeError, "use_libpq() takes a dict of function addresses");
        return NULL;
    }
    for (size_t n = 0; n < PQ_FUNCTIONS; n++) {
        PyObject *address = PyDict_GetItemString(addresses, pq_functions[n].name);
        if (address == NULL) {
            PyErr_Format(PyExc_KeyError, "no address for %s", pq_functions[n].name);
            return NULL;
        }
        found[n] = PyLong_AsVoidPtr(address);
        if (found[n] == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "a null address for %s", pq_functions[n].name);
            return NULL;
        }
    }
    for (size_t n = 0; n < PQ_FUNCTIONS; n++)
        *pq_functions[n].slot = found[n];
    pq_ready = 1;
    return PyLong_FromLong(pq.libVersion());
}

static PGconn *
as_pgconn(PyObject *pointer)
{
    PGconn *conn = (PGconn *)PyLong_AsVoidPtr(pointer);
    if (conn == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "a closed connection (null PGconn pointer)");
    return conn;
}

/* (socket, backend pid) of a connection through these functions: to check that
 * they are the library the connection belongs to. */
static PyObject *
identify(PyObject *module, PyObject *pointer)
{
    if (!pq_ready) {
        PyErr_SetString(PyExc_RuntimeError, "use_libpq() has not been called");
        return NULL;
    }
    PGconn *conn = as_pgconn(pointer);
    if (conn == NULL)
        return NULL;
    return Py_BuildValue("(ii)", pq.socket(conn), pq.backendPID(conn));
}

static inline int64_t
clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* time.monotonic_ns() on Linux */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A growing array of int64, handed to Python as bytes at the end. */
typedef struct {
    int64_t *items;
    Py_ssize_t size, capacity;
} Samples;

static int
samples_append(Samples *s, int64_t value)
{
    if (s->size == s->capacity) {
        Py_ssize_t capacity = s->capacity ? s->capacity * 2 : 4096;
        int64_t *items = PyMem_Realloc(s->items, capacity * sizeof(int64_t));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->items = items;
        s->capacity = capacity;
    }
    s->items[s->size++] = value;
    return 0;
}

/* One connection's place in the loop (engine._Slot). */
typedef struct {
    PGconn *conn;
    int fd;
    int live;        /* still in the loop */
    int in_flight;   /* an operation is running; 0 while it waits for its start */
    int rolling_back;
    int failed;      /* a statement of this operation failed; its SQLSTATE is in sqlstate */
    char sqlstate[6];
    Py_ssize_t step;
    PyObject *params; /* bind(i): one parameter sequence (or None) per statement */
    int64_t intended, began;
} Slot;

/* Operations waiting for their intended start: a binary heap on (intended, index). */
typedef struct {
    int64_t intended;
    Py_ssize_t index;
    Slot *slot;
} Waiting;

typedef struct {
    Waiting *items;
    Py_ssize_t size;
} Heap;

static inline int
heap_before(const Waiting *a, const Waiting *b)
{
    return a->intended < b->intended || (a->intended == b->intended && a->index < b->index);
}

static void
heap_push(Heap *h, Waiting w)
{
    Py_ssize_t i = h->size++;
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (!heap_before(&w, &h->items[parent]))
            break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = w;
}

static Waiting
heap_pop(Heap *h)
{
    Waiting top = h->items[0];
    Waiting last = h->items[--h->size];
    Py_ssize_t i = 0;
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= h->size)
            break;
        if (child + 1 < h->size && heap_before(&h->items[child + 1], &h->items[child]))
            child++;
        if (!heap_before(&h->items[child], &last))
            break;
        h->items[i] = h->items[child];
        i = child;
    }
    if (h->size)
        h->items[i] = last;
    return top;
}

/* An operation made before a connection asks for it: its number, its parameters
 * (bind's list) and, at a fixed rate, its start (offset from start_ns). */
typedef struct {
    Py_ssize_t index;
    PyObject *params;
    int64_t offset;
} Operation;

#define WATCHER_KEY ((uint64_t)-1)
#define TIMER_KEY ((uint64_t)-2)
#define STACK_PARAMS 32

typedef struct {
    /* arguments */
    Slot *slots;
    Py_ssize_t nslots;
    const char **names;
    Py_ssize_t last; /* the index of the last statement */
    PyObject *bind, *next_index, *offset, *progress, *watcher;
    Py_ssize_t operations;
    int64_t start_ns;
    /* state */
    Py_ssize_t counter; /* the next index, when next_index is None */
    int exhausted;      /* every operation has been handed out */
    Operation *ahead;   /* a ring of operations made while the loop had nothing to read */
    Py_ssize_t ahead_first, ahead_count, ahead_size;
    Py_ssize_t live, done;
    int epfd, timerfd;
    int64_t armed;       /* the timer's expiry, 0: disarmed */
    int64_t watcher_due; /* watcher.due: its next conversation, 0 while one goes on */
    Heap waiting;
    Samples latencies, service;
    PyObject *failures; /* {SQLSTATE bytes, or None for a lost connection: count} */
} Loop;

static int
count_failure(Loop *loop, PyObject *key)
{
    PyObject *seen = PyDict_GetItemWithError(loop->failures, key);
    if (seen == NULL && PyErr_Occurred())
        return -1;
    long n = seen == NULL ? 0 : PyLong_AsLong(seen);
    PyObject *count = PyLong_FromLong(n + 1);
    if (count == NULL)
        return -1;
    int err = PyDict_SetItem(loop->failures, key, count);
    Py_DECREF(count);
    return err;
}

static void
retire(Loop *loop, Slot *slot)
{
    if (!slot->live)
        return;
    slot->live = 0;
    loop->live--;
    /* libpq closes the socket of a lost connection, and a closed socket has left epoll */
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, slot->fd, NULL);
}

/* The connection is lost: counted as psycopg counts it, and the others go on. */
static int
lose(Loop *loop, Slot *slot)
{
    retire(loop, slot);
    return count_failure(loop, Py_None);
}

/* Send statement `step` of the slot's operation: 1 sent, 0 the connection is lost, -1 error. */
static int
send_step(Loop *loop, Slot *slot, Py_ssize_t step)
{
    PyObject *params = PyList_Check(slot->params) && step < PyList_GET_SIZE(slot->params)
                           ? PyList_GET_ITEM(slot->params, step)
                           : NULL;
    if (params == NULL) {
        PyErr_SetString(PyExc_TypeError, "bind() must return a list with one item per statement");
        return -1;
    }
    const char *stack_values[STACK_PARAMS];
    PyObject *stack_kept[STACK_PARAMS];
    const char **values = stack_values;
    PyObject **kept = stack_kept; /* bytes copies of other buffers */
    Py_ssize_t n = 0, nkept = 0;
    PyObject *seq = NULL;
    int sent = -1;

    if (params != Py_None) {
        seq = PySequence_Fast(params, "a statement's parameters must be a sequence");
        if (seq == NULL)
            return -1;
        n = PySequence_Fast_GET_SIZE(seq);
        if (n > STACK_PARAMS) {
            values = PyMem_Malloc(n * sizeof(*values));
            kept = PyMem_Malloc(n * sizeof(*kept));
            if (values == NULL || kept == NULL) {
                PyErr_NoMemory();
                goto done;
            }
        }
        PyObject **items = PySequence_Fast_ITEMS(seq);
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *item = items[k];
            if (item == Py_None) {
                values[k] = NULL;
            }
            /* bytes and bytearray end with a NUL byte, as text parameters must (psycopg's
             * dumpers give bytearray); anything else, a memoryview say, is copied. */
            else if (PyBytes_Check(item)) {
                values[k] = PyBytes_AS_STRING(item);
            }
            else if (PyByteArray_Check(item)) {
                values[k] = PyByteArray_AS_STRING(item);
            }
            else {
                PyObject *copy = PyBytes_FromObject(item);
                if (copy == NULL)
                    goto done;
                kept[nkept++] = copy;
                values[k] = PyBytes_AS_STRING(copy);
            }
        }
    }
    sent = pq.sendQueryPrepared(slot->conn, loop->names[step], (int)n, values, NULL, NULL, 0)
               ? 1
               : 0;
done:
    for (Py_ssize_t k = 0; k < nkept; k++)
        Py_DECREF(kept[k]);
    if (values != stack_values)
        PyMem_Free(values);
    if (kept != stack_kept)
        PyMem_Free(kept);
    Py_XDECREF(seq);
    return sent;
}

static int
begin(Loop *loop, Slot *slot, int64_t now)
{
    slot->began = now;
    slot->in_flight = 1;
    int sent = send_step(loop, slot, 0);
    if (sent < 0)
        return -1;
    return sent ? 0 : lose(loop, slot);
}

static Py_ssize_t
call_index(PyObject *fn)
{
    PyObject *got = PyObject_CallNoArgs(fn);
    if (got == NULL)
        return -1;
    Py_ssize_t value = PyLong_AsSsize_t(got);
    Py_DECREF(got);
    return value;
}

/* Make the next operation: 1 made, 0 none is left, -1 error. */
static int
make_operation(Loop *loop, Operation *op)
{
    Py_ssize_t i;
    if (loop->exhausted)
        return 0;
    if (loop->next_index == Py_None) {
        i = loop->counter++;
    }
    else if ((i = call_index(loop->next_index)) == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (i >= loop->operations) {
        loop->exhausted = 1;
        return 0;
    }
    PyObject *index = PyLong_FromSsize_t(i);
    if (index == NULL)
        return -1;
    PyObject *params = PyObject_CallOneArg(loop->bind, index);
    int64_t offset = 0;
    if (params != NULL && loop->offset != Py_None) {
        PyObject *got = PyObject_CallOneArg(loop->offset, index);
        offset = got == NULL ? -1 : PyLong_AsLongLong(got);
        Py_XDECREF(got);
        if (offset == -1 && PyErr_Occurred())
            Py_CLEAR(params);
    }
    Py_DECREF(index);
    if (params == NULL)
        return -1;
    *op = (Operation){i, params, offset};
    return 1;
}

/* While nothing is there to read, make one operation ahead, so that a connection
 * whose result arrives can go on at once, without waiting for Python (the params
 * function and its binding: microseconds, during which every other connection
 * with a result would wait too). 1 made, 0 nothing to make, -1 error. */
static int
make_ahead(Loop *loop)
{
    if (loop->exhausted || loop->ahead_count == loop->ahead_size)
        return 0;
    Operation op;
    int made = make_operation(loop, &op);
    if (made <= 0)
        return made;
    loop->ahead[(loop->ahead_first + loop->ahead_count) % loop->ahead_size] = op;
    loop->ahead_count++;
    return 1;
}

/* Give the slot its next operation, or retire it when none is left (engine: start). */
static int
start(Loop *loop, Slot *slot, int64_t now)
{
    Operation op;
    int got;
    if (loop->ahead_count) {
        op = loop->ahead[loop->ahead_first];
        loop->ahead_first = (loop->ahead_first + 1) % loop->ahead_size;
        loop->ahead_count--;
        got = 1;
    }
    else if ((got = make_operation(loop, &op)) < 0) {
        return -1;
    }
    if (!got) {
        retire(loop, slot);
        return 0;
    }
    slot->step = 0;
    slot->failed = 0;
    slot->rolling_back = 0;
    Py_XSETREF(slot->params, op.params);
    if (loop->offset != Py_None) {
        slot->intended = loop->start_ns + op.offset;
        if (slot->intended > now) {
            heap_push(&loop->waiting, (Waiting){slot->intended, op.index, slot});
            return 0;
        }
    }
    else {
        slot->intended = now;
    }
    return begin(loop, slot, now);
}

static int
record(Loop *loop, Slot *slot, int64_t now)
{
    slot->in_flight = 0;
    if (slot->failed) {
        PyObject *key = PyBytes_FromString(slot->sqlstate);
        if (key == NULL)
            return -1;
        int err = count_failure(loop, key);
        Py_DECREF(key);
        if (err)
            return -1;
    }
    if (samples_append(&loop->service, now - slot->began) ||
        samples_append(&loop->latencies, now - slot->intended))
        return -1;
    loop->done++;
    if (pq.status(slot->conn) == CONNECTION_BAD) {
        retire(loop, slot);
        return 0;
    }
    return start(loop, slot, now);
}

/* Read what arrived on a slot's connection and move its operation on. */
static int
readable(Loop *loop, Slot *slot)
{
    PGconn *conn = slot->conn;
    if (!pq.consumeInput(conn))
        return lose(loop, slot);
    if (!slot->in_flight) /* waiting for its start: only the server's goodbye */
        return pq.status(conn) == CONNECTION_BAD ? lose(loop, slot) : 0;
    while (!pq.isBusy(conn)) {
        PGresult *result = pq.getResult(conn);
        if (result != NULL) {
            int status = pq.resultStatus(result);
            if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK &&
                status != PGRES_EMPTY_QUERY && !slot->failed) {
                const char *sqlstate = pq.resultErrorField(result, PG_DIAG_SQLSTATE);
                slot->failed = 1;
                strncpy(slot->sqlstate, sqlstate ? sqlstate : "", sizeof(slot->sqlstate) - 1);
                slot->sqlstate[sizeof(slot->sqlstate) - 1] = '\0';
            }
            pq.clear(result);
            continue;
        }
        /* The statement is complete. */
        if (slot->rolling_back) {
            slot->rolling_back = 0;
        }
        else if (slot->failed) {
            if (pq.transactionStatus(conn) != PQTRANS_IDLE && pq.status(conn) != CONNECTION_BAD) {
                slot->rolling_back = 1;
                return pq.sendQuery(conn, "ROLLBACK") ? 0 : lose(loop, slot);
            }
        }
        else if (slot->step < loop->last) {
            int sent = send_step(loop, slot, ++slot->step);
            if (sent < 0)
                return -1;
            return sent ? 0 : lose(loop, slot);
        }
        return record(loop, slot, clock_ns());
    }
    return 0;
}

/* Read watcher.due; -1 on error. */
static int
read_due(Loop *loop)
{
    PyObject *due = PyObject_GetAttrString(loop->watcher, "due");
    if (due == NULL)
        return -1;
    loop->watcher_due = PyLong_AsLongLong(due);
    Py_DECREF(due);
    return loop->watcher_due == -1 && PyErr_Occurred() ? -1 : 0;
}

static void
drop_watcher(Loop *loop, int fd)
{
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    Py_CLEAR(loop->watcher);
    loop->watcher_due = 0;
}

/* Call watcher.begin() or watcher.readable(now); a False answer ends the watching. */
static int
talk(Loop *loop, const char *method, int64_t now)
{
    PyObject *fd_obj = PyObject_GetAttrString(loop->watcher, "fd");
    if (fd_obj == NULL)
        return -1;
    int fd = (int)PyLong_AsLong(fd_obj);
    Py_DECREF(fd_obj);
    PyObject *ok = now ? PyObject_CallMethod(loop->watcher, method, "L", (long long)now)
                       : PyObject_CallMethod(loop->watcher, method, NULL);
    if (ok == NULL)
        return -1;
    int going = PyObject_IsTrue(ok);
    Py_DECREF(ok);
    if (going < 0)
        return -1;
    if (!going) {
        drop_watcher(loop, fd);
        return 0;
    }
    return read_due(loop);
}

static int
arm(Loop *loop, int64_t when)
{
    if (when == loop->armed)
        return 0;
    struct itimerspec spec = {{0, 0}, {when / 1000000000, when % 1000000000}};
    if (timerfd_settime(loop->timerfd, TFD_TIMER_ABSTIME, &spec, NULL)) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    loop->armed = when;
    return 0;
}

static int
watch_fd(Loop *loop, int fd, uint64_t key)
{
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = key};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &event)) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

#define EVENTS 64

static int
run(Loop *loop)
{
    struct epoll_event events[EVENTS];
    int64_t reported = clock_ns();

    for (Py_ssize_t n = 0; n < loop->nslots; n++) {
        if (watch_fd(loop, loop->slots[n].fd, (uint64_t)n))
            return -1;
        loop->slots[n].live = 1;
        loop->live++;
    }
    if (watch_fd(loop, loop->timerfd, TIMER_KEY))
        return -1;
    if (loop->watcher != NULL) {
        PyObject *fd_obj = PyObject_GetAttrString(loop->watcher, "fd");
        if (fd_obj == NULL)
            return -1;
        int fd = (int)PyLong_AsLong(fd_obj);
        Py_DECREF(fd_obj);
        if ((fd == -1 && PyErr_Occurred()) || watch_fd(loop, fd, WATCHER_KEY) ||
            talk(loop, "begin", 0))
            return -1;
    }
    int64_t now = clock_ns();
    for (Py_ssize_t n = 0; n < loop->nslots; n++)
        if (start(loop, &loop->slots[n], now))
            return -1;

    while (loop->live) {
        if (PyErr_CheckSignals()) /* Ctrl-C: the caller closes the connections */
            return -1;
        int timeout = -1;
        int64_t wake = INT64_MAX;
        if (loop->waiting.size)
            wake = loop->waiting.items[0].intended;
        if (loop->watcher != NULL && loop->watcher_due && loop->watcher_due < wake)
            wake = loop->watcher_due;
        if (wake != INT64_MAX) {
            if (wake <= clock_ns())
                timeout = 0;
            else if (arm(loop, wake)) /* to the nanosecond: epoll counts in whole ms */
                return -1;
        }
        int ready;
        if (timeout != 0 && !loop->exhausted && loop->ahead_count < loop->ahead_size) {
            /* Before sleeping, use the time: nothing to read yet, make an operation. */
            ready = epoll_wait(loop->epfd, events, EVENTS, 0);
            if (ready == 0) {
                if (make_ahead(loop) < 0)
                    return -1;
                continue;
            }
        }
        else {
            Py_BEGIN_ALLOW_THREADS
            ready = epoll_wait(loop->epfd, events, EVENTS, timeout);
            Py_END_ALLOW_THREADS
        }
        if (ready < 0) {
            if (errno != EINTR) {
                PyErr_SetFromErrno(PyExc_OSError);
                return -1;
            }
            continue;
        }
        for (int e = 0; e < ready; e++) {
            uint64_t key = events[e].data.u64;
            if (key == TIMER_KEY) {
                uint64_t expirations;
                if (read(loop->timerfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) {
                    PyErr_SetFromErrno(PyExc_OSError);
                    return -1;
                }
                loop->armed = 0;
            }
            else if (key == WATCHER_KEY) {
                if (loop->watcher != NULL && talk(loop, "readable", clock_ns()))
                    return -1;
            }
            else {
                Slot *slot = &loop->slots[key];
                if (slot->live && readable(loop, slot))
                    return -1;
            }
        }
        if (loop->waiting.size) {
            now = clock_ns();
            while (loop->waiting.size && loop->waiting.items[0].intended <= now) {
                Slot *slot = heap_pop(&loop->waiting).slot;
                if (!slot->live) /* its connection was lost while it waited */
                    continue;
                if (begin(loop, slot, now))
                    return -1;
            }
        }
        if (loop->watcher != NULL && loop->watcher_due && clock_ns() >= loop->watcher_due &&
            talk(loop, "begin", 0))
            return -1;
        if (loop->progress != Py_None && clock_ns() - reported > 1000000000) {
            reported = clock_ns();
            PyObject *done = PyLong_FromSsize_t(loop->done);
            if (done == NULL)
                return -1;
            PyObject *got = PyObject_CallOneArg(loop->progress, done);
            Py_DECREF(done);
            if (got == NULL)
                return -1;
            Py_DECREF(got);
        }
    }
    return 0;
}

PyDoc_STRVAR(drive_doc,
             "drive(pgconns, names, bind, next_index, operations, start_ns, offset, progress, "
             "watcher)\n--\n\n"
             "Run the load as engine.drive_many does. pgconns: PGconn addresses "
             "(pgconn.pgconn_ptr); names: the prepared statements, in order; next_index: "
             "None for a local count; offset, progress, watcher: None or as drive_many's.\n"
             "Return (latencies, service, failures): the nanoseconds as bytes of int64, and "
             "{SQLSTATE bytes, or None for a lost connection: count}.");

static PyObject *
drive(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "drive() takes 9 arguments");
        return NULL;
    }
    if (!pq_ready) {
        PyErr_SetString(PyExc_RuntimeError, "use_libpq() has not been called");
        return NULL;
    }
    Loop loop = {0};
    loop.epfd = loop.timerfd = -1;
    loop.bind = args[2];
    loop.next_index = args[3];
    loop.operations = PyLong_AsSsize_t(args[4]);
    loop.start_ns = PyLong_AsLongLong(args[5]);
    loop.offset = args[6];
    loop.progress = args[7];
    loop.watcher = args[8] == Py_None ? NULL : Py_NewRef(args[8]);
    PyObject *conns = NULL, *names = NULL, *out = NULL;
    if (PyErr_Occurred())
        goto done;
    conns = PySequence_Fast(args[0], "pgconns must be a sequence");
    names = PySequence_Fast(args[1], "names must be a sequence");
    if (conns == NULL || names == NULL)
        goto done;
    loop.nslots = PySequence_Fast_GET_SIZE(conns);
    loop.last = PySequence_Fast_GET_SIZE(names) - 1;
    if (loop.last < 0) {
        PyErr_SetString(PyExc_ValueError, "no statements to run");
        goto done;
    }
    loop.slots = PyMem_Calloc(loop.nslots ? loop.nslots : 1, sizeof(Slot));
    loop.names = PyMem_Calloc(loop.last + 1, sizeof(char *));
    loop.waiting.items = PyMem_Calloc(loop.nslots ? loop.nslots : 1, sizeof(Waiting));
    loop.ahead_size = loop.nslots < 1 ? 1 : loop.nslots > 256 ? 256 : loop.nslots;
    loop.ahead = PyMem_Calloc(loop.ahead_size, sizeof(Operation));
    loop.failures = PyDict_New();
    if (loop.slots == NULL || loop.names == NULL || loop.waiting.items == NULL ||
        loop.ahead == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (loop.failures == NULL)
        goto done;
    for (Py_ssize_t n = 0; n <= loop.last; n++) {
        loop.names[n] = PyBytes_AsString(PySequence_Fast_GET_ITEM(names, n));
        if (loop.names[n] == NULL)
            goto done;
    }
    for (Py_ssize_t n = 0; n < loop.nslots; n++) {
        Slot *slot = &loop.slots[n];
        slot->conn = as_pgconn(PySequence_Fast_GET_ITEM(conns, n));
        if (slot->conn == NULL)
            goto done;
        slot->fd = pq.socket(slot->conn);
    }
    loop.epfd = epoll_create1(EPOLL_CLOEXEC);
    loop.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (loop.epfd < 0 || loop.timerfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    if (run(&loop) == 0) {
        out = Py_BuildValue("(y#y#O)", (const char *)loop.latencies.items,
                            loop.latencies.size * (Py_ssize_t)sizeof(int64_t),
                            (const char *)loop.service.items,
                            loop.service.size * (Py_ssize_t)sizeof(int64_t), loop.failures);
    }
done:
    if (loop.slots != NULL)
        for (Py_ssize_t n = 0; n < loop.nslots; n++)
            Py_XDECREF(loop.slots[n].params);
    for (Py_ssize_t n = 0; n < loop.ahead_count; n++)
        Py_DECREF(loop.ahead[(loop.ahead_first + n) % loop.ahead_size].params);
    PyMem_Free(loop.ahead);
    PyMem_Free(loop.slots);
    PyMem_Free(loop.names);
    PyMem_Free(loop.waiting.items);
    PyMem_Free(loop.latencies.items);
    PyMem_Free(loop.service.items);
    if (loop.epfd >= 0)
        close(loop.epfd);
    if (loop.timerfd >= 0)
        close(loop.timerfd);
    Py_XDECREF(loop.failures);
    Py_XDECREF(loop.watcher);
    Py_XDECREF(conns);
    Py_XDECREF(names);
    return out;
}

static PyMethodDef methods[] = {
    {"use_libpq", use_libpq, METH_O,
     "use_libpq({name: address}) -> PQlibVersion(): the libpq functions to call."},
    {"identify", identify, METH_O,
     "identify(pgconn_ptr) -> (PQsocket, PQbackendPID), through use_libpq's functions."},
    {"drive", (PyCFunction)(void (*)(void))drive, METH_FASTCALL, drive_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pytest_pgbudget.load._loop",
    .m_doc = "The SQL engine's event loop, in C (see engine.drive_many).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__loop(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *names = PyTuple_New(PQ_FUNCTIONS);
    if (names == NULL)
        goto error;
    for (size_t n = 0; n < PQ_FUNCTIONS; n++) {
        PyObject *name = PyUnicode_FromString(pq_functions[n].name);
        if (name == NULL) {
            Py_DECREF(names);
            goto error;
        }
        PyTuple_SET_ITEM(names, n, name);
    }
    if (PyModule_AddObject(m, "LIBPQ_FUNCTIONS", names) == 0)
        return m;
    Py_DECREF(names);
error:
    Py_DECREF(m);
    return NULL;
}
