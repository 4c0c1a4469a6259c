/* calltree.c — streaming aggregation of recorded events into call trees.
 *
 * `CallTreeBuilder.feed(events_bytes)` consumes the packed event records that
 * `LogReader.chunks()` yields (docs/DESIGN.md §3) and keeps, per thread, a stack
 * of open slices and a tree of call paths (hits, slices, total, self), plus
 * per-(thread, code, line) line stats. Memory grows with the number of distinct
 * call paths and lines, never with the number of events. Event semantics are
 * those of docs/DESIGN.md §1.
 *
 * `gap(thread)` closes a thread's open slices where records were dropped, so later
 * calls do not nest under slices whose end was lost; `finish()` charges the slices
 * still open up to the last event and counts them as running, not as hits.
 */
#include "parts.h"

#include <stdint.h>
#include <string.h>

#include "kinds.h"
#include "logformat.h"

#define WIRE_SIZE ((Py_ssize_t)sizeof(pylu_decoded_event))   /* LogReader.chunks() records */
#define NO_NODE UINT32_MAX
#define ROOT_CODE UINT32_MAX    /* code id of a thread's root node */


typedef struct {
    uint32_t parent;
    uint32_t code;
    uint64_t hits;     /* closed CALL slices: completed calls */
    uint64_t slices;   /* closed CALL + RESUME slices */
    uint64_t running;  /* slices still open at the end, charged up to it by finish() */
    int64_t running_ns;   /* the part of total_ns those slices account for */
    int64_t total_ns;
    int64_t self_ns;
} ct_node;

typedef struct {
    uint32_t node;
    uint32_t code;
    uint32_t line;     /* open line slice, 0 when none */
    uint16_t call_hit; /* a CALL inside the window: counts as a hit once closed */
    uint16_t slice_hit;
    int64_t start;
    int64_t child_ns;
    int64_t line_start;
} ct_frame;

typedef struct {
    uint32_t thread;
    uint32_t root;
    ct_frame *stack;
    size_t depth;
    size_t cap;
    ct_frame orphan;   /* line slice of a code whose frame opened before recording */
    uint64_t unmatched_closes;   /* close events with no open slice of that code */
    uint64_t forced_closes;      /* slices closed because an outer slice closed first */
    uint64_t gap_closes;         /* slices closed at a recording gap (dropped records) */
    uint64_t stray_lines;        /* LINE/LINE_MARK whose frame is not on top */
    int64_t first_ts;
    int64_t last_ts;
} ct_thread;

typedef struct {
    uint32_t thread_index;
    uint32_t code;
    uint32_t line;
    uint32_t used;
    uint64_t hits;
    int64_t total_ns;
} ct_line;

typedef struct {
    PyObject_HEAD
    int64_t lo, hi;           /* time window, inclusive, ns since log start */
    ct_node *nodes;
    size_t n_nodes, cap_nodes;
    uint32_t *node_index;     /* open addressing: node id + 1, 0 = empty */
    size_t index_cap;
    ct_thread *threads;
    size_t n_threads, cap_threads;
    size_t last_thread;       /* cache: events come in runs per thread */
    uint32_t *thread_index;   /* open addressing: thread index + 1, 0 = empty */
    size_t thread_index_cap;
    ct_line *lines;
    size_t n_lines, lines_cap;
    uint64_t events;
    uint64_t bad_kinds;
    int finished;             /* finish() ran: open slices were charged, no more feeding */
    int64_t last_ts;
} CallTreeBuilder;

/* ---- small helpers -------------------------------------------------------- */

static inline uint64_t
mix64(uint64_t x)
{
    /* splitmix64 finaliser: cheap and spreads (parent, code) pairs well. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline uint32_t
load_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline int64_t
load_i64(const unsigned char *p)
{
    return (int64_t)((uint64_t)load_u32(p) | ((uint64_t)load_u32(p + 4) << 32));
}

/* Duration of [start, end] that falls inside the builder's window. */
static inline int64_t
clipped(const CallTreeBuilder *b, int64_t start, int64_t end)
{
    if (start < b->lo) {
        start = b->lo;
    }
    if (end > b->hi) {
        end = b->hi;
    }
    return end > start ? end - start : 0;
}

static inline int
in_window(const CallTreeBuilder *b, int64_t ts)
{
    return ts >= b->lo && ts <= b->hi;
}

static int
grow(void **buf, size_t *cap, size_t need, size_t item)
{
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        n *= 2;
    }
    void *p = PyMem_Realloc(*buf, n * item);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *buf = p;
    *cap = n;
    return 0;
}

