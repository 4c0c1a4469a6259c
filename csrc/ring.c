/* ring.c — per-thread ring segments, growth, the registry and waking the flusher; see ring.h. */
#define _GNU_SOURCE
#include "ring.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

__thread struct pylu_tls_slot pylu_tls __attribute__((tls_model("initial-exec"))) = {
    .session = UINT32_MAX,
};
_Atomic uint32_t pylu_session = 0;
void (*pylu_ring_name_hook)(char *name, size_t size) = NULL;

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct pylu_ring *registry_head = NULL;    /* adopted by the consumer */
static struct pylu_ring *registry_fresh = NULL;   /* registered, not yet adopted */
static _Atomic uint32_t max_slots = 0;            /* largest segment of this session */
static uint32_t session_counter = 0;   /* under the mutex; ids are never reused */
static uint32_t next_thread_index = 0; /* under the mutex */
static _Atomic uint64_t alloc_failures = 0;
static _Atomic uint64_t mapped_bytes = 0, mapped_peak = 0;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------------ segments */

static struct pylu_seg *
seg_new(uint32_t slots)
{
    struct pylu_seg *seg;
    if (posix_memalign((void **)&seg, 64, sizeof *seg) != 0) {   /* ck's index lines */
        return NULL;
    }
    size_t bytes = (size_t)slots * sizeof(struct pylu_rec);
    /* Mapped, not malloc'd: freeing gives the pages back to the system at once. */
    void *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        free(seg);
        return NULL;
    }
    memset(seg, 0, sizeof *seg);
    ck_ring_init(&seg->ring, slots);
    seg->buf = buf;
    /* From below three quarters, one check interval cannot fill the segment. */
    seg->check_mask = (slots / 8 < 1 ? 1 : slots / 8 > 1024 ? 1024 : slots / 8) - 1;
    atomic_init(&seg->grow, 0);
    atomic_init(&seg->next, NULL);
    uint64_t now = atomic_fetch_add(&mapped_bytes, bytes) + bytes;
    uint64_t peak = atomic_load(&mapped_peak);
    while (now > peak && !atomic_compare_exchange_weak(&mapped_peak, &peak, now)) {
    }
    return seg;
}

static void
seg_free(struct pylu_seg *seg)
{
    size_t bytes = (size_t)seg->ring.size * sizeof(struct pylu_rec);
    munmap(seg->buf, bytes);
    atomic_fetch_sub(&mapped_bytes, bytes);
    free(seg);
}

void
pylu_ring_free(struct pylu_ring *ring)
{
    if (ring == NULL) {
        return;
    }
    struct pylu_seg *seg = ring->read_seg;
    while (seg != NULL) {
        struct pylu_seg *next = atomic_load_explicit(&seg->next, memory_order_relaxed);
        seg_free(seg);
        seg = next;
    }
    free(ring);
}

void
pylu_ring_release(struct pylu_ring *r, const pylu_rec_span *span)
{
    struct pylu_seg *seg = span->seg;
    if (span->tail != span->head) {
        /* Our reads of the slots happen before the producer may reuse them. */
        ck_pr_fence_store_atomic();
        PYLU_TSAN_RELEASE(&seg->ring.c_head);
        ck_pr_store_uint(&seg->ring.c_head, span->tail);
    }
    if (span->next != NULL) {
        /* The producer moved on before we read the tail: nothing more comes here. */
        r->read_seg = span->next;
        seg_free(seg);
    }
}

/* Slots kept mapped ahead of an idle producer when its segment is trimmed. */
#define TRIM_WINDOW 512u

static size_t
drop_pages(struct pylu_seg *seg, unsigned int from, unsigned int to)
{
    /* Whole pages inside slots [from, to) of the buffer (no wrap here). */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)(seg->buf + from) + page - 1) & ~(page - 1);
    uintptr_t hi = (uintptr_t)(seg->buf + to) & ~(page - 1);
    if (hi <= lo || madvise((void *)lo, hi - lo, MADV_DONTNEED) != 0) {
        return 0;
    }
    return hi - lo;
}

