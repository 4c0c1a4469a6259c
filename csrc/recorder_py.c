/* recorder_py.c — the recorder's Python API (docs/DESIGN.md §2), exit and fork glue. */
#include "recorder_py.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "flusher.h"
#include "live.h"
#include "logformat.h"
#include "metadata.h"
#include "record.h"
#include "recorder_fork.h"
#include "ring.h"

/* ------------------------------------------------------------------ thread names */

/* Runs in pylu_ring_attach_slow, on a thread that holds the GIL (the contract of
 * pylu_record). Looks the thread up in threading._active without running Python code
 * (no property, no call), so it cannot release the GIL or raise into the caller. */
static void
thread_name_hook(char *name, size_t size)
{
    if (!Py_IsInitialized() || !PyGILState_Check()) {
        return;
    }
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *modules = PySys_GetObject("modules");           /* borrowed */
    PyObject *threading = modules ? PyDict_GetItemString(modules, "threading") : NULL;
    PyObject *active = NULL, *key = NULL, *name_obj = NULL;
    if (threading != NULL) {
        PyObject *mdict = PyModule_Check(threading) ? PyModule_GetDict(threading) : NULL;
        active = mdict ? PyDict_GetItemString(mdict, "_active") : NULL;   /* borrowed */
    }
    if (active != NULL && PyDict_CheckExact(active)) {
        key = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
        PyObject *thread = key ? PyDict_GetItemWithError(active, key) : NULL;  /* borrowed */
        /* Only plain attribute lookup (no __getattribute__ override): no Python code. */
        if (thread != NULL && Py_TYPE(thread)->tp_getattro == PyObject_GenericGetAttr) {
            name_obj = PyObject_GetAttrString(thread, "_name");
            const char *s = name_obj && PyUnicode_Check(name_obj) ? PyUnicode_AsUTF8(name_obj) : NULL;
            if (s != NULL) {
                snprintf(name, size, "%s", s);
            }
        }
    }
    if (name[0] == '\0' && (pid_t)syscall(SYS_gettid) == getpid()) {
        snprintf(name, size, "MainThread");   /* threading not imported yet */
    }
    Py_XDECREF(key);
    Py_XDECREF(name_obj);
    PyErr_Clear();
    PyErr_SetRaisedException(exc);
}

/* ------------------------------------------------------------------ start / stop */

/* sys.argv joined with NULs, for the log header (best effort: empty on any problem). */
static char *
argv_blob(size_t *len)
{
    *len = 0;
    PyObject *argv = PySys_GetObject("argv");   /* borrowed */
    if (argv == NULL || !PyList_Check(argv)) {
        return NULL;
    }
    size_t cap = 256, n = 0;
    char *blob = malloc(cap);
    for (Py_ssize_t i = 0; blob != NULL && i < PyList_GET_SIZE(argv); i++) {
        Py_ssize_t sl;
        const char *s = PyUnicode_Check(PyList_GET_ITEM(argv, i))
                            ? PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(argv, i), &sl) : NULL;
        if (s == NULL) {
            PyErr_Clear();
            continue;
        }
        if (n + (size_t)sl + 1 > PYLU_HEADER_MAX_ARGV) {
            break;
        }
        while (n + (size_t)sl + 1 > cap) {
            cap *= 2;
            char *nb = realloc(blob, cap);
            if (nb == NULL) {
                free(blob);
                return NULL;
            }
            blob = nb;
        }
        memcpy(blob + n, s, (size_t)sl);
        n += (size_t)sl;
        blob[n++] = '\0';
    }
    *len = n;
    return blob;
}

/* "1048576", "512K", "100M", "1.5G" (powers of 1024, optional "B"/"iB") -> bytes.
 * 0 and a ValueError naming `what` when it is not a size. */
static uint64_t
parse_size(const char *text, const char *what)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    double unit = 1;
    switch (*end) {
    case 'k': case 'K': unit = 1024.0; end++; break;
    case 'm': case 'M': unit = 1024.0 * 1024; end++; break;
    case 'g': case 'G': unit = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': unit = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (unit > 1 && *end == 'i') {
        end++;
    }
    if (*end == 'b' || *end == 'B') {
        end++;
    }
    if (errno || end == text || *end != '\0' || !(v * unit >= 1) || v * unit > 1e18) {
        PyErr_Format(PyExc_ValueError, "%s must be a size in bytes such as 500M or 2G, not %R",
                     what, PyUnicode_DecodeFSDefault(text));
        return 0;
    }
    return (uint64_t)(v * unit);
}