/* ---- call-path nodes ------------------------------------------------------ */

static int
rehash_nodes(CallTreeBuilder *b, size_t cap)
{
    uint32_t *idx = PyMem_Calloc(cap, sizeof(uint32_t));
    if (idx == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < b->n_nodes; i++) {
        if (b->nodes[i].parent == NO_NODE) {
            continue;   /* thread roots */
        }
        uint64_t h = mix64(((uint64_t)b->nodes[i].parent << 32) | b->nodes[i].code);
        size_t slot = h & (cap - 1);
        while (idx[slot]) {
            slot = (slot + 1) & (cap - 1);
        }
        idx[slot] = (uint32_t)(i + 1);
    }
    PyMem_Free(b->node_index);
    b->node_index = idx;
    b->index_cap = cap;
    return 0;
}

/* The child of `parent` for `code`, created on first use; NO_NODE on error. */
static uint32_t
child_node(CallTreeBuilder *b, uint32_t parent, uint32_t code)
{
    uint64_t h = mix64(((uint64_t)parent << 32) | code);
    size_t mask = b->index_cap - 1;
    size_t slot = h & mask;
    uint32_t v;
    while ((v = b->node_index[slot]) != 0) {
        ct_node *n = &b->nodes[v - 1];
        if (n->parent == parent && n->code == code) {
            return v - 1;
        }
        slot = (slot + 1) & mask;
    }
    if (b->n_nodes >= UINT32_MAX - 1) {
        PyErr_SetString(PyExc_OverflowError, "too many distinct call paths");
        return NO_NODE;
    }
    if (grow((void **)&b->nodes, &b->cap_nodes, b->n_nodes + 1, sizeof(ct_node)) < 0) {
        return NO_NODE;
    }
    uint32_t id = (uint32_t)b->n_nodes++;
    b->nodes[id] = (ct_node){.parent = parent, .code = code};
    b->node_index[slot] = id + 1;
    if (b->n_nodes * 2 > b->index_cap && rehash_nodes(b, b->index_cap * 2) < 0) {
        b->n_nodes--;   /* keep the index consistent with the node array */
        b->node_index[slot] = 0;
        return NO_NODE;
    }
    return id;
}

/* ---- line stats ----------------------------------------------------------- */

static int
rehash_lines(CallTreeBuilder *b, size_t cap)
{
    ct_line *t = PyMem_Calloc(cap, sizeof(ct_line));
    if (t == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < b->lines_cap; i++) {
        ct_line *e = &b->lines[i];
        if (!e->used) {
            continue;
        }
        uint64_t h = mix64(((uint64_t)e->thread_index << 40) ^ ((uint64_t)e->code << 20) ^ e->line);
        size_t slot = h & (cap - 1);
        while (t[slot].used) {
            slot = (slot + 1) & (cap - 1);
        }
        t[slot] = *e;
    }
    PyMem_Free(b->lines);
    b->lines = t;
    b->lines_cap = cap;
    return 0;
}

static ct_line *
line_entry(CallTreeBuilder *b, uint32_t thread_index, uint32_t code, uint32_t line)
{
    if ((b->n_lines + 1) * 2 > b->lines_cap &&
        rehash_lines(b, b->lines_cap ? b->lines_cap * 2 : 256) < 0) {
        return NULL;
    }
    uint64_t h = mix64(((uint64_t)thread_index << 40) ^ ((uint64_t)code << 20) ^ line);
    size_t mask = b->lines_cap - 1;
    size_t slot = h & mask;
    while (b->lines[slot].used) {
        ct_line *e = &b->lines[slot];
        if (e->code == code && e->line == line && e->thread_index == thread_index) {
            return e;
        }
        slot = (slot + 1) & mask;
    }
    ct_line *e = &b->lines[slot];
    *e = (ct_line){.thread_index = thread_index, .code = code, .line = line, .used = 1};
    b->n_lines++;
    return e;
}

/* ---- threads -------------------------------------------------------------- */

