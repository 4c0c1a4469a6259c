/* reader.c — the LogReader and LogChunks types over the decoder (decoder.h), and
 * log_segments(): the Python face of reading logs (docs/DESIGN.md §3). */
#include "reader_py.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "budget.h"
#include "decoder.h"

/* Module state of pyliveupdate._reader (the reader part owns it). */
typedef struct {
    PyTypeObject *chunk_iter_type;
    PyObject *str_event;
    pylu_meta_names names;
} reader_state;

typedef struct {
    PyObject_HEAD
    reader_state *st;           /* borrowed: the module outlives its types' instances */
    pylu_decoder d;
    int opened;
} LogReader;

typedef struct {
    PyObject_HEAD
    LogReader *reader;
} ChunkIter;

/* ------------------------------------------------------------------ LogReader */

static void
reader_release(LogReader *r)
{
    if (r->opened) {
        pylu_decoder_release(&r->d);
    }
}

/* path, or a list/tuple of a log's segment paths in order -> a list of bytes. */
static PyObject *
path_list(PyObject *arg)
{
    PyObject *items = PyList_Check(arg) || PyTuple_Check(arg) ? PySequence_List(arg)
                                                             : PyList_New(0);
    if (items != NULL && !PyList_Check(arg) && !PyTuple_Check(arg) && PyList_Append(items, arg) < 0) {
        Py_CLEAR(items);
    }
    for (Py_ssize_t i = 0; items != NULL && i < PyList_GET_SIZE(items); i++) {
        PyObject *converted = NULL;
        if (!PyUnicode_FSConverter(PyList_GET_ITEM(items, i), &converted)) {
            Py_CLEAR(items);
            break;
        }
        PyList_SetItem(items, i, converted);   /* steals converted */
    }
    return items;
}

static PyObject *
reader_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"path", NULL};
    PyObject *arg;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:LogReader", kwlist, &arg)) {
        return NULL;
    }
    PyObject *paths = path_list(arg);
    if (paths == NULL) {
        return NULL;
    }
    LogReader *r = (LogReader *)type->tp_alloc(type, 0);
    if (r == NULL) {
        Py_DECREF(paths);
        return NULL;
    }
    r->st = PyType_GetModuleState(type);
    r->opened = 1;
    int rc = pylu_decoder_open(&r->d, paths, &r->st->names);
    Py_DECREF(paths);
    if (rc < 0) {
        Py_DECREF(r);
        return NULL;
    }
    return (PyObject *)r;
}

static int
reader_traverse(LogReader *r, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(r));
    return r->opened ? pylu_decoder_traverse(&r->d, visit, arg) : 0;
}

static void
reader_dealloc(LogReader *r)
{
    PyTypeObject *tp = Py_TYPE(r);
    PyObject_GC_UnTrack(r);
    if (r->opened) {
        pylu_decoder_free(&r->d);
    }
    tp->tp_free((PyObject *)r);
    Py_DECREF(tp);
}

static PyObject *
reader_iternext(LogReader *r)
{
    pylu_decoder *d = &r->d;
    for (;;) {
        Py_ssize_t nmeta = PyList_GET_SIZE(d->metas);
        if (d->meta_i < (size_t)nmeta && d->meta_at[d->meta_i] <= d->ev_i) {
            return Py_NewRef(PyList_GET_ITEM(d->metas, (Py_ssize_t)d->meta_i++));
        }
        if (d->ev_i < d->nevents) {
            const pylu_decoded_event *e = &d->events[d->ev_i++];
            return Py_BuildValue("(OHILkk)", r->st->str_event, e->kind, e->thread,
                                 (long long)e->ts_ns, (unsigned long)e->code_id,
                                 (unsigned long)e->line);
        }
        int rc = pylu_decoder_next_frame(d);
        if (rc < 0) {
            return NULL;
        }
        if (rc == 0) {
            return NULL;   /* StopIteration */
        }
    }
}

