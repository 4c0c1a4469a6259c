/* codestate.c — per-code state in co_extra, compact code ids, the armed codes. */
#include "codestate.h"

#include <stdlib.h>
#include <string.h>

Py_ssize_t pylu_codestate_index = -1;
int pylu_counting = 0;
__thread pylu_deferred_entry pylu_deferred __attribute__((tls_model("initial-exec")));
PyObject *pylu_codestate_last_code = NULL;
pylu_codestate *pylu_codestate_last = NULL;

void
pylu_codestate_write_deferred(void)
{
    pylu_codestate *st = pylu_deferred.st;
    pylu_deferred.st = NULL;
    if (PYLU_UNLIKELY(pylu_counting)) {
        st->hits[pylu_deferred.kind]++;
    }
    /* A log started since (or a forked child's new log) gets the time of writing: its
     * records must not predate it.  Session ids compare without their top bit, which the
     * recorder may use as a state flag. */
    uint32_t now = atomic_load_explicit(&pylu_session, memory_order_relaxed);
    if (pylu_deferred.session != 0 && ((pylu_deferred.session ^ now) & 0x7fffffffu) == 0) {
        pylu_record_at(pylu_deferred.kind, st->id, 0, pylu_deferred.ticks);
    }
    else {
        pylu_record(pylu_deferred.kind, st->id, 0);
    }
}

void
pylu_codestate_emit_slow(pylu_codestate *st, pylu_event_kind kind, uint32_t line)
{
    if (pylu_deferred.st != NULL) {
        pylu_codestate_write_deferred();
    }
    if (PYLU_UNLIKELY(pylu_counting)) {
        st->hits[kind]++;
        if ((kind == PYLU_EV_LINE || kind == PYLU_EV_LINE_MARK) && st->line_hits != NULL) {
            long rel = (long)line - st->line_base;
            if (rel >= 0 && (unsigned long)rel < st->line_span) {
                st->line_hits[rel]++;
            }
        }
    }
    pylu_record(kind, st->id, line);
}

pylu_codestate *
pylu_codestate_peek_slow(PyObject *code)
{
    void *extra = NULL;
    if (PYLU_UNLIKELY(pylu_codestate_index < 0)) {
        return NULL;
    }
    if (PyUnstable_Code_GetExtra(code, pylu_codestate_index, &extra) < 0) {
        PyErr_Clear();
        return NULL;
    }
    if (extra != NULL) {
        pylu_codestate_last_code = code;
        pylu_codestate_last = (pylu_codestate *)extra;
    }
    return (pylu_codestate *)extra;
}

static uint32_t next_code_id = 1;   /* monotonic, never reused in a process */
static PyObject *armed = NULL;      /* {address: code} of armed codes (strong refs) */

static void
codestate_free(void *ptr)
{
    pylu_codestate *st = (pylu_codestate *)ptr;
    if (st == NULL) {
        return;
    }
    /* CPython frees co_extra from code_dealloc, with the GIL held. */
    if (pylu_codestate_last == st) {
        pylu_codestate_last_code = NULL;
        pylu_codestate_last = NULL;
    }
    Py_CLEAR(st->dispatch);
    Py_CLEAR(st->raw_code);
    free(st->line_bits);
    free(st->line_hits);
    free(st);
}

int
pylu_codestate_init(void)
{
    if (pylu_codestate_index >= 0) {
        return 0;
    }
    Py_ssize_t index = PyUnstable_Eval_RequestCodeExtraIndex(codestate_free);
    if (index < 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "pyliveupdate: no free co_extra index (too many tools use code extras)");
        return -1;
    }
    pylu_codestate_index = index;
    return 0;
}

static long
long_attr(PyObject *obj, const char *name)
{
    PyObject *v = PyObject_GetAttrString(obj, name);
    if (v == NULL) {
        return -1;
    }
    long r = PyLong_AsLong(v);
    Py_DECREF(v);
    return r;
}

