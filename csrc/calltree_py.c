/* calltree_py.c — the CallTreeBuilder type over the aggregation of calltree.c. */
#include "calltree.h"
#include "calltree_py.h"

#include <string.h>

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
    if (pylu_ct_rehash_threads(b, 16) < 0) {
        return -1;
    }
    return pylu_ct_rehash_nodes(b, 1024);
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
    int rc = pylu_ct_consume(b, view.buf, view.len / WIRE_SIZE);
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
            if (pylu_ct_close_all(b, t, t->last_ts, END_GAP) < 0) {
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
        if (rc < 0 || pylu_ct_close_all(b, t, b->last_ts, END_LOG) < 0) {
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
