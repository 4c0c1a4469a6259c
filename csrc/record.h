/* record.h — the producer side of the recording path: what the engine calls.
 *
 * Contract (owned by the recorder; the engine only calls these):
 *   - pylu_record() is called from sys.monitoring callbacks and the frame hook,
 *     on the thread that runs the code, with the GIL held. It never blocks, never
 *     allocates after the thread's first event, never touches a Python object,
 *     and never fails: when the thread's ring is full the record is dropped and
 *     counted (reported in the log and by recorder_stats()).
 *   - pylu_record_code() is called once per code id, with the GIL held, before the
 *     first pylu_record() with that id. It copies the strings.
 *
 * PLACEHOLDER: the recorder part replaces the bodies below with the real rings.
 */
#ifndef PYLU_RECORD_H
#define PYLU_RECORD_H

#include <stdint.h>
#include <stddef.h>

typedef enum {
    PYLU_EV_CALL = 1,      /* function frame starts (PY_START, frame hook entry) */
    PYLU_EV_RESUME = 2,    /* generator/coroutine resumes: a new slice begins */
    PYLU_EV_RETURN = 3,    /* function ends normally */
    PYLU_EV_YIELD = 4,     /* generator/coroutine suspends: the slice ends */
    PYLU_EV_UNWIND = 5,    /* function ends by an exception */
    PYLU_EV_LINE = 6,      /* a profiled line starts; ends the frame's previous line slice */
    PYLU_EV_LINE_MARK = 7, /* an unprofiled line starts: only ends the previous slice */
} pylu_event_kind;

void pylu_record_placeholder(pylu_event_kind kind, uint32_t code_id, uint32_t line);

/* Record one timing event for the calling thread. */
static inline void
pylu_record(pylu_event_kind kind, uint32_t code_id, uint32_t line)
{
    pylu_record_placeholder(kind, code_id, line);
}

/* Describe a code id for the log (qualified name, file, first line, module). */
int pylu_record_code(uint32_t code_id, const char *qualname, const char *filename,
                     uint32_t firstlineno, const char *module);

#endif
