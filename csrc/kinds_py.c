/* kinds_py.c — exports kinds.h to Python, for both extension modules (parts.h). */
#include "kinds_py.h"

#include "kinds.h"
#include "logformat.h"

int
pylu_kinds_exec(PyObject *module)
{
    static const struct { const char *name; long value; } kinds[] = {
        {"EV_CALL", PYLU_EV_CALL}, {"EV_RESUME", PYLU_EV_RESUME},
        {"EV_RETURN", PYLU_EV_RETURN}, {"EV_YIELD", PYLU_EV_YIELD},
        {"EV_UNWIND", PYLU_EV_UNWIND}, {"EV_LINE", PYLU_EV_LINE},
        {"EV_LINE_MARK", PYLU_EV_LINE_MARK},
        {"TEXT_DEBUG", PYLU_TEXT_DEBUG}, {"TEXT_HANDLER", PYLU_TEXT_HANDLER},
        {"TEXT_ENGINE", PYLU_TEXT_ENGINE},
        {"LOG_FORMAT_VERSION", PYLU_LOG_VERSION},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (PyModule_AddIntConstant(module, kinds[i].name, kinds[i].value) < 0) {
            return -1;
        }
    }
    return 0;
}
