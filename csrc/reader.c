/* reader.c — LogReader: decodes a .pylog (logformat.h) back into events and metadata.
 *
 * The file is mapped read-only; frames are decoded one at a time into a flat array of
 * 24-byte events plus the metadata tuples met on the way (each tagged with the number of
 * events before it, so the tuple iterator replays the exact log order). chunks() hands
 * the array out as bytes. A damaged log yields every complete frame, then stops with
 * `error` saying where and why.
 */
#include "parts.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "logdecode.h"
#include "logformat.h"

typedef struct {
    pylu_dec_thread dec;
    uint32_t frame;   /* frame number `dec` belongs to (reset per frame) */
    int64_t last_ns;  /* kept across frames: a thread's times never go backwards */
} thread_state;

/* Module state of pyliveupdate._reader (the reader part owns it). */
typedef struct {
    PyTypeObject *chunk_iter_type;
    PyObject *str_event, *str_code, *str_thread, *str_text, *str_drop;
} reader_state;

typedef struct {
    PyObject_HEAD
    reader_state *st;           /* borrowed: the module outlives its types' instances */
    PyObject *path;
    uint8_t *map;
    size_t size;
    size_t pos;                 /* offset of the next frame */
    size_t header_size;
    PyObject *header;           /* dict */
    PyObject *error;            /* None or str */
    int version;                /* format version of the file */
    int complete;
    int done;
    uint32_t frame_no;
    ZSTD_DCtx *dctx;
    uint8_t *raw;               /* one decompressed frame */
    size_t raw_cap;
    pylu_decoded_event *events; /* decoded events of the current frame */
    size_t nevents, events_cap;
    PyObject *metas;            /* list of metadata tuples of the current frame */
    size_t *meta_at;            /* events decoded before each meta */
    size_t meta_cap;
    size_t ev_i, meta_i;        /* tuple-iterator cursor in the current frame */
    thread_state *threads;
    size_t threads_cap;
    /* time conversion */
    double header_ns_per_tick;
    double ns_per_tick;
    int have_calib;
    uint64_t first_ticks, last_ticks;
    int64_t first_ns, last_ns;
} LogReader;

typedef struct {
    PyObject_HEAD
    LogReader *reader;
} ChunkIter;


/* ------------------------------------------------------------------ decoding helpers */

static inline int64_t
ticks_to_ns(LogReader *r, uint64_t ticks)
{
    return r->last_ns + (int64_t)((double)(int64_t)(ticks - r->last_ticks) * r->ns_per_tick);
}

static PyObject *
get_str(const uint8_t **pp, const uint8_t *end)
{
    uint64_t n;
    if (pylu_get_varint(pp, end, &n) < 0 || n > (uint64_t)(end - *pp)) {
        return NULL;
    }
    PyObject *s = PyUnicode_DecodeUTF8((const char *)*pp, (Py_ssize_t)n, "replace");
    *pp += n;
    return s;
}

static uint64_t
get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void
set_error(LogReader *r, const char *fmt, size_t at, const char *why)
{
    Py_XSETREF(r->error, PyUnicode_FromFormat(fmt, (unsigned long long)at, why));
    if (r->error == NULL) {
        PyErr_Clear();
        r->error = Py_NewRef(Py_None);
    }
    r->done = 1;
}

static thread_state *
thread_slot(LogReader *r, uint64_t t)
{
    if (t > 0xFFFFFF) {
        return NULL;
    }
    if (t >= r->threads_cap) {
        size_t cap = r->threads_cap ? r->threads_cap : 16;
        while (cap <= t) {
            cap *= 2;
        }
        thread_state *ts = PyMem_Realloc(r->threads, cap * sizeof *ts);
        if (ts == NULL) {
            return NULL;
        }
        memset(ts + r->threads_cap, 0, (cap - r->threads_cap) * sizeof *ts);
        for (size_t i = r->threads_cap; i < cap; i++) {
            ts[i].frame = UINT32_MAX;
            ts[i].last_ns = INT64_MIN;
        }
        r->threads = ts;
        r->threads_cap = cap;
    }
    thread_state *s = &r->threads[t];
    if (s->frame != r->frame_no) {
        s->frame = r->frame_no;
        s->dec = (pylu_dec_thread){0, 0, 0};
    }
    return s;
}

