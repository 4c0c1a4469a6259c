/* monitor.c — sys.monitoring as a consumer from C.
 *
 * There is no consumer C API, so we call the sys.monitoring functions.  Callbacks are
 * METH_FASTCALL builtins created once.  Function and line events are local to armed
 * codes; PY_UNWIND and PY_THROW can only be global, so they are filtered here by the
 * code's state.  Timing points only read the state and call pylu_record(). */
#include "monitor.h"
#include "dispatch.h"

int pylu_callback_mode = PYLU_MODE_NORMAL;
uint64_t pylu_dispatch_errors = 0;

static PyObject *mon = NULL;        /* sys.monitoring */
static PyObject *disable_obj = NULL;
static int tool_id = -1;
static int global_exits_on = 0;

typedef enum {
    EV_PY_START, EV_PY_RESUME, EV_PY_RETURN, EV_PY_YIELD, EV_LINE, EV_JUMP, EV_PY_UNWIND,
    EV_PY_THROW, EV_COUNT
} event_slot;

static unsigned long ev_bit[EV_COUNT];
static PyObject *kind_obj[PYLU_DISPATCH_LINE + 1];

static inline pylu_codestate *
armed_state(PyObject *code)
{
    pylu_codestate *st = pylu_codestate_peek(code);
    return (st != NULL && (st->flags & PYLU_CS_ARMED)) ? st : NULL;
}

void
pylu_call_dispatch(pylu_codestate *st, int kind, PyObject *line, PyObject *arg)
{
    PyObject *dispatch = st->dispatch;
    if (dispatch == NULL) {
        return;
    }
    PyObject *saved = PyErr_GetRaisedException();
    Py_INCREF(dispatch); /* a handler may disarm this code while it runs */
    if (PYLU_LIKELY(pylu_is_dispatcher(dispatch))) {
        if (pylu_dispatcher_run(dispatch, kind, NULL, line, arg) < 0) {
            pylu_dispatch_errors++;
            PyErr_Clear();
        }
    }
    else {
        PyObject *frame = (PyObject *)PyEval_GetFrame();
        PyObject *args[4] = {kind_obj[kind], frame ? frame : Py_None, line ? line : Py_None,
                             arg ? arg : Py_None};
        PyObject *res = PyObject_Vectorcall(dispatch, args, 4, NULL);
        if (res == NULL) {
            pylu_dispatch_errors++;
            PyErr_Clear();
        }
        Py_XDECREF(res);
    }
    Py_DECREF(dispatch);
    PyErr_SetRaisedException(saved);
}

#define CALLBACK_PROLOGUE(min_args)                                        \
    if (PYLU_UNLIKELY(pylu_callback_mode == PYLU_MODE_NOOP) || nargs < (min_args)) { \
        Py_RETURN_NONE;                                                    \
    }                                                                      \
    PYLU_UNUSED(self)

static inline PyObject *
disable(void)
{
    return Py_NewRef(disable_obj);
}

/* A function event's callback past its prologue: the record when the code is timed (the
 * common case, inlined with nothing else), the Python dispatch at `dispatch_flag`, and
 * DISABLE for a code that wants neither. */
static PyObject *function_event_rest(pylu_codestate *st, pylu_event_kind kind,
                                     uint32_t dispatch_flag, int dispatch_kind, PyObject *arg)
    __attribute__((noinline));

static inline __attribute__((always_inline)) PyObject *
function_event(PyObject *code, pylu_event_kind kind, uint32_t dispatch_flag,
               int dispatch_kind, PyObject *arg)
{
    pylu_codestate *st = pylu_codestate_peek(code);
    uint32_t flags = st != NULL ? st->flags : 0;
    uint32_t want = PYLU_CS_ARMED | PYLU_CS_FUNC_RECORDS;
    if (PYLU_LIKELY((flags & (want | dispatch_flag)) == want)) {
        pylu_codestate_emit(st, kind, 0);
        Py_RETURN_NONE;
    }
    return function_event_rest(st, kind, dispatch_flag, dispatch_kind, arg);
}

