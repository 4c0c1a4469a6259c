/* arm.h — arming codes: per-code flags, sys.monitoring local events, the global exit
 * events, and which source records a code's function events.
 *
 * The frame hook cannot see every entry of every code (3.13 enters __init__ inline
 * through CALL_ALLOC_AND_ENTER_INIT), and it gives way entirely when it cannot run
 * safely (pylu_arm_hook_retire).  In both cases the code's function records come from
 * sys.monitoring instead: one rule, applied here, for requests made before and after. */
#ifndef PYLU_ARM_H
#define PYLU_ARM_H

#include "compat.h"
#include "codestate.h"

/* Flags Python may request (PYLU_CS_*). */
#define PYLU_ARM_SETTABLE_FLAGS \
    (PYLU_CS_FUNC_RECORDS | PYLU_CS_HOOK_RECORDS | PYLU_CS_PY_START | PYLU_CS_PY_EXIT | \
     PYLU_CS_PY_YIELD)

/* Arm `code` with `flags` (the request), per-line bits `lines` (dict or None), the
 * handler `dispatch` (callable or None), naming it module/qualname for the log.
 * Returns the state, or NULL with an exception (nothing changed then). */
pylu_codestate *pylu_arm(PyObject *code, uint32_t flags, PyObject *lines, PyObject *dispatch,
                         const char *module, const char *qualname, int32_t gen_start);

/* No events, no state, unregistered. -1 with an exception. */
int pylu_disarm(PyObject *code);

/* Disarm every code and release sys.monitoring (documented teardown order). */
int pylu_disarm_all(void);

/* Move every code recorded by the frame hook to sys.monitoring, and make later hook
 * requests monitoring requests.  `why` is kept for status (copied).  Never raises;
 * returns how many codes could not be moved (no free tool id). */
Py_ssize_t pylu_arm_hook_retire(const char *why);

/* Why the hook retired, or NULL. */
const char *pylu_arm_hook_retired(void);

/* Codes whose function records come from sys.monitoring although the frame hook was
 * asked for (3.13 __init__ codes, and every code after a retirement). */
extern uint64_t pylu_arm_hook_redirects;

#endif
