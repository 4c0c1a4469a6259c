/* flusher.c — the log session and its thread: drain, aggregate, encode, write; see flusher.h. */
#define _GNU_SOURCE
#include "flusher.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "clock.h"
#include "encoder.h"
#include "live.h"
#include "logformat.h"
#include "metadata.h"
#include "ring.h"
#include "sink.h"

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
} drained_thread;

typedef struct {
    char path[4096];
    struct pylu_flusher_config cfg;
    char *directory;
    char *argv;
    uint64_t start_ticks;
    uint64_t start_mono_ns;
    uint64_t start_unix_ns;     /* wall clock at start_ticks: the header's time origin */
    pthread_t thread;
    struct pylu_sink *sink;
    pylu_encoder enc;
    int first_calib_done;
    uint64_t frame_started_ns;
    drained_thread *threads;    /* flusher only */
    size_t nthreads, threads_cap;
    pylu_bytebuf meta;          /* metadata taken this cycle, before it is packed */
    int failed;                 /* discarding after a write failure */
    /* counters owned by the flusher, published to `stats` by publish() */
    uint64_t events, lost, frames, threads_seen, dropped_freed, dropped_live, cpu_ns, cycles;
    uint64_t max_cycle_ns, max_gap_ns, dozes, trims;
    int busy;                   /* the last cycle found work (events, metadata, drops) */
    int more;                   /* a ring moved to its next segment: cycle again at once */
} session_t;

/* state_mutex guards the fields below and the request/ack counters. */
static pthread_mutex_t state_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t state_cond = PTHREAD_COND_INITIALIZER;  /* flush acknowledgements */
static session_t *session = NULL;
static int stop_requested;
static uint64_t flush_requested, flush_done;
static struct pylu_stats stats;
static struct pylu_flusher_config child_cfg;  /* the parent's settings, seen by a child */
static int child_should_restart;
static char *saved_directory, *saved_argv;
static size_t saved_argv_len;

static void
session_report_error(session_t *s, const char *why)
{
    /* Called by the flusher only. Producers stop; the program carries on. */
    pylu_registry_halt();
    s->failed = 1;
    pylu_encoder_discard(&s->enc);
    pthread_mutex_lock(&state_mutex);
    snprintf(stats.error, sizeof stats.error, "%s: %s", s->path, why);
    stats.active = 0;
    pthread_mutex_unlock(&state_mutex);
    fprintf(stderr, "pyliveupdate: recording stopped: %s (events written=%llu, dropped=%llu)\n",
            stats.error, (unsigned long long)s->events,
            (unsigned long long)(s->dropped_freed + s->dropped_live));
}

/* An encoder call failed (rc < 0): stop with its reason. Returns rc. */
static int
encoder_failed(session_t *s, int rc)
{
    if (rc < 0 && !s->failed) {
        char why[512];
        pylu_encoder_error(&s->enc, why, sizeof why);
        session_report_error(s, why);
    }
    return rc;
}

/* Copy the flusher's counters into the shared stats. */
static void
publish(session_t *s)
{
    struct timespec cpu;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0) {
        s->cpu_ns = (uint64_t)cpu.tv_sec * 1000000000u + (uint64_t)cpu.tv_nsec;
    }
    pthread_mutex_lock(&state_mutex);
    stats.events = s->events;
    stats.lost_after_error = s->lost;
    stats.bytes_written = s->sink->bytes;
    stats.frames = s->enc.frames;
    stats.threads = s->threads_seen;
    stats.dropped = s->dropped_freed + s->dropped_live;
    stats.flusher_cpu_ns = s->cpu_ns;
    stats.cycles = s->cycles;
    stats.max_cycle_ns = s->max_cycle_ns;
    stats.max_gap_ns = s->max_gap_ns;
    stats.dozes = s->dozes;
    stats.ring_trims = s->trims;
    pthread_mutex_unlock(&state_mutex);
}

