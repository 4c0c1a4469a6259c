/* ring.h — per-thread single-producer/single-consumer rings of fixed 16-byte records, and
 * the registry through which the flusher finds them.
 *
 * A thread's ring is a chain of segments (a ck_ring each). It starts small and grows under
 * pressure: when the producer finds its segment three quarters full (the flusher did not
 * keep up), or the flusher asks because the segment holds less than its sleep between
 * drains (pylu_ring_grow), the producer moves on to a segment four times larger, up to the
 * session's largest; the consumer drains the old segment to its end, frees it, and
 * follows. So a quiet thread holds a few KiB and a busy one what a drain period needs.
 *
 * Concurrency:
 *   - the producer is the thread that owns the ring (pylu_record, in record.h); it never
 *     blocks and takes no lock: a full ring at its largest drops the record and counts it;
 *   - the consumer is the flusher thread, alone; it frees a segment once drained and
 *     superseded, and a ring only after the owning thread has exited (pthread key
 *     destructor sets `orphaned`) and the ring is drained, or when the session ends;
 *   - the registry mutex is taken only to register/unregister a ring and by the flusher
 *     to snapshot the list, never on the hot path.
 * No Python.h here: the ring also runs in the standalone C tests (tests/c).
 */
#ifndef PYLU_RING_H
#define PYLU_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <ck_ring.h>

#if defined(__SANITIZE_THREAD__)
/* ck_pr's x86-64 loads/stores are inline asm that TSan cannot see: tell it about the
 * release (commit / consume) and acquire (read of the other side's index) edges. */
#  include <sanitizer/tsan_interface.h>
#  define PYLU_TSAN_RELEASE(p) __tsan_release((void *)(p))
#  define PYLU_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#  define PYLU_TSAN_RELEASE(p) ((void)0)
#  define PYLU_TSAN_ACQUIRE(p) ((void)0)
#endif

/* The ring record: no pointers, 16 bytes, four to a cache line. */
struct pylu_rec {
    uint64_t ticks;      /* pylu_clock_ticks() at the event */
    uint32_t code_id;    /* engine-assigned id, described by a CODE record */
    uint32_t kind_line;  /* bits 0-3: pylu_event_kind, bits 4-31: line number */
};
#define PYLU_REC_LINE_MAX 0x0FFFFFFFu

CK_RING_PROTOTYPE(pylu_rec, pylu_rec)

/* Segments: the first of a thread's ring has PYLU_SEG_FIRST_SLOTS (or the session's
 * largest, if smaller); each next one four times the last. */
#define PYLU_SEG_FIRST_SLOTS 1024u

struct pylu_seg {
    struct ck_ring ring;          /* indices on separate cache lines (ck's layout) */
    struct pylu_rec *buf;         /* page-aligned mapping of ring.size records */
    uint32_t check_mask;          /* the producer checks its fill every check_mask+1 records */
    _Atomic int grow;             /* the consumer asks for a larger segment (see pylu_ring_grow) */
    _Atomic(struct pylu_seg *) next;  /* set (release) when the producer moved on */
};

struct pylu_ring {
    _Atomic uint64_t dropped;     /* written by the producer only (relaxed) */
    _Atomic int orphaned;         /* owner thread exited (release); set under the registry lock */
    uint32_t thread;              /* index in the log (0, 1, ...), never reused in a session */
    int32_t os_tid;
    char name[64];
    struct pylu_seg *read_seg;    /* consumer only: the oldest segment not yet drained */
    struct pylu_ring *next;       /* registry list (registry lock) */
};

/* Thread-local view: valid only while `session` equals pylu_session. `session` starts as
 * UINT32_MAX, which no session uses, so a thread that never attached takes the slow path
 * without a NULL check on the hot path. */
struct pylu_tls_slot {
    struct pylu_seg *seg;         /* the segment this thread writes */
    struct pylu_ring *ring;
    uint32_t session;
};
extern __thread struct pylu_tls_slot pylu_tls __attribute__((tls_model("initial-exec")));

/* Nonzero while recording: the current session id (bits 0-30, never reused in a process),
 * with PYLU_SESSION_DOZE set while the flusher sleeps for want of work: every producer's
 * next record then takes the slow path, and the first one wakes the flusher. */
extern _Atomic uint32_t pylu_session;
#define PYLU_SESSION_DOZE 0x80000000u

/* The producer's slow path: the segment to write to, attaching this thread's ring to the
 * current session (and waking a dozing flusher) as needed. NULL when not recording or
 * out of memory (the lost record is counted). */
struct pylu_seg *pylu_ring_enter_slow(void) __attribute__((cold, noinline));

/* Cold: the producer's periodic fill check (every check_mask+1 records). At half full it
 * wakes the flusher (a burst must not wait for its timer); at three quarters it moves on
 * to a larger segment. */
void pylu_ring_check_fill(void) __attribute__((cold, noinline));

/* Cold: the segment is full at the largest size; count the record as dropped. */
void pylu_ring_dropped(void) __attribute__((cold, noinline));

/* Optional: fills a thread's display name at ring creation (set by the Python glue). */
extern void (*pylu_ring_name_hook)(char *name, size_t size);

