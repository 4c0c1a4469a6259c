/* drain.c — the flusher thread: drain the rings, aggregate, encode, write, pace itself,
 * doze when idle, cut the log into segments; see drain.h. */
#define _GNU_SOURCE
#include "drain.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catchup.h"
#include "clock.h"
#include "kinds.h"
#include "logformat.h"
#include "metadata.h"
#include "session.h"

/* ------------------------------------------------------------------ one drain cycle */

/* Registry callback: a thread's ring appeared; keep our state for it and announce it. */
static int
adopt_ring(void *ctx, struct pylu_ring *r)
{
    pylu_log_session *s = ctx;
    if (s->nthreads == s->threads_cap) {
        size_t cap = s->threads_cap ? s->threads_cap * 2 : 16;
        pylu_drained_thread *grown = realloc(s->threads, cap * sizeof *grown);
        if (grown == NULL) {
            return -1;
        }
        s->threads = grown;
        s->threads_cap = cap;
    }
    s->threads[s->nthreads++] = (pylu_drained_thread){.ring = r};
    s->threads_seen++;
    if (pylu_session_frame_open(s) == 0) {
        pylu_session_check(s, pylu_encoder_thread(&s->enc, r->thread, r->os_tid, r->name,
                                              strnlen(r->name, sizeof r->name)));
    }
    return 0;
}

