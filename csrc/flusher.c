/* flusher.c — starting, stopping, flushing a log session and reading its counters; fork.
 * The session is session.c, its thread drain.c; see flusher.h. */
#define _GNU_SOURCE
#include "flusher.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "drain.h"
#include "live.h"
#include "metadata.h"
#include "ring.h"
#include "session.h"

static struct pylu_flusher_config child_cfg;  /* the parent's settings, seen by a child */
static int child_should_restart;
static char *saved_directory, *saved_argv;
static size_t saved_argv_len;

int
pylu_flusher_start(const struct pylu_flusher_config *cfg, char *path, size_t path_size,
                   char *err, size_t err_size)
{
    if (pylu_session_valid_config(cfg, err, err_size) < 0) {
        return -1;
    }
    pthread_mutex_lock(&pylu_state_mutex);
    int busy = pylu_session_now != NULL;
    /* A session that stopped on an error (disk full, log removed) is over: finish it off
       so recording can start again, rather than refusing as "already running". */
    int stopped_on_error = busy && !pylu_stats_now.active && !pylu_stop_requested;
    pthread_mutex_unlock(&pylu_state_mutex);
    if (stopped_on_error) {
        pylu_flusher_stop();
        pthread_mutex_lock(&pylu_state_mutex);
        busy = pylu_session_now != NULL;
        pthread_mutex_unlock(&pylu_state_mutex);
    }
    if (busy) {
        snprintf(err, err_size, "the recorder is already running");
        return -1;
    }
    pylu_clock_init();
    pylu_log_session *s = pylu_session_new(cfg, err, err_size);
    if (s == NULL) {
        return -1;
    }
    pylu_metadata_session_begin();
    pylu_live_reset(NULL, 0);

    pthread_mutex_lock(&pylu_state_mutex);
    memset(&pylu_stats_now, 0, sizeof pylu_stats_now);
    snprintf(pylu_stats_now.path, sizeof pylu_stats_now.path, "%s", s->seg.path);
    pylu_stats_now.budget_bytes = s->seg.budget;
    pylu_stats_now.segments = 1;
    pylu_stats_now.clock = pylu_clock_name();
    pylu_stop_requested = 0;
    pylu_flush_requested = pylu_flush_done = 0;
    pylu_live_requested = 0;
    pylu_session_now = s;
    pylu_stats_now.active = 1;
    pylu_stats_now.running = 1;
    pthread_mutex_unlock(&pylu_state_mutex);
    pylu_registry_begin(cfg->ring_slots);
    /* The thread starts with every signal blocked: they are the program's (Python handles
     * them in its main thread), and none should cut the flusher's sleeps short. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, pylu_drain_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pylu_registry_halt();
        pylu_registry_free_all();
        pthread_mutex_lock(&pylu_state_mutex);
        pylu_session_now = NULL;
        pylu_stats_now.active = pylu_stats_now.running = 0;
        pthread_mutex_unlock(&pylu_state_mutex);
        snprintf(err, err_size, "cannot start the flusher thread: %s", strerror(rc));
        unlink(s->seg.path);
        pylu_session_free(s);
        return -1;
    }
    snprintf(path, path_size, "%s", s->seg.path);
    return 0;
}

int
pylu_flusher_stop(void)
{
    pthread_mutex_lock(&pylu_state_mutex);
    pylu_log_session *s = pylu_session_now;
    if (s == NULL || pylu_stop_requested) {
        pthread_mutex_unlock(&pylu_state_mutex);
        return -1;
    }
    pylu_stop_requested = 1;
    pthread_cond_broadcast(&pylu_state_cond);   /* flushes waiting now return */
    pthread_mutex_unlock(&pylu_state_mutex);
    pylu_registry_wake();
    /* No producer is inside pylu_record after this (they hold the GIL, and so does our
     * caller); the final cycle sees every committed record. */
    pylu_registry_halt();
    pthread_join(s->thread, NULL);
    pylu_session_free_threads(s);
    pylu_registry_free_all();
    pthread_mutex_lock(&pylu_state_mutex);
    pylu_session_now = NULL;
    pylu_stats_now.active = 0;
    pylu_stats_now.running = 0;
    pylu_stats_now.dropped += pylu_registry_alloc_failures();
    pthread_mutex_unlock(&pylu_state_mutex);
    pylu_session_free(s);
    return 0;
}

