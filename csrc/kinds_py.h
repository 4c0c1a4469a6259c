/* kinds_py.h — exports kinds.h (EV_*, TEXT_*, LOG_FORMAT_VERSION) to Python; in both modules. */
#ifndef PYLU_KINDS_PY_H
#define PYLU_KINDS_PY_H

#include "compat.h"

int pylu_kinds_exec(PyObject *module);

#endif
