/* parts.h — the pieces the two extension modules wire together. Each part owns its files
 * and exposes one exec function (run at import) and one method table.
 *
 *   pyliveupdate._engine  (module.c)         every target loads it: engine + recorder
 *   pyliveupdate._reader  (reader_module.c)  pylu-processlogs and tests: offline reading
 */
#ifndef PYLU_PARTS_H
#define PYLU_PARTS_H

#include "compat.h"

typedef struct {
    int (*exec)(PyObject *module);
    PyMethodDef *methods;   /* may be NULL */
} pylu_part;

/* A module's exec: each part's functions, then its exec, in order. */
static inline int
pylu_parts_exec(PyObject *module, const pylu_part *parts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (parts[i].methods && PyModule_AddFunctions(module, parts[i].methods) < 0) {
            return -1;
        }
        if (parts[i].exec(module) < 0) {
            return -1;
        }
    }
    return 0;
}

/* kinds: EV_*, TEXT_*, LOG_FORMAT_VERSION constants, in both modules (kinds_py.c) */
int pylu_kinds_exec(PyObject *module);

/* ---- _engine ---- */

/* recorder: rings, clock, flusher, zstd log (recorder_py.c) */
int pylu_recorder_exec(PyObject *module);
extern PyMethodDef pylu_recorder_methods[];

/* engine: sys.monitoring callbacks, PEP 523 hook, per-code state (engine_py.c) */
int pylu_engine_exec(PyObject *module);
extern PyMethodDef pylu_engine_methods[];

/* dispatch: the handler Dispatcher and HandlerStats types (dispatch.c) */
int pylu_dispatch_exec(PyObject *module);
extern PyMethodDef pylu_dispatch_methods[];

/* ---- _reader ---- */

/* reader: decoding logs back into events (reader.c); its state is the module's state */
int pylu_reader_exec(PyObject *module);
extern PyMethodDef pylu_reader_methods[];
extern const size_t pylu_reader_state_size;
int pylu_reader_traverse(PyObject *module, visitproc visit, void *arg);
int pylu_reader_clear(PyObject *module);

/* calltree: fast aggregation of decoded events for pylu-processlogs (calltree.c) */
int pylu_calltree_exec(PyObject *module);
extern PyMethodDef pylu_calltree_methods[];

#endif