static int
rehash_threads(CallTreeBuilder *b, size_t cap)
{
    uint32_t *idx = PyMem_Calloc(cap, sizeof(uint32_t));
    if (idx == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < b->n_threads; i++) {
        size_t slot = mix64(b->threads[i].thread) & (cap - 1);
        while (idx[slot]) {
            slot = (slot + 1) & (cap - 1);
        }
        idx[slot] = (uint32_t)(i + 1);
    }
    PyMem_Free(b->thread_index);
    b->thread_index = idx;
    b->thread_index_cap = cap;
    return 0;
}

static ct_thread *
thread_state(CallTreeBuilder *b, uint32_t thread, int64_t ts)
{
    if (b->n_threads && b->threads[b->last_thread].thread == thread) {
        return &b->threads[b->last_thread];
    }
    size_t mask = b->thread_index_cap - 1;
    size_t slot = mix64(thread) & mask;
    uint32_t v;
    while ((v = b->thread_index[slot]) != 0) {
        if (b->threads[v - 1].thread == thread) {
            b->last_thread = v - 1;
            return &b->threads[v - 1];
        }
        slot = (slot + 1) & mask;
    }
    if ((b->n_threads + 1) * 2 > b->thread_index_cap) {
        if (rehash_threads(b, b->thread_index_cap * 2) < 0) {
            return NULL;
        }
        return thread_state(b, thread, ts);   /* find the new empty slot */
    }
    if (grow((void **)&b->threads, &b->cap_threads, b->n_threads + 1, sizeof(ct_thread)) < 0) {
        return NULL;
    }
    b->thread_index[slot] = (uint32_t)(b->n_threads + 1);
    /* One root per thread; roots are never looked up by key, so they stay out of the index. */
    if (b->n_nodes >= UINT32_MAX - 1 ||
        grow((void **)&b->nodes, &b->cap_nodes, b->n_nodes + 1, sizeof(ct_node)) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_OverflowError, "too many distinct call paths");
        }
        return NULL;
    }
    uint32_t root = (uint32_t)b->n_nodes++;
    b->nodes[root] = (ct_node){.parent = NO_NODE, .code = ROOT_CODE};
    ct_thread *t = &b->threads[b->n_threads];
    *t = (ct_thread){.thread = thread, .root = root, .first_ts = ts, .last_ts = ts};
    b->last_thread = b->n_threads++;
    return t;
}

/* ---- event semantics ------------------------------------------------------ */

static int
close_line(CallTreeBuilder *b, size_t thread_index, ct_frame *f, int64_t ts)
{
    if (f->line == 0) {
        return 0;
    }
    ct_line *e = line_entry(b, (uint32_t)thread_index, f->code, f->line);
    if (e == NULL) {
        return -1;
    }
    e->total_ns += clipped(b, f->line_start, ts);
    f->line = 0;
    return 0;
}

static int
open_line(CallTreeBuilder *b, size_t thread_index, ct_frame *f, uint32_t line, int64_t ts)
{
    ct_line *e = line_entry(b, (uint32_t)thread_index, f->code, line);
    if (e == NULL) {
        return -1;
    }
    if (in_window(b, ts)) {
        e->hits++;
    }
    f->line = line;
    f->line_start = ts;
    return 0;
}

/* How a slice ends: its own close event, the end of the log, or a recording gap. */
typedef enum { END_CLOSED, END_LOG, END_GAP } slice_end;

/* Close the top slice of `t` at `ts`, charging its node and its parent slice. Only slices
 * that really closed count as hits; slices cut by the log's end count as running. */
static int
pop_slice(CallTreeBuilder *b, ct_thread *t, size_t thread_index, int64_t ts, slice_end how)
{
    ct_frame *f = &t->stack[t->depth - 1];
    if (close_line(b, thread_index, f, ts) < 0) {
        return -1;
    }
    int64_t dur = clipped(b, f->start, ts);
    ct_node *n = &b->nodes[f->node];
    n->total_ns += dur;
    /* Never negative, even if a broken log has timestamps that go backwards. */
    n->self_ns += dur > f->child_ns ? dur - f->child_ns : 0;
    if (how == END_CLOSED) {
        n->hits += f->call_hit;
        n->slices += f->slice_hit;
    }
    else if (how == END_LOG) {
        n->running++;
        n->running_ns += dur;
    }
    t->depth--;
    if (t->depth) {
        t->stack[t->depth - 1].child_ns += dur;
    }
    return 0;
}