/* budget: a size (int or str), else $PYLU_LOG_BUDGET, else 0 (the directory's default). */
static int
budget_bytes(PyObject *budget, uint64_t *out)
{
    *out = 0;
    if (budget == Py_None) {
        const char *env = getenv("PYLU_LOG_BUDGET");
        if (env != NULL && env[0] != '\0' && (*out = parse_size(env, "PYLU_LOG_BUDGET")) == 0) {
            return -1;
        }
        return 0;
    }
    if (PyUnicode_Check(budget)) {
        const char *text = PyUnicode_AsUTF8(budget);
        return text == NULL || (*out = parse_size(text, "budget")) == 0 ? -1 : 0;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(budget);
    if (PyErr_Occurred() || v == 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "budget must be a positive number of bytes or a size "
                     "such as '500M', not %R", budget);
        return -1;
    }
    *out = v;
    return 0;
}

static PyObject *
recorder_start(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"directory", "ring_slots", "level", "flush_ms", "frame_ms",
                             "budget", "segment_bytes", NULL};
    PyObject *dir_obj, *budget = Py_None;
    unsigned long slots = 1u << 20;   /* rings start at 1024 slots and grow up to this */
    unsigned long long segment_bytes = 0;
    int level = 1, flush_ms = 10, frame_ms = 100;
    PYLU_UNUSED(module);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|$kiiiOK:recorder_start", kwlist,
                                     PyUnicode_FSConverter, &dir_obj, &slots, &level,
                                     &flush_ms, &frame_ms, &budget, &segment_bytes)) {
        return NULL;
    }
    uint64_t budget_value;
    if (budget_bytes(budget, &budget_value) < 0) {
        Py_DECREF(dir_obj);
        return NULL;
    }
    struct pylu_flusher_config cfg = {
        .directory = PyBytes_AS_STRING(dir_obj),
        .ring_slots = slots > UINT32_MAX ? 0 : (uint32_t)slots,
        .level = level,
        .flush_ms = flush_ms,
        .frame_ms = frame_ms,
        .budget_bytes = budget_value,
        .segment_bytes = segment_bytes,
    };
    cfg.argv = argv_blob(&cfg.argv_len);
    char path[4096], err[4608];
    int rc = pylu_flusher_start(&cfg, path, sizeof path, err, sizeof err);
    free((char *)cfg.argv);
    Py_DECREF(dir_obj);
    if (rc < 0) {
        PyErr_Format(PyExc_ValueError, "cannot start recording: %s", err);
        return NULL;
    }
    return PyUnicode_DecodeFSDefault(path);
}

