/* reader_py.h — LogReader and log_segments(): decoding logs for Python, part of _reader; its state is the module's state. */
#ifndef PYLU_READER_PY_H
#define PYLU_READER_PY_H

#include "compat.h"

int pylu_reader_exec(PyObject *module);
extern PyMethodDef pylu_reader_methods[];
extern const size_t pylu_reader_state_size;
int pylu_reader_traverse(PyObject *module, visitproc visit, void *arg);
int pylu_reader_clear(PyObject *module);

#endif