/* Open a frame (with its calibration point) unless one is open. */
static int
frame_open(session_t *s)
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
    s->frame_started_ns = pylu_clock_mono_ns();
    return encoder_failed(s, pylu_encoder_frame_open(&s->enc, ticks, mono - s->start_mono_ns));
}

static int
frame_end(session_t *s)
{
    if (s->failed) {
        return -1;
    }
    return encoder_failed(s, pylu_encoder_frame_end(&s->enc));
}

/* ------------------------------------------------------------------ one drain cycle */

/* Registry callback: a thread's ring appeared; keep our state for it and announce it. */
static int
adopt_ring(void *ctx, struct pylu_ring *r)
{
    session_t *s = ctx;
    if (s->nthreads == s->threads_cap) {
        size_t cap = s->threads_cap ? s->threads_cap * 2 : 16;
        drained_thread *grown = realloc(s->threads, cap * sizeof *grown);
        if (grown == NULL) {
            return -1;
        }
        s->threads = grown;
        s->threads_cap = cap;
    }
    s->threads[s->nthreads++] = (drained_thread){.ring = r};
    s->threads_seen++;
    if (frame_open(s) == 0) {
        encoder_failed(s, pylu_encoder_thread(&s->enc, r->thread, r->os_tid, r->name,
                                              strnlen(r->name, sizeof r->name)));
    }
    return 0;
}

static void
forget_thread(session_t *s, size_t i)
{
    drained_thread *t = &s->threads[i];
    pylu_live_lock();
    pylu_live_thread_free(t->live);
    pylu_live_unlock();
    pylu_registry_lock();
    pylu_registry_unlink(t->ring);
    pylu_registry_unlock();
    s->dropped_freed += atomic_load_explicit(&t->ring->dropped, memory_order_relaxed);
    pylu_ring_free(t->ring);
    s->threads[i] = s->threads[--s->nthreads];
}

/* Records aggregated and encoded together: 32 KiB, read twice from the L1/L2 cache. */
#define DRAIN_CHUNK 2048u

/* Cycles an empty ring waits before its memory is given back (pylu_ring_trim). */
#define IDLE_CYCLES_BEFORE_TRIM 2

/* Drain one thread's span: live aggregates, then the log (or discard after a failure). */
static uint64_t
drain_thread(session_t *s, drained_thread *t)
{
    uint64_t n = (uint64_t)(unsigned int)(t->span.tail - t->span.head);
    if (n > 0) {
        /* In chunks that stay in the cache between the two passes over them. */
        pylu_live_lock();
        for (unsigned int at = t->span.head; at != t->span.tail;) {
            unsigned int len = t->span.tail - at < DRAIN_CHUNK ? t->span.tail - at : DRAIN_CHUNK;
            pylu_rec_span chunk = t->span;
            chunk.head = at;
            chunk.tail = at + len;
            pylu_live_feed(&t->live, &chunk);
            if (frame_open(s) == 0) {
                encoder_failed(s, pylu_encoder_events(&s->enc, &t->enc, t->ring->thread, &chunk));
            }
            at += len;
        }
        pylu_live_unlock();
    }
    pylu_ring_release(t->ring, &t->span);   /* also moves on from a finished segment */
    t->idle_cycles = n > 0 ? 0 : t->idle_cycles + 1;
    if (t->idle_cycles == IDLE_CYCLES_BEFORE_TRIM && pylu_ring_trim(t->ring) > 0) {
        s->trims++;
    }
    if (n > 0) {
        if (s->failed) {
            s->lost += n;
        }
        else {
            s->events += n;
        }
    }
    uint64_t d = atomic_load_explicit(&t->ring->dropped, memory_order_relaxed);
    if (d != t->dropped_reported && frame_open(s) == 0 &&
        encoder_failed(s, pylu_encoder_drop(&s->enc, t->ring->thread, d)) == 0) {
        t->dropped_reported = d;
        s->busy = 1;
    }
    if (!s->failed && n > 0) {
        if (pylu_encoder_frame_size(&s->enc) >= PYLU_FRAME_TARGET_BYTES) {
            frame_end(s);
        }
        else {
            encoder_failed(s, pylu_encoder_feed(&s->enc));
        }
    }
    return n;
}