static PyObject *
function_event_rest(pylu_codestate *st, pylu_event_kind kind, uint32_t dispatch_flag,
                    int dispatch_kind, PyObject *arg)
{
    if (st == NULL || !(st->flags & PYLU_CS_ARMED) ||
        !(st->flags & (PYLU_CS_FUNC_RECORDS | dispatch_flag))) {
        return disable();
    }
    if (st->flags & PYLU_CS_FUNC_RECORDS) {
        pylu_codestate_emit(st, kind, 0);
    }
    if (st->flags & dispatch_flag) {
        pylu_call_dispatch(st, dispatch_kind, NULL, arg);
    }
    Py_RETURN_NONE;
}

static PyObject *
cb_py_start(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    CALLBACK_PROLOGUE(1);
    return function_event(args[0], PYLU_EV_CALL, PYLU_CS_PY_START, PYLU_DISPATCH_START, NULL);
}

/* A resume only times: no dispatch flag. */
static PyObject *
cb_py_resume(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    CALLBACK_PROLOGUE(1);
    return function_event(args[0], PYLU_EV_RESUME, 0, 0, NULL);
}

static PyObject *
cb_py_return(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    CALLBACK_PROLOGUE(3);
    return function_event(args[0], PYLU_EV_RETURN, PYLU_CS_PY_EXIT, PYLU_DISPATCH_RETURN,
                          args[2]);
}

static PyObject *
cb_py_yield(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    CALLBACK_PROLOGUE(3);
    return function_event(args[0], PYLU_EV_YIELD, PYLU_CS_PY_YIELD, PYLU_DISPATCH_YIELD,
                          args[2]);
}

/* The line number argument, without a call into libpython for the usual compact int. */
static inline long
line_number(PyObject *obj)
{
    if (PYLU_LIKELY(PyLong_CheckExact(obj) && PyUnstable_Long_IsCompact((PyLongObject *)obj))) {
        return (long)PyUnstable_Long_CompactValue((PyLongObject *)obj);
    }
    long line = PyLong_AsLong(obj);
    if (line == -1 && PyErr_Occurred()) {
        PyErr_Clear();
    }
    return line;
}

/* A LINE event past its prologue, whatever the line wants (see cb_line). */
static PyObject * __attribute__((noinline))
line_event_rest(pylu_codestate *st, PyObject *line_obj)
{
    if (st == NULL || !(st->flags & PYLU_CS_ARMED)) {
        return disable();
    }
    long line = line_number(line_obj);
    if (PYLU_UNLIKELY(line < 0)) {
        Py_RETURN_NONE;
    }
    uint8_t bits = pylu_codestate_line_bits(st, line);
    if (bits == 0) {
        return disable(); /* this location costs nothing from now on */
    }
    if (bits & PYLU_LINE_TIME) {
        pylu_codestate_emit(st, PYLU_EV_LINE, (uint32_t)line);
    }
    else if (bits & PYLU_LINE_MARK) {
        pylu_codestate_emit(st, PYLU_EV_LINE_MARK, (uint32_t)line);
    }
    if (bits & PYLU_LINE_DISPATCH) {
        pylu_call_dispatch(st, PYLU_DISPATCH_LINE, line_obj, NULL);
    }
    Py_RETURN_NONE;
}

/* The common case inline, as for the function events: an armed code's timed line (a
 * compact int) without a dispatch is the line's bits and the record; anything else takes
 * line_event_rest. */
static PyObject *
cb_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    CALLBACK_PROLOGUE(2);
    pylu_codestate *st = pylu_codestate_peek(args[0]);
    PyObject *line_obj = args[1];
    if (PYLU_LIKELY(st != NULL && (st->flags & PYLU_CS_ARMED) && PyLong_CheckExact(line_obj) &&
                    PyUnstable_Long_IsCompact((PyLongObject *)line_obj))) {
        long line = (long)PyUnstable_Long_CompactValue((PyLongObject *)line_obj);
        uint8_t bits = pylu_codestate_line_bits(st, line);
        if (PYLU_LIKELY((bits & (PYLU_LINE_TIME | PYLU_LINE_DISPATCH)) == PYLU_LINE_TIME)) {
            pylu_codestate_emit(st, PYLU_EV_LINE, (uint32_t)line);
            Py_RETURN_NONE;
        }
    }
    return line_event_rest(st, line_obj);
}

