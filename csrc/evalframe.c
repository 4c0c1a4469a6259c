/* evalframe.c — a chained PEP 523 hook that records function slices of matched codes.
 *
 * Entry: CALL, or RESUME for a resumed generator/coroutine.  Exit: UNWIND when the
 * evaluation returns NULL; for generator codes YIELD when the frame stopped at a
 * YIELD_VALUE, else RETURN.  Everything is read with public accessors: the code
 * (PyUnstable_InterpreterFrame_GetCode), the last instruction
 * (PyUnstable_InterpreterFrame_GetLasti) and the code's own bytes (PyCode_GetCode).
 *
 * Side effects of any PEP 523 hook (CPython's, not ours): Python-to-Python calls are no
 * longer inlined (each uses C stack: RecursionError near depth 750 on 3.12, ~5,000 on
 * 3.13 — engine.py refuses the hook accordingly), and SEND is not specialized, so a
 * tracer sees the StopIteration that ends an `await` reported twice.
 *
 * A generator's frame is evaluated once at creation (up to RETURN_GENERATOR; no user
 * code runs, cProfile sees nothing) — that evaluation is not recorded. */
#include "evalframe.h"

#include "codestate.h"
#include "discover.h"
#include "monitor.h"
#include "opcode.h"

static _PyFrameEvalFunction prev_eval = NULL;
static int installed = 0;
static int forwarding = 0;

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

static PyObject *
eval_frame(PyThreadState *ts, struct _PyInterpreterFrame *f, int throwflag)
{
    if (forwarding || pylu_callback_mode == PYLU_MODE_NOOP) {
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
    pylu_codestate_emit(st, (pylu_event_kind)entry, 0);
    PyObject *result = prev_eval(ts, f, throwflag);
    /* The generator object owns its frame and outlives this call, so f is readable. */
    pylu_event_kind exit = result == NULL ? PYLU_EV_UNWIND
                         : (is_gen && stopped_at_yield(st, f)) ? PYLU_EV_YIELD
                         : PYLU_EV_RETURN;
    pylu_codestate_emit(st, exit, 0);
    Py_DECREF(code);
    return result;
}

int
pylu_evalframe_install(int forward_only)
{
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