static int
on_open(CallTreeBuilder *b, ct_thread *t, uint32_t code, int64_t ts, int is_call)
{
    uint32_t parent = t->depth ? t->stack[t->depth - 1].node : t->root;
    uint32_t node = child_node(b, parent, code);
    if (node == NO_NODE) {
        return -1;
    }
    if (grow((void **)&t->stack, &t->cap, t->depth + 1, sizeof(ct_frame)) < 0) {
        return -1;
    }
    int inside = in_window(b, ts);
    t->stack[t->depth++] = (ct_frame){.node = node, .code = code, .start = ts,
                                      .call_hit = (uint16_t)(inside && is_call),
                                      .slice_hit = (uint16_t)inside};
    return 0;
}

static int
on_close(CallTreeBuilder *b, ct_thread *t, size_t thread_index, uint32_t code, int64_t ts)
{
    size_t i = t->depth;
    while (i > 0 && t->stack[i - 1].code != code) {
        i--;
    }
    if (i == 0) {
        /* The slice opened before recording began (or its open was dropped). */
        t->unmatched_closes++;
        if (t->orphan.code == code) {
            return close_line(b, thread_index, &t->orphan, ts);
        }
        return 0;
    }
    while (t->depth > i) {   /* inner slices whose close was lost */
        t->forced_closes++;
        if (pop_slice(b, t, thread_index, ts, END_CLOSED) < 0) {
            return -1;
        }
    }
    return pop_slice(b, t, thread_index, ts, END_CLOSED);
}

static ct_frame *
line_frame(ct_thread *t, uint32_t code)
{
    if (t->depth && t->stack[t->depth - 1].code == code) {
        return &t->stack[t->depth - 1];
    }
    t->stray_lines++;
    return &t->orphan;
}

static int
on_line(CallTreeBuilder *b, ct_thread *t, size_t thread_index, uint32_t code, uint32_t line,
        int64_t ts, int opens)
{
    ct_frame *f = line_frame(t, code);
    if (f == &t->orphan && f->code != code) {
        if (close_line(b, thread_index, f, ts) < 0) {
            return -1;
        }
        f->code = code;
    }
    if (close_line(b, thread_index, f, ts) < 0) {
        return -1;
    }
    return opens && line ? open_line(b, thread_index, f, line, ts) : 0;
}

