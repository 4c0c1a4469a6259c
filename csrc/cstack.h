/* cstack.h — where the calling thread's C stack ends, for the frame hook's guard.
 *
 * Under a PEP 523 hook every Python call recurses on the C stack, so a thread with a
 * small stack runs out long before the recursion limit (a 256 KiB thread segfaulted at
 * depth ~433 on 3.13).  The hook compares its stack pointer with two per-thread marks,
 * computed once per thread from the bounds pthread_getattr_np reports (the main
 * thread's come from its rlimit).  The stack grows down on every platform we build for. */
#ifndef PYLU_CSTACK_H
#define PYLU_CSTACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uintptr_t check_below; /* deeper than this: the slow path looks at limits */
    uintptr_t low_below;   /* deeper than this: too little stack is left for the hook */
    size_t size;           /* the thread's stack size; 0 while unknown or unreadable */
    int measured;
} pylu_cstack_marks;

/* Starts with check_below = UINTPTR_MAX, so a thread's first hook entry takes the slow
 * path, which measures. */
extern __thread pylu_cstack_marks pylu_cstack __attribute__((tls_model("initial-exec")));

/* Fill pylu_cstack for the calling thread.  When the bounds cannot be read the marks
 * say "always low": the hook then gives way at once rather than risk the stack. */
void pylu_cstack_measure(void) __attribute__((cold, noinline));

static inline uintptr_t
pylu_cstack_here(void)
{
    return (uintptr_t)__builtin_frame_address(0);
}

/* Past the thread's check mark?  (hot: one TLS load and a compare) */
static inline int
pylu_cstack_deep(void)
{
    return pylu_cstack_here() < pylu_cstack.check_below;
}

static inline int
pylu_cstack_low(void)
{
    return pylu_cstack_here() < pylu_cstack.low_below;
}

#endif
