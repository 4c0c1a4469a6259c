/* ring.c — per-thread ring allocation and the registry; see ring.h. */
#define _GNU_SOURCE
#include "ring.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

__thread struct pylu_tls_slot pylu_tls __attribute__((tls_model("initial-exec")));
_Atomic uint32_t pylu_session = 0;
void (*pylu_ring_name_hook)(char *name, size_t size) = NULL;

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct pylu_ring *registry_head = NULL;    /* adopted by the consumer */
static struct pylu_ring *registry_fresh = NULL;   /* registered, not yet adopted */
static uint32_t registry_slots = 0;
static uint32_t session_counter = 0;   /* under the mutex; ids are never reused */
static uint32_t next_thread_index = 0; /* under the mutex */
static _Atomic uint64_t alloc_failures = 0;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

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

struct pylu_ring *
pylu_ring_attach_slow(void)
{
    uint32_t session = atomic_load_explicit(&pylu_session, memory_order_acquire);
    if (session == 0) {
        return NULL;
    }
    pthread_once(&exit_key_once, make_exit_key);
    struct pylu_ring *r = calloc(1, sizeof *r);
    uint32_t slots = registry_slots;
    struct pylu_rec *buf = r ? aligned_alloc(64, (size_t)slots * sizeof(struct pylu_rec)) : NULL;
    if (buf == NULL) {
        free(r);
        atomic_fetch_add_explicit(&alloc_failures, 1, memory_order_relaxed);
        return NULL;
    }
    ck_ring_init(&r->ring, slots);
    r->buf = buf;
    r->wake_mask = (slots / 4 < 1024 ? slots / 4 : 1024) - 1;
    r->os_tid = (int32_t)syscall(SYS_gettid);
    if (pylu_ring_name_hook != NULL) {
        pylu_ring_name_hook(r->name, sizeof r->name);
    }
    if (r->name[0] == '\0') {
        pthread_getname_np(pthread_self(), r->name, sizeof r->name);
    }
    pthread_mutex_lock(&registry_mutex);
    if (atomic_load_explicit(&pylu_session, memory_order_relaxed) != session) {
        pthread_mutex_unlock(&registry_mutex);   /* the session ended meanwhile */
        pylu_ring_free(r);
        return NULL;
    }
    r->thread = next_thread_index++;
    r->next = registry_fresh;
    registry_fresh = r;
    pthread_mutex_unlock(&registry_mutex);
    pthread_setspecific(exit_key, r);
    pylu_tls.ring = r;
    pylu_tls.session = session;
    return r;
}

uint32_t
pylu_registry_begin(uint32_t slots)
{
    pthread_mutex_lock(&registry_mutex);
    registry_slots = slots;
    next_thread_index = 0;
    if (++session_counter == 0) {
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

void
pylu_ring_free(struct pylu_ring *ring)
{
    if (ring != NULL) {
        free(ring->buf);
        free(ring);
    }
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
        syscall(SYS_futex, &wake_seq, FUTEX_WAIT_PRIVATE, seq, &ts, NULL, 0);
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
pylu_ring_check_fill(struct pylu_ring *r)
{
    unsigned int fill = r->ring.p_tail - ck_pr_load_uint(&r->ring.c_head);
    if (fill >= r->ring.size / 2) {
        pylu_registry_wake();
    }
}

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
