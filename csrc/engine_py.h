/* engine_py.h — the engine's Python API (sys.monitoring callbacks, PEP 523 hook, per-code state), part of _engine. */
#ifndef PYLU_ENGINE_PY_H
#define PYLU_ENGINE_PY_H

#include "compat.h"

int pylu_engine_exec(PyObject *module);
extern PyMethodDef pylu_engine_methods[];

#endif
