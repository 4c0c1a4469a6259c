/* ring.h — one single-producer/single-consumer ring of fixed 16-byte records per thread,
 * and the registry through which the flusher finds them.
 *
 * Concurrency:
 *   - the producer is the thread that owns the ring (pylu_record, in record.h); it never
 *     blocks and takes no lock: a full ring drops the record and counts it;
 *   - the consumer is the flusher thread, alone; it frees a ring only after the owning
 *     thread has exited (pthread key destructor sets `orphaned`) and the ring is drained,
 *     or when the session ends;
 *   - the registry mutex is taken only to register/unregister a ring and by the flusher
 *     to snapshot the list, never on the hot path.
 * No Python.h here: the ring also runs in the standalone C stress test (tests/c).
 */
#ifndef PYLU_RING_H
#define PYLU_RING_H

#include <stdatomic.h>
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

struct pylu_ring {
    struct ck_ring ring;          /* indices on separate cache lines (ck's layout) */
    struct pylu_rec *buf;
    _Atomic uint64_t dropped;     /* written by the producer only (relaxed) */
    _Atomic int orphaned;         /* owner thread exited (release); set under the registry lock */
    uint32_t thread;              /* index in the log (0, 1, ...), never reused in a session */
    int32_t os_tid;
    uint32_t wake_mask;           /* the producer checks its fill every wake_mask+1 records */
    char name[64];
    struct pylu_ring *next;       /* registry list (registry lock) */
};

/* Thread-local view of the ring: valid only while `session` equals pylu_session. */
struct pylu_tls_slot {
    struct pylu_ring *ring;
    uint32_t session;
};
extern __thread struct pylu_tls_slot pylu_tls __attribute__((tls_model("initial-exec")));

/* Nonzero while recording: the current session id (never reused in a process). */
extern _Atomic uint32_t pylu_session;

/* Allocate and register this thread's ring for the current session. Returns NULL (and
 * counts the lost record) when not recording or out of memory. */
struct pylu_ring *pylu_ring_attach_slow(void) __attribute__((cold, noinline));

/* Cold: the producer's periodic fill check; wakes the flusher early when the ring is at
 * least half full (a burst after a quiet spell must not wait for the flusher's timer). */
void pylu_ring_check_fill(struct pylu_ring *r) __attribute__((cold, noinline));

/* Optional: fills a thread's display name at ring creation (set by the Python glue). */
extern void (*pylu_ring_name_hook)(char *name, size_t size);

/* ---- session control (flusher.c) ---- */
/* Begin a session with rings of `slots` (power of two >= 4). Returns the session id. */
uint32_t pylu_registry_begin(uint32_t slots);
/* Producers stop at their next event; rings stay until pylu_registry_free_all(). */
void pylu_registry_halt(void);
/* Free every ring (the session is over and no producer can be inside pylu_record). */
void pylu_registry_free_all(void);
/* Records lost because a ring could not be allocated. */
uint64_t pylu_registry_alloc_failures(void);

/* ---- the consumer (the flusher, alone) ---- */
void pylu_registry_lock(void);
void pylu_registry_unlock(void);
/* Lock held: offer each ring registered since the last call to `adopt`, oldest first; the
 * consumer keeps its own state for it from now on. A ring whose adopt() fails (returns -1)
 * is offered again next time, with those after it; then this returns -1. */
int pylu_registry_adopt(int (*adopt)(void *ctx, struct pylu_ring *ring), void *ctx);
/* Lock held: take a drained, orphaned ring out of the registry; the caller frees it. */
void pylu_registry_unlink(struct pylu_ring *ring);
void pylu_ring_free(struct pylu_ring *ring);

/* Records [head, tail) of a ring, indices masked into buf. */
typedef struct {
    const struct pylu_rec *buf;
    unsigned int mask;
    unsigned int head;
    unsigned int tail;
} pylu_rec_span;

/* What the ring holds now (the tail read with acquire). */
static inline pylu_rec_span
pylu_ring_peek(struct pylu_ring *r)
{
    pylu_rec_span span = {r->buf, r->ring.mask, r->ring.c_head, ck_pr_load_uint(&r->ring.p_tail)};
    PYLU_TSAN_ACQUIRE(&r->ring.p_tail);
    return span;
}

/* The span was consumed: its slots go back to the producer. */
static inline void
pylu_ring_release(struct pylu_ring *r, const pylu_rec_span *span)
{
    /* Our reads of the slots happen before the producer may reuse them. */
    ck_pr_fence_store_atomic();
    PYLU_TSAN_RELEASE(&r->ring.c_head);
    ck_pr_store_uint(&r->ring.c_head, span->tail);
}

/* Waking the flusher. It reads the sequence before looking for work, then sleeps until
 * the sequence changes or the timeout passes. pylu_registry_wake is lock-free and makes a
 * syscall only when the flusher is asleep; any thread may call it. */
uint32_t pylu_registry_wake_seq(void);
void pylu_registry_sleep(uint32_t seq, uint64_t timeout_ns);
void pylu_registry_wake(void);

/* fork: prepare locks the registry, parent unlocks, child discards inherited rings. */
void pylu_registry_atfork_prepare(void);
void pylu_registry_atfork_parent(void);
void pylu_registry_atfork_child(void);

#endif