/* A backward jump that stays on one line starts that line again without a LINE event
 * (one-line loops).  Line tracers count it as a new line execution, and so do we.  The
 * jump's source and destination are fixed, so every other jump is disabled for good. */
static PyObject *
cb_jump(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    CALLBACK_PROLOGUE(3);
    pylu_codestate *st = armed_state(args[0]);
    if (st == NULL) {
        return disable();
    }
    long from = PyLong_AsLong(args[1]), to = PyLong_AsLong(args[2]);
    if (PYLU_UNLIKELY(PyErr_Occurred())) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (to > from) {
        return disable();
    }
    PyCodeObject *co = (PyCodeObject *)args[0];
    int line = PyCode_Addr2Line(co, (int)to);
    if (line < 0 || line != PyCode_Addr2Line(co, (int)from)) {
        return disable();
    }
    uint8_t bits = pylu_codestate_line_bits(st, line);
    if (bits == 0) {
        return disable();
    }
    PyObject *line_obj = NULL;
    if (bits & PYLU_LINE_TIME) {
        pylu_codestate_emit(st, PYLU_EV_LINE, (uint32_t)line);
    }
    else if (bits & PYLU_LINE_MARK) {
        pylu_codestate_emit(st, PYLU_EV_LINE_MARK, (uint32_t)line);
    }
    if ((bits & PYLU_LINE_DISPATCH) && (line_obj = PyLong_FromLong(line)) != NULL) {
        pylu_call_dispatch(st, PYLU_DISPATCH_LINE, line_obj, NULL);
        Py_DECREF(line_obj);
    }
    PyErr_Clear();
    Py_RETURN_NONE;
}

/* Global event: filtered here; DISABLE is not allowed for it. */
static PyObject *
cb_py_unwind(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    CALLBACK_PROLOGUE(3);
    pylu_codestate *st = armed_state(args[0]);
    if (st == NULL) {
        Py_RETURN_NONE;
    }
    if (st->flags & PYLU_CS_FUNC_RECORDS) {
        pylu_codestate_emit(st, PYLU_EV_UNWIND, 0);
    }
    if (st->flags & PYLU_CS_PY_EXIT) {
        pylu_call_dispatch(st, PYLU_DISPATCH_UNWIND, NULL, args[2]);
    }
    Py_RETURN_NONE;
}

/* Global event: generator.throw() resumes the frame; that is a new slice. */
static PyObject *
cb_py_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    CALLBACK_PROLOGUE(1);
    pylu_codestate *st = armed_state(args[0]);
    if (st != NULL && (st->flags & PYLU_CS_FUNC_RECORDS)) {
        pylu_codestate_emit(st, PYLU_EV_RESUME, 0);
    }
    Py_RETURN_NONE;
}

static PyMethodDef callback_defs[EV_COUNT] = {
    [EV_PY_START] = {"pylu_py_start", (PyCFunction)(void (*)(void))cb_py_start, METH_FASTCALL, NULL},
    [EV_PY_RESUME] = {"pylu_py_resume", (PyCFunction)(void (*)(void))cb_py_resume, METH_FASTCALL, NULL},
    [EV_PY_RETURN] = {"pylu_py_return", (PyCFunction)(void (*)(void))cb_py_return, METH_FASTCALL, NULL},
    [EV_PY_YIELD] = {"pylu_py_yield", (PyCFunction)(void (*)(void))cb_py_yield, METH_FASTCALL, NULL},
    [EV_LINE] = {"pylu_line", (PyCFunction)(void (*)(void))cb_line, METH_FASTCALL, NULL},
    [EV_JUMP] = {"pylu_jump", (PyCFunction)(void (*)(void))cb_jump, METH_FASTCALL, NULL},
    [EV_PY_UNWIND] = {"pylu_py_unwind", (PyCFunction)(void (*)(void))cb_py_unwind, METH_FASTCALL, NULL},
    [EV_PY_THROW] = {"pylu_py_throw", (PyCFunction)(void (*)(void))cb_py_throw, METH_FASTCALL, NULL},
};

