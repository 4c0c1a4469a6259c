/* arm.c — per-code flags, local events and global exit events; the source rule. */
#include "arm.h"

#include <string.h>

#include "monitor.h"

uint64_t pylu_arm_hook_redirects = 0;

static const uint32_t exit_flags = PYLU_CS_FUNC_RECORDS | PYLU_CS_PY_EXIT;
static Py_ssize_t exit_users = 0; /* armed codes that need global PY_UNWIND/PY_THROW */
static char retired_why[512];

static int
update_global_exits(uint32_t old_flags, uint32_t new_flags)
{
    int was = (old_flags & PYLU_CS_ARMED) && (old_flags & exit_flags);
    int now = (new_flags & PYLU_CS_ARMED) && (new_flags & exit_flags);
    exit_users += now - was;
    return pylu_monitor_set_global_exits(exit_users > 0);
}

/* Does every entry of `code` go through a PEP 523 hook? */
static int
hook_sees_every_entry(PyObject *code)
{
#if PYLU_HOOK_MISSES_INLINED_INIT
    /* Any function a class keeps as __init__ can be entered inline; those are named
     * __init__ (def, attrs, dataclasses).  Over-approximating costs only speed. */
    PyObject *name = PyObject_GetAttrString(code, "co_name");
    if (name == NULL) {
        PyErr_Clear();
        return 0;
    }
    int is_init = PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, "__init__") == 0;
    Py_DECREF(name);
    return !is_init;
#else
    PYLU_UNUSED(code);
    return 1;
#endif
}

static uint32_t
effective_flags(PyObject *code, uint32_t flags)
{
    if ((flags & PYLU_CS_HOOK_RECORDS) && (retired_why[0] != '\0' || !hook_sees_every_entry(code))) {
        pylu_arm_hook_redirects++;
        return (flags & ~(uint32_t)PYLU_CS_HOOK_RECORDS) | PYLU_CS_FUNC_RECORDS;
    }
    return flags;
}

pylu_codestate *
pylu_arm(PyObject *code, uint32_t flags, PyObject *lines, PyObject *dispatch, const char *module,
         const char *qualname, int32_t gen_start)
{
    flags = effective_flags(code, flags);
    int wants_lines = lines != NULL && lines != Py_None && PyDict_GET_SIZE(lines) > 0;
    uint32_t monitored = flags & ~(uint32_t)PYLU_CS_HOOK_RECORDS;
    if ((monitored || wants_lines) && pylu_monitor_start() < 0) {
        return NULL;
    }
    pylu_codestate *st = pylu_codestate_get(code);
    if (st == NULL || pylu_codestate_assign_id(st, code, module, qualname) < 0) {
        return NULL;
    }
    if ((flags & PYLU_CS_HOOK_RECORDS) && st->raw_code == NULL &&
        (st->flags & PYLU_CS_GENERATOR)) {
        st->raw_code = PyCode_GetCode((PyCodeObject *)code);
        if (st->raw_code == NULL) {
            return NULL;
        }
    }
    if (pylu_codestate_set_lines(st, lines) < 0) {
        return NULL;
    }
    uint32_t old_flags = st->flags;
    uint32_t keep = st->flags & (PYLU_CS_GENERATOR | PYLU_CS_ARMED | PYLU_CS_LINES);
    st->flags = keep | flags;
    st->gen_start = gen_start;
    Py_XSETREF(st->dispatch, dispatch == NULL || dispatch == Py_None ? NULL : Py_NewRef(dispatch));
    if (!(old_flags & PYLU_CS_ARMED) && pylu_armed_add(code, st) < 0) {
        return NULL;
    }
    unsigned long events = pylu_monitor_active() ? pylu_monitor_events_for(st->flags) : 0;
    if (pylu_monitor_set_local(code, events) < 0 || update_global_exits(old_flags, st->flags) < 0) {
        return NULL;
    }
    return st;
}

int
pylu_disarm(PyObject *code)
{
    pylu_codestate *st = pylu_codestate_peek(code);
    if (st == NULL || !(st->flags & PYLU_CS_ARMED)) {
        return 0;
    }
    uint32_t old_flags = st->flags;
    Py_INCREF(code); /* the armed set may hold the last reference */
    int rc = pylu_monitor_set_local(code, 0);
    st->flags &= PYLU_CS_GENERATOR;
    Py_CLEAR(st->dispatch);
    if (pylu_codestate_set_lines(st, NULL) < 0 || update_global_exits(old_flags, st->flags) < 0) {
        rc = -1;
    }
    if (pylu_armed_remove(code, st) < 0) {
        rc = -1;
    }
    Py_DECREF(code);
    return rc;
}

int
pylu_disarm_all(void)
{
    PyObject *codes = pylu_armed_codes();
    if (codes == NULL) {
        return -1;
    }
    /* Disarm every code first so no callback can see a half-torn state. */
    Py_ssize_t n = PyList_GET_SIZE(codes);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *code = PyList_GET_ITEM(codes, i);
        pylu_codestate *st = pylu_codestate_peek(code);
        if (st != NULL) {
            st->flags &= PYLU_CS_GENERATOR;
            Py_CLEAR(st->dispatch);
            if (pylu_codestate_set_lines(st, NULL) < 0) {
                PyErr_Clear();
            }
            if (pylu_armed_remove(code, st) < 0) {
                PyErr_Clear();
            }
        }
    }
    exit_users = 0;
    retired_why[0] = '\0'; /* a new start may use the hook again */
    int rc = pylu_monitor_stop(codes);
    Py_DECREF(codes);
    return rc;
}

Py_ssize_t
pylu_arm_hook_retire(const char *why)
{
    if (retired_why[0] == '\0') {
        snprintf(retired_why, sizeof(retired_why), "%s", why);
    }
    PyObject *saved = PyErr_GetRaisedException();
    Py_ssize_t lost = 0;
    int monitoring = pylu_monitor_start() == 0;
    PyErr_Clear();
    PyObject *codes = pylu_armed_codes();
    Py_ssize_t n = codes != NULL ? PyList_GET_SIZE(codes) : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *code = PyList_GET_ITEM(codes, i);
        pylu_codestate *st = pylu_codestate_peek(code);
        if (st == NULL || !(st->flags & PYLU_CS_HOOK_RECORDS)) {
            continue;
        }
        uint32_t old_flags = st->flags;
        st->flags &= ~(uint32_t)PYLU_CS_HOOK_RECORDS;
        if (!monitoring) {
            lost++;
            continue;
        }
        st->flags |= PYLU_CS_FUNC_RECORDS;
        pylu_arm_hook_redirects++;
        if (pylu_monitor_set_local(code, pylu_monitor_events_for(st->flags)) < 0 ||
            update_global_exits(old_flags, st->flags) < 0) {
            PyErr_Clear();
            lost++;
        }
    }
    Py_XDECREF(codes);
    PyErr_Clear();
    PyErr_SetRaisedException(saved);
    return lost;
}

const char *
pylu_arm_hook_retired(void)
{
    return retired_why[0] != '\0' ? retired_why : NULL;
}