/* One drain of every ring. Returns the largest fraction of a ring found filled, from
 * which the flusher paces itself (a fast producer must not overrun its ring). */
static double
cycle(session_t *s)
{
    double fill = 0;
    s->cycles++;
    s->busy = 0;
    s->more = 0;

    /* 1. Rings that appeared are adopted (THREAD records), then how far each is filled:
     *    orphaned is read before the tail, so a ring seen orphaned is drained to its end. */
    pylu_registry_lock();
    pylu_registry_adopt(adopt_ring, s);
    for (size_t i = 0; i < s->nthreads; i++) {
        drained_thread *t = &s->threads[i];
        t->orphaned = atomic_load_explicit(&t->ring->orphaned, memory_order_acquire);
        t->span = pylu_ring_peek(t->ring);
    }
    pylu_registry_unlock();

    /* 2. Metadata queued up to now covers every event seen above (codes are described
     *    before their first event). A text names its thread, whose ring registered before
     *    the text was queued: rings that appeared meanwhile are announced before the
     *    metadata is packed (their events wait for the next cycle). */
    s->meta.len = 0;
    if (pylu_metadata_take(s->failed ? NULL : &s->meta) < 0) {
        session_report_error(s, "out of memory");
    }
    pylu_registry_lock();
    pylu_registry_adopt(adopt_ring, s);
    pylu_registry_unlock();
    s->busy |= s->meta.len > 0;
    if (s->meta.len > 0 && frame_open(s) == 0 &&
        pylu_buf_append(pylu_encoder_pending(&s->enc), s->meta.data, s->meta.len) < 0) {
        session_report_error(s, "out of memory");
    }

    /* 3. Events, one ring at a time; a full frame is ended between rings. */
    uint64_t dropped_live = 0;
    for (size_t i = 0; i < s->nthreads;) {
        drained_thread *t = &s->threads[i];
        uint64_t n = drain_thread(s, t);
        if ((double)n / pylu_span_capacity(&t->span) > fill) {
            fill = (double)n / pylu_span_capacity(&t->span);
        }
        s->busy |= n > 0;
        s->more |= t->span.next != NULL;
        if (t->orphaned && t->span.next == NULL) {
            forget_thread(s, i);   /* drained to its end; the last one moves into slot i */
            continue;
        }
        dropped_live += atomic_load_explicit(&t->ring->dropped, memory_order_relaxed);
        i++;
    }
    s->dropped_live = dropped_live;
    publish(s);
    return fill;
}

/* ------------------------------------------------------------------ the thread */

/* Cycles without work before the flusher dozes (sleeps until a producer or a request
 * wakes it): an idle process pays no wake-ups and its log does not grow. */
#define IDLE_CYCLES_BEFORE_DOZE 3

/* Anything for the flusher to do: records, a finished segment, drops, new rings, metadata. */
static int
work_pending(session_t *s)
{
    pylu_registry_lock();
    int pending = !pylu_registry_all_adopted();
    for (size_t i = 0; i < s->nthreads && !pending; i++) {
        drained_thread *t = &s->threads[i];
        pylu_rec_span span = pylu_ring_peek(t->ring);
        pending = span.tail != span.head || span.next != NULL ||
                  atomic_load_explicit(&t->ring->orphaned, memory_order_acquire) ||
                  atomic_load_explicit(&t->ring->dropped, memory_order_relaxed) !=
                      t->dropped_reported;
    }
    pylu_registry_unlock();
    return pending || pylu_metadata_pending();
}

/* Nothing has recorded for a while: end the open frame, then sleep without a timer until
 * a producer (its next record takes the slow path and wakes us), a text, a flush or a stop
 * request comes. Before the long sleep, one more look after a flush period: a producer
 * that read the session word before the doze bit was set commits without waking us. */