static const char *const event_names[EV_COUNT] = {
    [EV_PY_START] = "PY_START", [EV_PY_RESUME] = "PY_RESUME", [EV_PY_RETURN] = "PY_RETURN",
    [EV_PY_YIELD] = "PY_YIELD", [EV_LINE] = "LINE", [EV_JUMP] = "JUMP",
    [EV_PY_UNWIND] = "PY_UNWIND",
    [EV_PY_THROW] = "PY_THROW",
};

static PyObject *callbacks[EV_COUNT];

static int
read_event_bits(void)
{
    PyObject *events = PyObject_GetAttrString(mon, "events");
    if (events == NULL) {
        return -1;
    }
    for (int i = 0; i < EV_COUNT; i++) {
        PyObject *v = PyObject_GetAttrString(events, event_names[i]);
        if (v == NULL) {
            Py_DECREF(events);
            return -1;
        }
        ev_bit[i] = PyLong_AsUnsignedLong(v);
        Py_DECREF(v);
        if (PyErr_Occurred()) {
            Py_DECREF(events);
            return -1;
        }
    }
    Py_DECREF(events);
    return 0;
}

/* Probe 4 then 3; never 0-2 (debuggers, coverage.py, cProfile) nor 5 (optimizers). */
static int
take_tool_id(void)
{
    static const int candidates[] = {4, 3};
    PyObject *holders[2] = {NULL, NULL};
    int ret = -1;
    for (int i = 0; i < 2; i++) {
        PyObject *name = PyObject_CallMethod(mon, "get_tool", "i", candidates[i]);
        if (name == NULL) {
            goto done;
        }
        if (name == Py_None) {
            Py_DECREF(name);
            PyObject *r = PyObject_CallMethod(mon, "use_tool_id", "is", candidates[i],
                                              "pyliveupdate");
            if (r == NULL) {
                goto done;
            }
            Py_DECREF(r);
            ret = candidates[i];
            goto done;
        }
        holders[i] = name;
    }
    PyErr_Format(PyExc_RuntimeError,
                 "pyliveupdate needs a free sys.monitoring tool id, but id 4 is held by %R "
                 "and id 3 by %R; stop one of those tools and try again",
                 holders[0], holders[1]);
done:
    Py_XDECREF(holders[0]);
    Py_XDECREF(holders[1]);
    return ret;
}

int
pylu_monitor_active(void)
{
    return tool_id >= 0;
}

int
pylu_monitor_tool_id(void)
{
    return tool_id;
}

int
pylu_monitor_start(void)
{
    if (tool_id >= 0) {
        return 0;
    }
    if (pylu_codestate_init() < 0) {
        return -1;
    }
    if (mon == NULL) {
        PyObject *sys_mon = PySys_GetObject("monitoring"); /* borrowed */
        if (sys_mon == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "sys.monitoring is not available");
            return -1;
        }
        mon = Py_NewRef(sys_mon);
        disable_obj = PyObject_GetAttrString(mon, "DISABLE");
        if (disable_obj == NULL || read_event_bits() < 0) {
            Py_CLEAR(mon);
            Py_CLEAR(disable_obj);
            return -1;
        }
        for (int k = 1; k <= PYLU_DISPATCH_LINE; k++) {
            if ((kind_obj[k] = PyLong_FromLong(k)) == NULL) {
                return -1;
            }
        }
        for (int i = 0; i < EV_COUNT; i++) {
            if ((callbacks[i] = PyCFunction_NewEx(&callback_defs[i], NULL, NULL)) == NULL) {
                return -1;
            }
        }
    }
    int id = take_tool_id();
    if (id < 0) {
        return -1;
    }
    for (int i = 0; i < EV_COUNT; i++) {
        PyObject *r = PyObject_CallMethod(mon, "register_callback", "ikO", id, ev_bit[i],
                                          callbacks[i]);
        if (r == NULL) {
            PyObject *exc = PyErr_GetRaisedException();
            PyObject *f = PyObject_CallMethod(mon, "free_tool_id", "i", id);
            Py_XDECREF(f);
            PyErr_Clear();
            PyErr_SetRaisedException(exc);
            return -1;
        }
        Py_DECREF(r);
    }
    tool_id = id;
    global_exits_on = 0;
    return 0;
}

