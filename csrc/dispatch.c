/* dispatch.c — the handler dispatcher and per-update handler stats; see dispatch.h.
 *
 * In C because the same logic in Python cost ~1.5 µs of interpreter work per event
 * (measured on the 2-core bench VM) before any handler ran; a rate-limited debugger
 * paid that on every call of its target even while its output was being dropped.
 */
#include "dispatch.h"

#include "clock.h"
#include "monitor.h"

#define MAX_CONSECUTIVE_FAILURES 10

/* ------------------------------------------------------------------ HandlerStats */

typedef struct {
    PyObject_HEAD
    PyObject *update_id;
    unsigned long long calls;
    unsigned long long errors;
    unsigned long long consecutive;
    unsigned long long skipped;     /* calls skipped while the output gate was closed */
    long long time_ns;              /* time spent in the handlers */
    long long budget_ns;            /* < 0: no budget */
    long long gate_until_ns;        /* CLOCK_MONOTONIC; handlers skipped until then */
    char disabled;
    PyObject *last_error;
    PyObject *disabled_reason;
} handler_stats;

/* Heap types made at exec. Process-wide pointers: the callbacks (monitor.c) recognise a
 * Dispatcher with no module at hand, and _engine supports one interpreter only (module.c). */
static PyTypeObject *handler_stats_type;
static PyTypeObject *dispatcher_type;

static int
stats_init(handler_stats *self, PyObject *args, PyObject *kwargs)
{
    PyObject *update_id;
    static char *kwlist[] = {"update_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:HandlerStats", kwlist, &update_id)) {
        return -1;
    }
    Py_XSETREF(self->update_id, Py_NewRef(update_id));
    Py_XSETREF(self->last_error, Py_NewRef(Py_None));
    Py_XSETREF(self->disabled_reason, Py_NewRef(Py_None));
    self->budget_ns = -1;
    return 0;
}

static int
stats_traverse(handler_stats *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->update_id);
    Py_VISIT(self->last_error);
    Py_VISIT(self->disabled_reason);
    return 0;
}

static int
stats_clear(handler_stats *self)
{
    Py_CLEAR(self->update_id);
    Py_CLEAR(self->last_error);
    Py_CLEAR(self->disabled_reason);
    return 0;
}

