/* parts.h — the pieces module.c wires together. Each part owns its files and
 * exposes one exec function (run once at import) and one method table. */
#ifndef PYLU_PARTS_H
#define PYLU_PARTS_H

#include "compat.h"

/* recorder: rings, clock, flusher, zstd log (recorder_py.c) */
int pylu_recorder_exec(PyObject *module);
extern PyMethodDef pylu_recorder_methods[];

/* reader: decoding logs back into events (reader.c) */
int pylu_reader_exec(PyObject *module);
extern PyMethodDef pylu_reader_methods[];

/* engine: sys.monitoring callbacks, PEP 523 hook, per-code state (engine_py.c) */
int pylu_engine_exec(PyObject *module);
extern PyMethodDef pylu_engine_methods[];

/* dispatch: the handler Dispatcher and HandlerStats types (dispatch.c) */
int pylu_dispatch_exec(PyObject *module);
extern PyMethodDef pylu_dispatch_methods[];

/* calltree: fast aggregation of decoded events for pylu-processlogs (calltree.c) */
int pylu_calltree_exec(PyObject *module);
extern PyMethodDef pylu_calltree_methods[];

#endif
