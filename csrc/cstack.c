/* cstack.c — the calling thread's C stack bounds and the frame hook's marks in them. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* pthread_getattr_np */
#endif
#include "cstack.h"

#include <pthread.h>

__thread pylu_cstack_marks pylu_cstack __attribute__((tls_model("initial-exec"))) = {
    .check_below = UINTPTR_MAX, .low_below = 0, .size = 0, .measured = 0,
};

/* The hook checks the recursion limit once a thread has used this much stack (or a
 * quarter of it): shallow calls never pay for the check. */
#define CHECK_AFTER_BYTES ((size_t)256 * 1024)
/* The hook gives way when less than this (or half the stack) is left: what remains is
 * for the C code the program runs from there on, as it would have without a hook. */
#define KEEP_FREE_BYTES ((size_t)128 * 1024)

void
pylu_cstack_measure(void)
{
    pylu_cstack_marks m = {.check_below = UINTPTR_MAX, .low_below = UINTPTR_MAX, .measured = 1};
    pthread_attr_t attr;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &addr, &size) != 0) {
            size = 0;
        }
        pthread_attr_destroy(&attr);
    }
    uintptr_t lo = (uintptr_t)addr, top = lo + size;
    uintptr_t here = pylu_cstack_here();
    if (size > 0 && here > lo && here <= top) {
        size_t keep = size / 2 > KEEP_FREE_BYTES ? size / 2 : KEEP_FREE_BYTES;
        size_t check = size / 4 < CHECK_AFTER_BYTES ? size / 4 : CHECK_AFTER_BYTES;
        m.size = size;
        m.low_below = keep >= size ? top : lo + keep;
        m.check_below = top - check;
        if (m.check_below < m.low_below) {
            m.check_below = m.low_below;
        }
    }
    pylu_cstack = m;
}
