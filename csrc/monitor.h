/* monitor.h — sys.monitoring (PEP 669) consumed from C: tool id, callbacks, per-code events. */
#ifndef PYLU_MONITOR_H
#define PYLU_MONITOR_H

#include "compat.h"
#include "codestate.h"

/* Callback behaviour: normal work, or return at once (bench floor). */
enum { PYLU_MODE_NORMAL = 0, PYLU_MODE_NOOP = 1 };
extern int pylu_callback_mode;

/* Kinds passed to the Python dispatcher as its first argument. */
enum {
    PYLU_DISPATCH_START = 1,  /* (kind, frame, None, None) */
    PYLU_DISPATCH_RETURN = 2, /* (kind, frame, None, retval) */
    PYLU_DISPATCH_UNWIND = 3, /* (kind, frame, None, exception) */
    PYLU_DISPATCH_YIELD = 4,  /* (kind, frame, None, value) */
    PYLU_DISPATCH_LINE = 5,   /* (kind, frame, line, None) */
};

/* Take a tool id and register the callbacks (idempotent).  -1 with an exception. */
int pylu_monitor_start(void);
int pylu_monitor_active(void);
int pylu_monitor_tool_id(void);

/* The local event set a code with these flags needs (0 when none). */
unsigned long pylu_monitor_events_for(uint32_t flags);

/* Re-arm one code: set_local_events(tool, code, 0), then the set (if non-zero). */
int pylu_monitor_set_local(PyObject *code, unsigned long events);

/* Global PY_UNWIND | PY_THROW on or off (only toggled on state change). */
int pylu_monitor_set_global_exits(int on);

/* Teardown in the documented order: global 0, local 0 for `codes`, callbacks None,
 * free the tool id. */
int pylu_monitor_stop(PyObject *codes);

/* Handler-dispatch failures swallowed in callbacks (never raised into the program). */
extern uint64_t pylu_dispatch_errors;

/* Call a code's Python dispatcher; saves/restores any in-flight exception and swallows
 * (counts) errors.  Never raises. */
void pylu_call_dispatch(pylu_codestate *st, int kind, PyObject *line, PyObject *arg);

#endif