static void
forget_thread(pylu_log_session *s, size_t i)
{
    pylu_drained_thread *t = &s->threads[i];
    if (s->catchup != NULL) {
        pylu_catchup_keep_stack(s, t->ring->thread, t->live);   /* its log is still read back */
    }
    else {
        pylu_live_lock();
        pylu_live_thread_free(t->live);
        pylu_live_unlock();
    }
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

/* Drain one thread's span: live aggregates (once asked for), then the log (or discard
 * after a failure). */
static uint64_t
drain_thread(pylu_log_session *s, pylu_drained_thread *t)
{
    uint64_t n = (uint64_t)(unsigned int)(t->span.tail - t->span.head);
    if (n > 0) {
        /* In chunks that stay in the cache between the two passes over them. The live lock
         * is held even while nobody asked for the aggregates: a fork waits for it
         * (recorder_fork.c), so the child never inherits an allocator lock the drain held
         * (ASan's is not fork-safe: the child's flusher hung in test_fork_inside_...). */
        int live = s->live_state >= PYLU_LIVE_ON;
        pylu_live_lock();
        for (unsigned int at = t->span.head; at != t->span.tail;) {
            unsigned int len = t->span.tail - at < DRAIN_CHUNK ? t->span.tail - at : DRAIN_CHUNK;
            pylu_rec_span chunk = t->span;
            chunk.head = at;
            chunk.tail = at + len;
            if (live) {
                pylu_live_feed(&t->live, &chunk);
            }
            if (pylu_session_frame_open(s) == 0) {
                pylu_session_check(s, pylu_encoder_events(&s->enc, &t->enc, t->ring->thread, &chunk));
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
    if (d != t->dropped_reported && pylu_session_frame_open(s) == 0 &&
        pylu_session_check(s, pylu_encoder_drop(&s->enc, t->ring->thread, d)) == 0) {
        t->dropped_reported = d;
        s->busy = 1;
    }
    if (!s->failed && n > 0) {
        if (pylu_encoder_frame_size(&s->enc) >= PYLU_FRAME_TARGET_BYTES) {
            pylu_session_frame_end(s);
        }
        else {
            pylu_session_check(s, pylu_encoder_feed(&s->enc));
        }
    }
    return n;
}

/* The fill a drain should find a ring at: the flusher comes back before a ring is this
 * full (pylu_drain_main), and asks for a larger segment when its flush period would let
 * the ring fill further. */
#define PACE_FILL 0.375

/* One drain of every ring. Returns the largest fraction of a ring found filled, from
 * which the flusher paces itself (a fast producer must not overrun its ring). `periods`:
 * how many times the time since the last drain fits into the flush period (0: unknown);
 * a ring whose records since then, at that pace, would fill it past PACE_FILL before the
 * period ends is asked to grow, so that busy rings do not make the flusher wake more
 * often than its period. */
static double
cycle(pylu_log_session *s, double periods)
{
    double fill = 0;
    s->cycles++;
    s->busy = 0;
    s->more = 0;

    /* 1. Rings that appeared are adopted (THREAD records), then how far each is filled:
     *    orphaned is read before the tail, so a ring seen orphaned is drained to its end. */
    uint64_t peek_ns = pylu_clock_mono_ns();
    pylu_registry_lock();
    pylu_registry_adopt(adopt_ring, s);
    for (size_t i = 0; i < s->nthreads; i++) {
        pylu_drained_thread *t = &s->threads[i];
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
        pylu_session_fail(s, "out of memory");
    }
    pylu_registry_lock();
    pylu_registry_adopt(adopt_ring, s);
    pylu_registry_unlock();
    s->busy |= s->meta.len > 0;
    if (s->meta.len > 0 && pylu_session_frame_open(s) == 0 &&
        pylu_buf_append(pylu_encoder_pending(&s->enc), s->meta.data, s->meta.len) < 0) {
        pylu_session_fail(s, "out of memory");
    }

    /* 3. Events, one ring at a time; a full frame is ended between rings. */
    uint64_t dropped_live = 0;
    for (size_t i = 0; i < s->nthreads;) {
        pylu_drained_thread *t = &s->threads[i];
        uint64_t n = drain_thread(s, t);
        double f = (double)n / pylu_span_capacity(&t->span);
        fill = f > fill ? f : fill;
        /* From a sample of an eighth of the segment at least: a few records just after a
         * wake-up say little about the pace. */
        if (f * periods > PACE_FILL && f >= 0.125 && t->span.next == NULL) {
            pylu_ring_grow(t->ring);
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
    s->last_peek_ns = peek_ns;   /* a frame opened from now on holds records from here on */
    pylu_session_publish(s);
    return fill;
}

/* ------------------------------------------------------------------ segments */

static void
announce_own_thread(pylu_log_session *s)
{
    if (pylu_session_frame_open(s) == 0) {
        pylu_session_check(s, pylu_encoder_thread(&s->enc, s->own_thread, (int32_t)gettid(),
                                              "pylu-flusher", strlen("pylu-flusher")));
    }
}

/* A text of the flusher's own into the log, under a thread index of its own. */
static void
own_text(pylu_log_session *s, const char *text)
{
    if (s->own_thread == UINT32_MAX) {
        s->own_thread = pylu_registry_reserve_thread();
        announce_own_thread(s);
    }
    if (pylu_session_frame_open(s) == 0) {
        pylu_session_check(s, pylu_encoder_text(&s->enc, s->own_thread, pylu_clock_ticks(),
                                            PYLU_TEXT_ENGINE, text, strlen(text)));
    }
}

/* The segment is full: end it, open the next, and give the new one what a reader of it
 * alone needs (threads, their drops so far; the codes come with the next cycle). */
static void
next_segment(pylu_log_session *s)
{
    if (pylu_session_frame_open(s) < 0 || pylu_session_check(s, pylu_encoder_segment_end_record(&s->enc)) < 0 ||
        pylu_session_frame_end(s) < 0) {
        return;
    }
    int deleted = pylu_segments_next(&s->seg, &s->enc);
    if (deleted < 0) {
        char why[256];
        snprintf(why, sizeof why, "cannot start the next segment: %s", strerror(errno));
        pylu_session_fail(s, why);
        return;
    }
    pylu_metadata_rewind_codes();
    for (size_t i = 0; i < s->nthreads && pylu_session_frame_open(s) == 0; i++) {
        pylu_drained_thread *t = &s->threads[i];
        pylu_session_check(s, pylu_encoder_thread(&s->enc, t->ring->thread, t->ring->os_tid,
                                              t->ring->name, strnlen(t->ring->name,
                                                                     sizeof t->ring->name)));
        if (t->dropped_reported && !s->failed) {
            pylu_session_check(s, pylu_encoder_drop(&s->enc, t->ring->thread, t->dropped_reported));
        }
    }
    if (s->own_thread != UINT32_MAX) {
        announce_own_thread(s);
    }
    if (deleted > 0) {
        char text[512];
        snprintf(text, sizeof text, "[pyliveupdate] log budget: deleted %llu old log segment(s) "
                 "(%llu bytes in all) to keep %s within %llu bytes",
                 (unsigned long long)s->seg.deleted_files, (unsigned long long)s->seg.deleted_bytes,
                 s->seg.dir, (unsigned long long)s->seg.budget);
        own_text(s, text);
    }
    pylu_session_publish(s);
}

/* ------------------------------------------------------------------ the thread */

/* Cycles without work before the flusher dozes (sleeps until a producer or a request
 * wakes it): an idle process pays no wake-ups and its log does not grow. */
#define IDLE_CYCLES_BEFORE_DOZE 3

/* Someone asked for the live aggregates and the log is not read back into them yet. */
static int
catching_up(pylu_log_session *s)
{
    return s->live_wanted && s->live_state < PYLU_LIVE_ON;
}

/* A catch-up step's share of the flusher's time between two drains. */
#define CATCHUP_STEP_NS 5000000u

/* Read back the next part of the log into the live aggregates (catchup.h); once they
 * meet the drain, feed them directly and tell who waits. */
static void
catch_up(pylu_log_session *s)
{
    if (s->live_state == PYLU_LIVE_OFF) {
        s->live_state = PYLU_LIVE_CATCHING_UP;
        pylu_session_publish(s);
    }
    int rc = pylu_catchup_step(s, CATCHUP_STEP_NS);
    if (rc == PYLU_CATCHUP_MORE) {
        return;
    }
    /* Fed from now on. Partial when the log could not be read back, or after a write
     * failure (the log lacks what was drained meanwhile): the stats say so. */
    s->live_state = rc == PYLU_CATCHUP_DONE && !s->failed ? PYLU_LIVE_ON : PYLU_LIVE_PARTIAL;
    pylu_catchup_free(s);
    pylu_session_publish(s);
    pthread_mutex_lock(&pylu_state_mutex);
    pthread_cond_broadcast(&pylu_state_cond);
    pthread_mutex_unlock(&pylu_state_mutex);
}

/* A request the flusher has not answered: a flush, the live aggregates, a stop. Read under
 * the state mutex, so that one made before the doze read its wake-up sequence is seen here
 * (one made after changes the sequence). */
static int
requested(pylu_log_session *s)
{
    pthread_mutex_lock(&pylu_state_mutex);
    int r = pylu_flush_requested != pylu_flush_done || pylu_stop_requested ||
            (pylu_live_requested && s->live_state < PYLU_LIVE_ON);
    pthread_mutex_unlock(&pylu_state_mutex);
    return r;
}

/* Anything for the flusher to do: records, a finished segment, drops, new rings, metadata,
 * requests. */
static int
work_pending(pylu_log_session *s)
{
    pylu_registry_lock();
    int pending = !pylu_registry_all_adopted();
    for (size_t i = 0; i < s->nthreads && !pending; i++) {
        pylu_drained_thread *t = &s->threads[i];
        pylu_rec_span span = pylu_ring_peek(t->ring);
        pending = span.tail != span.head || span.next != NULL ||
                  atomic_load_explicit(&t->ring->orphaned, memory_order_acquire) ||
                  atomic_load_explicit(&t->ring->dropped, memory_order_relaxed) !=
                      t->dropped_reported;
    }
    pylu_registry_unlock();
    return pending || pylu_metadata_pending() || requested(s);
}

/* Nothing has recorded for a while: end the open frame, then sleep without a timer until
 * a producer (its next record takes the slow path and wakes us), a text, a flush or a stop
 * request comes. Before the long sleep, one more look after a flush period: a producer
 * that read the session word before the doze bit was set commits without waking us. */
static void
doze(pylu_log_session *s)
{
    if (s->enc.frame_open) {
        pylu_session_frame_end(s);
    }
    s->dozes++;
    pylu_session_publish(s);
    uint32_t seq = pylu_registry_wake_seq();
    pylu_registry_doze();
    if (!work_pending(s)) {
        pylu_registry_sleep(seq, (uint64_t)s->cfg.flush_ms * 1000000u);
        /* Until a real wake-up: a futex wait also returns early now and then. */
        while (pylu_registry_wake_seq() == seq && !work_pending(s)) {
            pylu_registry_sleep(seq, 0);
        }
    }
    pylu_registry_undoze();
}

static int
requests(pylu_log_session *s, uint64_t *want_flush)
{
    pthread_mutex_lock(&pylu_state_mutex);
    s->live_wanted = pylu_live_requested;
    *want_flush = pylu_flush_requested;
    int stopping = pylu_stop_requested;
    pthread_mutex_unlock(&pylu_state_mutex);
    return stopping;
}

/* The shortest sleep between drains. */
#define MIN_WAIT_NS 100000u

/* How long to sleep after a drain that found the fullest ring `fill` full, `elapsed` ns
 * after the last: until that ring, at the same pace, is PACE_FILL full (usually before its
 * producer must wake us at half full, a syscall it pays), at most a frame period. A slow
 * producer thus costs ten wake-ups a second, not one per flush period: a wake-up is
 * 20-80 us of CPU on a VM (measured 2026-12-02: a futex sleep of 5 ms, 45 us; the flusher
 * at 200 K events/s, 83 ns per event with a 5 ms period). */
static uint64_t
pace(const pylu_log_session *s, double fill, uint64_t elapsed)
{
    double longest = (double)s->cfg.frame_ms * 1e6;
    double due = fill > 0 ? (double)elapsed * (PACE_FILL / fill) : longest;
    return due < MIN_WAIT_NS ? MIN_WAIT_NS : due > longest ? (uint64_t)longest : (uint64_t)due;
}

/* A sleep of `wait` ns, shortened to end when the open frame is due to end (a killed
 * process must leave a log readable up to frame_ms ago). */
static uint64_t
until_frame_end(const pylu_log_session *s, uint64_t wait)
{
    if (!s->enc.frame_open) {
        return wait;
    }
    uint64_t due = s->frame_started_ns + (uint64_t)s->cfg.frame_ms * 1000000u, now = pylu_clock_mono_ns();
    uint64_t left = due > now + MIN_WAIT_NS ? due - now : MIN_WAIT_NS;
    return left < wait ? left : wait;
}

void *
pylu_drain_main(void *arg)
{
    pylu_log_session *s = arg;
    pthread_setname_np(pthread_self(), "pylu-flusher");   /* for top -H, perf, gdb */
    uint64_t wait_ns = (uint64_t)s->cfg.flush_ms * 1000000u;
    uint64_t last_cycle = pylu_clock_mono_ns(), last_start = last_cycle;
    int idle_cycles = 0;
    for (;;) {
        /* Sleep until the timer, a flush or stop request, or a producer whose ring
         * passed half full (see pylu_ring_check_fill). */
        uint32_t seq = pylu_registry_wake_seq();
        uint64_t want_flush;
        int stopping = requests(s, &want_flush);
        if (!stopping && want_flush == pylu_flush_done && !catching_up(s)) {
            if (idle_cycles >= IDLE_CYCLES_BEFORE_DOZE) {
                doze(s);
                idle_cycles = 0;
                last_cycle = last_start = pylu_clock_mono_ns();
            }
            else {
                pylu_registry_sleep(seq, until_frame_end(s, wait_ns));
            }
            stopping = requests(s, &want_flush);
        }

        uint64_t started = pylu_clock_mono_ns();
        if (s->cycles > 0 && started - last_start > s->max_gap_ns) {
            s->max_gap_ns = started - last_start;
        }
        double periods = s->cycles > 0 && started > last_start
                         ? (double)s->cfg.flush_ms * 1e6 / (double)(started - last_start) : 0;
        last_start = started;
        double fill = cycle(s, periods);
        int busy = s->busy;
        while (s->more && !s->failed) {
            cycle(s, 0);   /* a ring moved to its next segment: drain that too */
            busy |= s->busy;
        }
        idle_cycles = busy ? 0 : idle_cycles + 1;
        uint64_t now = pylu_clock_mono_ns();
        wait_ns = pace(s, fill, now - last_cycle);
        last_cycle = now;
        if (stopping) {
            if (pylu_session_frame_open(s) == 0) {
                pylu_session_check(s, pylu_encoder_end_record(&s->enc));
            }
            pylu_session_frame_end(s);
            pylu_session_publish(s);
            break;
        }
        if (s->enc.frame_open &&
            (want_flush != pylu_flush_done || pylu_encoder_frame_size(&s->enc) >= PYLU_FRAME_TARGET_BYTES ||
             now - s->frame_started_ns >= (uint64_t)s->cfg.frame_ms * 1000000u)) {
            pylu_session_frame_end(s);
            pylu_session_publish(s);
        }
        if (!s->failed && !s->enc.frame_open && pylu_segments_full(&s->seg)) {
            next_segment(s);
        }
        if (catching_up(s)) {
            catch_up(s);
        }
        uint64_t ended = pylu_clock_mono_ns();
        if (ended - started > s->max_cycle_ns) {
            s->max_cycle_ns = ended - started;
        }
        if (want_flush != pylu_flush_done) {
            pthread_mutex_lock(&pylu_state_mutex);
            pylu_flush_done = want_flush;
            pthread_cond_broadcast(&pylu_state_cond);
            pthread_mutex_unlock(&pylu_state_mutex);
        }
    }
    return NULL;
}

