/* codestate.h — what the engine knows about one code object, kept in its co_extra.
 *
 * Every code object the engine has looked at gets one pylu_codestate, stored with
 * PyUnstable_Code_SetExtra under our own index and freed by CPython together with
 * the code.  Armed codes are also held (strong refs) by identity, so their ids
 * and states stay valid while events can fire.  All access happens with the GIL. */
#ifndef PYLU_CODESTATE_H
#define PYLU_CODESTATE_H

#include "compat.h"
#include "record.h"

/* flags: which event points the code wants */
enum {
    PYLU_CS_FUNC_RECORDS = 1u << 0, /* monitoring: CALL/RESUME/RETURN/YIELD/UNWIND records */
    PYLU_CS_HOOK_RECORDS = 1u << 1, /* frame hook: the same records, from the PEP 523 hook */
    PYLU_CS_PY_START = 1u << 2,     /* Python dispatch at PY_START */
    PYLU_CS_PY_EXIT = 1u << 3,      /* Python dispatch at PY_RETURN / PY_UNWIND */
    PYLU_CS_PY_YIELD = 1u << 4,     /* Python dispatch at PY_YIELD (closes pending "after") */
    PYLU_CS_LINES = 1u << 5,        /* some line has PYLU_LINE_* bits */
    PYLU_CS_ARMED = 1u << 6,        /* in the armed set (pylu_armed_add) */
    PYLU_CS_GENERATOR = 1u << 7,    /* generator, coroutine or async generator code */
};

/* per-line bits */
enum {
    PYLU_LINE_TIME = 1u << 0,     /* record LINE */
    PYLU_LINE_MARK = 1u << 1,     /* record LINE_MARK (closes the previous line slice) */
    PYLU_LINE_DISPATCH = 1u << 2, /* call the Python dispatch */
};

/* The number of event kinds in record.h, plus one (kinds start at 1). */
#define PYLU_EV_SLOTS 8

typedef struct pylu_codestate {
    uint32_t id;          /* compact code id; 0 until first armed */
    uint32_t flags;       /* PYLU_CS_* */
    uint32_t seen_gen;    /* matcher generation at which this code was last decided */
    int32_t line_base;    /* first line covered by line_bits */
    uint32_t line_span;   /* number of lines covered */
    uint8_t *line_bits;   /* PYLU_LINE_* per line, or NULL */
    uint64_t *line_hits;  /* debug counts per line (allocated with line_bits) */
    uint64_t hits[PYLU_EV_SLOTS]; /* debug counts per event kind */
    PyObject *dispatch;   /* strong: Python dispatcher, or NULL */
    PyObject *raw_code;   /* strong: co_code bytes (frame hook reads opcodes at lasti) */
    int32_t gen_start;    /* offset of RETURN_GENERATOR, or -1 */
} pylu_codestate;

/* Claim the co_extra index (once, lazily). */
int pylu_codestate_init(void);

/* One-entry cache of the last lookup: hot loops and recursion hit the same code over
 * and over.  Cleared when that state is freed (GIL held throughout). */
extern PyObject *pylu_codestate_last_code;
extern pylu_codestate *pylu_codestate_last;

/* pylu_codestate_peek past the cache: co_extra, then the cache updated. */
pylu_codestate *pylu_codestate_peek_slow(PyObject *code) __attribute__((noinline));

/* The state of `code`, or NULL if none (never fails, never raises). */
static inline pylu_codestate *
pylu_codestate_peek(PyObject *code)
{
    if (PYLU_LIKELY(code == pylu_codestate_last_code)) {
        return pylu_codestate_last;
    }
    return pylu_codestate_peek_slow(code);
}

/* The state of `code`, created if missing.  NULL with an exception on failure. */
pylu_codestate *pylu_codestate_get(PyObject *code);

/* Give the state an id and describe it to the recorder, once. */
int pylu_codestate_assign_id(pylu_codestate *st, PyObject *code, const char *module,
                             const char *qualname);

/* Replace the per-line bits.  `lines` maps line -> PYLU_LINE_* bits (dict or NULL). */
int pylu_codestate_set_lines(pylu_codestate *st, PyObject *lines);

static inline uint8_t
pylu_codestate_line_bits(const pylu_codestate *st, long line)
{
    long rel = line - st->line_base;
    if (st->line_bits == NULL || rel < 0 || (unsigned long)rel >= st->line_span) {
        return 0;
    }
    return st->line_bits[rel];
}

/* Debug counting of emitted records (off by default; tests switch it on). */
extern int pylu_counting;

/* The frame hook's entry record waits until the frame is known to have run: a frame
 * that fails CPython's recursion check at entry never runs (cProfile does not count
 * it, and neither may we), and only the frame's exit tells.  The next record of the
 * thread, or the frame's exit, writes it first, with the time taken at entry; so at
 * most one entry per thread waits, and records stay in order. */
typedef struct {
    pylu_codestate *st; /* NULL: nothing waits */
    uint64_t ticks;
    uint32_t session;   /* the recording session the ticks belong to (0: none) */
    pylu_event_kind kind;
} pylu_deferred_entry;

extern __thread pylu_deferred_entry pylu_deferred __attribute__((tls_model("initial-exec")));

/* Write the waiting entry record (pylu_deferred.st != NULL). Cold: only frames entered
 * through the frame hook wait. */
void pylu_codestate_write_deferred(void) __attribute__((cold, noinline));

static inline void
pylu_codestate_defer(pylu_codestate *st, pylu_event_kind kind)
{
    if (pylu_deferred.st != NULL) {
        pylu_codestate_write_deferred();
    }
    pylu_deferred.st = st;
    pylu_deferred.kind = kind;
    pylu_deferred.session = atomic_load_explicit(&pylu_session, memory_order_relaxed);
    pylu_deferred.ticks = pylu_deferred.session != 0 ? pylu_clock_ticks() : 0;
}

/* pylu_codestate_emit when an entry waits or records are counted. */
void pylu_codestate_emit_slow(pylu_codestate *st, pylu_event_kind kind, uint32_t line)
    __attribute__((cold, noinline));

/* Record one event of `st` (a callback's whole work when it only times): inlined into
 * the callbacks, with everything unusual out of line, so that the common case is the
 * ring write alone and the callback needs no stack frame of its own for it. */
static inline __attribute__((always_inline)) void
pylu_codestate_emit(pylu_codestate *st, pylu_event_kind kind, uint32_t line)
{
    if (PYLU_UNLIKELY(pylu_deferred.st != NULL) || PYLU_UNLIKELY(pylu_counting)) {
        pylu_codestate_emit_slow(st, kind, line);
        return;
    }
    pylu_record(kind, st->id, line); /* returns at once while no log is open */
}

/* The armed codes, by identity (strong refs): add/remove keep PYLU_CS_ARMED in step. */
int pylu_armed_add(PyObject *code, pylu_codestate *st);
int pylu_armed_remove(PyObject *code, pylu_codestate *st);
PyObject *pylu_armed_codes(void); /* new list */
Py_ssize_t pylu_armed_count(void);

#endif