static PyObject *
reader_chunks(LogReader *r, PyObject *unused)
{
    PYLU_UNUSED(unused);
    ChunkIter *it = PyObject_GC_New(ChunkIter, r->st->chunk_iter_type);
    if (it == NULL) {
        return NULL;
    }
    it->reader = (LogReader *)Py_NewRef(r);
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PyObject *
reader_close(LogReader *r, PyObject *unused)
{
    PYLU_UNUSED(unused);
    reader_release(r);
    Py_RETURN_NONE;
}

static PyObject *
reader_enter(LogReader *r, PyObject *unused)
{
    PYLU_UNUSED(unused);
    return Py_NewRef(r);
}

static PyObject *
reader_exit(LogReader *r, PyObject *args)
{
    PYLU_UNUSED(args);
    reader_release(r);
    Py_RETURN_FALSE;
}

static PyObject *get_header(LogReader *r, void *c) { PYLU_UNUSED(c); return Py_NewRef(r->d.header); }
static PyObject *get_error(LogReader *r, void *c) { PYLU_UNUSED(c); return Py_NewRef(r->d.error); }
static PyObject *get_complete(LogReader *r, void *c) { PYLU_UNUSED(c); return PyBool_FromLong(r->d.complete); }
static PyObject *get_continued(LogReader *r, void *c) { PYLU_UNUSED(c); return PyBool_FromLong(r->d.continued); }
static PyObject *get_segments(LogReader *r, void *c) { PYLU_UNUSED(c); return PyList_GetSlice(r->d.segments, 0, PY_SSIZE_T_MAX); }

static PyObject *
get_path(LogReader *r, void *c)
{
    PYLU_UNUSED(c);
    PyObject *first = PyList_GET_ITEM(r->d.paths, 0);
    return PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(first), PyBytes_GET_SIZE(first));
}

static PyGetSetDef reader_getset[] = {
    {"header", (getter)get_header, NULL, "dict: version, pid, start_unix_ns, clock, segment, ...", NULL},
    {"error", (getter)get_error, NULL, "None, or why reading stopped early", NULL},
    {"complete", (getter)get_complete, NULL, "True once the END record was read", NULL},
    {"continued", (getter)get_continued, NULL,
     "True when the last file read ends where the log continues in its next segment", NULL},
    {"segments", (getter)get_segments, NULL, "[(segment number, path)] of the files opened so far", NULL},
    {"path", (getter)get_path, NULL, "the (first) log file", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef reader_methods[] = {
    {"chunks", (PyCFunction)reader_chunks, METH_NOARGS,
     "Yield (events_bytes, metas) per frame; events are 24-byte records (see DESIGN.md §3)."},
    {"close", (PyCFunction)reader_close, METH_NOARGS, "Unmap the file."},
    {"__enter__", (PyCFunction)reader_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)reader_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot reader_slots[] = {
    {Py_tp_new, reader_new},
    {Py_tp_dealloc, reader_dealloc},
    {Py_tp_traverse, reader_traverse},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, reader_iternext},
    {Py_tp_methods, reader_methods},
    {Py_tp_getset, reader_getset},
    {Py_tp_doc, "LogReader(path): decode a pyliveupdate .pylog file, or a list of a log's\n"
                "segment files in order (log_segments(path) finds them) as one log.\n\n"
                "Iterate for tuples in log order, or use chunks() for the fast path."},
    {0, NULL},
};

static PyType_Spec reader_spec = {
    .name = "pyliveupdate._reader.LogReader",
    .basicsize = sizeof(LogReader),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = reader_slots,
};

/* ------------------------------------------------------------------ ChunkIter */

static PyObject *
chunk_next(ChunkIter *it)
{
    pylu_decoder *d = &it->reader->d;
    /* Anything the tuple iterator left of the current frame is handed over first. */
    if (d->ev_i >= d->nevents && d->meta_i >= (size_t)PyList_GET_SIZE(d->metas)) {
        int rc = pylu_decoder_next_frame(d);
        if (rc <= 0) {
            return NULL;
        }
    }
    PyObject *events = PyBytes_FromStringAndSize((const char *)(d->events + d->ev_i),
                                                 (Py_ssize_t)((d->nevents - d->ev_i) *
                                                              sizeof(pylu_decoded_event)));
    PyObject *metas = PyList_GetSlice(d->metas, (Py_ssize_t)d->meta_i, PyList_GET_SIZE(d->metas));
    d->ev_i = d->nevents;
    d->meta_i = (size_t)PyList_GET_SIZE(d->metas);
    if (events == NULL || metas == NULL) {
        Py_XDECREF(events);
        Py_XDECREF(metas);
        return NULL;
    }
    return Py_BuildValue("(NN)", events, metas);
}

static int
chunk_traverse(ChunkIter *it, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(it));
    Py_VISIT(it->reader);
    return 0;
}

static void
chunk_dealloc(ChunkIter *it)
{
    PyTypeObject *tp = Py_TYPE(it);
    PyObject_GC_UnTrack(it);
    Py_CLEAR(it->reader);
    PyObject_GC_Del(it);
    Py_DECREF(tp);
}

static PyType_Slot chunk_slots[] = {
    {Py_tp_dealloc, chunk_dealloc},
    {Py_tp_traverse, chunk_traverse},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, chunk_next},
    {0, NULL},
};

static PyType_Spec chunk_spec = {
    .name = "pyliveupdate._reader.LogChunks",
    .basicsize = sizeof(ChunkIter),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = chunk_slots,
};

/* ------------------------------------------------------------------ wiring */

const size_t pylu_reader_state_size = sizeof(reader_state);