static PyObject *
recorder_stop(PyObject *module, PyObject *unused)
{
    PYLU_UNUSED(module);
    PYLU_UNUSED(unused);
    /* Halt producers while we hold the GIL: none is inside pylu_record now, and none
     * will write into a ring once we let go of the GIL for the join. */
    pylu_registry_halt();
    Py_BEGIN_ALLOW_THREADS
    pylu_flusher_stop();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *
recorder_flush(PyObject *module, PyObject *unused)
{
    PYLU_UNUSED(module);
    PYLU_UNUSED(unused);
    Py_BEGIN_ALLOW_THREADS
    pylu_flusher_flush();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *
recorder_active(PyObject *module, PyObject *unused)
{
    PYLU_UNUSED(module);
    PYLU_UNUSED(unused);
    return PyBool_FromLong(atomic_load(&pylu_session) != 0);
}

/* How long a request for the live aggregates waits for the log to be read back into
 * them; a longer catch-up goes on, and what is counted so far is shown meanwhile. */
#define LIVE_WAIT_MS 10000

static const char *const live_state_names[] = {"off", "catching up", "on", "partial"};

static PyObject *
recorder_stats(PyObject *module, PyObject *unused)
{
    PYLU_UNUSED(module);
    PYLU_UNUSED(unused);
    struct pylu_stats st;
    pylu_flusher_stats(&st);
    return Py_BuildValue(
        "{s:O,s:O,s:s,s:s,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,"
        "s:K,s:K,s:d,s:s,s:K,s:N}",
        "active", atomic_load(&pylu_session) != 0 ? Py_True : Py_False,
        "running", st.running ? Py_True : Py_False,
        "path", st.path, "clock", st.clock,
        "events", (unsigned long long)st.events,
        "dropped", (unsigned long long)st.dropped,
        "lost_after_error", (unsigned long long)st.lost_after_error,
        "bytes_written", (unsigned long long)st.bytes_written,
        "frames", (unsigned long long)st.frames,
        "threads", (unsigned long long)st.threads,
        "codes", (unsigned long long)st.codes,
        "texts", (unsigned long long)st.texts,
        "flusher_cpu_ns", (unsigned long long)st.flusher_cpu_ns,
        "cycles", (unsigned long long)st.cycles,
        "max_cycle_ns", (unsigned long long)st.max_cycle_ns,
        "max_gap_ns", (unsigned long long)st.max_gap_ns,
        "dozes", (unsigned long long)st.dozes,
        "ring_bytes", (unsigned long long)st.ring_bytes,
        "ring_bytes_peak", (unsigned long long)st.ring_bytes_peak,
        "ring_trims", (unsigned long long)st.ring_trims,
        "segments", (unsigned long long)st.segments,
        "budget_bytes", (unsigned long long)st.budget_bytes,
        "deleted_segments", (unsigned long long)st.deleted_segments,
        "deleted_bytes", (unsigned long long)st.deleted_bytes,
        "clock_ticks_per_sec", pylu_clock_ticks_per_sec(),
        "live", live_state_names[st.live >= 0 && st.live <= PYLU_LIVE_PARTIAL ? st.live : 0],
        "live_missed_segments", (unsigned long long)st.live_missed_segments,
        "error", st.error[0] ? PyUnicode_FromString(st.error) : Py_NewRef(Py_None));
}

static PyObject *
recorder_text(PyObject *module, PyObject *args)
{
    int kind;
    const char *text;
    Py_ssize_t len;
    PYLU_UNUSED(module);
    if (!PyArg_ParseTuple(args, "is#:recorder_text", &kind, &text, &len)) {
        return NULL;
    }
    if (kind < PYLU_TEXT_FIRST || kind > PYLU_TEXT_LAST) {
        PyErr_Format(PyExc_ValueError, "text kind must be 1 (debug), 2 (handler) or 3 (engine), "
                     "not %d", kind);
        return NULL;
    }
    return PyBool_FromLong(pylu_record_text(kind, text, (size_t)len) == 0);
}

static PyObject *
recorder_emit(PyObject *module, PyObject *args)
{
    int kind;
    unsigned long code_id, line;
    PYLU_UNUSED(module);
    if (!PyArg_ParseTuple(args, "ikk:recorder_emit", &kind, &code_id, &line)) {
        return NULL;
    }
    if (kind < PYLU_EV_FIRST || kind > PYLU_EV_LAST) {
        PyErr_Format(PyExc_ValueError, "event kind must be 1..7, not %d", kind);
        return NULL;
    }
    if (code_id > UINT32_MAX || line > PYLU_REC_LINE_MAX) {
        PyErr_SetString(PyExc_ValueError, "code_id must fit in 32 bits and line in 28 bits");
        return NULL;
    }
    pylu_record((pylu_event_kind)kind, (uint32_t)code_id, (uint32_t)line);
    Py_RETURN_NONE;
}

static PyObject *
recorder_describe_code(PyObject *module, PyObject *args)
{
    unsigned long code_id, firstlineno;
    const char *qualname, *filename, *modname;
    PYLU_UNUSED(module);
    if (!PyArg_ParseTuple(args, "kssks:recorder_describe_code", &code_id, &qualname,
                          &filename, &firstlineno, &modname)) {
        return NULL;
    }
    if (code_id > UINT32_MAX || firstlineno > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "code_id and firstlineno must fit in 32 bits");
        return NULL;
    }
    if (pylu_record_code((uint32_t)code_id, qualname, filename, (uint32_t)firstlineno,
                         modname) < 0) {
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ bench */

/* Called through a pointer so the compiler keeps one call per event, as a callback does. */
typedef void (*bench_fn)(uint32_t i);
static void __attribute__((noinline)) bench_noop(uint32_t i) { __asm__ volatile("" ::"r"(i)); }
static void __attribute__((noinline))
bench_record(uint32_t i)
{
    pylu_record((i & 1) ? PYLU_EV_RETURN : PYLU_EV_CALL, 1 + ((i >> 1) & 7), 0);
}

static PyObject *
recorder_bench(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"n", "rate", "baseline", NULL};
    unsigned long long n;
    double rate = 0;
    int baseline = 0;
    PYLU_UNUSED(module);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "K|$dp:recorder_bench", kwlist, &n, &rate,
                                     &baseline)) {
        return NULL;
    }
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "n must be positive");
        return NULL;
    }
    volatile bench_fn fn = baseline ? bench_noop : bench_record;
    uint64_t t0 = pylu_clock_mono_ns();
    if (rate <= 0) {
        for (unsigned long long i = 0; i < n; i++) {
            fn((uint32_t)i);
        }
    }
    else {
        /* Paced: bursts of 4096 events, sleeping until each burst is due, so the
         * producer leaves the CPU to others as a real program would. */
        double ns_per_event = 1e9 / rate;
        for (unsigned long long i = 0; i < n; i++) {
            if ((i & 4095) == 0) {
                uint64_t due = t0 + (uint64_t)((double)i * ns_per_event);
                if (pylu_clock_mono_ns() < due) {
                    struct timespec ts = {(time_t)(due / 1000000000u), (long)(due % 1000000000u)};
                    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
                    }
                }
            }
            fn((uint32_t)i);
        }
    }
    uint64_t t1 = pylu_clock_mono_ns();
    return PyFloat_FromDouble((double)(t1 - t0) / (double)n);
}