static int
add_meta(LogReader *r, PyObject *tuple)
{
    if (tuple == NULL) {
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(r->metas);
    if ((size_t)n >= r->meta_cap) {
        size_t cap = r->meta_cap ? r->meta_cap * 2 : 64;
        size_t *m = PyMem_Realloc(r->meta_at, cap * sizeof *m);
        if (m == NULL) {
            Py_DECREF(tuple);
            PyErr_NoMemory();
            return -1;
        }
        r->meta_at = m;
        r->meta_cap = cap;
    }
    r->meta_at[n] = r->nevents;
    int rc = PyList_Append(r->metas, tuple);
    Py_DECREF(tuple);
    return rc;
}

/* Parse one decompressed frame. Returns 0, -1 with a Python error, or -2 when the frame
 * content is malformed (the caller reports it as corrupt). */
static int
parse_frame(LogReader *r, const uint8_t *p, const uint8_t *end)
{
    thread_state *cur = NULL;
    uint64_t cur_thread = 0;
    while (p < end) {
        uint8_t tag = *p++;
        if (tag & PYLU_TAG_EVENT) {
            if (cur == NULL) {
                return -2;
            }
            uint32_t kind, line;
            if (pylu_decode_event(r->version, tag, &p, end, &cur->dec, &kind, &line) < 0) {
                return -2;
            }
            if (r->nevents == r->events_cap) {
                size_t cap = r->events_cap ? r->events_cap * 2 : 65536;
                pylu_decoded_event *e = PyMem_Realloc(r->events, cap * sizeof *e);
                if (e == NULL) {
                    PyErr_NoMemory();
                    return -1;
                }
                r->events = e;
                r->events_cap = cap;
            }
            pylu_decoded_event *e = &r->events[r->nevents++];
            /* A new calibration point can move the tick->ns line by a few ns: never let
             * that make a thread's time run backwards (durations stay >= 0). */
            int64_t ts = ticks_to_ns(r, cur->dec.ticks);
            if (ts < cur->last_ns) {
                ts = cur->last_ns;
            }
            cur->last_ns = ts;
            e->ts_ns = ts;
            e->code_id = cur->dec.code;
            e->line = line;
            e->thread = (uint32_t)cur_thread;
            e->kind = (uint16_t)kind;
            e->pad = 0;
            continue;
        }
        uint64_t a, b, c;
        PyObject *s1, *s2, *s3;
        switch (tag) {
        case PYLU_TAG_THREAD_SELECT:
            if (pylu_get_varint(&p, end, &a) < 0) {
                return -2;
            }
            cur = thread_slot(r, a);
            cur_thread = a;
            if (cur == NULL) {
                return -2;
            }
            break;
        case PYLU_TAG_CODE:
            if (pylu_get_varint(&p, end, &a) < 0 || pylu_get_varint(&p, end, &b) < 0 || a > UINT32_MAX) {
                return -2;
            }
            s1 = get_str(&p, end);
            s2 = s1 ? get_str(&p, end) : NULL;
            s3 = s2 ? get_str(&p, end) : NULL;
            if (s3 == NULL) {
                Py_XDECREF(s1);
                Py_XDECREF(s2);
                if (PyErr_Occurred()) {
                    return -1;
                }
                return -2;
            }
            if (add_meta(r, Py_BuildValue("(OkNNkN)", r->st->str_code, (unsigned long)a, s1, s2,
                                          (unsigned long)b, s3)) < 0) {
                return -1;
            }
            break;
        case PYLU_TAG_THREAD:
            if (pylu_get_varint(&p, end, &a) < 0 || pylu_get_varint(&p, end, &b) < 0) {
                return -2;
            }
            s1 = get_str(&p, end);
            if (s1 == NULL) {
                return PyErr_Occurred() ? -1 : -2;
            }
            if (add_meta(r, Py_BuildValue("(OKKN)", r->st->str_thread, (unsigned long long)a,
                                          (unsigned long long)b, s1)) < 0) {
                return -1;
            }
            break;
        case PYLU_TAG_TEXT:
            if (pylu_get_varint(&p, end, &a) < 0 || pylu_get_varint(&p, end, &b) < 0 ||
                pylu_get_varint(&p, end, &c) < 0) {
                return -2;
            }
            s1 = get_str(&p, end);
            if (s1 == NULL) {
                return PyErr_Occurred() ? -1 : -2;
            }
            if (add_meta(r, Py_BuildValue("(OKLKN)", r->st->str_text, (unsigned long long)a,
                                          (long long)ticks_to_ns(r, b),
                                          (unsigned long long)c, s1)) < 0) {
                return -1;
            }
            break;
        case PYLU_TAG_DROP:
            if (pylu_get_varint(&p, end, &a) < 0 || pylu_get_varint(&p, end, &b) < 0) {
                return -2;
            }
            if (add_meta(r, Py_BuildValue("(OKK)", r->st->str_drop, (unsigned long long)a,
                                          (unsigned long long)b)) < 0) {
                return -1;
            }
            break;
        case PYLU_TAG_CALIB:
            if (pylu_get_varint(&p, end, &a) < 0 || pylu_get_varint(&p, end, &b) < 0) {
                return -2;
            }
            if (!r->have_calib) {
                r->have_calib = 1;
                r->first_ticks = a;
                r->first_ns = (int64_t)b;
            }
            else if (a - r->first_ticks > 1000000 && (int64_t)b > r->first_ns) {
                /* the longest baseline gives the best rate */
                r->ns_per_tick = (double)((int64_t)b - r->first_ns) / (double)(a - r->first_ticks);
            }
            r->last_ticks = a;
            r->last_ns = (int64_t)b;
            break;
        case PYLU_TAG_END:
            r->complete = 1;
            r->done = 1;
            return 0;   /* nothing after END is ours */
        default:
            return -2;
        }
    }
    return 0;
}

/* Decode the next frame into events/metas. Returns 1 (a frame), 0 (no more), -1 (error). */
static int
next_frame(LogReader *r)
{
    r->nevents = 0;
    r->ev_i = r->meta_i = 0;
    if (PyList_SetSlice(r->metas, 0, PyList_GET_SIZE(r->metas), NULL) < 0) {
        return -1;
    }
    if (r->done) {
        return 0;
    }
    if (r->pos >= r->size) {
        r->done = 1;   /* ended without END: still being written, or the writer died */
        return 0;
    }
    const uint8_t *src = r->map + r->pos;
    size_t avail = r->size - r->pos;
    size_t csize = ZSTD_findFrameCompressedSize(src, avail);
    if (ZSTD_isError(csize)) {
        if (ZSTD_getErrorCode(csize) == ZSTD_error_srcSize_wrong) {
            set_error(r, "truncated at byte %llu: %s", r->pos, "incomplete zstd frame");
        }
        else {
            set_error(r, "corrupt frame at byte %llu: %s", r->pos, ZSTD_getErrorName(csize));
        }
        return 0;
    }
    ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {src, csize, 0};
    size_t out_len = 0;
    for (;;) {
        if (r->raw_cap - out_len < ZSTD_DStreamOutSize()) {
            size_t cap = r->raw_cap ? r->raw_cap * 2 : (1u << 20);
            if (cap > (size_t)4 * PYLU_FRAME_MAX_BYTES + ZSTD_DStreamOutSize() * 2) {
                set_error(r, "corrupt frame at byte %llu: %s", r->pos, "frame too large");
                return 0;
            }
            uint8_t *raw = PyMem_Realloc(r->raw, cap);
            if (raw == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            r->raw = raw;
            r->raw_cap = cap;
        }
        ZSTD_outBuffer out = {r->raw, r->raw_cap, out_len};
        size_t rc = ZSTD_decompressStream(r->dctx, &out, &in);
        out_len = out.pos;
        if (ZSTD_isError(rc)) {
            set_error(r, "corrupt frame at byte %llu: %s", r->pos, ZSTD_getErrorName(rc));
            return 0;
        }
        if (rc == 0) {
            break;   /* frame complete, checksum verified */
        }
        if (in.pos == in.size && out.pos < out.size) {
            set_error(r, "corrupt frame at byte %llu: %s", r->pos, "frame ends early");
            return 0;
        }
    }
    int rc = parse_frame(r, r->raw, r->raw + out_len);
    if (rc == -1) {
        return -1;
    }
    if (rc == -2) {
        r->nevents = 0;
        if (PyList_SetSlice(r->metas, 0, PyList_GET_SIZE(r->metas), NULL) < 0) {
            return -1;
        }
        set_error(r, "corrupt frame at byte %llu: %s", r->pos, "malformed record");
        return 0;
    }
    r->pos += csize;
    r->frame_no++;
    return 1;
}

/* ------------------------------------------------------------------ LogReader */

static int
parse_header(LogReader *r, const char *path)
{
    if (r->size == 0) {
        PyErr_Format(PyExc_ValueError, "%s: empty file, not a pyliveupdate log", path);
        return -1;
    }
    if (r->size < PYLU_LOG_MAGIC_LEN || memcmp(r->map, PYLU_LOG_MAGIC, PYLU_LOG_MAGIC_LEN) != 0) {
        PyErr_Format(PyExc_ValueError, "%s: not a pyliveupdate log (no .pylog magic)", path);
        return -1;
    }
    if (r->size < PYLU_HEADER_FIXED) {
        PyErr_Format(PyExc_ValueError, "%s: pyliveupdate log with a truncated header "
                     "(%zu bytes)", path, r->size);
        return -1;
    }
    unsigned version = (unsigned)get_le(r->map + PYLU_HDR_VERSION, 2);
    if (version < PYLU_LOG_VERSION_OLDEST || version > PYLU_LOG_VERSION) {
        PyErr_Format(PyExc_ValueError, "%s: pyliveupdate log format version %u; this reader "
                     "reads versions %d to %d", path, version, PYLU_LOG_VERSION_OLDEST,
                     PYLU_LOG_VERSION);
        return -1;
    }
    r->version = (int)version;
    size_t hsize = (size_t)get_le(r->map + PYLU_HDR_SIZE, 2);
    size_t argv_len = (size_t)get_le(r->map + PYLU_HDR_ARGV_LEN, 4);
    if (hsize != PYLU_HEADER_FIXED + argv_len || hsize > r->size) {
        PyErr_Format(PyExc_ValueError, "%s: pyliveupdate log with a damaged header", path);
        return -1;
    }
    uint64_t tps_bits = get_le(r->map + PYLU_HDR_TICKS_PER_SEC, 8);
    double tps;
    memcpy(&tps, &tps_bits, sizeof tps);
    if (!(tps > 1e3 && tps < 1e12)) {
        PyErr_Format(PyExc_ValueError, "%s: pyliveupdate log with a damaged header "
                     "(ticks per second)", path);
        return -1;
    }
    unsigned clock = (unsigned)get_le(r->map + PYLU_HDR_CLOCK, 4);
    PyObject *argv = PyList_New(0);
    if (argv == NULL) {
        return -1;
    }
    const char *a = (const char *)r->map + PYLU_HEADER_FIXED, *aend = a + argv_len;
    while (a < aend) {
        const char *z = memchr(a, '\0', (size_t)(aend - a));
        size_t n = z ? (size_t)(z - a) : (size_t)(aend - a);
        PyObject *s = PyUnicode_DecodeUTF8(a, (Py_ssize_t)n, "replace");
        if (s == NULL || PyList_Append(argv, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(argv);
            return -1;
        }
        Py_DECREF(s);
        a += n + 1;
    }
    r->header = Py_BuildValue(
        "{s:I,s:K,s:K,s:s,s:I,s:d,s:K,s:N}",
        "version", version,
        "pid", (unsigned long long)get_le(r->map + PYLU_HDR_PID, 4),
        "start_unix_ns", (unsigned long long)get_le(r->map + PYLU_HDR_START_UNIX_NS, 8),
        "clock", clock == 1 ? "tsc" : clock == 2 ? "monotonic" : "unknown",
        "clock_id", clock,
        "ticks_per_sec", tps,
        "start_ticks", (unsigned long long)get_le(r->map + PYLU_HDR_START_TICKS, 8),
        "argv", argv);
    if (r->header == NULL) {
        return -1;
    }
    r->header_size = hsize;
    r->pos = hsize;
    r->ns_per_tick = r->header_ns_per_tick = 1e9 / tps;
    r->last_ticks = get_le(r->map + PYLU_HDR_START_TICKS, 8);
    r->last_ns = 0;
    return 0;
}

static void
reader_release(LogReader *r)
{
    if (r->map != NULL && r->size > 0) {
        munmap(r->map, r->size);
    }
    r->map = NULL;
    r->size = 0;
    r->done = 1;
}

static PyObject *
reader_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"path", NULL};
    PyObject *path_bytes = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&:LogReader", kwlist,
                                     PyUnicode_FSConverter, &path_bytes)) {
        return NULL;
    }
    LogReader *r = (LogReader *)type->tp_alloc(type, 0);
    if (r == NULL) {
        Py_DECREF(path_bytes);
        return NULL;
    }
    r->st = PyType_GetModuleState(type);
    r->path = path_bytes;
    r->error = Py_NewRef(Py_None);
    r->metas = PyList_New(0);
    r->dctx = ZSTD_createDCtx();
    if (r->metas == NULL || r->dctx == NULL) {
        Py_DECREF(r);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    const char *path = PyBytes_AS_STRING(path_bytes);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path_bytes);
        Py_DECREF(r);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path_bytes);
        close(fd);
        Py_DECREF(r);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        PyErr_Format(PyExc_ValueError, "%s: not a regular file, not a pyliveupdate log", path);
        Py_DECREF(r);
        return NULL;
    }
    r->size = (size_t)st.st_size;
    if (r->size > 0) {
        void *m = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            r->size = 0;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path_bytes);
            close(fd);
            Py_DECREF(r);
            return NULL;
        }
        r->map = m;
        madvise(m, r->size, MADV_SEQUENTIAL);
    }
    close(fd);
    if (parse_header(r, path) < 0) {
        Py_DECREF(r);
        return NULL;
    }
    return (PyObject *)r;
}