int
pylu_flusher_flush(void)
{
    pthread_mutex_lock(&pylu_state_mutex);
    if (pylu_session_now == NULL || pylu_stop_requested) {
        pthread_mutex_unlock(&pylu_state_mutex);
        return -1;
    }
    uint64_t ticket = ++pylu_flush_requested;
    pylu_registry_wake();
    while (pylu_flush_done < ticket && pylu_session_now != NULL && !pylu_stop_requested) {
        pthread_cond_wait(&pylu_state_cond, &pylu_state_mutex);
    }
    pthread_mutex_unlock(&pylu_state_mutex);
    return 0;
}

int
pylu_flusher_live(uint64_t wait_ms)
{
    uint64_t deadline = pylu_clock_realtime_ns() + wait_ms * 1000000u;   /* the cond's clock */
    struct timespec until = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
    pthread_mutex_lock(&pylu_state_mutex);
    if (pylu_session_now != NULL && !pylu_stop_requested && !pylu_live_requested) {
        pylu_live_requested = 1;
        pylu_registry_wake();
    }
    while (pylu_session_now != NULL && !pylu_stop_requested &&
           pylu_stats_now.live < PYLU_LIVE_ON && pylu_stats_now.active) {
        if (pthread_cond_timedwait(&pylu_state_cond, &pylu_state_mutex, &until) != 0) {
            break;   /* still catching up: the caller shows what is counted so far */
        }
    }
    int state = pylu_stats_now.live;
    pthread_mutex_unlock(&pylu_state_mutex);
    return state;
}

void
pylu_flusher_stats(struct pylu_stats *out)
{
    pthread_mutex_lock(&pylu_state_mutex);
    *out = pylu_stats_now;
    if (pylu_stats_now.clock == NULL) {
        out->clock = pylu_clock_name();
    }
    if (pylu_session_now != NULL) {
        out->dropped += pylu_registry_alloc_failures();
    }
    pthread_mutex_unlock(&pylu_state_mutex);
    pylu_metadata_counts(&out->codes, &out->texts);
    pylu_registry_memory(&out->ring_bytes, &out->ring_bytes_peak);
}

/* ------------------------------------------------------------------ fork */

void pylu_flusher_fork_prepare(void) { pthread_mutex_lock(&pylu_state_mutex); }
void pylu_flusher_fork_parent(void) { pthread_mutex_unlock(&pylu_state_mutex); }

/* Keep the parent's settings for pylu_flusher_restart_in_child(). */
static void
save_settings_for_child(const pylu_log_session *s)
{
    free(saved_directory);
    free(saved_argv);
    child_cfg = s->cfg;
    saved_directory = strdup(s->directory);
    saved_argv = s->cfg.argv_len ? malloc(s->cfg.argv_len) : NULL;
    saved_argv_len = saved_argv ? s->cfg.argv_len : 0;
    if (saved_argv) {
        memcpy(saved_argv, s->cfg.argv, saved_argv_len);
    }
    child_cfg.directory = saved_directory;
    child_cfg.argv = saved_argv;
    child_cfg.argv_len = saved_argv_len;
    child_should_restart = saved_directory != NULL;
}

void
pylu_flusher_fork_child(void)
{
    /* The flusher thread does not exist here; its session memory is a copy we drop (the
     * rings it points to were dropped by the registry's child handler). */
    pylu_log_session *s = pylu_session_now;
    child_should_restart = 0;
    if (s != NULL && !pylu_stop_requested && !s->failed) {
        save_settings_for_child(s);
    }
    if (s != NULL) {
        s->thread = 0;
        for (size_t i = 0; i < s->nthreads; i++) {
            pylu_live_thread_free(s->threads[i].live);   /* alone here: no lock needed */
        }
        s->nthreads = 0;
        pylu_session_free(s);         /* closes our copy of the fd; the parent's stays open */
    }
    pylu_session_now = NULL;
    pylu_stop_requested = 0;
    memset(&pylu_stats_now, 0, sizeof pylu_stats_now);
    pthread_mutex_unlock(&pylu_state_mutex);
    /* Condition variables may have had waiters (threads that do not exist here). */
    pthread_cond_init(&pylu_state_cond, NULL);
}

int
pylu_flusher_restart_in_child(char *path, size_t path_size, char *err, size_t err_size)
{
    if (!child_should_restart) {
        return 0;
    }
    child_should_restart = 0;
    if (pylu_flusher_start(&child_cfg, path, path_size, err, err_size) < 0) {
        return -1;
    }
    return 1;
}