/* ------------------------------------------------------------------ live aggregates */

typedef struct {
    PyObject *funcs;
    PyObject *lines;
} live_ctx;

static int
live_func(void *ctx, uint32_t code, uint64_t hits, double total_ns, double self_ns)
{
    live_ctx *c = ctx;
    PyObject *k = PyLong_FromUnsignedLong(code);
    PyObject *v = Py_BuildValue("(Kdd)", (unsigned long long)hits, total_ns, self_ns);
    int rc = (k && v) ? PyDict_SetItem(c->funcs, k, v) : -1;
    Py_XDECREF(k);
    Py_XDECREF(v);
    return rc;
}

static int
live_line(void *ctx, uint32_t code, uint32_t line, uint64_t hits, double total_ns)
{
    live_ctx *c = ctx;
    PyObject *k = Py_BuildValue("(kk)", (unsigned long)code, (unsigned long)line);
    PyObject *v = Py_BuildValue("(Kd)", (unsigned long long)hits, total_ns);
    int rc = (k && v) ? PyDict_SetItem(c->lines, k, v) : -1;
    Py_XDECREF(k);
    Py_XDECREF(v);
    return rc;
}

static PyObject *
recorder_live(PyObject *module, PyObject *unused)
{
    PYLU_UNUSED(module);
    PYLU_UNUSED(unused);
    /* The flusher feeds them only once asked: the first call waits while it reads the
     * log written so far back into them (catchup.h). */
    Py_BEGIN_ALLOW_THREADS
    pylu_flusher_live(LIVE_WAIT_MS);
    Py_END_ALLOW_THREADS
    live_ctx c = {PyDict_New(), PyDict_New()};
    int rc = (c.funcs && c.lines) ? pylu_live_snapshot(&c, live_func, live_line) : -1;
    if (rc < 0) {
        if (rc == -2) {
            PyErr_NoMemory();
        }
        Py_XDECREF(c.funcs);
        Py_XDECREF(c.lines);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, c.funcs, c.lines);
    Py_DECREF(c.funcs);
    Py_DECREF(c.lines);
    return result;
}

static PyObject *
recorder_live_reset(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"code_ids", NULL};
    PyObject *ids = Py_None;
    PYLU_UNUSED(module);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:recorder_live_reset", kwlist, &ids)) {
        return NULL;
    }
    /* Forget what they hold now, the past of the log included. */
    Py_BEGIN_ALLOW_THREADS
    pylu_flusher_live(LIVE_WAIT_MS);
    Py_END_ALLOW_THREADS
    if (ids == Py_None) {
        pylu_live_reset(NULL, 0);
        Py_RETURN_NONE;
    }
    PyObject *seq = PySequence_Fast(ids, "code_ids must be None or an iterable of ints");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    uint32_t *codes = PyMem_Malloc(sizeof(uint32_t) * (size_t)(n ? n : 1));
    if (codes == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long v = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(seq, i));
        if ((v == (unsigned long)-1 && PyErr_Occurred()) || v > UINT32_MAX) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "code ids are 32-bit unsigned ints");
            }
            PyMem_Free(codes);
            Py_DECREF(seq);
            return NULL;
        }
        codes[i] = (uint32_t)v;
    }
    pylu_live_reset(codes, (size_t)n);
    PyMem_Free(codes);
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ fork and exit */

static PyObject *
recorder_after_fork_child(PyObject *module, PyObject *unused)
{
    PYLU_UNUSED(module);
    PYLU_UNUSED(unused);
    char path[4096], err[4608];
    int rc = pylu_flusher_restart_in_child(path, sizeof path, err, sizeof err);
    if (rc < 0) {
        /* The child runs on; it only loses its own recording, and says so. */
        PySys_FormatStderr("pyliveupdate: recording not continued in child %d: %s\n",
                           (int)getpid(), err);
    }
    Py_RETURN_NONE;
}