static void
doze(session_t *s)
{
    if (s->enc.frame_open) {
        frame_end(s);
    }
    s->dozes++;
    publish(s);
    uint32_t seq = pylu_registry_wake_seq();
    pylu_registry_doze();
    if (!work_pending(s)) {
        pylu_registry_sleep(seq, (uint64_t)s->cfg.flush_ms * 1000000u);
        if (pylu_registry_wake_seq() == seq && !work_pending(s)) {
            pylu_registry_sleep(seq, 0);
        }
    }
    pylu_registry_undoze();
}

static int
requests(uint64_t *want_flush)
{
    pthread_mutex_lock(&state_mutex);
    *want_flush = flush_requested;
    int stopping = stop_requested;
    pthread_mutex_unlock(&state_mutex);
    return stopping;
}

static void *
flusher_main(void *arg)
{
    session_t *s = arg;
    pthread_setname_np(pthread_self(), "pylu-flusher");   /* for top -H, perf, gdb */
    uint64_t wait_ns = (uint64_t)s->cfg.flush_ms * 1000000u;
    uint64_t last_cycle = pylu_clock_mono_ns(), last_start = last_cycle;
    int idle_cycles = 0;
    for (;;) {
        /* Sleep until the timer, a flush or stop request, or a producer whose ring
         * passed half full (see pylu_ring_check_fill). */
        uint32_t seq = pylu_registry_wake_seq();
        uint64_t want_flush;
        int stopping = requests(&want_flush);
        if (!stopping && want_flush == flush_done) {
            if (idle_cycles >= IDLE_CYCLES_BEFORE_DOZE) {
                doze(s);
                idle_cycles = 0;
                last_cycle = last_start = pylu_clock_mono_ns();
            }
            else {
                pylu_registry_sleep(seq, wait_ns);
            }
            stopping = requests(&want_flush);
        }

        uint64_t started = pylu_clock_mono_ns();
        if (s->cycles > 0 && started - last_start > s->max_gap_ns) {
            s->max_gap_ns = started - last_start;
        }
        last_start = started;
        double fill = cycle(s);
        int busy = s->busy;
        while (s->more && !s->failed) {
            cycle(s);   /* a ring moved to its next segment: drain that too */
            busy |= s->busy;
        }
        idle_cycles = busy ? 0 : idle_cycles + 1;
        uint64_t now = pylu_clock_mono_ns();
        /* Come back before the fullest ring, at its current pace, is three eighths full:
         * usually before its producer must wake us at half full (a syscall it pays). */
        wait_ns = (uint64_t)s->cfg.flush_ms * 1000000u;
        if (fill > 0) {
            double due = (double)(now - last_cycle) * (0.375 / fill);
            if (due < (double)wait_ns) {
                wait_ns = due < 100000.0 ? 100000u : (uint64_t)due;
            }
        }
        last_cycle = now;
        if (stopping) {
            if (frame_open(s) == 0) {
                encoder_failed(s, pylu_encoder_end_record(&s->enc));
            }
            frame_end(s);
            publish(s);
            break;
        }
        if (s->enc.frame_open &&
            (want_flush != flush_done || pylu_encoder_frame_size(&s->enc) >= PYLU_FRAME_TARGET_BYTES ||
             now - s->frame_started_ns >= (uint64_t)s->cfg.frame_ms * 1000000u)) {
            frame_end(s);
            publish(s);
        }
        uint64_t ended = pylu_clock_mono_ns();
        if (ended - started > s->max_cycle_ns) {
            s->max_cycle_ns = ended - started;
        }
        if (want_flush != flush_done) {
            pthread_mutex_lock(&state_mutex);
            flush_done = want_flush;
            pthread_cond_broadcast(&state_cond);
            pthread_mutex_unlock(&state_mutex);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ session control */

static uint64_t
realtime_ns(void)
{
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    return (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
}

/* The log's time origin: the tick counter, the monotonic clock and the wall clock read
 * together. Readers place events in wall-clock time from this one point, so a preemption
 * between the reads would shift every event; keep the narrowest of a few tries. */
static void
start_clocks(session_t *s)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 5 && best > 20000; i++) {
        uint64_t ticks, mono, before = realtime_ns();
        pylu_clock_pair(&ticks, &mono);
        uint64_t after = realtime_ns();
        if (after - before < best) {
            best = after - before;
            s->start_ticks = ticks;
            s->start_mono_ns = mono;
            s->start_unix_ns = before + (after - before) / 2;
        }
    }
}

/* The session's per-thread state and the rings (every producer has stopped). */
static void
free_threads(session_t *s)
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

static void
session_free(session_t *s)
{
    if (s == NULL) {
        return;
    }
    pylu_encoder_free(&s->enc);
    pylu_sink_close(s->sink);
    pylu_buf_free(&s->meta);
    free_threads(s);
    free(s->directory);
    free(s->argv);
    free(s);
}

static int
valid_config(const struct pylu_flusher_config *c, char *err, size_t err_size)
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

/* A session with its own copies of the settings, its file created and its header
 * written; NULL with a message in err. */
static session_t *
session_new(const struct pylu_flusher_config *cfg, char *err, size_t err_size)
{
    session_t *s = calloc(1, sizeof *s);
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
    snprintf(s->path, sizeof s->path, "%s/pylu-%d-%llu.pylog", cfg->directory, (int)getpid(),
             (unsigned long long)realtime_ns());
    int oserr = 0;
    s->sink = pylu_sink_file_create(s->path, &oserr);
    if (s->sink == NULL) {
        snprintf(err, err_size, "cannot create %s: %s", s->path, strerror(oserr));
        goto error;
    }
    if (pylu_encoder_init(&s->enc, s->sink, cfg->level, err, err_size) < 0) {
        goto error;
    }
    start_clocks(s);
    pylu_log_header h = {
        .pid = (uint32_t)getpid(), .start_unix_ns = s->start_unix_ns,
        .start_ticks = s->start_ticks, .ticks_per_sec = pylu_clock_ticks_per_sec(),
        .clock = (uint32_t)pylu_clock_kind_now(), .argv = s->argv, .argv_len = cfg->argv_len,
    };
    if (pylu_encoder_write_header(&s->enc, &h) < 0) {
        char why[512];
        pylu_encoder_error(&s->enc, why, sizeof why);
        snprintf(err, err_size, "cannot write %s: %s", s->path, why);
        unlink(s->path);
        goto error;
    }
    return s;
error:
    session_free(s);
    return NULL;
}

int
pylu_flusher_start(const struct pylu_flusher_config *cfg, char *path, size_t path_size,
                   char *err, size_t err_size)
{
    if (valid_config(cfg, err, err_size) < 0) {
        return -1;
    }
    pthread_mutex_lock(&state_mutex);
    int busy = session != NULL;
    /* A session that stopped on an error (disk full, log removed) is over: finish it
       off so recording can start again, rather than refusing as "already running". */
    int stopped_on_error = busy && !stats.active && !stop_requested;
    pthread_mutex_unlock(&state_mutex);
    if (stopped_on_error) {
        pylu_flusher_stop();
        pthread_mutex_lock(&state_mutex);
        busy = session != NULL;
        pthread_mutex_unlock(&state_mutex);
    }
    if (busy) {
        snprintf(err, err_size, "the recorder is already running");
        return -1;
    }
    pylu_clock_init();
    session_t *s = session_new(cfg, err, err_size);
    if (s == NULL) {
        return -1;
    }
    pylu_metadata_session_begin();
    pylu_live_reset(NULL, 0);

    pthread_mutex_lock(&state_mutex);
    memset(&stats, 0, sizeof stats);
    snprintf(stats.path, sizeof stats.path, "%s", s->path);
    stats.clock = pylu_clock_name();
    stop_requested = 0;
    flush_requested = flush_done = 0;
    session = s;
    stats.active = 1;
    stats.running = 1;
    pthread_mutex_unlock(&state_mutex);
    pylu_registry_begin(cfg->ring_slots);
    int rc = pthread_create(&s->thread, NULL, flusher_main, s);
    if (rc != 0) {
        pylu_registry_halt();
        pylu_registry_free_all();
        pthread_mutex_lock(&state_mutex);
        session = NULL;
        stats.active = stats.running = 0;
        pthread_mutex_unlock(&state_mutex);
        snprintf(err, err_size, "cannot start the flusher thread: %s", strerror(rc));
        unlink(s->path);
        session_free(s);
        return -1;
    }
    snprintf(path, path_size, "%s", s->path);
    return 0;
}

int
pylu_flusher_stop(void)
{
    pthread_mutex_lock(&state_mutex);
    session_t *s = session;
    if (s == NULL || stop_requested) {
        pthread_mutex_unlock(&state_mutex);
        return -1;
    }
    stop_requested = 1;
    pthread_mutex_unlock(&state_mutex);
    pylu_registry_wake();
    /* No producer is inside pylu_record after this (they hold the GIL, and so does our
     * caller); the final cycle sees every committed record. */
    pylu_registry_halt();
    pthread_join(s->thread, NULL);
    free_threads(s);
    pylu_registry_free_all();
    pthread_mutex_lock(&state_mutex);
    session = NULL;
    stats.active = 0;
    stats.running = 0;
    stats.dropped += pylu_registry_alloc_failures();
    pthread_mutex_unlock(&state_mutex);
    session_free(s);
    return 0;
}

int
pylu_flusher_flush(void)
{
    pthread_mutex_lock(&state_mutex);
    if (session == NULL || stop_requested) {
        pthread_mutex_unlock(&state_mutex);
        return -1;
    }
    uint64_t ticket = ++flush_requested;
    pylu_registry_wake();
    while (flush_done < ticket && session != NULL && !stop_requested) {
        pthread_cond_wait(&state_cond, &state_mutex);
    }
    pthread_mutex_unlock(&state_mutex);
    return 0;
}

void
pylu_flusher_stats(struct pylu_stats *out)
{
    pthread_mutex_lock(&state_mutex);
    *out = stats;
    if (stats.clock == NULL) {
        out->clock = pylu_clock_name();
    }
    if (session != NULL) {
        out->dropped += pylu_registry_alloc_failures();
    }
    pthread_mutex_unlock(&state_mutex);
    pylu_metadata_counts(&out->codes, &out->texts);
    pylu_registry_memory(&out->ring_bytes, &out->ring_bytes_peak);
}

/* ------------------------------------------------------------------ fork */

void pylu_flusher_fork_prepare(void) { pthread_mutex_lock(&state_mutex); }
void pylu_flusher_fork_parent(void) { pthread_mutex_unlock(&state_mutex); }

/* Keep the parent's settings for pylu_flusher_restart_in_child(). */
static void
save_settings_for_child(const session_t *s)
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
    session_t *s = session;
    child_should_restart = 0;
    if (s != NULL && !stop_requested && !s->failed) {
        save_settings_for_child(s);
    }
    if (s != NULL) {
        s->thread = 0;
        for (size_t i = 0; i < s->nthreads; i++) {
            pylu_live_thread_free(s->threads[i].live);   /* alone here: no lock needed */
        }
        s->nthreads = 0;
        session_free(s);         /* closes our copy of the fd; the parent's stays open */
    }
    session = NULL;
    stop_requested = 0;
    memset(&stats, 0, sizeof stats);
    pthread_mutex_unlock(&state_mutex);
    /* Condition variables may have had waiters (threads that do not exist here). */
    pthread_cond_init(&state_cond, NULL);
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