static int
consume(CallTreeBuilder *b, const unsigned char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++, p += WIRE_SIZE) {
        int64_t ts = load_i64(p);
        uint32_t code = load_u32(p + 8);
        uint32_t line = load_u32(p + 12);
        uint32_t thread = load_u32(p + 16);
        unsigned kind = (unsigned)p[20] | ((unsigned)p[21] << 8);
        ct_thread *t = thread_state(b, thread, ts);
        if (t == NULL) {
            return -1;
        }
        size_t ti = (size_t)(t - b->threads);
        b->events++;
        if (ts > t->last_ts) {
            t->last_ts = ts;
        }
        if (ts > b->last_ts) {
            b->last_ts = ts;
        }
        int rc = 0;
        switch (kind) {
        case PYLU_EV_CALL:
        case PYLU_EV_RESUME:
            rc = on_open(b, t, code, ts, kind == PYLU_EV_CALL);
            break;
        case PYLU_EV_RETURN:
        case PYLU_EV_YIELD:
        case PYLU_EV_UNWIND:
            rc = on_close(b, t, ti, code, ts);
            break;
        case PYLU_EV_LINE:
        case PYLU_EV_LINE_MARK:
            rc = on_line(b, t, ti, code, line, ts, kind == PYLU_EV_LINE);
            break;
        default:
            b->bad_kinds++;
        }
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* Close every open slice of `t` at `ts` (and its orphan line slice). */
static int
close_all(CallTreeBuilder *b, ct_thread *t, int64_t ts, slice_end how)
{
    size_t ti = (size_t)(t - b->threads);
    while (t->depth) {
        if (pop_slice(b, t, ti, ts, how) < 0) {
            return -1;
        }
    }
    return close_line(b, ti, &t->orphan, ts);
}

/* ---- Python type ---------------------------------------------------------- */

static int
builder_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    CallTreeBuilder *b = (CallTreeBuilder *)self;
    static char *kwlist[] = {"start_ns", "end_ns", NULL};
    PyObject *lo = Py_None, *hi = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:CallTreeBuilder", kwlist, &lo, &hi)) {
        return -1;
    }
    if (b->node_index != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "CallTreeBuilder is already initialised");
        return -1;
    }
    b->lo = INT64_MIN;
    b->hi = INT64_MAX;
    if (lo != Py_None && (b->lo = PyLong_AsLongLong(lo)) == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (hi != Py_None && (b->hi = PyLong_AsLongLong(hi)) == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (b->lo > b->hi) {
        PyErr_SetString(PyExc_ValueError, "start_ns must not be after end_ns");
        return -1;
    }
    b->last_ts = INT64_MIN;
    if (rehash_threads(b, 16) < 0) {
        return -1;
    }
    return rehash_nodes(b, 1024);
}

static void
builder_dealloc(PyObject *self)
{
    CallTreeBuilder *b = (CallTreeBuilder *)self;
    PyTypeObject *tp = Py_TYPE(self);
    for (size_t i = 0; i < b->n_threads; i++) {
        PyMem_Free(b->threads[i].stack);
    }
    PyMem_Free(b->threads);
    PyMem_Free(b->nodes);
    PyMem_Free(b->node_index);
    PyMem_Free(b->thread_index);
    PyMem_Free(b->lines);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *
builder_feed(PyObject *self, PyObject *arg)
{
    CallTreeBuilder *b = (CallTreeBuilder *)self;
    if (b->node_index == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "CallTreeBuilder was not initialised");
        return NULL;
    }
    if (b->finished) {
        PyErr_SetString(PyExc_RuntimeError, "CallTreeBuilder.finish() was called: no more events");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len % WIRE_SIZE != 0) {
        PyErr_Format(PyExc_ValueError,
                     "event buffer of %zd bytes is not a whole number of %d-byte records",
                     view.len, WIRE_SIZE);
        PyBuffer_Release(&view);
        return NULL;
    }
    int rc = consume(b, view.buf, view.len / WIRE_SIZE);
    PyBuffer_Release(&view);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
open_slices(const ct_thread *t)
{
    PyObject *open = PyList_New(0);
    if (open == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < t->depth; i++) {
        const ct_frame *f = &t->stack[i];
        PyObject *item = Py_BuildValue("(ILI)", f->node, (long long)f->start, f->line);
        if (item == NULL || PyList_Append(open, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(open);
            return NULL;
        }
        Py_DECREF(item);
    }
    return open;
}

static PyObject *
builder_gap(PyObject *self, PyObject *arg)
{
    CallTreeBuilder *b = (CallTreeBuilder *)self;
    unsigned long thread = PyLong_AsUnsignedLong(arg);
    if (thread == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    if (b->finished) {
        PyErr_SetString(PyExc_RuntimeError, "CallTreeBuilder.finish() was called: no more events");
        return NULL;
    }
    for (size_t i = 0; i < b->n_threads; i++) {
        ct_thread *t = &b->threads[i];
        if (t->thread == thread) {
            t->gap_closes += t->depth;
            if (close_all(b, t, t->last_ts, END_GAP) < 0) {
                return NULL;
            }
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
builder_finish(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    CallTreeBuilder *b = (CallTreeBuilder *)self;
    PyObject *out = PyDict_New();
    if (out == NULL) {
        return NULL;
    }
    if (b->finished) {
        return out;
    }
    for (size_t i = 0; i < b->n_threads; i++) {
        ct_thread *t = &b->threads[i];
        PyObject *key = PyLong_FromUnsignedLong(t->thread);
        PyObject *open = open_slices(t);
        int rc = (key && open) ? PyDict_SetItem(out, key, open) : -1;
        Py_XDECREF(key);
        Py_XDECREF(open);
        if (rc < 0 || close_all(b, t, b->last_ts, END_LOG) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    b->finished = 1;
    return out;
}

static PyObject *
thread_result(const ct_thread *t)
{
    PyObject *open = open_slices(t);
    if (open == NULL) {
        return NULL;
    }
    PyObject *res = Py_BuildValue(
        "{sI sI sN sK sK sK sK sL sL}",
        "thread", t->thread, "root", t->root, "open", open,
        "unmatched_closes", (unsigned long long)t->unmatched_closes,
        "forced_closes", (unsigned long long)t->forced_closes,
        "gap_closes", (unsigned long long)t->gap_closes,
        "stray_lines", (unsigned long long)t->stray_lines,
        "first_ts", (long long)t->first_ts, "last_ts", (long long)t->last_ts);
    return res;
}

static PyObject *
builder_result(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    CallTreeBuilder *b = (CallTreeBuilder *)self;
    PyObject *nodes = NULL, *threads = NULL, *lines = NULL;
    nodes = PyList_New((Py_ssize_t)b->n_nodes);
    threads = PyList_New((Py_ssize_t)b->n_threads);
    lines = PyList_New(0);
    if (nodes == NULL || threads == NULL || lines == NULL) {
        goto error;
    }
    for (size_t i = 0; i < b->n_nodes; i++) {
        ct_node *n = &b->nodes[i];
        PyObject *item = Py_BuildValue(
            "(llKKLLKL)", n->parent == NO_NODE ? -1L : (long)n->parent,
            n->code == ROOT_CODE ? -1L : (long)n->code,
            (unsigned long long)n->hits, (unsigned long long)n->slices,
            (long long)n->total_ns, (long long)n->self_ns, (unsigned long long)n->running,
            (long long)n->running_ns);
        if (item == NULL) {
            goto error;
        }
        PyList_SET_ITEM(nodes, (Py_ssize_t)i, item);
    }
    for (size_t i = 0; i < b->n_threads; i++) {
        PyObject *item = thread_result(&b->threads[i]);
        if (item == NULL) {
            goto error;
        }
        PyList_SET_ITEM(threads, (Py_ssize_t)i, item);
    }
    for (size_t i = 0; i < b->lines_cap; i++) {
        ct_line *e = &b->lines[i];
        if (!e->used) {
            continue;
        }
        PyObject *item = Py_BuildValue("(IIIKL)", b->threads[e->thread_index].thread, e->code,
                                       e->line, (unsigned long long)e->hits,
                                       (long long)e->total_ns);
        if (item == NULL || PyList_Append(lines, item) < 0) {
            Py_XDECREF(item);
            goto error;
        }
        Py_DECREF(item);
    }
    return Py_BuildValue("{sN sN sN sK sK sL}", "nodes", nodes, "threads", threads,
                         "lines", lines, "events", (unsigned long long)b->events,
                         "bad_kinds", (unsigned long long)b->bad_kinds,
                         "last_ts", (long long)(b->events ? b->last_ts : 0));
error:
    Py_XDECREF(nodes);
    Py_XDECREF(threads);
    Py_XDECREF(lines);
    return NULL;
}

static PyObject *
builder_get_events(PyObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(((CallTreeBuilder *)self)->events);
}

static PyObject *
builder_get_nodes(PyObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(((CallTreeBuilder *)self)->n_nodes);
}

static PyMethodDef builder_methods[] = {
    {"feed", builder_feed, METH_O,
     "feed(events_bytes) -> None\n--\n\nConsume packed 24-byte event records."},
    {"gap", builder_gap, METH_O,
     "gap(thread) -> None\n--\n\nRecords were lost on `thread`: close its open slices at its "
     "last event, so\nlater events cannot nest under slices whose end was lost."},
    {"finish", builder_finish, METH_NOARGS,
     "finish() -> {thread: [(node, start_ns, line)]}\n--\n\nThe slices still open, then charge "
     "them up to the last event (node\n`running` counts them). No feeding afterwards."},
    {"result", builder_result, METH_NOARGS,
     "result() -> dict\n--\n\nNodes, threads (open slices, mismatches) and line stats so far."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef builder_getset[] = {
    {"events", builder_get_events, NULL, "events consumed so far", NULL},
    {"node_count", builder_get_nodes, NULL, "distinct call paths (including thread roots)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot builder_slots[] = {
    {Py_tp_doc, "CallTreeBuilder(start_ns=None, end_ns=None)\n--\n\n"
                "Streaming call-tree and line-stat aggregator for decoded log events."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, builder_init},
    {Py_tp_dealloc, builder_dealloc},
    {Py_tp_methods, builder_methods},
    {Py_tp_getset, builder_getset},
    {0, NULL},
};

static PyType_Spec builder_spec = {
    .name = "pyliveupdate._reader.CallTreeBuilder",
    .basicsize = sizeof(CallTreeBuilder),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = builder_slots,
};

PyMethodDef pylu_calltree_methods[] = {
    {NULL, NULL, 0, NULL},
};

int
pylu_calltree_exec(PyObject *module)
{
    PyObject *tp = PyType_FromModuleAndSpec(module, &builder_spec, NULL);
    if (tp == NULL) {
        return -1;
    }
    int rc = PyModule_AddObjectRef(module, "CallTreeBuilder", tp);
    Py_DECREF(tp);
    return rc;
}
