/* discover.c — ask the Python matcher once per code (and per matcher generation). */
#include "discover.h"

uint32_t pylu_match_gen = 0;
uint64_t pylu_decider_errors = 0;
uint64_t pylu_decider_calls = 0;

static PyObject *decider = NULL;
static uint32_t gen_counter = 0;
static int func_watcher_id = -1;
/* The decider runs Python code, whose frames and functions must not be decided
 * recursively on the same thread. */
static _Thread_local int deciding = 0;

int
pylu_discover_set_decider(PyObject *callable)
{
    if (callable != Py_None && !PyCallable_Check(callable)) {
        PyErr_SetString(PyExc_TypeError, "decider must be callable or None");
        return -1;
    }
    if (pylu_codestate_init() < 0) {
        return -1;
    }
    Py_XSETREF(decider, callable == Py_None ? NULL : Py_NewRef(callable));
    if (decider == NULL) {
        pylu_match_gen = 0;
    }
    else {
        if (++gen_counter == 0) {
            gen_counter = 1;
        }
        pylu_match_gen = gen_counter;
    }
    return 0;
}

pylu_codestate *
pylu_discover_decide(PyObject *code)
{
    if (decider == NULL || deciding) {
        return pylu_codestate_peek(code);
    }
    PyObject *saved = PyErr_GetRaisedException();
    uint32_t gen = pylu_match_gen;
    pylu_codestate *st = pylu_codestate_get(code);
    if (st == NULL) {
        pylu_decider_errors++;
        PyErr_Clear();
        PyErr_SetRaisedException(saved);
        return NULL;
    }
    st->seen_gen = gen; /* before the call: a failing decider is not asked again */
    deciding = 1;
    pylu_decider_calls++;
    PyObject *callable = Py_NewRef(decider);
    PyObject *r = PyObject_CallOneArg(callable, code);
    Py_DECREF(callable);
    deciding = 0;
    if (r == NULL) {
        pylu_decider_errors++;
        PyErr_Clear();
    }
    Py_XDECREF(r);
    PyErr_SetRaisedException(saved);
    return pylu_codestate_peek(code);
}

static void
offer(PyObject *code)
{
    if (code != NULL && PyCode_Check(code) && pylu_discover_due(pylu_codestate_peek(code))) {
        pylu_discover_decide(code);
    }
}

static int
on_function_event(PyFunction_WatchEvent event, PyFunctionObject *func, PyObject *new_value)
{
    if (pylu_match_gen == 0 || deciding) {
        return 0;
    }
    if (event == PyFunction_EVENT_CREATE) {
        /* every def, lambda, closure and class body; types.FunctionType(); and module
         * bodies, which exec() and import run through a function object too */
        offer(PyFunction_GetCode((PyObject *)func)); /* borrowed */
    }
    else if (event == PyFunction_EVENT_MODIFY_CODE) {
        offer(new_value); /* e.g. types.coroutine, or another tool's hot patch */
    }
    return 0;
}

int
pylu_discover_watch_functions(int on)
{
    if (on && func_watcher_id < 0) {
        int id = PyFunction_AddWatcher(on_function_event);
        if (id < 0) {
            return -1;
        }
        func_watcher_id = id;
    }
    else if (!on && func_watcher_id >= 0) {
        if (PyFunction_ClearWatcher(func_watcher_id) < 0) {
            return -1;
        }
        func_watcher_id = -1;
    }
    return 0;
}

int
pylu_discover_watching_functions(void)
{
    return func_watcher_id >= 0;
}