int
pylu_reader_traverse(PyObject *module, visitproc visit, void *arg)
{
    reader_state *st = PyModule_GetState(module);
    Py_VISIT(st->chunk_iter_type);
    return 0;
}

int
pylu_reader_clear(PyObject *module)
{
    reader_state *st = PyModule_GetState(module);
    Py_CLEAR(st->chunk_iter_type);
    Py_CLEAR(st->str_event);
    Py_CLEAR(st->names.code);
    Py_CLEAR(st->names.thread);
    Py_CLEAR(st->names.text);
    Py_CLEAR(st->names.drop);
    return 0;
}

/* ------------------------------------------------------------------ log_segments */

typedef struct {
    uint32_t n;
    PyObject *path;
} found_segment;

static int
by_segment(const void *a, const void *b)
{
    uint32_t x = ((const found_segment *)a)->n, y = ((const found_segment *)b)->n;
    return x < y ? -1 : x > y;
}

/* log_segments(path) -> [paths]: the segment files of path's log, in order. */
static PyObject *
log_segments(PyObject *module, PyObject *arg)
{
    PYLU_UNUSED(module);
    PyObject *path_bytes = NULL;
    if (!PyUnicode_FSConverter(arg, &path_bytes)) {
        return NULL;
    }
    const char *path = PyBytes_AS_STRING(path_bytes);
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    int pid, other_pid;
    uint64_t start_ns, other_ns;
    uint32_t n;
    if (pylu_segment_parse(name, &pid, &start_ns, &n) < 0) {
        PyErr_Format(PyExc_ValueError, "%s: not named as a log segment "
                     "(pylu-<pid>-<start ns>[.<n>].pylog)", path);
        Py_DECREF(path_bytes);
        return NULL;
    }
    PyObject *dir = slash ? PyBytes_FromStringAndSize(path, slash - path) : PyBytes_FromString(".");
    DIR *dh = dir ? opendir(PyBytes_AS_STRING(dir)) : NULL;
    if (dh == NULL) {
        if (dir != NULL) {
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, dir);
        }
        Py_XDECREF(dir);
        Py_DECREF(path_bytes);
        return NULL;
    }
    found_segment *found = NULL;
    size_t count = 0, cap = 0;
    struct dirent *ent;
    PyObject *result = NULL;
    while ((ent = readdir(dh)) != NULL) {
        if (pylu_segment_parse(ent->d_name, &other_pid, &other_ns, &n) < 0 || other_pid != pid ||
            other_ns != start_ns) {
            continue;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            found_segment *grown = PyMem_Realloc(found, cap * sizeof *grown);
            if (grown == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            found = grown;
        }
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", PyBytes_AS_STRING(dir), ent->d_name);
        found[count].n = n;
        found[count].path = PyUnicode_DecodeFSDefault(slash ? full : ent->d_name);
        if (found[count].path == NULL) {
            goto done;
        }
        count++;
    }
    qsort(found, count, sizeof *found, by_segment);
    result = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; result != NULL && i < count; i++) {
        PyList_SET_ITEM(result, (Py_ssize_t)i, found[i].path);
        found[i].path = NULL;
    }
done:
    for (size_t i = 0; i < count; i++) {
        Py_XDECREF(found[i].path);
    }
    PyMem_Free(found);
    closedir(dh);
    Py_DECREF(dir);
    Py_DECREF(path_bytes);
    return result;
}

PyMethodDef pylu_reader_methods[] = {
    {"log_segments", log_segments, METH_O,
     "log_segments(path) -> [paths]: the segment files of the log path belongs to, in order\n"
     "(the earliest may have been deleted by the log budget)."},
    {NULL, NULL, 0, NULL},
};

int
pylu_reader_exec(PyObject *module)
{
    reader_state *st = PyModule_GetState(module);
    st->str_event = PyUnicode_InternFromString("event");
    st->names.code = PyUnicode_InternFromString("code");
    st->names.thread = PyUnicode_InternFromString("thread");
    st->names.text = PyUnicode_InternFromString("text");
    st->names.drop = PyUnicode_InternFromString("drop");
    if (!st->str_event || !st->names.code || !st->names.thread || !st->names.text ||
        !st->names.drop) {
        return -1;
    }
    st->chunk_iter_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &chunk_spec, NULL);
    if (st->chunk_iter_type == NULL) {
        return -1;
    }
    PyObject *rt = PyType_FromModuleAndSpec(module, &reader_spec, NULL);
    if (rt == NULL) {
        return -1;
    }
    int rc = PyModule_AddObjectRef(module, "LogReader", rt);
    Py_DECREF(rt);
    if (rc < 0 || PyModule_AddIntConstant(module, "LOG_EVENT_SIZE", sizeof(pylu_decoded_event)) < 0) {
        return -1;
    }
    return 0;
}