static void
stats_dealloc(handler_stats *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    stats_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
stats_get_budget(handler_stats *self, void *closure)
{
    PYLU_UNUSED(closure);
    return self->budget_ns < 0 ? Py_NewRef(Py_None) : PyLong_FromLongLong(self->budget_ns);
}

static int
stats_set_budget(handler_stats *self, PyObject *value, void *closure)
{
    PYLU_UNUSED(closure);
    if (value == NULL || value == Py_None) {
        self->budget_ns = -1;
        return 0;
    }
    long long ns = PyLong_AsLongLong(value);
    if (ns == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (ns < 0) {
        PyErr_SetString(PyExc_ValueError, "budget_ns must be >= 0 or None");
        return -1;
    }
    self->budget_ns = ns;
    return 0;
}

static PyMemberDef stats_members[] = {
    {"update_id", Py_T_OBJECT_EX, offsetof(handler_stats, update_id), Py_READONLY, NULL},
    {"calls", Py_T_ULONGLONG, offsetof(handler_stats, calls), 0, "handler calls made"},
    {"errors", Py_T_ULONGLONG, offsetof(handler_stats, errors), 0, "calls that raised"},
    {"consecutive", Py_T_ULONGLONG, offsetof(handler_stats, consecutive), 0,
     "failures since the last success"},
    {"skipped", Py_T_ULONGLONG, offsetof(handler_stats, skipped), 0,
     "calls skipped while the output gate was closed"},
    {"time_ns", Py_T_LONGLONG, offsetof(handler_stats, time_ns), 0, "time in handlers"},
    {"gate_until_ns", Py_T_LONGLONG, offsetof(handler_stats, gate_until_ns), 0,
     "time.monotonic_ns() before which the handlers are skipped (0: open)"},
    {"disabled", Py_T_BOOL, offsetof(handler_stats, disabled), 0, "switched off"},
    {"last_error", Py_T_OBJECT_EX, offsetof(handler_stats, last_error), 0, NULL},
    {"disabled_reason", Py_T_OBJECT_EX, offsetof(handler_stats, disabled_reason), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef stats_getset[] = {
    {"budget_ns", (getter)stats_get_budget, (setter)stats_set_budget,
     "time budget in ns (None: none)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot stats_slots[] = {
    {Py_tp_doc, "Handler bookkeeping of one update, shared by all its codes. Subclasses "
                "define switch_off(reason) and _failed(exception), called on the rare paths."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, stats_init},
    {Py_tp_traverse, stats_traverse},
    {Py_tp_clear, stats_clear},
    {Py_tp_dealloc, stats_dealloc},
    {Py_tp_members, stats_members},
    {Py_tp_getset, stats_getset},
    {0, NULL},
};

static PyType_Spec stats_spec = {
    .name = "pyliveupdate._engine.HandlerStats",
    .basicsize = sizeof(handler_stats),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = stats_slots,
};

/* ------------------------------------------------------------------ running one handler */

static double ns_per_tick;

static void
call_method_quietly(PyObject *self, const char *name, PyObject *arg)
{
    PyObject *res = PyObject_CallMethod(self, name, "O", arg);
    if (res == NULL) {
        PyErr_Clear();    /* reporting must not disturb the program either */
    }
    Py_XDECREF(res);
}

/* Report through the subclass's switch_off(reason) (takes the reference to `why`). */
static void
switch_off(handler_stats *st, PyObject *why)
{
    if (why != NULL) {
        call_method_quietly((PyObject *)st, "switch_off", why);
        Py_DECREF(why);
    }
    else {
        PyErr_Clear();
    }
    st->disabled = 1;
}

static void
handler_failed(handler_stats *st)
{
    PyObject *exc = PyErr_GetRaisedException();
    if (PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt)) {
        /* The user's Ctrl-C belongs to the program, not to the handler. */
        PyErr_SetInterrupt();
        st->consecutive = 0;
    }
    else {
        st->errors++;
        st->consecutive++;
        call_method_quietly((PyObject *)st, "_failed", exc);
        if (st->consecutive >= MAX_CONSECUTIVE_FAILURES && !st->disabled) {
            PyObject *why = PyUnicode_FromFormat("%llu consecutive failures; last: %S",
                                                 st->consecutive, st->last_error);
            switch_off(st, why);
        }
    }
    Py_XDECREF(exc);
}

/* The running frame, materialised only when a handler will see it. */
static inline PyObject *
current_frame(void)
{
    PyObject *frame = (PyObject *)PyEval_GetFrame();
    return frame ? frame : Py_None;
}

/* Run fn(*args) for one update; never raises. args[0] is the frame, or NULL until a
 * handler actually runs (a skipped or switched-off update never makes the frame). */
static void
run_handler(handler_stats *st, PyObject *fn, PyObject **args, size_t nargs)
{
    if (st->disabled) {
        return;
    }
    if (st->gate_until_ns != 0) {
        if ((long long)pylu_clock_mono_ns() < st->gate_until_ns) {
            st->skipped++;
            return;
        }
        st->gate_until_ns = 0;
    }
    if (args[0] == NULL) {
        args[0] = current_frame();
    }
    st->calls++;
    Py_INCREF(st);   /* the handler may revert its own update */
    Py_INCREF(fn);
    uint64_t t0 = pylu_clock_ticks();
    PyObject *res = PyObject_Vectorcall(fn, (PyObject *const *)args, nargs, NULL);
    uint64_t t1 = pylu_clock_ticks();
    if (res != NULL) {
        Py_DECREF(res);
        st->consecutive = 0;
    }
    else {
        handler_failed(st);
    }
    st->time_ns += (long long)((double)(t1 - t0) * ns_per_tick);
    if (st->budget_ns >= 0 && st->time_ns > st->budget_ns && !st->disabled) {
        char why[80];
        snprintf(why, sizeof why, "time budget of %.3f s exceeded", (double)st->budget_ns / 1e9);
        switch_off(st, PyUnicode_FromString(why));
    }
    Py_DECREF(fn);
    Py_DECREF(st);
}

/* Run every (stats, fn) pair of `pairs` (a tuple built by dispatcher_new). */
static void
run_all(PyObject *pairs, PyObject **args, size_t nargs)
{
    Py_INCREF(pairs);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(pairs); i++) {
        PyObject *pair = PyTuple_GET_ITEM(pairs, i);
        run_handler((handler_stats *)PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1),
                    args, nargs);
    }
    Py_DECREF(pairs);
}

/* ------------------------------------------------------------------ Dispatcher */

typedef struct {
    PyObject_HEAD
    PyObject *begin;     /* tuple of (stats, fn) */
    PyObject *end;       /* tuple of (stats, fn) */
    PyObject *before;    /* dict line -> tuple of (stats, fn) */
    PyObject *after;     /* dict line -> tuple of (stats, fn) */
    PyObject *pending;   /* dict frame -> line whose "after" handlers are due */
    vectorcallfunc vectorcall;
} dispatcher;

int
pylu_is_dispatcher(PyObject *obj)
{
    return Py_IS_TYPE(obj, dispatcher_type);
}

/* A sequence of (HandlerStats, callable) pairs -> a tuple of checked pairs. */
static PyObject *
checked_pairs(PyObject *seq, const char *what)
{
    PyObject *t = PySequence_Tuple(seq);
    if (t == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t); i++) {
        PyObject *pair = PyTuple_GET_ITEM(t, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyObject_TypeCheck(PyTuple_GET_ITEM(pair, 0), handler_stats_type) ||
            !PyCallable_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_Format(PyExc_TypeError, "%s: items must be (HandlerStats, callable) tuples",
                         what);
            Py_DECREF(t);
            return NULL;
        }
    }
    return t;
}

static PyObject *
checked_line_map(PyObject *map, const char *what)
{
    if (!PyDict_Check(map)) {
        PyErr_Format(PyExc_TypeError, "%s must be a dict {line: [(stats, fn)]}", what);
        return NULL;
    }
    PyObject *out = PyDict_New();
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (out != NULL && PyDict_Next(map, &pos, &key, &value)) {
        PyObject *pairs = checked_pairs(value, what);
        if (pairs == NULL || PyDict_SetItem(out, key, pairs) < 0) {
            Py_CLEAR(out);
        }
        Py_XDECREF(pairs);
    }
    return out;
}

static PyObject *dispatcher_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                       PyObject *kwnames);