unsigned long
pylu_monitor_events_for(uint32_t flags)
{
    unsigned long ev = 0;
    if (flags & PYLU_CS_FUNC_RECORDS) {
        ev |= ev_bit[EV_PY_START] | ev_bit[EV_PY_RESUME] | ev_bit[EV_PY_RETURN] |
              ev_bit[EV_PY_YIELD];
    }
    if (flags & PYLU_CS_PY_START) {
        ev |= ev_bit[EV_PY_START];
    }
    if (flags & PYLU_CS_PY_EXIT) {
        ev |= ev_bit[EV_PY_RETURN];
    }
    if (flags & PYLU_CS_PY_YIELD) {
        ev |= ev_bit[EV_PY_YIELD];
    }
    if (flags & PYLU_CS_LINES) {
        ev |= ev_bit[EV_LINE] | ev_bit[EV_JUMP];
    }
    return ev;
}

int
pylu_monitor_set_local(PyObject *code, unsigned long events)
{
    if (tool_id < 0) {
        return 0;
    }
    /* 0 first: the documented way to re-arm locations a callback DISABLEd, for our
     * tool only (restart_events() would disturb every other tool). */
    PyObject *r = PyObject_CallMethod(mon, "set_local_events", "iOk", tool_id, code, 0UL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    if (events != 0) {
        r = PyObject_CallMethod(mon, "set_local_events", "iOk", tool_id, code, events);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    return 0;
}

int
pylu_monitor_set_global_exits(int on)
{
    if (tool_id < 0 || on == global_exits_on) {
        return 0;
    }
    unsigned long ev = on ? (ev_bit[EV_PY_UNWIND] | ev_bit[EV_PY_THROW]) : 0;
    PyObject *r = PyObject_CallMethod(mon, "set_events", "ik", tool_id, ev);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    global_exits_on = on;
    return 0;
}

int
pylu_monitor_stop(PyObject *codes)
{
    if (tool_id < 0) {
        return 0;
    }
    int ret = 0;
    PyObject *r = PyObject_CallMethod(mon, "set_events", "ik", tool_id, 0UL);
    if (r == NULL) {
        ret = -1;
        PyErr_Clear();
    }
    Py_XDECREF(r);
    global_exits_on = 0;
    if (codes != NULL) {
        PyObject *it = PyObject_GetIter(codes);
        PyObject *code;
        while (it != NULL && (code = PyIter_Next(it)) != NULL) {
            r = PyObject_CallMethod(mon, "set_local_events", "iOk", tool_id, code, 0UL);
            if (r == NULL) {
                ret = -1;
                PyErr_Clear();
            }
            Py_XDECREF(r);
            Py_DECREF(code);
        }
        Py_XDECREF(it);
        PyErr_Clear();
    }
    for (int i = 0; i < EV_COUNT; i++) {
        r = PyObject_CallMethod(mon, "register_callback", "ikO", tool_id, ev_bit[i], Py_None);
        if (r == NULL) {
            ret = -1;
            PyErr_Clear();
        }
        Py_XDECREF(r);
    }
    r = PyObject_CallMethod(mon, "free_tool_id", "i", tool_id);
    if (r == NULL) {
        ret = -1;
        PyErr_Clear();
    }
    Py_XDECREF(r);
    tool_id = -1;
    if (ret < 0) {
        PyErr_SetString(PyExc_RuntimeError, "pyliveupdate: sys.monitoring teardown was incomplete");
    }
    return ret;
}
