/* engine_py.c — the Python-facing functions of the engine (pyliveupdate/engine.py is
 * their only caller).  Importing does nothing but add constants: the tool id, callbacks,
 * hook and watcher are taken on first use. */
#include "engine_py.h"

#include "arm.h"
#include "codestate.h"
#include "discover.h"
#include "evalframe.h"
#include "monitor.h"

static const char *
optional_utf8(PyObject *obj, const char *what)
{
    if (obj == NULL || obj == Py_None) {
        return NULL;
    }
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str or None", what);
        return NULL;
    }
    return PyUnicode_AsUTF8(obj);
}

/* code_arm(code, flags, lines, dispatch, module, qualname, gen_start) -> code id */
static PyObject *
code_arm(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PYLU_UNUSED(self);
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "code_arm(code, flags, lines, dispatch, module, qualname, gen_start)");
        return NULL;
    }
    PyObject *code = args[0], *lines = args[2], *dispatch = args[3];
    if (!PyCode_Check(code)) {
        return PyErr_Format(PyExc_TypeError, "expected a code object, got %.100s",
                            Py_TYPE(code)->tp_name);
    }
    unsigned long flags = PyLong_AsUnsignedLong(args[1]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (flags & ~(unsigned long)PYLU_ARM_SETTABLE_FLAGS) {
        return PyErr_Format(PyExc_ValueError, "invalid code flags 0x%lx", flags);
    }
    if (dispatch != Py_None && !PyCallable_Check(dispatch)) {
        PyErr_SetString(PyExc_TypeError, "dispatch must be callable or None");
        return NULL;
    }
    if (lines != Py_None && !PyDict_Check(lines)) {
        PyErr_SetString(PyExc_TypeError, "lines must be a dict {line: bits} or None");
        return NULL;
    }
    long gen_start = PyLong_AsLong(args[6]);
    if (gen_start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const char *module = optional_utf8(args[4], "module");
    const char *qualname = module || !PyErr_Occurred() ? optional_utf8(args[5], "qualname") : NULL;
    if (PyErr_Occurred()) {
        return NULL;
    }
    pylu_codestate *st = pylu_arm(code, (uint32_t)flags, lines, dispatch, module, qualname,
                                  (int32_t)gen_start);
    if (st == NULL) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(st->id);
}

static PyObject *
code_disarm(PyObject *self, PyObject *code)
{
    PYLU_UNUSED(self);
    if (!PyCode_Check(code)) {
        return PyErr_Format(PyExc_TypeError, "expected a code object, got %.100s",
                            Py_TYPE(code)->tp_name);
    }
    if (pylu_disarm(code) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
code_state(PyObject *self, PyObject *code)
{
    PYLU_UNUSED(self);
    if (!PyCode_Check(code)) {
        return PyErr_Format(PyExc_TypeError, "expected a code object, got %.100s",
                            Py_TYPE(code)->tp_name);
    }
    pylu_codestate *st = pylu_codestate_peek(code);
    if (st == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *hits = PyDict_New(), *line_hits = PyDict_New(), *res = NULL;
    if (hits == NULL || line_hits == NULL) {
        goto error;
    }
    for (int k = 1; k < PYLU_EV_SLOTS; k++) {
        PyObject *key = PyLong_FromLong(k), *val = PyLong_FromUnsignedLongLong(st->hits[k]);
        int rc = (key && val) ? PyDict_SetItem(hits, key, val) : -1;
        Py_XDECREF(key);
        Py_XDECREF(val);
        if (rc < 0) {
            goto error;
        }
    }
    for (uint32_t i = 0; st->line_hits != NULL && i < st->line_span; i++) {
        if (st->line_hits[i] == 0) {
            continue;
        }
        PyObject *key = PyLong_FromLong(st->line_base + (long)i);
        PyObject *val = PyLong_FromUnsignedLongLong(st->line_hits[i]);
        int rc = (key && val) ? PyDict_SetItem(line_hits, key, val) : -1;
        Py_XDECREF(key);
        Py_XDECREF(val);
        if (rc < 0) {
            goto error;
        }
    }
    res = Py_BuildValue("{s:k,s:k,s:k,s:O,s:O,s:O}", "id", (unsigned long)st->id,
                        "flags", (unsigned long)st->flags, "seen_gen", (unsigned long)st->seen_gen,
                        "hits", hits, "line_hits", line_hits,
                        "dispatch", st->dispatch ? st->dispatch : Py_None);
error:
    Py_XDECREF(hits);
    Py_XDECREF(line_hits);
    return res;
}

static PyObject *
code_reset_counts(PyObject *self, PyObject *code)
{
    PYLU_UNUSED(self);
    pylu_codestate *st = PyCode_Check(code) ? pylu_codestate_peek(code) : NULL;
    if (st != NULL) {
        memset(st->hits, 0, sizeof(st->hits));
        if (st->line_hits != NULL) {
            memset(st->line_hits, 0, st->line_span * sizeof(uint64_t));
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
set_counting(PyObject *self, PyObject *on)
{
    PYLU_UNUSED(self);
    int v = PyObject_IsTrue(on);
    if (v < 0) {
        return NULL;
    }
    pylu_counting = v;
    Py_RETURN_NONE;
}

static PyObject *
set_callback_mode(PyObject *self, PyObject *arg)
{
    PYLU_UNUSED(self);
    const char *mode = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    if (mode != NULL && strcmp(mode, "normal") == 0) {
        pylu_callback_mode = PYLU_MODE_NORMAL;
    }
    else if (mode != NULL && strcmp(mode, "noop") == 0) {
        pylu_callback_mode = PYLU_MODE_NOOP;
    }
    else {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "callback mode must be 'normal' or 'noop'");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
armed_codes(PyObject *self, PyObject *unused)
{
    PYLU_UNUSED(self);
    PYLU_UNUSED(unused);
    return pylu_armed_codes();
}

static PyObject *
monitor_stop(PyObject *self, PyObject *unused)
{
    PYLU_UNUSED(self);
    PYLU_UNUSED(unused);
    if (pylu_disarm_all() < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
set_decider(PyObject *self, PyObject *callable)
{
    PYLU_UNUSED(self);
    if (pylu_discover_set_decider(callable) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(pylu_match_gen);
}

static PyObject *
function_watcher(PyObject *self, PyObject *on)
{
    PYLU_UNUSED(self);
    int v = PyObject_IsTrue(on);
    if (v < 0 || pylu_discover_watch_functions(v) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* frame_hook(install, forward_only=False, max_recursion=0, report=None) */
static PyObject *
frame_hook(PyObject *self, PyObject *args, PyObject *kwargs)
{
    PYLU_UNUSED(self);
    static char *kwlist[] = {"install", "forward_only", "max_recursion", "report", NULL};
    int install, forward = 0, max_recursion = 0;
    PyObject *report = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "p|piO:frame_hook", kwlist, &install,
                                     &forward, &max_recursion, &report)) {
        return NULL;
    }
    if (report != Py_None && !PyCallable_Check(report)) {
        PyErr_SetString(PyExc_TypeError, "frame_hook: report must be callable or None");
        return NULL;
    }
    if (pylu_codestate_init() < 0) {
        return NULL;
    }
    int rc = install ? pylu_evalframe_install(forward, max_recursion, report)
                     : pylu_evalframe_remove();
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
engine_counters(PyObject *self, PyObject *unused)
{
    PYLU_UNUSED(self);
    PYLU_UNUSED(unused);
    const char *retired = pylu_arm_hook_retired();
    return Py_BuildValue(
        "{s:i,s:O,s:O,s:O,s:n,s:K,s:K,s:K,s:k,s:s,s:z,s:K,s:K}",
        "tool_id", pylu_monitor_tool_id(),
        "frame_hook", pylu_evalframe_installed() ? Py_True : Py_False,
        "function_watcher", pylu_discover_watching_functions() ? Py_True : Py_False,
        "counting", pylu_counting ? Py_True : Py_False,
        "armed", pylu_armed_count(),
        "dispatch_errors", (unsigned long long)pylu_dispatch_errors,
        "decider_calls", (unsigned long long)pylu_decider_calls,
        "decider_errors", (unsigned long long)pylu_decider_errors,
        "match_generation", (unsigned long)pylu_match_gen,
        "callback_mode", pylu_callback_mode == PYLU_MODE_NOOP ? "noop" : "normal",
        "frame_hook_retired", retired,
        "hook_redirects", (unsigned long long)pylu_arm_hook_redirects,
        "withheld_entries", (unsigned long long)pylu_evalframe_withheld_entries());
}

PyMethodDef pylu_engine_methods[] = {
    {"code_arm", (PyCFunction)(void (*)(void))code_arm, METH_FASTCALL,
     "code_arm(code, flags, lines, dispatch, module, qualname, gen_start) -> code id"},
    {"code_disarm", code_disarm, METH_O, "code_disarm(code): no events, no state, unregistered"},
    {"code_state", code_state, METH_O, "code_state(code) -> dict or None (debug view)"},
    {"code_reset_counts", code_reset_counts, METH_O, "zero the debug counts of a code"},
    {"set_counting", set_counting, METH_O, "count emitted records per code (debug; off by default)"},
    {"set_callback_mode", set_callback_mode, METH_O, "'normal' or 'noop' (bench floor)"},
    {"armed_codes", armed_codes, METH_NOARGS, "the armed codes (by identity)"},
    {"monitor_stop", monitor_stop, METH_NOARGS,
     "disarm everything and release the sys.monitoring tool id (documented order)"},
    {"set_decider", set_decider, METH_O,
     "set_decider(callable|None) -> generation; callable(code) is asked once per code"},
    {"function_watcher", function_watcher, METH_O, "function_watcher(on): CREATE -> decider"},
    {"frame_hook", (PyCFunction)(void (*)(void))frame_hook, METH_VARARGS | METH_KEYWORDS,
     "frame_hook(install, forward_only=False, max_recursion=0, report=None): the PEP 523 "
     "hook, chained; it gives way to sys.monitoring when a thread's C stack runs low or "
     "the recursion limit rises above max_recursion, and calls report(text) then"},
    {"engine_counters", engine_counters, METH_NOARGS, "engine state and debug counters"},
    {NULL, NULL, 0, NULL},
};

int
pylu_engine_exec(PyObject *module)
{
    static const struct { const char *name; long value; } constants[] = {
        {"CS_FUNC_RECORDS", PYLU_CS_FUNC_RECORDS}, {"CS_HOOK_RECORDS", PYLU_CS_HOOK_RECORDS},
        {"CS_PY_START", PYLU_CS_PY_START}, {"CS_PY_EXIT", PYLU_CS_PY_EXIT},
        {"CS_PY_YIELD", PYLU_CS_PY_YIELD}, {"CS_ARMED", PYLU_CS_ARMED},
        {"LINE_TIME", PYLU_LINE_TIME}, {"LINE_MARK", PYLU_LINE_MARK},
        {"LINE_DISPATCH", PYLU_LINE_DISPATCH},
        {"DISPATCH_START", PYLU_DISPATCH_START}, {"DISPATCH_RETURN", PYLU_DISPATCH_RETURN},
        {"DISPATCH_UNWIND", PYLU_DISPATCH_UNWIND}, {"DISPATCH_YIELD", PYLU_DISPATCH_YIELD},
        {"DISPATCH_LINE", PYLU_DISPATCH_LINE},
    };
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++) {
        if (PyModule_AddIntConstant(module, constants[i].name, constants[i].value) < 0) {
            return -1;
        }
    }
    return 0;
}