static PyObject *
dispatcher_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *begin, *end, *before, *after;
    static char *kwlist[] = {"begin", "end", "before", "after", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO:Dispatcher", kwlist, &begin, &end,
                                     &before, &after)) {
        return NULL;
    }
    dispatcher *self = (dispatcher *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = dispatcher_vectorcall;
    self->begin = checked_pairs(begin, "begin");
    self->end = self->begin ? checked_pairs(end, "end") : NULL;
    self->before = self->end ? checked_line_map(before, "before") : NULL;
    self->after = self->before ? checked_line_map(after, "after") : NULL;
    self->pending = self->after ? PyDict_New() : NULL;
    if (self->pending == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
dispatcher_traverse(dispatcher *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->begin);
    Py_VISIT(self->end);
    Py_VISIT(self->before);
    Py_VISIT(self->after);
    Py_VISIT(self->pending);
    return 0;
}

static int
dispatcher_clear(dispatcher *self)
{
    Py_CLEAR(self->begin);
    Py_CLEAR(self->end);
    Py_CLEAR(self->before);
    Py_CLEAR(self->after);
    Py_CLEAR(self->pending);
    return 0;
}

static void
dispatcher_dealloc(dispatcher *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    dispatcher_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* The frame's pending "after" line, if any, runs now. */
static int
close_pending(dispatcher *d, PyObject *frame)
{
    PyObject *line = PyDict_GetItemWithError(d->pending, frame);
    if (line == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(line);
    if (PyDict_DelItem(d->pending, frame) < 0) {
        Py_DECREF(line);
        return -1;
    }
    PyObject *pairs = PyDict_GetItemWithError(d->after, line);   /* borrowed */
    if (pairs != NULL) {
        PyObject *args[2] = {frame, line};
        run_all(pairs, args, 2);
    }
    Py_DECREF(line);
    return PyErr_Occurred() ? -1 : 0;
}

int
pylu_dispatcher_run(PyObject *self, int kind, PyObject *frame, PyObject *line, PyObject *arg)
{
    dispatcher *d = (dispatcher *)self;
    int rc = 0;
    if (kind == PYLU_DISPATCH_LINE && line == NULL) {
        PyErr_SetString(PyExc_TypeError, "a line event needs its line number");
        return -1;
    }
    Py_INCREF(d);   /* a handler may disarm the code and drop its dispatcher */
    /* "after" bookkeeping is keyed by frame: make it now when there is any. */
    if (frame == NULL && (PyDict_GET_SIZE(d->pending) ||
                          (kind == PYLU_DISPATCH_LINE && PyDict_GET_SIZE(d->after)))) {
        frame = current_frame();
    }
    switch (kind) {
    case PYLU_DISPATCH_LINE: {
        if (PyDict_GET_SIZE(d->pending) && close_pending(d, frame) < 0) {
            rc = -1;
            break;
        }
        PyObject *pairs = PyDict_GetItemWithError(d->before, line);
        if (pairs != NULL) {
            PyObject *args[2] = {frame, line};
            run_all(pairs, args, 2);
        }
        else if (PyErr_Occurred()) {
            rc = -1;
            break;
        }
        int has_after = PyDict_Contains(d->after, line);
        if (has_after < 0 || (has_after && PyDict_SetItem(d->pending, frame, line) < 0)) {
            rc = -1;
        }
        break;
    }
    case PYLU_DISPATCH_START: {
        PyObject *args[1] = {frame};
        run_all(d->begin, args, 1);
        break;
    }
    case PYLU_DISPATCH_RETURN:
    case PYLU_DISPATCH_UNWIND: {
        if (PyDict_GET_SIZE(d->pending) && close_pending(d, frame) < 0) {
            rc = -1;
            break;
        }
        if (PyTuple_GET_SIZE(d->end)) {
            PyObject *value = arg ? arg : Py_None;
            PyObject *args[3] = {frame, kind == PYLU_DISPATCH_RETURN ? value : Py_None,
                                 kind == PYLU_DISPATCH_RETURN ? Py_None : value};
            run_all(d->end, args, 3);
        }
        break;
    }
    case PYLU_DISPATCH_YIELD:
        /* The slice ends at a yield: the line's "after" runs now. */
        if (PyDict_GET_SIZE(d->pending) && close_pending(d, frame) < 0) {
            rc = -1;
        }
        break;
    default:
        break;
    }
    Py_DECREF(d);
    return rc;
}

/* Called from Python as dispatcher(kind, frame, line, arg), as the C callbacks do. */
static PyObject *
dispatcher_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                      PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 4 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Dispatcher takes (kind, frame, line, arg)");
        return NULL;
    }
    long kind = PyLong_AsLong(args[0]);
    if (kind == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (pylu_dispatcher_run(self, (int)kind, args[1], args[2] == Py_None ? NULL : args[2],
                            args[3] == Py_None ? NULL : args[3]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
dispatcher_get_pending(dispatcher *self, void *closure)
{
    PYLU_UNUSED(closure);
    return PyDict_Copy(self->pending);
}

static PyGetSetDef dispatcher_getset[] = {
    {"pending", (getter)dispatcher_get_pending, NULL,
     "a copy of {frame: line whose 'after' handlers are due}", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef dispatcher_members[] = {
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(dispatcher, vectorcall), Py_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot dispatcher_slots[] = {
    {Py_tp_doc, "Dispatcher(begin, end, before, after): one code's handlers, called as "
                "(kind, frame, line, arg)."},
    {Py_tp_new, dispatcher_new},
    {Py_tp_traverse, dispatcher_traverse},
    {Py_tp_clear, dispatcher_clear},
    {Py_tp_dealloc, dispatcher_dealloc},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, dispatcher_members},
    {Py_tp_getset, dispatcher_getset},
    {0, NULL},
};

static PyType_Spec dispatcher_spec = {
    .name = "pyliveupdate._engine.Dispatcher",
    .basicsize = sizeof(dispatcher),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = dispatcher_slots,
};

/* ------------------------------------------------------------------ reading arguments */

/* frame_vars(frame, names) -> {name: value} of the names bound in the frame, read one by
 * one (PyFrame_GetVar) instead of building frame.f_locals, which on 3.12 copies every
 * local into a dict on each access. */
static PyObject *
frame_vars(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PYLU_UNUSED(module);
    if (nargs != 2 || !PyFrame_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "frame_vars(frame, names: tuple)");
        return NULL;
    }
    PyObject *out = PyDict_New();
    for (Py_ssize_t i = 0; out != NULL && i < PyTuple_GET_SIZE(args[1]); i++) {
        PyObject *name = PyTuple_GET_ITEM(args[1], i);
        if (!PyUnicode_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "names must be strings");
            Py_CLEAR(out);
            break;
        }
        PyObject *value = PyFrame_GetVar((PyFrameObject *)args[0], name);
        if (value == NULL) {
            if (PyErr_ExceptionMatches(PyExc_NameError)) {
                PyErr_Clear();     /* not bound (yet, or any more): left out */
                continue;
            }
            Py_CLEAR(out);
            break;
        }
        if (PyDict_SetItem(out, name, value) < 0) {
            Py_CLEAR(out);
        }
        Py_DECREF(value);
    }
    return out;
}

PyMethodDef pylu_dispatch_methods[] = {
    {"frame_vars", (PyCFunction)(void (*)(void))frame_vars, METH_FASTCALL,
     "frame_vars(frame, names) -> {name: value} of those bound in the frame."},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ part wiring */

int
pylu_dispatch_exec(PyObject *module)
{
    pylu_clock_init();
    ns_per_tick = 1e9 / pylu_clock_ticks_per_sec();
    PyObject *stats_tp = PyType_FromModuleAndSpec(module, &stats_spec, NULL);
    PyObject *dispatcher_tp = stats_tp ? PyType_FromModuleAndSpec(module, &dispatcher_spec, NULL)
                                       : NULL;
    if (dispatcher_tp == NULL) {
        Py_XDECREF(stats_tp);
        return -1;
    }
    Py_XSETREF(handler_stats_type, (PyTypeObject *)stats_tp);
    Py_XSETREF(dispatcher_type, (PyTypeObject *)dispatcher_tp);
    if (PyModule_AddType(module, handler_stats_type) < 0 ||
        PyModule_AddType(module, dispatcher_type) < 0 ||
        PyModule_AddIntConstant(module, "MAX_CONSECUTIVE_FAILURES",
                                MAX_CONSECUTIVE_FAILURES) < 0) {
        return -1;
    }
    return 0;
}
