/* reader.c — placeholder until its part lands; see docs/DESIGN.md. */
#include "parts.h"

PyMethodDef pylu_reader_methods[] = {
    {NULL, NULL, 0, NULL},
};

int
pylu_reader_exec(PyObject *module)
{
    PYLU_UNUSED(module);
    return 0;
}