size_t
pylu_ring_trim(struct pylu_ring *r)
{
    struct pylu_seg *seg = r->read_seg;
    unsigned int size = seg->ring.size;
    if (size <= PYLU_SEG_FIRST_SLOTS || atomic_load_explicit(&seg->next, memory_order_acquire)) {
        return 0;
    }
    unsigned int head = seg->ring.c_head;
    if (ck_pr_load_uint(&seg->ring.p_tail) != head) {
        return 0;
    }
    /* Fence: the producer now finds the ring full after TRIM_WINDOW - 1 more records. */
    ck_pr_fence_store_atomic();
    PYLU_TSAN_RELEASE(&seg->ring.c_head);
    ck_pr_store_uint(&seg->ring.c_head, head + TRIM_WINDOW - size);
    ck_pr_fence_memory();
    unsigned int tail = ck_pr_load_uint(&seg->ring.p_tail);
    size_t released = 0;
    if (tail - head < TRIM_WINDOW / 2) {
        /* Every write from now on lands in [head, head + TRIM_WINDOW): keep those pages. */
        unsigned int keep_from = head & seg->ring.mask;
        unsigned int keep_to = keep_from + TRIM_WINDOW;
        if (keep_to <= size) {
            released = drop_pages(seg, 0, keep_from) + drop_pages(seg, keep_to, size);
        }
        else {
            released = drop_pages(seg, keep_to - size, keep_from);
        }
    }
    /* Lift the fence: the producer sees what it really may use again. */
    ck_pr_fence_store_atomic();
    PYLU_TSAN_RELEASE(&seg->ring.c_head);
    ck_pr_store_uint(&seg->ring.c_head, head);
    return released;
}

/* ------------------------------------------------------------------ the producer */

static void
thread_exited(void *value)
{
    /* Runs at pthread exit. The ring may belong to an ended session (already freed), so
     * only mark it if it is still registered. */
    pthread_mutex_lock(&registry_mutex);
    struct pylu_ring *lists[2] = {registry_fresh, registry_head};
    for (int i = 0; i < 2; i++) {
        for (struct pylu_ring *r = lists[i]; r != NULL; r = r->next) {
            if (r == value) {
                atomic_store_explicit(&r->orphaned, 1, memory_order_release);
            }
        }
    }
    pthread_mutex_unlock(&registry_mutex);
}

static void
make_exit_key(void)
{
    pthread_key_create(&exit_key, thread_exited);
}

static struct pylu_seg *
attach(uint32_t session)
{
    pthread_once(&exit_key_once, make_exit_key);
    uint32_t largest = atomic_load_explicit(&max_slots, memory_order_relaxed);
    struct pylu_ring *r = calloc(1, sizeof *r);
    struct pylu_seg *seg = r ? seg_new(largest < PYLU_SEG_FIRST_SLOTS ? largest
                                                                      : PYLU_SEG_FIRST_SLOTS)
                             : NULL;
    if (seg == NULL) {
        free(r);
        atomic_fetch_add_explicit(&alloc_failures, 1, memory_order_relaxed);
        return NULL;
    }
    r->read_seg = seg;
    r->os_tid = (int32_t)syscall(SYS_gettid);
    if (pylu_ring_name_hook != NULL) {
        pylu_ring_name_hook(r->name, sizeof r->name);
    }
    if (r->name[0] == '\0') {
        pthread_getname_np(pthread_self(), r->name, sizeof r->name);
    }
    pthread_mutex_lock(&registry_mutex);
    uint32_t now = atomic_load_explicit(&pylu_session, memory_order_relaxed);
    if ((now & ~PYLU_SESSION_DOZE) != session) {
        pthread_mutex_unlock(&registry_mutex);   /* the session ended meanwhile */
        pylu_ring_free(r);
        return NULL;
    }
    r->thread = next_thread_index++;
    r->next = registry_fresh;
    registry_fresh = r;
    pthread_mutex_unlock(&registry_mutex);
    pthread_setspecific(exit_key, r);
    pylu_tls.seg = seg;
    pylu_tls.ring = r;
    pylu_tls.session = session;
    return seg;
}

