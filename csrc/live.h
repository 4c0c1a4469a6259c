/* live.h — live aggregates kept by the flusher while it drains (recorder_live()).
 *
 * Per thread a shadow stack: CALL/RESUME push a slice, RETURN/YIELD/UNWIND pop it and add
 * to the code's hits, total and self time (self = total minus time in traced callees);
 * LINE opens a line slice in the top frame (closing the previous one), LINE_MARK only
 * closes. Times stay in ticks here; the snapshot converts. All calls with the live lock
 * held (pylu_live_lock), which the flusher takes per ring drained. No Python.h.
 */
#ifndef PYLU_LIVE_H
#define PYLU_LIVE_H

#include <stdint.h>

struct pylu_ring;

void pylu_live_lock(void);
void pylu_live_unlock(void);
static inline int pylu_live_enabled(void) { return 1; }
/* Aggregate ring records [head, tail) of one thread (the flusher, before consuming them). */
void pylu_live_feed(struct pylu_ring *ring, unsigned int head, unsigned int tail);
/* The thread is gone: drop its shadow stack (open slices are not counted). */
void pylu_live_forget_thread(struct pylu_ring *ring);

#endif
