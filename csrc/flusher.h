/* flusher.h — the native thread that drains the rings into the log, and the log session.
 *
 * The flusher never calls the Python C API and never needs the GIL. Every flush_ms it
 * drains all rings, packs records (logformat.h), and every frame_ms (or 4 MiB) compresses
 * the packed bytes into one checksummed zstd frame and write()s it, so a killed process
 * leaves a log readable up to its last frame. A failed write (disk full, file size limit)
 * stops recording with a report: the error in pylu_flusher_stats() and one stderr line.
 * No Python.h here (tests/c runs it standalone).
 */
#ifndef PYLU_FLUSHER_H
#define PYLU_FLUSHER_H

#include <stddef.h>
#include <stdint.h>

struct pylu_flusher_config {
    const char *directory;  /* the log goes to <directory>/pylu-<pid>-<unix ns>.pylog */
    uint32_t ring_slots;    /* power of two, 4 .. 2^24 */
    int level;              /* zstd level (negative = faster) */
    int flush_ms;           /* drain period */
    int frame_ms;           /* longest time between the first byte of a frame and its end */
    const char *argv;       /* NUL-separated, for the header; may be NULL */
    size_t argv_len;
};

struct pylu_stats {
    int active;             /* producers are recording */
    int running;            /* a session exists (maybe failed, not yet stopped) */
    char path[4096];
    const char *clock;
    uint64_t events;        /* records written to the log */
    uint64_t dropped;       /* records lost: full rings, ring allocation failures */
    uint64_t lost_after_error; /* records drained and discarded after a write failure */
    uint64_t bytes_written;
    uint64_t frames;
    uint64_t threads;
    uint64_t codes;
    uint64_t texts;
    uint64_t flusher_cpu_ns;  /* CPU time of the flusher thread: its cost, whatever the load */
    uint64_t cycles;          /* drain cycles run (wake-ups) */
    uint64_t max_cycle_ns;    /* longest cycle (drain, compress, write) */
    uint64_t max_gap_ns;      /* longest time from one cycle's start to the next: how long
                                 a ring had to hold what its thread produced */
    char error[4608];       /* empty, or why recording stopped */
};

/* Start a session. Returns 0 and the log path, or -1 and a message in err. */
int pylu_flusher_start(const struct pylu_flusher_config *cfg, char *path, size_t path_size,
                       char *err, size_t err_size);
/* Drain everything, write the END record, close the file, free the rings. -1: not running. */
int pylu_flusher_stop(void);
/* Drain now and end the current frame; returns after the frame is written. */
int pylu_flusher_flush(void);
void pylu_flusher_stats(struct pylu_stats *out);

/* Queue a TEXT record from the calling thread (dropped and counted when not recording). */
int pylu_flusher_text(int kind, const char *text, size_t len);

/* Live aggregates (times in ns). Callbacks run with the aggregate lock held: no re-entry. */
typedef int (*pylu_live_func_fn)(void *ctx, uint32_t code, uint64_t hits, double total_ns,
                                 double self_ns);
typedef int (*pylu_live_line_fn)(void *ctx, uint32_t code, uint32_t line, uint64_t hits,
                                 double total_ns);
int pylu_live_snapshot(void *ctx, pylu_live_func_fn on_func, pylu_live_line_fn on_line);
/* Forget aggregates of these codes (all when codes is NULL). */
int pylu_live_reset(const uint32_t *codes, size_t n);

/* Fork: installed once. In the child, the inherited session is discarded (the parent
 * writes what its rings held) and pylu_flusher_restart_in_child() opens a fresh log with
 * the parent's settings if the parent was recording (returns 1 if it did). */
void pylu_flusher_install_atfork(void);
int pylu_flusher_restart_in_child(char *path, size_t path_size, char *err, size_t err_size);

#endif
