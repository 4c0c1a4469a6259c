/* evalframe.c — a chained PEP 523 hook that records function slices of matched codes.
 *
 * Entry: CALL, or RESUME for a resumed generator/coroutine.  Exit: UNWIND when the
 * evaluation returns NULL; for generator codes YIELD when the frame stopped at a
 * YIELD_VALUE, else RETURN.  Everything is read with public accessors: the code
 * (PyUnstable_InterpreterFrame_GetCode), the last instruction
 * (PyUnstable_InterpreterFrame_GetLasti) and the code's own bytes (PyCode_GetCode).
 *
 * Side effects of any PEP 523 hook (CPython's, not ours): Python-to-Python calls are no
 * longer inlined, so each uses C stack, and SEND is not specialized, so a tracer sees
 * the StopIteration that ends an `await` reported twice.
 *
 * Safety: the C stack a thread has left, and the recursion limit, are checked once a
 * thread is deep (cstack.h).  When the stack runs low, or the program raised its
 * recursion limit past what the hook allows, the hook gives way: every code it recorded
 * moves to sys.monitoring (arm.c) and the hook removes itself, so calls are inlined
 * again and the program goes on as it would without us.  Frames the hook entered
 * before that get their exit from sys.monitoring.
 *
 * A frame that fails CPython's recursion check at entry never runs; its entry record
 * is withheld (codestate.h: pylu_codestate_defer).
 *
 * A generator's frame is evaluated once at creation (up to RETURN_GENERATOR; no user
 * code runs, cProfile sees nothing) — that evaluation is not recorded. */
#include "evalframe.h"

#include <stdarg.h>

#include "arm.h"
#include "codestate.h"
#include "cstack.h"
#include "discover.h"
#include "monitor.h"
#include "opcode.h"

static _PyFrameEvalFunction prev_eval = NULL;
static int installed = 0;
static int forwarding = 0;
static int max_recursion = 0; /* 0: no recursion limit check */
static PyObject *reporter = NULL;
static uint64_t withheld_entries = 0;

static PyObject *eval_frame(PyThreadState *ts, struct _PyInterpreterFrame *f, int throwflag);

static inline int
opcode_at(const pylu_codestate *st, int offset)
{
    if (st->raw_code == NULL || offset < 0 || offset + 1 >= PyBytes_GET_SIZE(st->raw_code)) {
        return -1;
    }
    return (unsigned char)PyBytes_AS_STRING(st->raw_code)[offset];
}

/* Did the generator frame stop at a yield (rather than return)? */
static inline int
stopped_at_yield(const pylu_codestate *st, struct _PyInterpreterFrame *f)
{
    int lasti = PyUnstable_InterpreterFrame_GetLasti(f);
#if PYLU_LASTI_PAST_SUSPEND
    return opcode_at(st, lasti - 2) == YIELD_VALUE;
#else
    return opcode_at(st, lasti) == YIELD_VALUE;
#endif
}

/* Entry kind of a generator frame: 0 = creation (not recorded), CALL for the first
 * next()/send()/await, RESUME otherwise. */
static inline int
generator_entry_kind(const pylu_codestate *st, struct _PyInterpreterFrame *f, int throwflag)
{
    if (throwflag) {
        return PYLU_EV_RESUME;
    }
    int lasti = PyUnstable_InterpreterFrame_GetLasti(f);
#if PYLU_LASTI_PAST_SUSPEND
    if (lasti <= st->gen_start) {
        return 0;
    }
    return opcode_at(st, lasti - 2) == RETURN_GENERATOR ? PYLU_EV_CALL : PYLU_EV_RESUME;
#else
    if (lasti < st->gen_start) {
        return 0;
    }
    return opcode_at(st, lasti) == RETURN_GENERATOR ? PYLU_EV_CALL : PYLU_EV_RESUME;
#endif
}

/* After an evaluation returned NULL: did the frame fail before it started?  CPython's
 * recursion checks at frame entry (Python depth; on 3.14 also the C stack) raise a new
 * RecursionError and leave without running the frame, so no traceback entry exists yet;
 * a frame that ran adds its own entry to whatever it lets escape. */
static int
frame_never_started(void)
{
    if (!PyErr_ExceptionMatches(PyExc_RecursionError)) {
        return 0;
    }
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *tb = PyException_GetTraceback(exc);
    int fresh = tb == NULL;
    Py_XDECREF(tb);
    PyErr_SetRaisedException(exc);
    return fresh;
}

/* Tell the operator (engine.py's report path); never raises. */
static void
report(const char *fmt, ...)
{
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (reporter == NULL) {
        return;
    }
    PyObject *saved = PyErr_GetRaisedException();
    PyObject *callable = Py_NewRef(reporter);
    PyObject *r = PyObject_CallFunction(callable, "s", text);
    Py_DECREF(callable);
    Py_XDECREF(r);
    PyErr_Clear();
    PyErr_SetRaisedException(saved);
}

static void
give_way(const char *why)
{
    uint64_t before = pylu_arm_hook_redirects;
    Py_ssize_t lost = pylu_arm_hook_retire(why);
    uint64_t moved = pylu_arm_hook_redirects - before;
    PyInterpreterState *interp = PyInterpreterState_Get();
    if (pylu_get_eval_frame(interp) == eval_frame) {
        pylu_set_eval_frame(interp, prev_eval);
        installed = 0;
        forwarding = 0;
    }
    else {
        forwarding = 1; /* another hook sits on top: pass through from now on */
    }
    report("frame hook removed: %s. %llu code(s) now recorded by sys.monitoring%s", why,
           (unsigned long long)moved,
           lost > 0 ? "; some codes could not be moved (no free sys.monitoring tool id) "
                      "and record nothing" : "");
}

