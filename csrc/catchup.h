/* catchup.h — live aggregates on demand.
 *
 * Feeding the live aggregates costs the flusher as much as packing the records, and only
 * FP.top() and LP.show() read them. So the flusher feeds them only once someone asked:
 * then it reads back the log it wrote so far (every segment still on disk), decodes its
 * frames and feeds their events to the live aggregates, a few milliseconds per cycle
 * between drains, until it meets the records it drains; at that moment it ends the open
 * frame, decodes it too and feeds every later record directly. The hand-over is exact:
 * one thread does both, at a frame boundary. Times read back from the log have the log's
 * resolution (a log tick, at most 8 ns); later ones the clock's. Segments the disk budget
 * deleted before the catch-up read them are counted, not guessed. No Python.h.
 */
#ifndef PYLU_CATCHUP_H
#define PYLU_CATCHUP_H

#include <stdint.h>

#include "session.h"

enum {
    PYLU_CATCHUP_MORE = 0,   /* call again after the next drain */
    PYLU_CATCHUP_DONE = 1,   /* everything drained so far is fed: feed live from now on */
    PYLU_CATCHUP_FAILED = -1 /* the log could not be read back (reason in the stats) */
};

/* One step of at most budget_ns of work, on the flusher thread. */
int pylu_catchup_step(pylu_log_session *s, uint64_t budget_ns);
/* A thread ended while its log is being read back: the catch-up keeps its shadow stack
 * (the records still to read continue it) and frees it at the end. */
void pylu_catchup_keep_stack(pylu_log_session *s, uint32_t thread, pylu_live_thread *stack);
/* Free the catch-up's state (its own shadow stacks of threads that ended meanwhile). */
void pylu_catchup_free(pylu_log_session *s);

#endif
