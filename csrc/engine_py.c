/* engine_py.c — placeholder until its part lands; see docs/DESIGN.md. */
#include "parts.h"

PyMethodDef pylu_engine_methods[] = {
    {NULL, NULL, 0, NULL},
};

int
pylu_engine_exec(PyObject *module)
{
    PYLU_UNUSED(module);
    return 0;
}
