/* calltree.c — streaming aggregation of recorded events into call trees (the Python type
 * is calltree_py.c).
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
#include "calltree.h"

#include <string.h>

#include "kinds.h"


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

int
pylu_ct_rehash_nodes(CallTreeBuilder *b, size_t cap)
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
    if (b->n_nodes * 2 > b->index_cap && pylu_ct_rehash_nodes(b, b->index_cap * 2) < 0) {
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

int
pylu_ct_rehash_threads(CallTreeBuilder *b, size_t cap)
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
        if (pylu_ct_rehash_threads(b, b->thread_index_cap * 2) < 0) {
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

int
pylu_ct_consume(CallTreeBuilder *b, const unsigned char *p, Py_ssize_t n)
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
int
pylu_ct_close_all(CallTreeBuilder *b, ct_thread *t, int64_t ts, slice_end how)
{
    size_t ti = (size_t)(t - b->threads);
    while (t->depth) {
        if (pop_slice(b, t, ti, ts, how) < 0) {
            return -1;
        }
    }
    return close_line(b, ti, &t->orphan, ts);
}
