/* live.c — per-code and per-line aggregates built from drained records; see live.h. */
#include "live.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "kinds.h"

#define LIVE_DEPTH 512

typedef struct {
    uint32_t code;
    uint32_t line;        /* open line slice, 0 = none */
    uint64_t start;
    uint64_t child;       /* ticks spent in traced callees */
    uint64_t line_start;
} live_entry;

struct pylu_live_thread {
    int depth;
    uint64_t overflow;    /* frames deeper than LIVE_DEPTH: not aggregated */
    live_entry e[LIVE_DEPTH];
};
typedef struct pylu_live_thread live_stack;

typedef struct {
    uint64_t key;         /* code for functions, code << 32 | line for lines */
    uint64_t hits, total, self;
    int used;
} agg_slot;

#define AGG_CACHE 256

typedef struct {
    agg_slot *slots;
    size_t cap;           /* power of two */
    size_t used;
    /* direct-mapped cache of recent slots by key: most events hit a few hot codes */
    uint64_t cache_key[AGG_CACHE];
    agg_slot *cache_slot[AGG_CACHE];
} agg_table;

static pthread_mutex_t live_mutex = PTHREAD_MUTEX_INITIALIZER;
static agg_table funcs, lines;

void pylu_live_lock(void) { pthread_mutex_lock(&live_mutex); }
void pylu_live_unlock(void) { pthread_mutex_unlock(&live_mutex); }

static inline size_t
hash_key(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k;
}

static int
agg_grow(agg_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    agg_slot *slots = calloc(cap, sizeof *slots);
    if (slots == NULL) {
        return -1;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].used) {
            size_t j = hash_key(t->slots[i].key) & (cap - 1);
            while (slots[j].used) {
                j = (j + 1) & (cap - 1);
            }
            slots[j] = t->slots[i];
        }
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    memset(t->cache_slot, 0, sizeof t->cache_slot);
    return 0;
}

/* The slot for key, created if needed; NULL when out of memory. */
static agg_slot *agg_get_slow(agg_table *t, uint64_t key);

static inline agg_slot *
agg_get(agg_table *t, uint64_t key)
{
    size_t c = (size_t)(key ^ (key >> 32)) & (AGG_CACHE - 1);
    if (t->cache_slot[c] != NULL && t->cache_key[c] == key) {
        return t->cache_slot[c];
    }
    agg_slot *s = agg_get_slow(t, key);
    if (s != NULL) {
        t->cache_key[c] = key;
        t->cache_slot[c] = s;
    }
    return s;
}

static agg_slot *
agg_get_slow(agg_table *t, uint64_t key)
{
    if ((t->used + 1) * 2 > t->cap && agg_grow(t) < 0) {
        return NULL;
    }
    size_t j = hash_key(key) & (t->cap - 1);
    while (t->slots[j].used) {
        if (t->slots[j].key == key) {
            return &t->slots[j];
        }
        j = (j + 1) & (t->cap - 1);
    }
    t->slots[j].used = 1;
    t->slots[j].key = key;
    t->used++;
    return &t->slots[j];
}

static void
close_line(live_entry *e, uint64_t ticks)
{
    if (e->line == 0) {
        return;
    }
    agg_slot *a = agg_get(&lines, ((uint64_t)e->code << 32) | e->line);
    if (a != NULL) {
        a->hits++;
        a->total += ticks - e->line_start;
    }
    e->line = 0;
}

