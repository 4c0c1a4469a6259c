/* flusher.h — the log session: the native thread that drains the rings into the log.
 *
 * The flusher never calls the Python C API and never needs the GIL. It drains all rings
 * before the fullest is 3/8 full at its pace, and at least every frame_ms (a ring that
 * would fill so before flush_ms is asked to grow; a ring past half full wakes it early).
 * It feeds the live aggregates (live.h; only once someone asked for them, catchup.h), packs
 * and compresses the records (encoder.h), and every frame_ms (or 4 MiB) ends the zstd
 * frame and writes it, so a killed process leaves a log readable up to its last frame. A
 * failed write (disk full, file size limit) stops recording with a report: the error in
 * pylu_flusher_stats() and one stderr line. No Python.h (tests/c runs it).
 */
#ifndef PYLU_FLUSHER_H
#define PYLU_FLUSHER_H

#include <stddef.h>
#include <stdint.h>

struct pylu_flusher_config {
    const char *directory;  /* the log goes to <directory>/pylu-<pid>-<unix ns>[.<n>].pylog */
    uint32_t ring_slots;    /* power of two, 4 .. 2^24 */
    int level;              /* zstd level (negative = faster) */
    int flush_ms;           /* shortest drain period rings are sized for */
    int frame_ms;           /* longest time between the first byte of a frame and its end */
    const char *argv;       /* NUL-separated, for the header; may be NULL */
    size_t argv_len;
    uint64_t budget_bytes;  /* the directory's logs may take this much (0: its default) */
    uint64_t segment_bytes; /* a segment ends past this size (0: from the budget) */
};

struct pylu_stats {
    int active;             /* producers are recording */
    int running;            /* a session exists (maybe failed, not yet stopped) */
    char path[4096];        /* the segment being written */
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
    uint64_t dozes;           /* times the flusher slept for want of work */
    uint64_t ring_bytes;      /* ring segments mapped now, and at most in this session */
    uint64_t ring_bytes_peak;
    uint64_t ring_trims;      /* idle rings whose pages were given back */
    uint64_t segments;        /* segment files of this log so far */
    uint64_t budget_bytes;    /* the log directory's budget */
    uint64_t deleted_segments;  /* old segments the budget deleted (any process's) */
    uint64_t deleted_bytes;
    int live;                 /* live aggregates: PYLU_LIVE_OFF until someone asks, ... */
    uint64_t live_missed_segments;   /* segments deleted before the catch-up read them */
    char error[4608];       /* empty, or why recording stopped */
};

enum {
    PYLU_LIVE_OFF = 0,         /* not fed: nobody asked for them in this session */
    PYLU_LIVE_CATCHING_UP = 1, /* reading the log written so far back into them */
    PYLU_LIVE_ON = 2,          /* fed with every record since the session began */
    PYLU_LIVE_PARTIAL = 3,     /* fed from now on; the log could not be read back */
};

/* Start a session. Returns 0 and the log path, or -1 and a message in err. */
int pylu_flusher_start(const struct pylu_flusher_config *cfg, char *path, size_t path_size,
                       char *err, size_t err_size);
/* Drain everything, write the END record, close the file, free the rings. -1: not running. */
int pylu_flusher_stop(void);
/* Drain now and end the current frame; returns after the frame is written. */
int pylu_flusher_flush(void);
/* Ask for the live aggregates (catchup.h) and wait, at most wait_ms, until they hold every
 * record drained so far (or the session ends). The state reached: PYLU_LIVE_*. */
int pylu_flusher_live(uint64_t wait_ms);
void pylu_flusher_stats(struct pylu_stats *out);

/* fork (ordered by recorder_fork.c): prepare takes the session lock, parent releases it;
 * child forgets the parent's session (the parent writes what its rings held) and keeps
 * its settings, so pylu_flusher_restart_in_child() can open a fresh log for the child
 * if the parent was recording (returns 1 if it did, 0 if not, -1 with err). */
void pylu_flusher_fork_prepare(void);
void pylu_flusher_fork_parent(void);
void pylu_flusher_fork_child(void);
int pylu_flusher_restart_in_child(char *path, size_t path_size, char *err, size_t err_size);

#endif
