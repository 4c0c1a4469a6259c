/* clock.h — the recorder's timestamp source, read on every event.
 *
 * Choice (made once by pylu_clock_init, written to the log header):
 *   PYLU_CLOCK_TSC        x86-64 rdtsc, only when /proc/cpuinfo lists both constant_tsc
 *                         and nonstop_tsc (invariant TSC: same rate on every core, never
 *                         stops). About 10 ns against about 24 ns for clock_gettime.
 *   PYLU_CLOCK_MONOTONIC  clock_gettime(CLOCK_MONOTONIC) in ns, everywhere else.
 * Ticks are converted to ns by the reader, from calibration points (tick, mono ns) that the
 * flusher writes into the log; the producer never converts.
 */
#ifndef PYLU_CLOCK_H
#define PYLU_CLOCK_H

#include <stdint.h>
#include <time.h>

typedef enum { PYLU_CLOCK_TSC = 1, PYLU_CLOCK_MONOTONIC = 2 } pylu_clock_kind;

/* Read-mostly: set by pylu_clock_init() before any ring exists. */
extern int pylu_clock_use_tsc;

/* Pick the clock and measure the tick rate (a ~2 ms busy calibration on the TSC).
 * PYLU_CLOCK=monotonic in the environment forces the fallback. Idempotent. */
void pylu_clock_init(void);
pylu_clock_kind pylu_clock_kind_now(void);
const char *pylu_clock_name(void);
/* Ticks per second measured at init (1e9 for the monotonic clock). */
double pylu_clock_ticks_per_sec(void);

static inline uint64_t
pylu_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The wall clock in ns (log names and the header's time origin). */
static inline uint64_t
pylu_clock_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Out of line so the hot path keeps no stack frame for the fallback's timespec. */
uint64_t pylu_clock_mono_ns_outline(void) __attribute__((noinline));

static inline uint64_t
pylu_clock_ticks(void)
{
#if defined(__x86_64__)
    if (__builtin_expect(pylu_clock_use_tsc, 1)) {
        return __builtin_ia32_rdtsc();
    }
#endif
    return pylu_clock_mono_ns_outline();
}

/* A calibration point: a tick count and the monotonic ns read as close together as
 * possible (the pair with the shortest bracketing window of three tries). */
void pylu_clock_pair(uint64_t *ticks, uint64_t *mono_ns);

#endif
