/* session.c — creating and ending a log session, and the helpers its thread shares;
 * see session.h. */
#define _GNU_SOURCE
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "catchup.h"
#include "clock.h"

pthread_mutex_t pylu_state_mutex = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t pylu_state_cond = PTHREAD_COND_INITIALIZER;
pylu_log_session *pylu_session_now = NULL;
struct pylu_stats pylu_stats_now;
int pylu_stop_requested;
uint64_t pylu_flush_requested, pylu_flush_done;
int pylu_live_requested;

void
pylu_session_fail(pylu_log_session *s, const char *why)
{
    /* Called by the flusher only. Producers stop; the program carries on. */
    pylu_registry_halt();
    s->failed = 1;
    pylu_encoder_discard(&s->enc);
    pthread_mutex_lock(&pylu_state_mutex);
    snprintf(pylu_stats_now.error, sizeof pylu_stats_now.error, "%s: %s", s->seg.path, why);
    pylu_stats_now.active = 0;
    pthread_mutex_unlock(&pylu_state_mutex);
    fprintf(stderr, "pyliveupdate: recording stopped: %s (events written=%llu, dropped=%llu)\n",
            pylu_stats_now.error, (unsigned long long)s->events,
            (unsigned long long)(s->dropped_freed + s->dropped_live));
}

/* An encoder call failed (rc < 0): stop with its reason. Returns rc. */
int
pylu_session_check(pylu_log_session *s, int rc)
{
    if (rc < 0 && !s->failed) {
        char why[512];
        pylu_encoder_error(&s->enc, why, sizeof why);
        pylu_session_fail(s, why);
    }
    return rc;
}

/* Copy the flusher's counters into the shared pylu_stats_now. */
void
pylu_session_publish(pylu_log_session *s)
{
    struct timespec cpu;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0) {
        s->cpu_ns = (uint64_t)cpu.tv_sec * 1000000000u + (uint64_t)cpu.tv_nsec;
    }
    pthread_mutex_lock(&pylu_state_mutex);
    pylu_stats_now.events = s->events;
    pylu_stats_now.lost_after_error = s->lost;
    pylu_stats_now.bytes_written = pylu_segments_bytes(&s->seg);
    pylu_stats_now.segments = s->seg.n + 1;
    pylu_stats_now.deleted_segments = s->seg.deleted_files;
    pylu_stats_now.deleted_bytes = s->seg.deleted_bytes;
    snprintf(pylu_stats_now.path, sizeof pylu_stats_now.path, "%s", s->seg.path);
    pylu_stats_now.frames = s->enc.frames;
    pylu_stats_now.threads = s->threads_seen;
    pylu_stats_now.dropped = s->dropped_freed + s->dropped_live;
    pylu_stats_now.flusher_cpu_ns = s->cpu_ns;
    pylu_stats_now.cycles = s->cycles;
    pylu_stats_now.max_cycle_ns = s->max_cycle_ns;
    pylu_stats_now.max_gap_ns = s->max_gap_ns;
    pylu_stats_now.dozes = s->dozes;
    pylu_stats_now.ring_trims = s->trims;
    pylu_stats_now.live = s->live_state;
    pylu_stats_now.live_missed_segments = s->live_missed_segments;
    pthread_mutex_unlock(&pylu_state_mutex);
}

/* Open a frame (with its calibration point) unless one is open. */
int
pylu_session_frame_open(pylu_log_session *s)
{
    if (s->failed || s->enc.frame_open) {
        return s->failed ? -1 : 0;
    }
    uint64_t ticks, mono;
    if (!s->first_calib_done) {
        ticks = s->start_ticks;
        mono = s->start_mono_ns;
        s->first_calib_done = 1;
    }
    else {
        pylu_clock_pair(&ticks, &mono);
    }
    /* The frame's records were committed since the drain before this one (its sleep may
     * have been long): frame_ms counts from there, so a killed process loses at most
     * frame_ms of records, and a frame spans no more, whatever the flusher's pace. */
    s->frame_started_ns = s->last_peek_ns ? s->last_peek_ns : s->start_mono_ns;
    return pylu_session_check(s, pylu_encoder_frame_open(&s->enc, ticks, mono - s->start_mono_ns));
}

