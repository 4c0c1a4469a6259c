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

/* Each part declares its exec and method table in its own header: kinds_py.h,
 * recorder_py.h, engine_py.h, dispatch.h (_engine); reader_py.h, calltree_py.h (_reader). */

#endif