static inline void
feed_one(live_stack *st, uint32_t kind, uint32_t code, uint32_t line, uint64_t ticks)
{
    switch (kind) {
    case PYLU_EV_CALL:
    case PYLU_EV_RESUME:
        if (st->depth == LIVE_DEPTH) {
            st->overflow++;
            return;
        }
        st->e[st->depth++] = (live_entry){.code = code, .start = ticks};
        return;
    case PYLU_EV_RETURN:
    case PYLU_EV_YIELD:
    case PYLU_EV_UNWIND: {
        if (st->overflow > 0) {
            st->overflow--;
            return;
        }
        int d = st->depth - 1;
        while (d >= 0 && st->e[d].code != code) {
            d--;   /* records lost in between (drops): unwind to the matching frame */
        }
        if (d < 0) {
            return; /* the frame began before recording did */
        }
        live_entry *e = &st->e[d];
        close_line(e, ticks);
        uint64_t total = ticks - e->start;
        agg_slot *a = agg_get(&funcs, code);
        if (a != NULL) {
            a->hits++;
            a->total += total;
            a->self += total > e->child ? total - e->child : 0;
        }
        st->depth = d;
        if (d > 0) {
            st->e[d - 1].child += total;
        }
        return;
    }
    case PYLU_EV_LINE:
    case PYLU_EV_LINE_MARK:
        if (st->depth == 0 || st->overflow > 0 || st->e[st->depth - 1].code != code) {
            return;
        }
        live_entry *e = &st->e[st->depth - 1];
        close_line(e, ticks);
        if (kind == PYLU_EV_LINE) {
            e->line = line;
            e->line_start = ticks;
        }
        return;
    default:
        return;
    }
}

void
pylu_live_feed(pylu_live_thread **stp, const pylu_rec_span *span)
{
    live_stack *st = *stp;
    if (st == NULL) {
        st = *stp = calloc(1, sizeof *st);
        if (st == NULL) {
            return;
        }
    }
    for (unsigned int i = span->head; i != span->tail; i++) {
        const struct pylu_rec *rec = &span->buf[i & span->mask];
        feed_one(st, rec->kind_line & 0xFu, rec->code_id, rec->kind_line >> 4, rec->ticks);
    }
}

void
pylu_live_thread_free(pylu_live_thread *st)
{
    free(st);
}

/* Copy under the lock, report after it: the callbacks build Python objects, which may run
 * arbitrary code (GC finalizers) that must not find the lock held. */
int
pylu_live_snapshot(void *ctx, pylu_live_func_fn on_func, pylu_live_line_fn on_line)
{
    double ns_per_tick = 1e9 / pylu_clock_ticks_per_sec();
    pthread_mutex_lock(&live_mutex);
    size_t nf = 0, nl = 0;
    agg_slot *f = malloc((funcs.used + 1) * sizeof *f);
    agg_slot *l = malloc((lines.used + 1) * sizeof *l);
    if (f != NULL && l != NULL) {
        for (size_t i = 0; i < funcs.cap; i++) {
            if (funcs.slots[i].used && funcs.slots[i].hits) {
                f[nf++] = funcs.slots[i];
            }
        }
        for (size_t i = 0; i < lines.cap; i++) {
            if (lines.slots[i].used && lines.slots[i].hits) {
                l[nl++] = lines.slots[i];
            }
        }
    }
    pthread_mutex_unlock(&live_mutex);
    int rc = (f == NULL || l == NULL) ? -2 : 0;
    for (size_t i = 0; i < nf && rc == 0; i++) {
        rc = on_func(ctx, (uint32_t)f[i].key, f[i].hits, (double)f[i].total * ns_per_tick,
                     (double)f[i].self * ns_per_tick);
    }
    for (size_t i = 0; i < nl && rc == 0; i++) {
        rc = on_line(ctx, (uint32_t)(l[i].key >> 32), (uint32_t)l[i].key, l[i].hits,
                     (double)l[i].total * ns_per_tick);
    }
    free(f);
    free(l);
    return rc;
}

static int
code_listed(uint32_t code, const uint32_t *codes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (codes[i] == code) {
            return 1;
        }
    }
    return 0;
}

int
pylu_live_reset(const uint32_t *codes, size_t n)
{
    pthread_mutex_lock(&live_mutex);
    agg_table *tables[2] = {&funcs, &lines};
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < tables[t]->cap; i++) {
            agg_slot *a = &tables[t]->slots[i];
            uint32_t code = t == 0 ? (uint32_t)a->key : (uint32_t)(a->key >> 32);
            if (a->used && (codes == NULL || code_listed(code, codes, n))) {
                a->hits = a->total = a->self = 0;  /* slot kept: no tombstones needed */
            }
        }
    }
    pthread_mutex_unlock(&live_mutex);
    return 0;
}
