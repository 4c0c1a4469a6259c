/* kinds.h — the event and text kinds: one definition for the producer (record.h), the log
 * format (logformat.h), the readers (reader.c, calltree.c) and Python, which reads them from
 * the modules (_engine.EV_CALL, _engine.TEXT_DEBUG, ...; see kinds_py.c). No Python.h. */
#ifndef PYLU_KINDS_H
#define PYLU_KINDS_H

/* Timing events (docs/DESIGN.md §1). 4 bits in the ring record, 3 in the log's tag. */
typedef enum {
    PYLU_EV_CALL = 1,      /* function frame starts (PY_START, frame hook entry) */
    PYLU_EV_RESUME = 2,    /* generator/coroutine resumes: a new slice begins */
    PYLU_EV_RETURN = 3,    /* function ends normally */
    PYLU_EV_YIELD = 4,     /* generator/coroutine suspends: the slice ends */
    PYLU_EV_UNWIND = 5,    /* function ends by an exception */
    PYLU_EV_LINE = 6,      /* a profiled line starts; ends the frame's previous line slice */
    PYLU_EV_LINE_MARK = 7, /* an unprofiled line starts: only ends the previous slice */
} pylu_event_kind;
#define PYLU_EV_FIRST PYLU_EV_CALL
#define PYLU_EV_LAST PYLU_EV_LINE_MARK

/* TEXT records (docs/DESIGN.md §2). */
typedef enum {
    PYLU_TEXT_DEBUG = 1,   /* debugger output: FD, LD, VD */
    PYLU_TEXT_HANDLER = 2, /* output of a user's handler */
    PYLU_TEXT_ENGINE = 3,  /* the engine reports (a handler switched off, drops, ...) */
} pylu_text_kind;
#define PYLU_TEXT_FIRST PYLU_TEXT_DEBUG
#define PYLU_TEXT_LAST PYLU_TEXT_ENGINE

#endif