/* ---- session control (flusher.c) ---- */
/* Begin a session whose rings grow up to `max_slots` (power of two >= 4). Returns its id. */
uint32_t pylu_registry_begin(uint32_t max_slots);
/* Producers stop at their next event; rings stay until pylu_registry_free_all(). */
void pylu_registry_halt(void);
/* Free every ring (the session is over and no producer can be inside pylu_record). */
void pylu_registry_free_all(void);
/* Records lost because a ring could not be allocated. */
uint64_t pylu_registry_alloc_failures(void);
/* Bytes of ring segments now mapped, and the most at any time in this session. */
void pylu_registry_memory(uint64_t *now, uint64_t *peak);

/* ---- the consumer (the flusher, alone) ---- */
void pylu_registry_lock(void);
void pylu_registry_unlock(void);
/* Lock held: offer each ring registered since the last call to `adopt`, oldest first; the
 * consumer keeps its own state for it from now on. A ring whose adopt() fails (returns -1)
 * is offered again next time, with those after it; then this returns -1. */
int pylu_registry_adopt(int (*adopt)(void *ctx, struct pylu_ring *ring), void *ctx);
/* A thread index of this session for a thread without a ring (the flusher's own texts). */
uint32_t pylu_registry_reserve_thread(void);
/* Lock held: whether no ring waits to be adopted. */
int pylu_registry_all_adopted(void);
/* Lock held: take a drained, orphaned ring out of the registry; the caller frees it. */
void pylu_registry_unlink(struct pylu_ring *ring);
void pylu_ring_free(struct pylu_ring *ring);

/* Records [head, tail) of one segment, indices masked into buf. */
typedef struct {
    const struct pylu_rec *buf;
    unsigned int mask;
    unsigned int head;
    unsigned int tail;
    struct pylu_seg *seg;
    struct pylu_seg *next;        /* non-NULL: tail is the segment's end */
} pylu_rec_span;

/* What the ring's oldest segment holds now. */
static inline pylu_rec_span
pylu_ring_peek(struct pylu_ring *r)
{
    struct pylu_seg *seg = r->read_seg;
    /* `next` before the tail: once the producer has moved on, the tail read after it is
     * the segment's last. */
    struct pylu_seg *next = atomic_load_explicit(&seg->next, memory_order_acquire);
    pylu_rec_span span = {seg->buf, seg->ring.mask, seg->ring.c_head,
                          ck_pr_load_uint(&seg->ring.p_tail), seg, next};
    PYLU_TSAN_ACQUIRE(&seg->ring.p_tail);
    return span;
}

/* The span was consumed: its slots go back to the producer; a finished segment is freed
 * and the next one becomes the oldest. */
void pylu_ring_release(struct pylu_ring *r, const pylu_rec_span *span);

/* Consumer: ask the ring's producer to move on to a larger segment at its next fill check
 * (a few hundred records at most): the segment fills too fast for the flusher's period, and
 * a wake-up per fill costs more than the memory (see pace() in drain.c for what a wake-up
 * costs). Nothing happens if the producer already moved on or the segment is the largest. */
void pylu_ring_grow(struct pylu_ring *r);

/* Give back the memory of an idle ring: the pages of its segment outside a small window
 * ahead of the producer. Consumer only, for a ring found empty; while the pages go, the
 * producer is fenced into that window (it would see the ring full there, never write a
 * page being dropped). Returns the bytes released (0: not trimmed, e.g. the producer was
 * writing, or the segment is small). */
size_t pylu_ring_trim(struct pylu_ring *r);

/* The span's records as contiguous runs of buf (two when it wraps past the buffer's
 * end): runs[k][0] up to runs[k][1], the second run empty when it does not wrap. Loops
 * over records walk pointers, not masked indices. */
static inline void
pylu_span_runs(const pylu_rec_span *span, const struct pylu_rec *runs[2][2])
{
    unsigned int n = span->tail - span->head, at = span->head & span->mask;
    unsigned int first = span->mask + 1 - at < n ? span->mask + 1 - at : n;
    runs[0][0] = span->buf + at;
    runs[0][1] = span->buf + at + first;
    runs[1][0] = span->buf;
    runs[1][1] = span->buf + (n - first);
}

/* Slots of the segment a span came from (its capacity). */
static inline unsigned int
pylu_span_capacity(const pylu_rec_span *span)
{
    return span->mask + 1;
}

/* Waking the flusher. It reads the sequence before looking for work, then sleeps until
 * the sequence changes or the timeout passes (0: no timeout). pylu_registry_wake is
 * lock-free and makes a syscall only when the flusher is asleep; any thread may call it. */
uint32_t pylu_registry_wake_seq(void);
void pylu_registry_sleep(uint32_t seq, uint64_t timeout_ns);
void pylu_registry_wake(void);
/* Dozing (the consumer): set PYLU_SESSION_DOZE before a sleep without timeout; clear it
 * (returns whether it was still set) when work turned up. */
void pylu_registry_doze(void);
int pylu_registry_undoze(void);
/* Wake the flusher if it dozes (metadata queued by any thread). */
void pylu_registry_wake_if_dozing(void);

/* fork: prepare locks the registry, parent unlocks, child discards inherited rings. */
void pylu_registry_atfork_prepare(void);
void pylu_registry_atfork_parent(void);
void pylu_registry_atfork_child(void);

#endif
