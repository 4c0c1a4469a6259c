/* record.h — the producer side of the recording path: what the engine calls.
 *
 * Contract (owned by the recorder; the engine only calls these):
 *   - pylu_record() is called from sys.monitoring callbacks and the frame hook,
 *     on the thread that runs the code, with the GIL held. It never blocks, never
 *     allocates on its fast path (a ring that must grow maps a larger segment on the
 *     cold path), never touches a Python object, and never fails: when the thread's
 *     ring is full at its largest the record is dropped and counted (reported in the
 *     log and by recorder_stats()). When the recorder is not running it returns at once.
 *   - pylu_record_code() (metadata.h) is called once per code id, with the GIL held,
 *     before the first pylu_record() with that id. It copies the strings. Codes described
 *     while the recorder is stopped are kept and written when a log starts (and in a
 *     forked child's log).
 *
 * Hot path: one relaxed load of the session id, initial-exec TLS loads, a ck_ring
 * reserve, the clock read, three stores and the commit (a compiler barrier on x86-64);
 * every 1024th record (an eighth of a small segment) a cold check of the ring's fill.
 */
#ifndef PYLU_RECORD_H
#define PYLU_RECORD_H

#include <stdint.h>
#include <stddef.h>

#include "clock.h"
#include "kinds.h"
#include "metadata.h"   /* pylu_record_code, pylu_record_text: the rest of the contract */
#include "ring.h"

/* Record one timing event for the calling thread, stamped `ticks` (replays and benches;
 * the engine calls pylu_record). */
static inline void
pylu_record_at(pylu_event_kind kind, uint32_t code_id, uint32_t line, uint64_t ticks)
{
    uint32_t session = atomic_load_explicit(&pylu_session, memory_order_relaxed);
    struct pylu_seg *seg = pylu_tls.seg;
    /* Not recording (0), another session, a thread not yet attached, or a dozing flusher
     * (PYLU_SESSION_DOZE): all differ from the thread's own session id. */
    if (__builtin_expect(pylu_tls.session != session, 0)) {
        if ((seg = pylu_ring_enter_slow()) == NULL) {
            return;
        }
    }
    PYLU_TSAN_ACQUIRE(&seg->ring.c_head);
    struct pylu_rec *slot = ck_ring_enqueue_reserve_spsc_pylu_rec(&seg->ring, seg->buf);
    if (__builtin_expect(slot == NULL, 0)) {
        pylu_ring_dropped();
        return;
    }
    slot->ticks = ticks;
    slot->code_id = code_id;
    slot->kind_line = ((line > PYLU_REC_LINE_MAX ? PYLU_REC_LINE_MAX : line) << 4)
                      | ((uint32_t)kind & 0xFu);
    PYLU_TSAN_RELEASE(&seg->ring.p_tail);
    ck_ring_enqueue_commit_spsc(&seg->ring);
    if (__builtin_expect((seg->ring.p_tail & seg->check_mask) == 0, 0)) {
        pylu_ring_check_fill();
    }
}

/* Record one timing event for the calling thread, now. */
static inline void
pylu_record(pylu_event_kind kind, uint32_t code_id, uint32_t line)
{
    pylu_record_at(kind, code_id, line, pylu_clock_ticks());
}

#endif
