/* reader_module.c — wires pyliveupdate._reader: the offline log reader and call-tree
 * builder, kept out of the runtime extension every target loads (docs/DESIGN.md, C). */
#include "parts.h"

#include "calltree_py.h"
#include "kinds_py.h"
#include "reader_py.h"

static const pylu_part parts[] = {
    {pylu_kinds_exec, NULL},
    {pylu_reader_exec, pylu_reader_methods},
    {pylu_calltree_exec, pylu_calltree_methods},
};

static int
reader_module_exec(PyObject *module)
{
    return pylu_parts_exec(module, parts, sizeof(parts) / sizeof(parts[0]));
}

static PyModuleDef_Slot reader_slots[] = {
    {Py_mod_exec, reader_module_exec},
    /* No process-wide state: types and interned names live in the module state. */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#if PYLU_HAVE_MOD_GIL
    /* A LogReader or CallTreeBuilder mutates itself on every call, unlocked. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static void
reader_module_free(void *module)
{
    pylu_reader_clear((PyObject *)module);
}

static struct PyModuleDef reader_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyliveupdate._reader",
    .m_doc = "Offline side of pyliveupdate's C core: LogReader decodes .pylog files, "
             "CallTreeBuilder aggregates their events.",
    .m_size = 0,   /* set from pylu_reader_state_size in PyInit__reader */
    .m_traverse = pylu_reader_traverse,
    .m_clear = pylu_reader_clear,
    .m_free = reader_module_free,
    .m_slots = reader_slots,
};

PyMODINIT_FUNC
PyInit__reader(void)
{
    reader_module.m_size = (Py_ssize_t)pylu_reader_state_size;
    return PyModuleDef_Init(&reader_module);
}