static void
stop_at_exit(void)
{
    pylu_registry_halt();
    pylu_flusher_stop();
}

PyMethodDef pylu_recorder_methods[] = {
    {"recorder_start", (PyCFunction)(void (*)(void))recorder_start, METH_VARARGS | METH_KEYWORDS,
     "recorder_start(directory, *, ring_slots=1048576, level=1, flush_ms=10, frame_ms=100,\n"
     "               budget=None, segment_bytes=0) -> path of the first segment\n"
     "ring_slots: the most records a thread's ring may grow to hold. flush_ms: the shortest\n"
     "period between drains (faster rings grow; slower ones let the flusher sleep up to\n"
     "frame_ms). budget: bytes (or\n"
     "'500M') the directory's logs may take; None: $PYLU_LOG_BUDGET, else min(1 GiB, 10% of\n"
     "the free space). segment_bytes: a segment ends past this size (0: budget / 8)."},
    {"recorder_stop", recorder_stop, METH_NOARGS, "Drain, write the final frame, close the log."},
    {"recorder_flush", recorder_flush, METH_NOARGS, "Drain now and end the current zstd frame."},
    {"recorder_active", recorder_active, METH_NOARGS, "True while events are being recorded."},
    {"recorder_stats", recorder_stats, METH_NOARGS, "Counters of the current or last log."},
    {"recorder_text", recorder_text, METH_VARARGS, "recorder_text(kind, text): a TEXT record."},
    {"recorder_emit", recorder_emit, METH_VARARGS, "recorder_emit(kind, code_id, line)."},
    {"recorder_describe_code", recorder_describe_code, METH_VARARGS,
     "recorder_describe_code(code_id, qualname, filename, firstlineno, module)."},
    {"recorder_bench", (PyCFunction)(void (*)(void))recorder_bench, METH_VARARGS | METH_KEYWORDS,
     "recorder_bench(n, *, rate=0, baseline=False) -> ns per event from a C loop."},
    {"recorder_live", recorder_live, METH_NOARGS, "(funcs, lines) live aggregates."},
    {"recorder_live_reset", (PyCFunction)(void (*)(void))recorder_live_reset,
     METH_VARARGS | METH_KEYWORDS, "recorder_live_reset(code_ids=None)."},
    {"_recorder_after_fork_child", recorder_after_fork_child, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

int
pylu_recorder_exec(PyObject *module)
{
    static int process_hooks_done = 0;
    int ret = -1;
    PyObject *os = NULL, *atexit_mod = NULL, *child = NULL, *stop = NULL, *r = NULL;

    pylu_clock_init();
    pylu_ring_name_hook = thread_name_hook;
    pylu_recorder_install_atfork();
    if (PyModule_AddStringConstant(module, "RECORDER_CLOCK", pylu_clock_name()) < 0) {
        goto error;
    }
    if (process_hooks_done) {
        return 0;
    }
    /* A forked child continues recording into its own log; exit flushes everything. */
    child = PyObject_GetAttrString(module, "_recorder_after_fork_child");
    stop = PyObject_GetAttrString(module, "recorder_stop");
    os = PyImport_ImportModule("os");
    atexit_mod = PyImport_ImportModule("atexit");
    if (child == NULL || stop == NULL || os == NULL || atexit_mod == NULL) {
        goto error;
    }
    PyObject *kw = Py_BuildValue("{s:O}", "after_in_child", child);
    PyObject *reg = kw ? PyObject_GetAttrString(os, "register_at_fork") : NULL;
    PyObject *empty = reg ? PyTuple_New(0) : NULL;
    r = empty ? PyObject_Call(reg, empty, kw) : NULL;
    Py_XDECREF(kw);
    Py_XDECREF(reg);
    Py_XDECREF(empty);
    if (r == NULL) {
        goto error;
    }
    Py_DECREF(r);
    r = PyObject_CallMethod(atexit_mod, "register", "O", stop);
    if (r == NULL) {
        goto error;
    }
    Py_DECREF(r);
    if (Py_AtExit(stop_at_exit) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "pyliveupdate: no room for an exit handler");
        goto error;
    }
    process_hooks_done = 1;
    ret = 0;
error:
    Py_XDECREF(os);
    Py_XDECREF(atexit_mod);
    Py_XDECREF(child);
    Py_XDECREF(stop);
    return ret;
}