static int
reader_traverse(LogReader *r, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(r));
    Py_VISIT(r->metas);
    Py_VISIT(r->header);
    return 0;
}

static void
reader_dealloc(LogReader *r)
{
    PyTypeObject *tp = Py_TYPE(r);
    PyObject_GC_UnTrack(r);
    reader_release(r);
    Py_CLEAR(r->path);
    Py_CLEAR(r->header);
    Py_CLEAR(r->error);
    Py_CLEAR(r->metas);
    ZSTD_freeDCtx(r->dctx);
    PyMem_Free(r->raw);
    PyMem_Free(r->events);
    PyMem_Free(r->meta_at);
    PyMem_Free(r->threads);
    tp->tp_free((PyObject *)r);
    Py_DECREF(tp);
}

static PyObject *
reader_iternext(LogReader *r)
{
    for (;;) {
        Py_ssize_t nmeta = PyList_GET_SIZE(r->metas);
        if (r->meta_i < (size_t)nmeta && r->meta_at[r->meta_i] <= r->ev_i) {
            return Py_NewRef(PyList_GET_ITEM(r->metas, (Py_ssize_t)r->meta_i++));
        }
        if (r->ev_i < r->nevents) {
            const pylu_decoded_event *e = &r->events[r->ev_i++];
            return Py_BuildValue("(OHILkk)", r->st->str_event, e->kind, e->thread,
                                 (long long)e->ts_ns, (unsigned long)e->code_id,
                                 (unsigned long)e->line);
        }
        int rc = next_frame(r);
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

static PyObject *get_header(LogReader *r, void *c) { PYLU_UNUSED(c); return Py_NewRef(r->header); }
static PyObject *get_error(LogReader *r, void *c) { PYLU_UNUSED(c); return Py_NewRef(r->error); }
static PyObject *get_complete(LogReader *r, void *c) { PYLU_UNUSED(c); return PyBool_FromLong(r->complete); }
static PyObject *get_path(LogReader *r, void *c) { PYLU_UNUSED(c); return PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(r->path), PyBytes_GET_SIZE(r->path)); }

static PyGetSetDef reader_getset[] = {
    {"header", (getter)get_header, NULL, "dict: version, pid, start_unix_ns, clock, ...", NULL},
    {"error", (getter)get_error, NULL, "None, or why reading stopped early", NULL},
    {"complete", (getter)get_complete, NULL, "True once the END record was read", NULL},
    {"path", (getter)get_path, NULL, "the log file", NULL},
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
    {Py_tp_doc, "LogReader(path): decode a pyliveupdate .pylog file.\n\n"
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
    LogReader *r = it->reader;
    /* Anything the tuple iterator left of the current frame is handed over first. */
    if (r->ev_i >= r->nevents && r->meta_i >= (size_t)PyList_GET_SIZE(r->metas)) {
        int rc = next_frame(r);
        if (rc <= 0) {
            return NULL;
        }
    }
    PyObject *events = PyBytes_FromStringAndSize((const char *)(r->events + r->ev_i),
                                                 (Py_ssize_t)((r->nevents - r->ev_i) *
                                                              sizeof(pylu_decoded_event)));
    PyObject *metas = PyList_GetSlice(r->metas, (Py_ssize_t)r->meta_i, PyList_GET_SIZE(r->metas));
    r->ev_i = r->nevents;
    r->meta_i = (size_t)PyList_GET_SIZE(r->metas);
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
    Py_CLEAR(st->str_code);
    Py_CLEAR(st->str_thread);
    Py_CLEAR(st->str_text);
    Py_CLEAR(st->str_drop);
    return 0;
}

PyMethodDef pylu_reader_methods[] = {
    {NULL, NULL, 0, NULL},
};

int
pylu_reader_exec(PyObject *module)
{
    reader_state *st = PyModule_GetState(module);
    st->str_event = PyUnicode_InternFromString("event");
    st->str_code = PyUnicode_InternFromString("code");
    st->str_thread = PyUnicode_InternFromString("thread");
    st->str_text = PyUnicode_InternFromString("text");
    st->str_drop = PyUnicode_InternFromString("drop");
    if (!st->str_event || !st->str_code || !st->str_thread || !st->str_text || !st->str_drop) {
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
