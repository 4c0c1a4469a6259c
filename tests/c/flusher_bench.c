/* flusher_bench.c — the flusher's cost per event on a recorded trace, without Python.
 *
 *   flusher_bench TRACE [RATE [LEVEL [REPEAT [live]]]]
 *
 * TRACE is raw ring records (struct pylu_rec, 16 bytes each) of one thread, as
 * bench/bench_recording.py --capture writes them from a real run. A producer thread
 * replays them into its ring at RATE events/s (default 10 M), the real flusher drains,
 * (zstd LEVEL, default 1; the trace REPEAT times, default as often as makes 2 M events)
 * encodes and writes them to a log in a temporary directory (with `live`, the live
 * aggregates are asked for first and fed too, as after FP.top()); the flusher's
 * CPU time per event is printed. Under `valgrind --tool=callgrind --separate-threads=yes`
 * the flusher thread's instruction count divided by the events is the figure that does
 * not change with the machine's load.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flusher.h"
#include "record.h"

static struct pylu_rec *trace;
static size_t trace_len;
static double rate = 10e6;
static size_t repeat = 1;

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *
replay(void *arg)
{
    (void)arg;
    uint64_t t0 = now_ns(), span = trace[trace_len - 1].ticks - trace[0].ticks + 1;
    for (size_t k = 0; k < repeat * trace_len; k++) {
        if ((k & 1023) == 0) {
            uint64_t due = t0 + (uint64_t)((double)k * 1e9 / rate);
            while (now_ns() < due) {
            }
        }
        const struct pylu_rec *r = &trace[k % trace_len];
        pylu_record_at((pylu_event_kind)(r->kind_line & 0xF), r->code_id, r->kind_line >> 4,
                       r->ticks + span * (k / trace_len));
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TRACE [RATE]\n", argv[0]);
        return 2;
    }
    if (argc > 2) {
        rate = atof(argv[2]);
    }
    int level = argc > 3 ? atoi(argv[3]) : 1;
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    trace_len = (size_t)ftell(f) / sizeof *trace;
    fseek(f, 0, SEEK_SET);
    trace = malloc(trace_len * sizeof *trace);
    if (trace == NULL || fread(trace, sizeof *trace, trace_len, f) != trace_len) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(f);
    repeat = argc > 4 ? (size_t)atol(argv[4]) : (2000000 + trace_len - 1) / trace_len;
    char dir[] = "/tmp/pylu-flusher-bench-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    for (uint32_t code = 0; code < 16; code++) {
        pylu_record_code(code, "f", "trace.py", 1, "trace");
    }
    struct pylu_flusher_config cfg = {.directory = dir, .ring_slots = 1u << 22, .level = level,
                                      .flush_ms = 10, .frame_ms = 100};
    char path[4096], err[4608];
    if (pylu_flusher_start(&cfg, path, sizeof path, err, sizeof err) < 0) {
        fprintf(stderr, "start: %s\n", err);
        return 1;
    }
    if (argc > 5 && strcmp(argv[5], "live") == 0 && pylu_flusher_live(60000) != PYLU_LIVE_ON) {
        fprintf(stderr, "live aggregates not on\n");
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, replay, NULL);
    pthread_join(t, NULL);
    pylu_flusher_stop();
    struct pylu_stats st;
    pylu_flusher_stats(&st);
    struct stat fs;
    stat(path, &fs);
    printf("events=%llu dropped=%llu flusher_ns_per_event=%.2f bytes_per_event=%.3f "
           "cycles=%llu\n", (unsigned long long)st.events, (unsigned long long)st.dropped,
           (double)st.flusher_cpu_ns / (double)st.events,
           (double)fs.st_size / (double)st.events, (unsigned long long)st.cycles);
    unlink(path);
    rmdir(dir);
    free(trace);
    return st.dropped == 0 && st.events == repeat * trace_len ? 0 : 1;
}
