/* module.c — wires the parts of pyliveupdate._engine together; no logic here. */
#include "parts.h"

typedef struct {
    int (*exec)(PyObject *module);
    PyMethodDef *methods;
} pylu_part;

static const pylu_part parts[] = {
    {pylu_recorder_exec, pylu_recorder_methods},
    {pylu_reader_exec, pylu_reader_methods},
    {pylu_engine_exec, pylu_engine_methods},
    {pylu_dispatch_exec, pylu_dispatch_methods},
    {pylu_calltree_exec, pylu_calltree_methods},
};

static int
engine_module_exec(PyObject *module)
{
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (parts[i].methods && PyModule_AddFunctions(module, parts[i].methods) < 0) {
            return -1;
        }
        if (parts[i].exec(module) < 0) {
            return -1;
        }
    }
    return 0;
}

static PyModuleDef_Slot engine_slots[] = {
    {Py_mod_exec, engine_module_exec},
    /* The recorder and the engine are process-wide (threads, fork, one frame hook). */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#if PYLU_HAVE_MOD_GIL
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef engine_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyliveupdate._engine",
    .m_doc = "C core of pyliveupdate: event sources, recording rings, log reader.",
    .m_size = 0,
    .m_slots = engine_slots,
};

PyMODINIT_FUNC
PyInit__engine(void)
{
    return PyModuleDef_Init(&engine_module);
}
