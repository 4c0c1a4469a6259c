/* calltree_py.h — the CallTreeBuilder type: fast aggregation of decoded events for pylu-processlogs, part of _reader. */
#ifndef PYLU_CALLTREE_PY_H
#define PYLU_CALLTREE_PY_H

#include "compat.h"

int pylu_calltree_exec(PyObject *module);
extern PyMethodDef pylu_calltree_methods[];

#endif
