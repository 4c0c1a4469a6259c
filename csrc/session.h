/* session.h — one log session: its settings, files, encoder, per-thread drain state and
 * counters; and the state shared by the controlling side (flusher.c) and the flusher
 * thread (drain.c). No Python.h. */
#ifndef PYLU_SESSION_H
#define PYLU_SESSION_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bytebuf.h"
#include "encoder.h"
#include "flusher.h"
#include "live.h"
#include "ring.h"
#include "segments.h"

/* What the flusher keeps per producing thread (its ring is shared; this is not). */
typedef struct {
    struct pylu_ring *ring;
    pylu_enc_thread enc;
    pylu_live_thread *live;
    uint64_t dropped_reported;
    unsigned int idle_cycles;   /* cycles in a row that found its ring empty */
    /* this cycle's view */
    pylu_rec_span span;
    int orphaned;
} pylu_drained_thread;

typedef struct {
    pylu_segments seg;          /* the log's files; seg.path is the one being written */
    struct pylu_flusher_config cfg;
    char *directory;
    char *argv;
    uint64_t start_ticks;
    uint64_t start_mono_ns;
    uint64_t start_unix_ns;     /* wall clock at start_ticks: the header's time origin */
    pthread_t thread;
    pylu_encoder enc;
    uint32_t own_thread;        /* the flusher's thread index, for its own TEXT records */
    int first_calib_done;
    uint64_t frame_started_ns;  /* the oldest its records can be: the drain before its first */
    uint64_t last_peek_ns;      /* when the last finished drain looked at the rings */
    pylu_drained_thread *threads;   /* the flusher thread only */
    size_t nthreads, threads_cap;
    pylu_bytebuf meta;          /* metadata taken this cycle, before it is packed */
    int failed;                 /* discarding after a write failure */
    /* counters owned by the flusher, published to `stats` by publish() */
    uint64_t events, lost, frames, threads_seen, dropped_freed, dropped_live, cpu_ns, cycles;
    uint64_t max_cycle_ns, max_gap_ns, dozes, trims;
    int live_state;             /* PYLU_LIVE_*: records are fed to the live aggregates when ON/PARTIAL */
    int live_wanted;            /* someone asked for them: catch up (catchup.h) */
    struct pylu_catchup *catchup;
    uint64_t live_missed_segments;
    int busy;                   /* the last cycle found work (events, metadata, drops) */
    int more;                   /* a ring moved to its next segment: cycle again at once */
} pylu_log_session;

/* pylu_state_mutex guards the current session pointer, the requests to its thread and
 * pylu_stats_now; pylu_state_cond signals flush acknowledgements (and a stop). */
extern pthread_mutex_t pylu_state_mutex;
extern pthread_cond_t pylu_state_cond;
extern pylu_log_session *pylu_session_now;
extern struct pylu_stats pylu_stats_now;
extern int pylu_stop_requested;
extern uint64_t pylu_flush_requested, pylu_flush_done;
extern int pylu_live_requested;

/* A session with its own copies of the settings, its first segment created and its header
 * written; NULL with a message in err. */
pylu_log_session *pylu_session_new(const struct pylu_flusher_config *cfg, char *err,
                               size_t err_size);
void pylu_session_free(pylu_log_session *s);
/* Free the per-thread drain state (its live stacks) and the rings' list (producers gone). */
void pylu_session_free_threads(pylu_log_session *s);
/* Settings valid? -1 with a message. */
int pylu_session_valid_config(const struct pylu_flusher_config *c, char *err, size_t err_size);

/* ---- the flusher thread ---- */
/* Recording stops with this reason (in the stats and one stderr line); the program goes on. */
void pylu_session_fail(pylu_log_session *s, const char *why);
/* An encoder call returned rc: on failure stop with its reason. Returns rc. */
int pylu_session_check(pylu_log_session *s, int rc);
/* Copy the thread's counters into pylu_stats_now. */
void pylu_session_publish(pylu_log_session *s);
/* Open a frame (with its calibration point) unless one is open; -1 once failed. */
int pylu_session_frame_open(pylu_log_session *s);
int pylu_session_frame_end(pylu_log_session *s);

#endif
