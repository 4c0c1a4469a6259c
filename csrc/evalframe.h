/* evalframe.h — PEP 523 frame-evaluation hook: function records for wide scopes. */
#ifndef PYLU_EVALFRAME_H
#define PYLU_EVALFRAME_H

#include "compat.h"

/* Install (chained to the hook found there) or remove.  `forward_only` makes the hook
 * a pure forwarder (bench floor).  `max_depth` > 0: the hook gives way when the program
 * raises its recursion limit above it.  `report_to(text)` hears about that.  After the
 * hook gave way, install does nothing until pylu_disarm_all(). */
int pylu_evalframe_install(int forward_only, int max_depth, PyObject *report_to);
int pylu_evalframe_remove(void);
int pylu_evalframe_installed(void);

/* Entry records withheld because the frame failed CPython's recursion check at entry. */
uint64_t pylu_evalframe_withheld_entries(void);

#endif
