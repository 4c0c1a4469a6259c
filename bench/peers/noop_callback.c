/* noop_callback.c — the floor: a sys.monitoring callback in C that does nothing.
 *
 * METH_FASTCALL, so the interpreter hands it the argument array without building a
 * tuple; it returns None (not DISABLE), so every event keeps firing. Whatever our
 * engine costs above a tool using this callback on the same events is our own work. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
noop(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    (void)args;
    (void)nargs;
    Py_RETURN_NONE;
}

static PyMethodDef noop_methods[] = {
    {"noop", (PyCFunction)(void (*)(void))noop, METH_FASTCALL, "Accept anything, do nothing."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef noop_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pylu_bench_noop",
    .m_doc = "A no-op C callable: the floor of sys.monitoring callback cost.",
    .m_size = 0,
    .m_methods = noop_methods,
};

PyMODINIT_FUNC
PyInit_pylu_bench_noop(void)
{
    return PyModuleDef_Init(&noop_module);
}
