/* recorder_py.h — the recorder's Python API (rings, clock, flusher, zstd log), part of _engine. */
#ifndef PYLU_RECORDER_PY_H
#define PYLU_RECORDER_PY_H

#include "compat.h"

int pylu_recorder_exec(PyObject *module);
extern PyMethodDef pylu_recorder_methods[];

#endif