struct pylu_seg *
pylu_ring_enter_slow(void)
{
    uint32_t session = atomic_load_explicit(&pylu_session, memory_order_acquire);
    if (session == 0) {
        return NULL;
    }
    if (session & PYLU_SESSION_DOZE) {
        if (atomic_fetch_and(&pylu_session, ~PYLU_SESSION_DOZE) & PYLU_SESSION_DOZE) {
            pylu_registry_wake();   /* the first producer back wakes the flusher */
        }
        session &= ~PYLU_SESSION_DOZE;
    }
    if (session == 0) {
        return NULL;
    }
    if (pylu_tls.session == session) {
        return pylu_tls.seg;
    }
    return attach(session);
}

void
pylu_ring_check_fill(void)
{
    struct pylu_seg *seg = pylu_tls.seg;
    unsigned int size = seg->ring.size;
    unsigned int fill = seg->ring.p_tail - ck_pr_load_uint(&seg->ring.c_head);
    int asked = atomic_load_explicit(&seg->grow, memory_order_relaxed);
    if (fill < size / 2 && !asked) {
        return;
    }
    uint32_t largest = atomic_load_explicit(&max_slots, memory_order_relaxed);
    if ((asked || fill >= size / 4 * 3) && size < largest) {
        /* The flusher did not keep up, or asked: continue in a larger segment. */
        struct pylu_seg *bigger = seg_new(size * 4 < largest ? size * 4 : largest);
        if (bigger != NULL) {
            atomic_store_explicit(&seg->next, bigger, memory_order_release);
            pylu_tls.seg = bigger;
        }
    }
    if (fill >= size / 2) {
        pylu_registry_wake();
    }
}

void
pylu_ring_grow(struct pylu_ring *r)
{
    struct pylu_seg *seg = r->read_seg;
    if (atomic_load_explicit(&seg->next, memory_order_acquire) == NULL) {
        atomic_store_explicit(&seg->grow, 1, memory_order_relaxed);
    }
}

void
pylu_ring_dropped(void)
{
    struct pylu_ring *r = pylu_tls.ring;
    uint64_t d = atomic_load_explicit(&r->dropped, memory_order_relaxed) + 1;
    atomic_store_explicit(&r->dropped, d, memory_order_relaxed);
    if ((d & 255) == 1) {
        pylu_registry_wake();   /* the flusher may not know yet: tell it now and then */
    }
}

/* ------------------------------------------------------------------ the registry */

uint32_t
pylu_registry_begin(uint32_t slots)
{
    pthread_mutex_lock(&registry_mutex);
    atomic_store_explicit(&max_slots, slots, memory_order_relaxed);
    next_thread_index = 0;
    atomic_store(&mapped_peak, atomic_load(&mapped_bytes));
    /* Ids use bits 0-30 and never UINT32_MAX (the TLS "never attached" mark). */
    if (++session_counter >= PYLU_SESSION_DOZE) {
        session_counter = 1;
    }
    uint32_t id = session_counter;
    atomic_store_explicit(&pylu_session, id, memory_order_release);
    pthread_mutex_unlock(&registry_mutex);
    return id;
}

void
pylu_registry_halt(void)
{
    atomic_store_explicit(&pylu_session, 0, memory_order_release);
}

static void
free_list(struct pylu_ring *r)
{
    while (r != NULL) {
        struct pylu_ring *next = r->next;
        pylu_ring_free(r);
        r = next;
    }
}

void
pylu_registry_free_all(void)
{
    pthread_mutex_lock(&registry_mutex);
    struct pylu_ring *adopted = registry_head, *fresh = registry_fresh;
    registry_head = registry_fresh = NULL;
    pthread_mutex_unlock(&registry_mutex);
    free_list(adopted);
    free_list(fresh);
}

uint64_t
pylu_registry_alloc_failures(void)
{
    return atomic_load_explicit(&alloc_failures, memory_order_relaxed);
}

void
pylu_registry_memory(uint64_t *now, uint64_t *peak)
{
    *now = atomic_load(&mapped_bytes);
    *peak = atomic_load(&mapped_peak);
}

void pylu_registry_lock(void) { pthread_mutex_lock(&registry_mutex); }
void pylu_registry_unlock(void) { pthread_mutex_unlock(&registry_mutex); }

