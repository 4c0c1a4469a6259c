/* decoder.c — a log's frames into events and metadata; see decoder.h. */
#include "decoder.h"

#include <string.h>
#include <zstd_errors.h>

/* ------------------------------------------------------------------ helpers */

static inline int64_t
ticks_to_ns(const pylu_decoder *d, uint64_t ticks)
{
    return d->last_ns + (int64_t)((double)(int64_t)(ticks - d->last_ticks) * d->ns_per_tick);
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

/* Stop reading, saying why: "<what> at byte <offset>: <why>" (plus the file when the log
 * has several). */
static void
set_error(pylu_decoder *d, const char *what, const char *why)
{
    if (PyList_GET_SIZE(d->paths) > 1) {
        Py_XSETREF(d->error, PyUnicode_FromFormat("%s: %s at byte %llu: %s",
                                                  PyBytes_AS_STRING(d->file.path), what,
                                                  (unsigned long long)d->pos, why));
    }
    else {
        Py_XSETREF(d->error, PyUnicode_FromFormat("%s at byte %llu: %s", what,
                                                  (unsigned long long)d->pos, why));
    }
    if (d->error == NULL) {
        PyErr_Clear();
        d->error = Py_NewRef(Py_None);
    }
    d->done = 1;
}

static pylu_thread_state *
thread_slot(pylu_decoder *d, uint64_t t)
{
    if (t > 0xFFFFFF) {
        return NULL;
    }
    if (t >= d->threads_cap) {
        size_t cap = d->threads_cap ? d->threads_cap : 16;
        while (cap <= t) {
            cap *= 2;
        }
        pylu_thread_state *ts = PyMem_Realloc(d->threads, cap * sizeof *ts);
        if (ts == NULL) {
            return NULL;
        }
        for (size_t i = d->threads_cap; i < cap; i++) {
            ts[i] = (pylu_thread_state){.frame = UINT32_MAX, .last_ns = INT64_MIN};
        }
        d->threads = ts;
        d->threads_cap = cap;
    }
    pylu_thread_state *s = &d->threads[t];
    if (s->frame != d->frame_no) {
        s->frame = d->frame_no;
        s->dec = (pylu_dec_thread){0, 0, 0};
    }
    return s;
}

static int
add_meta(pylu_decoder *d, PyObject *tuple)
{
    if (tuple == NULL) {
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(d->metas);
    if ((size_t)n >= d->meta_cap) {
        size_t cap = d->meta_cap ? d->meta_cap * 2 : 64;
        size_t *m = PyMem_Realloc(d->meta_at, cap * sizeof *m);
        if (m == NULL) {
            Py_DECREF(tuple);
            PyErr_NoMemory();
            return -1;
        }
        d->meta_at = m;
        d->meta_cap = cap;
    }
    d->meta_at[n] = d->nevents;
    int rc = PyList_Append(d->metas, tuple);
    Py_DECREF(tuple);
    return rc;
}

/* ------------------------------------------------------------------ one frame */

static int
add_event(pylu_decoder *d, pylu_thread_state *cur, uint64_t thread, uint32_t kind, uint32_t line)
{
    if (d->nevents == d->events_cap) {
        size_t cap = d->events_cap ? d->events_cap * 2 : 65536;
        pylu_decoded_event *e = PyMem_Realloc(d->events, cap * sizeof *e);
        if (e == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        d->events = e;
        d->events_cap = cap;
    }
    pylu_decoded_event *e = &d->events[d->nevents++];
    /* A new calibration point can move the tick->ns line by a few ns: never let that
     * make a thread's time run backwards (durations stay >= 0). */
    int64_t ts = ticks_to_ns(d, cur->dec.ticks);
    if (ts < cur->last_ns) {
        ts = cur->last_ns;
    }
    cur->last_ns = ts;
    *e = (pylu_decoded_event){ts, cur->dec.code, line, (uint32_t)thread, (uint16_t)kind, 0};
    return 0;
}

static void
calibrate(pylu_decoder *d, uint64_t ticks, uint64_t ns)
{
    if (!d->have_calib) {
        d->have_calib = 1;
        d->first_ticks = ticks;
        d->first_ns = (int64_t)ns;
    }
    else if (ticks - d->first_ticks > 1000000 && (int64_t)ns > d->first_ns) {
        /* the longest baseline gives the best rate */
        d->ns_per_tick = (double)((int64_t)ns - d->first_ns) / (double)(ticks - d->first_ticks);
    }
    d->last_ticks = ticks;
    d->last_ns = (int64_t)ns;
}

/* A metadata record (tag not an event). 0, 1 when the file ends here (END or
 * SEGMENT_END), -1 with a Python error, -2 when malformed. */
static int
parse_meta(pylu_decoder *d, uint8_t tag, const uint8_t **pp, const uint8_t *end,
           pylu_thread_state **cur, uint64_t *cur_thread)
{
    const uint8_t *p = *pp;
    uint64_t a, b, c;
    PyObject *s1, *s2, *s3;
    int rc = 0;
    switch (tag) {
    case PYLU_TAG_THREAD_SELECT:
        if (pylu_get_varint(&p, end, &a) < 0 || (*cur = thread_slot(d, a)) == NULL) {
            return -2;
        }
        *cur_thread = a;
        break;
    case PYLU_TAG_CODE:
        if (pylu_get_varint(&p, end, &a) < 0 || pylu_get_varint(&p, end, &b) < 0 ||
            a > UINT32_MAX) {
            return -2;
        }
        s1 = get_str(&p, end);
        s2 = s1 ? get_str(&p, end) : NULL;
        s3 = s2 ? get_str(&p, end) : NULL;
        if (s3 == NULL) {
            Py_XDECREF(s1);
            Py_XDECREF(s2);
            return PyErr_Occurred() ? -1 : -2;
        }
        rc = add_meta(d, Py_BuildValue("(OkNNkN)", d->names->code, (unsigned long)a, s1, s2,
                                       (unsigned long)b, s3));
        break;
    case PYLU_TAG_THREAD:
        if (pylu_get_varint(&p, end, &a) < 0 || pylu_get_varint(&p, end, &b) < 0) {
            return -2;
        }
        if ((s1 = get_str(&p, end)) == NULL) {
            return PyErr_Occurred() ? -1 : -2;
        }
        rc = add_meta(d, Py_BuildValue("(OKKN)", d->names->thread, (unsigned long long)a,
                                       (unsigned long long)b, s1));
        break;
    case PYLU_TAG_TEXT:
        if (pylu_get_varint(&p, end, &a) < 0 || pylu_get_varint(&p, end, &b) < 0 ||
            pylu_get_varint(&p, end, &c) < 0) {
            return -2;
        }
        if ((s1 = get_str(&p, end)) == NULL) {
            return PyErr_Occurred() ? -1 : -2;
        }
        rc = add_meta(d, Py_BuildValue("(OKLKN)", d->names->text, (unsigned long long)a,
                                       (long long)ticks_to_ns(d, b), (unsigned long long)c, s1));
        break;
    case PYLU_TAG_DROP:
        if (pylu_get_varint(&p, end, &a) < 0 || pylu_get_varint(&p, end, &b) < 0) {
            return -2;
        }
        rc = add_meta(d, Py_BuildValue("(OKK)", d->names->drop, (unsigned long long)a,
                                       (unsigned long long)b));
        break;
    case PYLU_TAG_CALIB:
        if (pylu_get_varint(&p, end, &a) < 0 || pylu_get_varint(&p, end, &b) < 0) {
            return -2;
        }
        calibrate(d, a, b);
        break;
    case PYLU_TAG_END:
        d->complete = 1;
        return 1;   /* nothing after END is ours */
    case PYLU_TAG_SEGMENT_END:
        if (d->file.version < 2) {
            return -2;
        }
        d->continued = 1;
        return 1;
    default:
        return -2;
    }
    *pp = p;
    return rc;
}

/* Parse one decompressed frame. 0, 1 when the file ends with it, -1 with a Python error,
 * -2 when malformed (the caller reports the frame as corrupt). */
static int
parse_frame(pylu_decoder *d, const uint8_t *p, const uint8_t *end)
{
    pylu_thread_state *cur = NULL;
    uint64_t cur_thread = 0;
    while (p < end) {
        uint8_t tag = *p++;
        if (pylu_is_event_tag(d->file.version, tag)) {
            uint32_t kind, line;
            if (cur == NULL ||
                pylu_decode_event(d->file.version, tag, &p, end, &cur->dec, &kind, &line) < 0) {
                return -2;
            }
            if (add_event(d, cur, cur_thread, kind, line) < 0) {
                return -1;
            }
            continue;
        }
        int rc = parse_meta(d, tag, &p, end, &cur, &cur_thread);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Decompress the frame at d->pos into d->raw. Its compressed size, or 0 when the file
 * ends or is damaged there (error set), or -1 with a Python error. */
static Py_ssize_t
decompress_frame(pylu_decoder *d, size_t *out_len)
{
    const uint8_t *src = d->file.map + d->pos;
    size_t csize = ZSTD_findFrameCompressedSize(src, d->file.size - d->pos);
    if (ZSTD_isError(csize)) {
        if (ZSTD_getErrorCode(csize) == ZSTD_error_srcSize_wrong) {
            set_error(d, "truncated", "incomplete zstd frame");
        }
        else {
            set_error(d, "corrupt frame", ZSTD_getErrorName(csize));
        }
        return 0;
    }
    ZSTD_DCtx_reset(d->dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {src, csize, 0};
    *out_len = 0;
    for (;;) {
        if (d->raw_cap - *out_len < ZSTD_DStreamOutSize()) {
            size_t cap = d->raw_cap ? d->raw_cap * 2 : (1u << 20);
            if (cap > (size_t)4 * PYLU_FRAME_MAX_BYTES + ZSTD_DStreamOutSize() * 2) {
                set_error(d, "corrupt frame", "frame too large");
                return 0;
            }
            uint8_t *raw = PyMem_Realloc(d->raw, cap);
            if (raw == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            d->raw = raw;
            d->raw_cap = cap;
        }
        ZSTD_outBuffer out = {d->raw, d->raw_cap, *out_len};
        size_t rc = ZSTD_decompressStream(d->dctx, &out, &in);
        *out_len = out.pos;
        if (ZSTD_isError(rc)) {
            set_error(d, "corrupt frame", ZSTD_getErrorName(rc));
            return 0;
        }
        if (rc == 0) {
            return (Py_ssize_t)csize;   /* frame complete, checksum verified */
        }
        if (in.pos == in.size && out.pos < out.size) {
            set_error(d, "corrupt frame", "frame ends early");
            return 0;
        }
    }
}

/* ------------------------------------------------------------------ files */

/* Open the next of the log's files (0), or 0 with done set when none is left or it does
 * not belong (error says so), or -1 with a Python error. */
static int
open_next_file(pylu_decoder *d)
{
    pylu_logfile_close(&d->file);
    if (d->next_path >= PyList_GET_SIZE(d->paths)) {
        d->done = 1;
        return 0;
    }
    PyObject *path = PyList_GET_ITEM(d->paths, d->next_path++);
    if (pylu_logfile_open(&d->file, path) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError) && !PyErr_ExceptionMatches(PyExc_OSError)) {
            return -1;
        }
        PyObject *exc = PyErr_GetRaisedException();
        Py_XSETREF(d->error, PyUnicode_FromFormat("next segment unreadable: %S", exc));
        Py_DECREF(exc);
        d->done = 1;
        return d->error ? 0 : -1;
    }
    if (!pylu_logfile_same_log(&d->first, &d->file)) {
        Py_XSETREF(d->error, PyUnicode_FromFormat("%s: not a segment of the same log",
                                                  PyBytes_AS_STRING(path)));
        d->done = 1;
        return d->error ? 0 : -1;
    }
    d->pos = d->file.header_size;
    d->continued = 0;
    PyObject *item = Py_BuildValue("(IN)", (unsigned)d->file.segment,
                                   PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(path)));
    int rc = item ? PyList_Append(d->segments, item) : -1;
    Py_XDECREF(item);
    return rc;
}

int
pylu_decoder_open(pylu_decoder *d, PyObject *paths, const pylu_meta_names *names)
{
    memset(d, 0, sizeof *d);
    d->names = names;
    d->paths = PyList_GetSlice(paths, 0, PyList_GET_SIZE(paths));
    d->error = Py_NewRef(Py_None);
    d->metas = PyList_New(0);
    d->segments = PyList_New(0);
    d->dctx = ZSTD_createDCtx();
    if (d->paths == NULL || d->metas == NULL || d->segments == NULL || d->dctx == NULL) {
        return PyErr_Occurred() ? -1 : (PyErr_NoMemory(), -1);
    }
    if (PyList_GET_SIZE(d->paths) == 0) {
        PyErr_SetString(PyExc_ValueError, "no log file given");
        return -1;
    }
    if (pylu_logfile_open(&d->first, PyList_GET_ITEM(d->paths, 0)) < 0) {
        return -1;
    }
    d->header = pylu_logfile_header(&d->first);
    if (d->header == NULL || open_next_file(d) < 0 || d->done) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_ValueError, "%S", d->error);
        }
        return -1;
    }
    d->ns_per_tick = 1e9 / d->first.ticks_per_sec;
    d->last_ticks = d->first.start_ticks;
    d->last_ns = 0;
    return 0;
}

int
pylu_decoder_next_frame(pylu_decoder *d)
{
    d->nevents = 0;
    d->ev_i = d->meta_i = 0;
    if (PyList_SetSlice(d->metas, 0, PyList_GET_SIZE(d->metas), NULL) < 0) {
        return -1;
    }
    while (!d->done && (d->pos >= d->file.size || d->continued)) {
        /* This file is over: still being written or cut (no END), or continued. */
        if (d->next_path >= PyList_GET_SIZE(d->paths)) {
            d->done = 1;
        }
        else if (open_next_file(d) < 0) {
            return -1;
        }
    }
    if (d->done) {
        return 0;
    }
    size_t raw_len;
    Py_ssize_t csize = decompress_frame(d, &raw_len);
    if (csize <= 0) {
        return (int)csize;
    }
    int rc = parse_frame(d, d->raw, d->raw + raw_len);
    if (rc == -1) {
        return -1;
    }
    if (rc == -2) {
        d->nevents = 0;
        if (PyList_SetSlice(d->metas, 0, PyList_GET_SIZE(d->metas), NULL) < 0) {
            return -1;
        }
        set_error(d, "corrupt frame", "malformed record");
        return 0;
    }
    if (d->complete) {
        d->done = 1;
        if (d->next_path < PyList_GET_SIZE(d->paths)) {
            /* Files given after the log's end are not part of it: say so, read none. */
            Py_XSETREF(d->error, PyUnicode_FromFormat(
                "%s: not a segment of the same log (it ended before)",
                PyBytes_AS_STRING(PyList_GET_ITEM(d->paths, d->next_path))));
            if (d->error == NULL) {
                return -1;
            }
        }
    }
    d->pos += (size_t)csize;
    d->frame_no++;
    return 1;
}

void
pylu_decoder_release(pylu_decoder *d)
{
    pylu_logfile_close(&d->file);
    d->done = 1;
}

void
pylu_decoder_free(pylu_decoder *d)
{
    pylu_logfile_close(&d->file);
    pylu_logfile_close(&d->first);
    Py_CLEAR(d->paths);
    Py_CLEAR(d->header);
    Py_CLEAR(d->segments);
    Py_CLEAR(d->error);
    Py_CLEAR(d->metas);
    ZSTD_freeDCtx(d->dctx);
    d->dctx = NULL;
    PyMem_Free(d->raw);
    PyMem_Free(d->events);
    PyMem_Free(d->meta_at);
    PyMem_Free(d->threads);
    d->raw = NULL;
    d->events = NULL;
    d->meta_at = NULL;
    d->threads = NULL;
}

int
pylu_decoder_traverse(pylu_decoder *d, visitproc visit, void *arg)
{
    Py_VISIT(d->metas);
    Py_VISIT(d->header);
    Py_VISIT(d->segments);
    return 0;
}
