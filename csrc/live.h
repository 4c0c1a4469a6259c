/* live.h — live aggregates kept by the flusher while it drains (recorder_live()).
 *
 * Per thread a shadow stack: CALL/RESUME push a slice, RETURN/YIELD/UNWIND pop it and add
 * to the code's hits, total and self time (self = total minus time in traced callees);
 * LINE opens a line slice in the top frame (closing the previous one), LINE_MARK only
 * closes. Times stay in ticks here; the snapshot converts. Feeding and forgetting run
 * with the live lock held (pylu_live_lock), which the flusher takes per ring drained;
 * snapshot and reset take it themselves. No Python.h.
 */
#ifndef PYLU_LIVE_H
#define PYLU_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "ring.h"

/* One thread's shadow stack, owned by whoever drains that thread's ring. */
typedef struct pylu_live_thread pylu_live_thread;

void pylu_live_lock(void);
void pylu_live_unlock(void);
/* Aggregate one thread's records (*st is created on first use; stays NULL without memory). */
void pylu_live_feed(pylu_live_thread **st, const pylu_rec_span *span);
/* The thread is gone: drop its shadow stack (open slices are not counted). */
void pylu_live_thread_free(pylu_live_thread *st);

/* Snapshot (times in ns). Callbacks run after the lock is released; a non-zero return
 * stops the walk and is returned (-2: out of memory copying). */
typedef int (*pylu_live_func_fn)(void *ctx, uint32_t code, uint64_t hits, double total_ns,
                                 double self_ns);
typedef int (*pylu_live_line_fn)(void *ctx, uint32_t code, uint32_t line, uint64_t hits,
                                 double total_ns);
int pylu_live_snapshot(void *ctx, pylu_live_func_fn on_func, pylu_live_line_fn on_line);
/* Forget aggregates of these codes (all when codes is NULL). */
int pylu_live_reset(const uint32_t *codes, size_t n);

#endif
