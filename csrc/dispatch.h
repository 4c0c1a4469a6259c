/* dispatch.h — running the Python handlers of one code's updates.
 *
 * engine.py builds, per armed code, one Dispatcher from the updates' handlers (update-id
 * order) and one HandlerStats per update. The C callbacks call the Dispatcher; it runs
 * the handlers of the event with "line after" semantics, counts calls, errors and time,
 * switches an update off after MAX_CONSECUTIVE failures or past its time budget, and
 * skips an update's handlers while its output gate is closed (a rate-limited debugger
 * whose limit is spent: its line would be dropped anyway).
 */
#ifndef PYLU_DISPATCH_H
#define PYLU_DISPATCH_H

#include "compat.h"

/* Run a Dispatcher for one event (kind: PYLU_DISPATCH_*). frame NULL: the running frame,
 * made only if a handler runs. -1 with an exception only for the dispatcher's own
 * failures; handler errors are counted, never raised. */
int pylu_dispatcher_run(PyObject *dispatcher, int kind, PyObject *frame, PyObject *line,
                        PyObject *arg);
/* Whether `obj` is a Dispatcher (else it is called as a plain Python callable). */
int pylu_is_dispatcher(PyObject *obj);

/* The module part: the Dispatcher and HandlerStats types, in _engine. */
int pylu_dispatch_exec(PyObject *module);
extern PyMethodDef pylu_dispatch_methods[];

#endif
