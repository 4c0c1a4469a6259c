/* handoff.h — a command that arrives gets the GIL promptly: the main thread lends it
 * (Py_AddPendingCall) instead of keeping it for a switch interval; part of _engine. */
#ifndef PYLU_HANDOFF_H
#define PYLU_HANDOFF_H

#include "compat.h"

int pylu_handoff_exec(PyObject *module);
extern PyMethodDef pylu_handoff_methods[];

#endif