int
pylu_registry_adopt(int (*adopt)(void *ctx, struct pylu_ring *ring), void *ctx)
{
    /* Oldest first, as the threads registered. */
    struct pylu_ring *ordered = NULL;
    while (registry_fresh != NULL) {
        struct pylu_ring *next = registry_fresh->next;
        registry_fresh->next = ordered;
        ordered = registry_fresh;
        registry_fresh = next;
    }
    while (ordered != NULL) {
        struct pylu_ring *r = ordered;
        if (adopt(ctx, r) < 0) {
            break;   /* the rest stay fresh: offered again next time */
        }
        ordered = r->next;
        r->next = registry_head;
        registry_head = r;
    }
    while (ordered != NULL) {
        struct pylu_ring *next = ordered->next;
        ordered->next = registry_fresh;
        registry_fresh = ordered;
        ordered = next;
    }
    return registry_fresh == NULL ? 0 : -1;
}

uint32_t
pylu_registry_reserve_thread(void)
{
    pthread_mutex_lock(&registry_mutex);
    uint32_t index = next_thread_index++;
    pthread_mutex_unlock(&registry_mutex);
    return index;
}

int
pylu_registry_all_adopted(void)
{
    return registry_fresh == NULL;
}

void
pylu_registry_unlink(struct pylu_ring *ring)
{
    for (struct pylu_ring **p = &registry_head; *p != NULL; p = &(*p)->next) {
        if (*p == ring) {
            *p = ring->next;
            return;
        }
    }
}

/* ------------------------------------------------------------------ waking the flusher */

static _Atomic uint32_t wake_seq;      /* a futex word */
static _Atomic int consumer_sleeping;

uint32_t
pylu_registry_wake_seq(void)
{
    return atomic_load(&wake_seq);
}

void
pylu_registry_sleep(uint32_t seq, uint64_t timeout_ns)
{
    struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
    /* Sequentially consistent: a waker that bumps the sequence after our check below
     * sees `consumer_sleeping` set, and the kernel compares the word again. */
    atomic_store(&consumer_sleeping, 1);
    if (atomic_load(&wake_seq) == seq) {
        syscall(SYS_futex, &wake_seq, FUTEX_WAIT_PRIVATE, seq, timeout_ns ? &ts : NULL, NULL, 0);
    }
    atomic_store(&consumer_sleeping, 0);
}

void
pylu_registry_wake(void)
{
    atomic_fetch_add(&wake_seq, 1);
    if (atomic_load(&consumer_sleeping)) {
        syscall(SYS_futex, &wake_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

void
pylu_registry_doze(void)
{
    uint32_t s = atomic_load(&pylu_session);
    /* Never on a halted session: 0 must stay "not recording". */
    while (s != 0 && !(s & PYLU_SESSION_DOZE) &&
           !atomic_compare_exchange_weak(&pylu_session, &s, s | PYLU_SESSION_DOZE)) {
    }
}

int
pylu_registry_undoze(void)
{
    return (atomic_fetch_and(&pylu_session, ~PYLU_SESSION_DOZE) & PYLU_SESSION_DOZE) != 0;
}

void
pylu_registry_wake_if_dozing(void)
{
    if (atomic_load_explicit(&pylu_session, memory_order_relaxed) & PYLU_SESSION_DOZE) {
        if (pylu_registry_undoze()) {
            pylu_registry_wake();
        }
    }
}

/* ------------------------------------------------------------------ fork */

void pylu_registry_atfork_prepare(void) { pthread_mutex_lock(&registry_mutex); }
void pylu_registry_atfork_parent(void) { pthread_mutex_unlock(&registry_mutex); }

void
pylu_registry_atfork_child(void)
{
    /* The parent's flusher writes what these rings hold; the child only drops its copy. */
    struct pylu_ring *adopted = registry_head, *fresh = registry_fresh;
    registry_head = registry_fresh = NULL;
    atomic_store_explicit(&pylu_session, 0, memory_order_relaxed);
    atomic_store_explicit(&alloc_failures, 0, memory_order_relaxed);
    atomic_store(&consumer_sleeping, 0);   /* the parent's flusher is not ours */
    pthread_mutex_unlock(&registry_mutex);
    free_list(adopted);
    free_list(fresh);
}