int
pylu_session_frame_end(pylu_log_session *s)
{
    if (s->failed) {
        return -1;
    }
    return pylu_session_check(s, pylu_encoder_frame_end(&s->enc));
}

/* The log's time origin: the tick counter, the monotonic clock and the wall clock read
 * together. Readers place events in wall-clock time from this one point, so a preemption
 * between the reads would shift every event; keep the narrowest of a few tries. */
static void
start_clocks(pylu_log_session *s)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 5 && best > 20000; i++) {
        uint64_t ticks, mono, before = pylu_clock_realtime_ns();
        pylu_clock_pair(&ticks, &mono);
        uint64_t after = pylu_clock_realtime_ns();
        if (after - before < best) {
            best = after - before;
            s->start_ticks = ticks;
            s->start_mono_ns = mono;
            s->start_unix_ns = before + (after - before) / 2;
        }
    }
}

/* The session's per-thread state and the rings (every producer has stopped). */
void
pylu_session_free_threads(pylu_log_session *s)
{
    if (s->nthreads > 0) {
        pylu_live_lock();
        for (size_t i = 0; i < s->nthreads; i++) {
            pylu_live_thread_free(s->threads[i].live);
        }
        pylu_live_unlock();
    }
    free(s->threads);
    s->threads = NULL;
    s->nthreads = s->threads_cap = 0;
}

void
pylu_session_free(pylu_log_session *s)
{
    if (s == NULL) {
        return;
    }
    pylu_catchup_free(s);
    pylu_encoder_free(&s->enc);
    pylu_segments_close(&s->seg);
    pylu_buf_free(&s->meta);
    pylu_session_free_threads(s);
    free(s->directory);
    free(s->argv);
    free(s);
}

int
pylu_session_valid_config(const struct pylu_flusher_config *c, char *err, size_t err_size)
{
    if (c->directory == NULL || c->directory[0] == '\0') {
        snprintf(err, err_size, "no log directory given");
        return -1;
    }
    if (c->ring_slots < 4 || c->ring_slots > (1u << 24) || (c->ring_slots & (c->ring_slots - 1))) {
        snprintf(err, err_size, "ring_slots must be a power of two from 4 to 16777216, not %u",
                 c->ring_slots);
        return -1;
    }
    if (c->level < ZSTD_minCLevel() || c->level > ZSTD_maxCLevel()) {
        snprintf(err, err_size, "level must be from %d to %d, not %d", ZSTD_minCLevel(),
                 ZSTD_maxCLevel(), c->level);
        return -1;
    }
    if (c->flush_ms < 1 || c->flush_ms > 10000 || c->frame_ms < 1 || c->frame_ms > 60000) {
        snprintf(err, err_size, "flush_ms must be 1..10000 and frame_ms 1..60000 (got %d, %d)",
                 c->flush_ms, c->frame_ms);
        return -1;
    }
    return 0;
}

pylu_log_session *
pylu_session_new(const struct pylu_flusher_config *cfg, char *err, size_t err_size)
{
    pylu_log_session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->directory = strdup(cfg->directory);
    s->argv = cfg->argv_len ? malloc(cfg->argv_len) : NULL;
    if (s->directory == NULL || (cfg->argv_len && s->argv == NULL)) {
        snprintf(err, err_size, "out of memory");
        goto error;
    }
    if (cfg->argv_len) {
        memcpy(s->argv, cfg->argv, cfg->argv_len);
    }
    s->cfg.directory = s->directory;
    s->cfg.argv = s->argv;
    s->own_thread = UINT32_MAX;
    if (pylu_encoder_init(&s->enc, NULL, cfg->level, err, err_size) < 0) {
        goto error;
    }
    start_clocks(s);
    pylu_log_header h = {
        .pid = (uint32_t)getpid(), .start_unix_ns = s->start_unix_ns,
        .start_ticks = s->start_ticks, .ticks_per_sec = pylu_clock_ticks_per_sec(),
        .clock = (uint32_t)pylu_clock_kind_now(), .argv = s->argv, .argv_len = cfg->argv_len,
    };
    if (pylu_segments_open(&s->seg, cfg->directory, cfg->budget_bytes, cfg->segment_bytes, &h,
                           &s->enc, err, err_size) < 0) {
        goto error;
    }
    return s;
error:
    pylu_session_free(s);
    return NULL;
}