pylu_codestate *
pylu_codestate_get(PyObject *code)
{
    if (!PyCode_Check(code)) {
        PyErr_Format(PyExc_TypeError, "expected a code object, got %.100s",
                     Py_TYPE(code)->tp_name);
        return NULL;
    }
    if (pylu_codestate_init() < 0) {
        return NULL;
    }
    pylu_codestate *st = pylu_codestate_peek(code);
    if (st != NULL) {
        return st;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    st->gen_start = -1;
    long co_flags = long_attr(code, "co_flags");
    if (co_flags < 0) {
        free(st);
        return NULL;
    }
    if (co_flags & (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR)) {
        st->flags |= PYLU_CS_GENERATOR;
    }
    if (PyUnstable_Code_SetExtra(code, pylu_codestate_index, st) < 0) {
        free(st);
        return NULL;
    }
    return st;
}

static char *
utf8_attr(PyObject *obj, const char *name, PyObject **keep)
{
    *keep = PyObject_GetAttrString(obj, name);
    if (*keep == NULL || !PyUnicode_Check(*keep)) {
        PyErr_Clear();
        return NULL;
    }
    const char *s = PyUnicode_AsUTF8(*keep);
    if (s == NULL) {
        PyErr_Clear();
    }
    return (char *)s;
}

int
pylu_codestate_assign_id(pylu_codestate *st, PyObject *code, const char *module,
                         const char *qualname)
{
    if (st->id != 0) {
        return 0;
    }
    PyObject *keep_q = NULL, *keep_f = NULL;
    const char *q = qualname;
    if (q == NULL) {
        q = utf8_attr(code, "co_qualname", &keep_q);
    }
    const char *f = utf8_attr(code, "co_filename", &keep_f);
    long firstlineno = long_attr(code, "co_firstlineno");
    if (firstlineno < 0) {
        PyErr_Clear();
        firstlineno = 0;
    }
    uint32_t id = next_code_id++;
    int rc = pylu_record_code(id, q ? q : "?", f ? f : "?",
                              (uint32_t)firstlineno,
                              module ? module : "");
    Py_XDECREF(keep_q);
    Py_XDECREF(keep_f);
    if (rc < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "pyliveupdate: could not describe a code id");
        }
        return -1;
    }
    st->id = id;
    return 0;
}

int
pylu_codestate_set_lines(pylu_codestate *st, PyObject *lines)
{
    long lo = 0, hi = -1;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    if (lines != NULL && lines != Py_None) {
        if (!PyDict_Check(lines)) {
            PyErr_SetString(PyExc_TypeError, "lines must be a dict {line: bits}");
            return -1;
        }
        while (PyDict_Next(lines, &pos, &key, &value)) {
            long line = PyLong_AsLong(key);
            if (line == -1 && PyErr_Occurred()) {
                return -1;
            }
            if (line < 0) {
                PyErr_Format(PyExc_ValueError, "invalid line number %ld", line);
                return -1;
            }
            if (hi < lo) {
                lo = hi = line;
            }
            else {
                lo = line < lo ? line : lo;
                hi = line > hi ? line : hi;
            }
        }
    }
    uint8_t *bits = NULL;
    uint64_t *hits = NULL;
    uint32_t span = hi >= lo ? (uint32_t)(hi - lo + 1) : 0;
    if (span > 0) {
        bits = calloc(span, 1);
        hits = calloc(span, sizeof(uint64_t));
        if (bits == NULL || hits == NULL) {
            free(bits);
            free(hits);
            PyErr_NoMemory();
            return -1;
        }
        pos = 0;
        while (PyDict_Next(lines, &pos, &key, &value)) {
            long b = PyLong_AsLong(value);
            if (b == -1 && PyErr_Occurred()) {
                free(bits);
                free(hits);
                return -1;
            }
            bits[PyLong_AsLong(key) - lo] = (uint8_t)b;
        }
    }
    free(st->line_bits);
    free(st->line_hits);
    st->line_bits = bits;
    st->line_hits = hits;
    st->line_base = (int32_t)lo;
    st->line_span = span;
    if (span > 0) {
        st->flags |= PYLU_CS_LINES;
    }
    else {
        st->flags &= ~(uint32_t)PYLU_CS_LINES;
    }
    return 0;
}

/* Keyed by address, not by the code: equal codes (same body compiled from two files)
 * are distinct codes with distinct states. */
static PyObject *
identity_key(PyObject *code)
{
    return PyLong_FromVoidPtr(code);
}

int
pylu_armed_add(PyObject *code, pylu_codestate *st)
{
    if (armed == NULL && (armed = PyDict_New()) == NULL) {
        return -1;
    }
    PyObject *key = identity_key(code);
    if (key == NULL || PyDict_SetItem(armed, key, code) < 0) {
        Py_XDECREF(key);
        return -1;
    }
    Py_DECREF(key);
    st->flags |= PYLU_CS_ARMED;
    return 0;
}

int
pylu_armed_remove(PyObject *code, pylu_codestate *st)
{
    st->flags &= ~(uint32_t)PYLU_CS_ARMED;
    if (armed == NULL) {
        return 0;
    }
    PyObject *key = identity_key(code);
    if (key == NULL) {
        return -1;
    }
    int rc = PyDict_DelItem(armed, key);
    Py_DECREF(key);
    if (rc < 0 && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
        rc = 0;
    }
    return rc;
}

PyObject *
pylu_armed_codes(void)
{
    if (armed == NULL) {
        return PyList_New(0);
    }
    return PyDict_Values(armed);
}

Py_ssize_t
pylu_armed_count(void)
{
    return armed == NULL ? 0 : PyDict_GET_SIZE(armed);
}
