/* record.h — the producer side of the recording path: what the engine calls.
 *
 * Contract (owned by the recorder; the engine only calls these):
 *   - pylu_record() is called from sys.monitoring callbacks and the frame hook,
 *     on the thread that runs the code, with the GIL held. It never blocks, never
 *     allocates after the thread's first event, never touches a Python object,
 *     and never fails: when the thread's ring is full the record is dropped and
 *     counted (reported in the log and by recorder_stats()). When the recorder is
 *     not running it returns at once.
 *   - pylu_record_code() is called once per code id, with the GIL held, before the
 *     first pylu_record() with that id. It copies the strings. Codes described while
 *     the recorder is stopped are kept and written when a log starts (and in a forked
 *     child's log).
 *
 * Hot path: one relaxed load of the session id, one initial-exec TLS load, a ck_ring
 * reserve, the clock read, three stores and the commit (a compiler barrier on x86-64);
 * every 1024th record (a quarter of a small ring) a cold check of the ring's fill.
 */
#ifndef PYLU_RECORD_H
#define PYLU_RECORD_H

#include <stdint.h>
#include <stddef.h>

#include "clock.h"
#include "ring.h"

typedef enum {
    PYLU_EV_CALL = 1,      /* function frame starts (PY_START, frame hook entry) */
    PYLU_EV_RESUME = 2,    /* generator/coroutine resumes: a new slice begins */
    PYLU_EV_RETURN = 3,    /* function ends normally */
    PYLU_EV_YIELD = 4,     /* generator/coroutine suspends: the slice ends */
    PYLU_EV_UNWIND = 5,    /* function ends by an exception */
    PYLU_EV_LINE = 6,      /* a profiled line starts; ends the frame's previous line slice */
    PYLU_EV_LINE_MARK = 7, /* an unprofiled line starts: only ends the previous slice */
} pylu_event_kind;

/* One timing event for the calling thread; `have_ticks` selects a clock reading the
 * caller took earlier (constant at every call site, so the branch folds away). */
static inline void
_pylu_record(pylu_event_kind kind, uint32_t code_id, uint32_t line, int have_ticks,
             uint64_t ticks)
{
    uint32_t session = atomic_load_explicit(&pylu_session, memory_order_relaxed);
    struct pylu_ring *r = pylu_tls.ring;
    /* session 0 means "not recording"; a thread that never attached has tls.session 0
     * and no ring, so both must be checked before the ring is touched. */
    if (__builtin_expect(pylu_tls.session != session || r == NULL, 0)) {
        if (session == 0 || (r = pylu_ring_attach_slow()) == NULL) {
            return;
        }
    }
    PYLU_TSAN_ACQUIRE(&r->ring.c_head);
    struct pylu_rec *slot = ck_ring_enqueue_reserve_spsc_pylu_rec(&r->ring, r->buf);
    if (__builtin_expect(slot == NULL, 0)) {
        atomic_store_explicit(&r->dropped,
                              atomic_load_explicit(&r->dropped, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        return;
    }
    slot->ticks = have_ticks ? ticks : pylu_clock_ticks();
    slot->code_id = code_id;
    slot->kind_line = ((line > PYLU_REC_LINE_MAX ? PYLU_REC_LINE_MAX : line) << 4)
                      | ((uint32_t)kind & 0xFu);
    PYLU_TSAN_RELEASE(&r->ring.p_tail);
    ck_ring_enqueue_commit_spsc(&r->ring);
    if (__builtin_expect((r->ring.p_tail & r->wake_mask) == 0, 0)) {
        pylu_ring_check_fill(r);
    }
}

/* Record one timing event for the calling thread. */
static inline void
pylu_record(pylu_event_kind kind, uint32_t code_id, uint32_t line)
{
    _pylu_record(kind, code_id, line, 0, 0);
}

/* The same with a clock reading (pylu_clock_ticks()) taken earlier: for a producer that
 * learns only afterwards whether an event happened (the frame hook's entry record). */
static inline void
pylu_record_at(pylu_event_kind kind, uint32_t code_id, uint32_t line, uint64_t ticks)
{
    _pylu_record(kind, code_id, line, 1, ticks);
}

/* Describe a code id for the log (qualified name, file, first line, module).
 * Returns 0, or -1 when out of memory (the code then shows as unknown). */
int pylu_record_code(uint32_t code_id, const char *qualname, const char *filename,
                     uint32_t firstlineno, const char *module);

#endif
