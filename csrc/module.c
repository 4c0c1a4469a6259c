/* module.c — wires the parts of pyliveupdate._engine together; no logic here. */
#include "parts.h"

#include "dispatch.h"
#include "engine_py.h"
#include "handoff.h"
#include "kinds_py.h"
#include "recorder_py.h"

static const pylu_part parts[] = {
    {pylu_kinds_exec, NULL},
    {pylu_recorder_exec, pylu_recorder_methods},
    {pylu_engine_exec, pylu_engine_methods},
    {pylu_dispatch_exec, pylu_dispatch_methods},
    {pylu_handoff_exec, pylu_handoff_methods},
};

/* The offline reader moved to pyliveupdate._reader (docs/DESIGN.md, C section); these
 * names still resolve here, importing it on first use, for callers of the old place. */
static const char *const moved_to_reader[] = {"LogReader", "CallTreeBuilder", "LOG_EVENT_SIZE"};

static PyObject *
engine_getattr(PyObject *module, PyObject *name)
{
    PYLU_UNUSED(module);
    for (size_t i = 0; i < sizeof(moved_to_reader) / sizeof(moved_to_reader[0]); i++) {
        if (PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, moved_to_reader[i]) == 0) {
            PyObject *reader = PyImport_ImportModule("pyliveupdate._reader");
            if (reader == NULL) {
                return NULL;
            }
            PyObject *value = PyObject_GetAttr(reader, name);
            Py_DECREF(reader);
            return value;
        }
    }
    return PyErr_Format(PyExc_AttributeError, "module 'pyliveupdate._engine' has no attribute %R",
                        name);
}

static PyMethodDef engine_module_methods[] = {
    {"__getattr__", engine_getattr, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static int
engine_module_exec(PyObject *module)
{
    return pylu_parts_exec(module, parts, sizeof(parts) / sizeof(parts[0]));
}

static PyModuleDef_Slot engine_slots[] = {
    {Py_mod_exec, engine_module_exec},
    /* The recorder and the engine are process-wide (threads, fork, one frame hook). */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#if PYLU_HAVE_MOD_GIL
    /* Code states, dispatchers and the registry of armed codes are guarded by the GIL. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef engine_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyliveupdate._engine",
    .m_doc = "C core of pyliveupdate that every target loads: event sources, handler "
             "dispatch, recording rings and the log writer.",
    .m_size = 0,
    .m_methods = engine_module_methods,
    .m_slots = engine_slots,
};

PyMODINIT_FUNC
PyInit__engine(void)
{
    return PyModuleDef_Init(&engine_module);
}
