/* clock.c — choose the timestamp source and measure its rate; see clock.h. */
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pylu_clock_use_tsc = 0;

uint64_t
pylu_clock_mono_ns_outline(void)
{
    return pylu_clock_mono_ns();
}
static int clock_ready = 0;
static double ticks_per_sec = 1e9;

static int
cpu_has_invariant_tsc(void)
{
#if defined(__x86_64__)
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL) {
        return 0;
    }
    char line[4096];
    int constant = 0, nonstop = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "flags", 5) != 0) {
            continue;
        }
        constant = strstr(line, " constant_tsc") != NULL;
        nonstop = strstr(line, " nonstop_tsc") != NULL;
        break; /* the first CPU speaks for all: the flags are per model */
    }
    fclose(f);
    return constant && nonstop;
#else
    return 0;
#endif
}

void
pylu_clock_pair(uint64_t *ticks, uint64_t *mono_ns)
{
    uint64_t best_window = UINT64_MAX;
    for (int i = 0; i < 3; i++) {
        uint64_t before = pylu_clock_mono_ns();
        uint64_t t = pylu_clock_ticks();
        uint64_t after = pylu_clock_mono_ns();
        if (after - before < best_window) {
            best_window = after - before;
            *ticks = t;
            *mono_ns = before + (after - before) / 2;
        }
    }
}

void
pylu_clock_init(void)
{
    if (clock_ready) {
        return;
    }
    const char *force = getenv("PYLU_CLOCK");
    int want_tsc = !(force != NULL && strcmp(force, "monotonic") == 0);
    pylu_clock_use_tsc = want_tsc && cpu_has_invariant_tsc();
    if (pylu_clock_use_tsc) {
        uint64_t t0, n0, t1, n1;
        pylu_clock_pair(&t0, &n0);
        do {
            pylu_clock_pair(&t1, &n1);
        } while (n1 - n0 < 2000000);
        ticks_per_sec = (double)(t1 - t0) * 1e9 / (double)(n1 - n0);
    }
    else {
        ticks_per_sec = 1e9;
    }
    clock_ready = 1;
}

pylu_clock_kind
pylu_clock_kind_now(void)
{
    return pylu_clock_use_tsc ? PYLU_CLOCK_TSC : PYLU_CLOCK_MONOTONIC;
}

const char *
pylu_clock_name(void)
{
    return pylu_clock_use_tsc ? "tsc" : "monotonic";
}

double
pylu_clock_ticks_per_sec(void)
{
    return ticks_per_sec;
}
