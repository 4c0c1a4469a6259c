/* recorder_py.c — placeholder until its part lands; see docs/DESIGN.md. */
#include "parts.h"

PyMethodDef pylu_recorder_methods[] = {
    {NULL, NULL, 0, NULL},
};

int
pylu_recorder_exec(PyObject *module)
{
    PYLU_UNUSED(module);
    return 0;
}

#include "record.h"

void
pylu_record_placeholder(pylu_event_kind kind, uint32_t code_id, uint32_t line)
{
    PYLU_UNUSED(kind);
    PYLU_UNUSED(code_id);
    PYLU_UNUSED(line);
}

int
pylu_record_code(uint32_t code_id, const char *qualname, const char *filename,
                 uint32_t firstlineno, const char *module)
{
    PYLU_UNUSED(code_id);
    PYLU_UNUSED(qualname);
    PYLU_UNUSED(filename);
    PYLU_UNUSED(firstlineno);
    PYLU_UNUSED(module);
    return 0;
}