/* The slow path of a deep call: measure the thread's stack once, then decide whether
 * the hook must give way.  Returns 1 if it did. */
static int __attribute__((noinline))
deep_call_check(void)
{
    if (!pylu_cstack.measured) {
        pylu_cstack_measure();
        if (!pylu_cstack_deep()) {
            return 0;
        }
    }
    char why[384];
    int limit = Py_GetRecursionLimit();
    if (max_recursion > 0 && limit > max_recursion) {
        snprintf(why, sizeof(why),
                 "the recursion limit was raised to %d while it was installed; under a "
                 "frame hook every Python call also recurses on the C stack, which allows "
                 "%d frames",
                 limit, max_recursion);
    }
    else if (pylu_cstack_low()) {
        snprintf(why, sizeof(why),
                 "a thread with a %zu KiB C stack used most of it (under a frame hook "
                 "every Python call also recurses on the C stack)",
                 pylu_cstack.size / 1024);
    }
    else {
        return 0;
    }
    give_way(why);
    return 1;
}

static PyObject *
eval_frame(PyThreadState *ts, struct _PyInterpreterFrame *f, int throwflag)
{
    if (forwarding || pylu_callback_mode == PYLU_MODE_NOOP) {
        return prev_eval(ts, f, throwflag);
    }
    if (PYLU_UNLIKELY(pylu_cstack_deep()) && deep_call_check()) {
        return prev_eval(ts, f, throwflag);
    }
    PyObject *code = PyUnstable_InterpreterFrame_GetCode(f); /* strong */
    pylu_codestate *st = pylu_codestate_peek(code);
    if (PYLU_UNLIKELY(pylu_discover_due(st))) {
        st = pylu_discover_decide(code);
    }
    /* Codes that also get monitoring records (line timing) are recorded there. */
    if (st == NULL || (st->flags & (PYLU_CS_HOOK_RECORDS | PYLU_CS_FUNC_RECORDS | PYLU_CS_ARMED))
                          != (PYLU_CS_HOOK_RECORDS | PYLU_CS_ARMED)) {
        Py_DECREF(code);
        return prev_eval(ts, f, throwflag);
    }
    int is_gen = (st->flags & PYLU_CS_GENERATOR) != 0;
    int entry = is_gen ? generator_entry_kind(st, f, throwflag) : PYLU_EV_CALL;
    if (entry == 0) {
        Py_DECREF(code);
        return prev_eval(ts, f, throwflag);
    }
    pylu_codestate_defer(st, (pylu_event_kind)entry);
    PyObject *result = prev_eval(ts, f, throwflag);
    /* Nested frames settle their own entry before they return, so an entry still
     * waiting is ours: the frame recorded nothing below it, and sys.monitoring (if the
     * code moved there meanwhile) did not close it. */
    int ours_waiting = pylu_deferred.st == st;
    if (ours_waiting && result == NULL && frame_never_started()) {
        pylu_deferred.st = NULL;
        withheld_entries++;
    }
    else if (ours_waiting || !(st->flags & PYLU_CS_FUNC_RECORDS)) {
        /* The generator object owns its frame and outlives this call, so f is readable. */
        pylu_event_kind exit = result == NULL ? PYLU_EV_UNWIND
                             : (is_gen && stopped_at_yield(st, f)) ? PYLU_EV_YIELD
                             : PYLU_EV_RETURN;
        pylu_codestate_emit(st, exit, 0);
    }
    Py_DECREF(code);
    return result;
}

int
pylu_evalframe_install(int forward_only, int max_depth, PyObject *report_to)
{
    if (pylu_arm_hook_retired() != NULL) {
        return 0; /* gave way for good in this process: sys.monitoring serves */
    }
    if (report_to != NULL && report_to != Py_None) {
        Py_XSETREF(reporter, Py_NewRef(report_to));
    }
    max_recursion = max_depth > 0 ? max_depth : 0;
    PyInterpreterState *interp = PyInterpreterState_Get();
    forwarding = forward_only;
    if (installed) {
        return 0;
    }
    _PyFrameEvalFunction current = pylu_get_eval_frame(interp);
    if (current == eval_frame) {
        installed = 1;
        return 0;
    }
    prev_eval = current;
    pylu_set_eval_frame(interp, eval_frame);
    installed = 1;
    return 0;
}

int
pylu_evalframe_remove(void)
{
    if (!installed) {
        return 0;
    }
    PyInterpreterState *interp = PyInterpreterState_Get();
    if (pylu_get_eval_frame(interp) != eval_frame) {
        /* Someone chained on top of us: keep forwarding rather than cut them off. */
        forwarding = 1;
        PyErr_SetString(PyExc_RuntimeError,
                        "pyliveupdate: another frame-evaluation hook was installed on top "
                        "of ours; ours stays as a pure forwarder");
        return -1;
    }
    pylu_set_eval_frame(interp, prev_eval);
    installed = 0;
    forwarding = 0;
    return 0;
}

int
pylu_evalframe_installed(void)
{
    return installed;
}

uint64_t
pylu_evalframe_withheld_entries(void)
{
    return withheld_entries;
}
