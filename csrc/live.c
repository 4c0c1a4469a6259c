/* live.c — per-code and per-line aggregates built from drained records; see live.h.
 *
 * Self time is charged as it passes: the ticks between two events of a thread go to the
 * function on top of its stack then. Total time is end minus start of an activation,
 * counted for outermost activations only (a recursion is charged once, as pylu-processlogs
 * does). The feeding loop keeps the thread's stack and the top's aggregate in locals: it
 * runs for every recorded event.
 */
#include "live.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "kinds.h"

/* ------------------------------------------------------------------ aggregates */

typedef struct {
    uint64_t hits, total;
} line_agg;

/* A function's lines are found by index from its first one: a close of a line slice is
 * an add, not a hash lookup (line timing closes one per executed line). A function whose
 * lines span more than LINE_SPAN_MAX keeps the others in the `lines` hash table. */
#define LINE_SPAN_MAX 4096

typedef struct {
    uint64_t hits, total, self;   /* ticks */
    uint32_t code;
    uint32_t line_lo, line_n;     /* lines[i] is line line_lo + i */
    line_agg *lines;
} func_agg;

/* Function aggregates never move (stack entries point at them): they live in chunks. */
#define AGG_CHUNK 1024
typedef struct agg_chunk {
    func_agg aggs[AGG_CHUNK];
    size_t used;
    struct agg_chunk *next;
} agg_chunk;

/* The engine's code ids are small and dense (1, 2, ...): below DENSE_CODES a code finds
 * its aggregate by index; other ids through a hash table. */
#define DENSE_CODES (1u << 20)

typedef struct {
    uint64_t key;         /* code, or code << 32 | line */
    void *value;          /* func_agg * for functions; line_agg * for lines */
} hash_slot;

typedef struct {
    hash_slot *slots;     /* key 0 is free: code 0 and line 0 are never keys */
    size_t cap, used;     /* cap a power of two */
} hash_table;

static pthread_mutex_t live_mutex = PTHREAD_MUTEX_INITIALIZER;
static agg_chunk *chunks;                 /* newest first */
static func_agg **dense;                  /* code -> aggregate, NULL until first seen */
static size_t dense_cap;
static hash_table sparse, lines;
static func_agg zero_code_agg;            /* code 0: not a key of the hash table */
/* Charged when no aggregate is: a thread's time outside traced frames, the calls of a code
 * whose aggregate could not be allocated. Never reported; it spares the feeding loop a
 * test per event. */
static func_agg discarded;

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
hash_grow(hash_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    hash_slot *slots = calloc(cap, sizeof *slots);
    if (slots == NULL) {
        return -1;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].key != 0) {
            size_t j = hash_key(t->slots[i].key) & (cap - 1);
            while (slots[j].key != 0) {
                j = (j + 1) & (cap - 1);
            }
            slots[j] = t->slots[i];
        }
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* The slot of key (non-zero), created empty if needed; NULL when out of memory. */
static hash_slot *
hash_slot_of(hash_table *t, uint64_t key)
{
    if ((t->used + 1) * 2 > t->cap && hash_grow(t) < 0) {
        return NULL;
    }
    size_t j = hash_key(key) & (t->cap - 1);
    while (t->slots[j].key != 0) {
        if (t->slots[j].key == key) {
            return &t->slots[j];
        }
        j = (j + 1) & (t->cap - 1);
    }
    t->slots[j].key = key;
    t->used++;
    return &t->slots[j];
}

static func_agg *
new_agg(uint32_t code)
{
    if (chunks == NULL || chunks->used == AGG_CHUNK) {
        agg_chunk *c = calloc(1, sizeof *c);
        if (c == NULL) {
            return NULL;
        }
        c->next = chunks;
        chunks = c;
    }
    func_agg *a = &chunks->aggs[chunks->used++];
    a->code = code;
    return a;
}

static func_agg *
func_get_slow(uint32_t code)
{
    if (code == 0) {
        return &zero_code_agg;
    }
    if (code >= DENSE_CODES) {
        hash_slot *slot = hash_slot_of(&sparse, code);
        if (slot != NULL && slot->value == NULL) {
            slot->value = new_agg(code);
        }
        return slot ? slot->value : NULL;
    }
    if (code >= dense_cap) {
        size_t cap = dense_cap ? dense_cap : 256;
        while (cap <= code) {
            cap *= 2;
        }
        func_agg **grown = realloc(dense, cap * sizeof *grown);
        if (grown == NULL) {
            return NULL;
        }
        memset(grown + dense_cap, 0, (cap - dense_cap) * sizeof *grown);
        dense = grown;
        dense_cap = cap;
    }
    if (dense[code] == NULL) {
        dense[code] = new_agg(code);
    }
    return dense[code];
}

/* The aggregate of a code, created on first use; `discarded` when out of memory. */
static inline func_agg *
func_get(uint32_t code)
{
    func_agg *a = code < dense_cap ? dense[code] : NULL;
    if (__builtin_expect(a == NULL, 0)) {
        a = func_get_slow(code);
    }
    return a != NULL ? a : &discarded;
}

/* ------------------------------------------------------------------ shadow stacks */

#define STACK_FIRST 32
#define STACK_MAX 8192   /* deeper frames are counted in `overflow`, not aggregated */
#define OPEN_BUCKETS 64

typedef struct {
    func_agg *agg;        /* `discarded` when out of memory */
    uint32_t code;
    uint32_t line;        /* open line slice, 0 = none */
    uint64_t start;
    uint64_t line_start;
    uint32_t outer;       /* no other activation of the code below: its total counts */
} live_entry;

struct pylu_live_thread {
    uint32_t depth, cap;
    uint64_t overflow;
    uint64_t last;        /* ticks of the thread's previous event */
    /* Activations on the stack per code bucket (code & 63): a push into an empty bucket
     * is an outermost activation without looking down the stack. */
    uint16_t open[OPEN_BUCKETS];
    live_entry *e;
};
typedef struct pylu_live_thread live_stack;

/* Cover `line` by a's line array, growing it: 1, or 0 when the span would be too wide
 * (the line goes to the hash table), -1 out of memory (not counted: counting it in the
 * table might later count the line in both places). */
static int
cover_line(func_agg *a, uint32_t line)
{
    uint32_t lo = a->line_n ? a->line_lo : line, hi = a->line_n ? a->line_lo + a->line_n : line;
    lo = line < lo ? line : lo;
    hi = line + 16 > hi ? line + 16 : hi;   /* room for the lines after it */
    if (a == &discarded || hi - lo > LINE_SPAN_MAX) {
        return 0;
    }
    line_agg *grown = calloc(hi - lo, sizeof *grown);
    if (grown == NULL) {
        return -1;
    }
    if (a->line_n) {
        memcpy(grown + (a->line_lo - lo), a->lines, a->line_n * sizeof *grown);
    }
    free(a->lines);
    a->lines = grown;
    a->line_lo = lo;
    a->line_n = hi - lo;
    return 1;
}

/* The aggregate of the entry's open line when its function's array does not cover it yet:
 * the array grown, or the hash table; NULL out of memory. */
static line_agg *
line_agg_slow(const live_entry *e)
{
    func_agg *f = e->agg;
    int covered = cover_line(f, e->line);
    if (covered != 0) {
        return covered > 0 ? &f->lines[e->line - f->line_lo] : NULL;
    }
    hash_slot *slot = hash_slot_of(&lines, ((uint64_t)e->code << 32) | e->line);
    if (slot != NULL && slot->value == NULL) {
        slot->value = calloc(1, sizeof(line_agg));
    }
    return slot ? slot->value : NULL;
}

static inline void
close_line(live_entry *e, uint64_t ticks)
{
    if (e->line != 0) {
        uint32_t i = e->line - e->agg->line_lo;
        line_agg *a = __builtin_expect(i < e->agg->line_n, 1) ? &e->agg->lines[i]
                                                               : line_agg_slow(e);
        if (a != NULL) {
            a->hits++;
            a->total += ticks - e->line_start;
        }
        e->line = 0;
    }
}

static int
has_activation(const live_entry *e, uint32_t depth, uint32_t code)
{
    while (depth-- > 0) {
        if (e[depth].code == code) {
            return 1;
        }
    }
    return 0;
}

static int
grow_stack(live_stack *st)
{
    uint32_t cap = st->cap * 2;
    live_entry *grown = cap <= STACK_MAX ? realloc(st->e, cap * sizeof *grown) : NULL;
    if (grown == NULL) {
        return -1;
    }
    st->e = grown;
    st->cap = cap;
    return 0;
}

/* Records lost in between (drops): unwind to the frame of `code`. Its depth + 1, or 0
 * when the frame began before recording did (nothing changes then). */
static uint32_t
unwind_to(live_stack *st, uint32_t depth, uint32_t code)
{
    uint32_t d = depth;
    while (d > 0 && st->e[d - 1].code != code) {
        d--;
    }
    for (uint32_t k = d; d > 0 && k < depth; k++) {
        st->open[st->e[k].code & (OPEN_BUCKETS - 1)]--;
    }
    return d;
}

static live_stack *
new_stack(void)
{
    live_stack *st = calloc(1, sizeof *st);
    live_entry *e = st ? malloc(STACK_FIRST * sizeof *e) : NULL;
    if (e == NULL) {
        free(st);
        return NULL;
    }
    st->e = e;
    st->cap = STACK_FIRST;
    return st;
}

/* A leaf call's RETURN or UNWIND (no line): kind_line 3 or 5. */
static inline int
ends_call(uint32_t kind_line)
{
    return ((kind_line - PYLU_EV_RETURN) & ~2u) == 0;
}

void
pylu_live_feed(pylu_live_thread **stp, const pylu_rec_span *span)
{
    live_stack *st = *stp;
    if (st == NULL && (st = *stp = new_stack()) == NULL) {
        return;
    }
    /* Everything the loop touches per event lives in locals: the stores into aggregates
     * and stack entries could alias any field, which would be reloaded after each. */
    uint64_t last = st->last, overflow = st->overflow;
    uint32_t depth = st->depth, cap = st->cap;
    uint16_t *open = st->open;
    live_entry *es = st->e;
    func_agg *top = depth > 0 ? es[depth - 1].agg : &discarded;
    uint32_t seen_code = UINT32_MAX;   /* one-entry cache of func_get */
    func_agg *seen_agg = &discarded;
    const struct pylu_rec *runs[2][2];
    pylu_span_runs(span, runs);
    for (int run = 0; run < 2; run++) {
        const struct pylu_rec *rec = runs[run][0], *end = runs[run][1];
        for (; rec != end; rec++) {
            __builtin_prefetch(rec + 64);   /* 16 lines ahead: the producer's core wrote them */
            uint64_t ticks = rec->ticks;
            uint32_t code = rec->code_id, kind = rec->kind_line & 0xFu;
            top->self += ticks - last;   /* the time since the thread's last event */
            last = ticks;
            /* Kinds in order: CALL, RESUME open; RETURN, YIELD, UNWIND close; LINE,
             * LINE_MARK. A leaf call (its RETURN or UNWIND the next record) is one update,
             * no push and pop: a loop's hot function, half the calls of a recursion. At
             * the end of a run it takes the general path, to the same result. */
            if (kind == PYLU_EV_CALL && rec + 1 != end && rec[1].code_id == code &&
                ends_call(rec[1].kind_line) && overflow == 0) {
                uint64_t total = rec[1].ticks - ticks;
                int outer = open[code & (OPEN_BUCKETS - 1)] == 0 ||
                            !has_activation(es, depth, code);
                if (code != seen_code) {
                    seen_code = code;
                    seen_agg = func_get(code);
                }
                seen_agg->hits++;
                seen_agg->self += total;
                seen_agg->total += outer ? total : 0;
                last = rec[1].ticks;
                rec++;
                continue;
            }
            if (kind <= PYLU_EV_RESUME) {
                if (__builtin_expect(depth == cap || overflow > 0, 0)) {
                    st->depth = depth;
                    if (overflow > 0 || grow_stack(st) < 0) {
                        overflow++;
                        continue;
                    }
                    es = st->e;
                    cap = st->cap;
                }
                uint32_t outer = open[code & (OPEN_BUCKETS - 1)]++ == 0 ||
                                 !has_activation(es, depth, code);
                if (code != seen_code) {
                    seen_code = code;
                    seen_agg = func_get(code);
                }
                top = seen_agg;
                live_entry *e = &es[depth++];
                e->agg = top;
                e->code = code;
                e->line = 0;
                e->start = ticks;
                e->outer = outer;   /* line_start is set when a line opens */
            }
            else if (kind <= PYLU_EV_UNWIND) {
                if (__builtin_expect(overflow > 0, 0)) {
                    overflow--;
                    continue;
                }
                if (__builtin_expect(depth == 0 || es[depth - 1].code != code, 0)) {
                    uint32_t d = unwind_to(st, depth, code);
                    if (d == 0) {
                        continue;
                    }
                    depth = d;
                }
                live_entry *e = &es[--depth];
                open[code & (OPEN_BUCKETS - 1)]--;
                close_line(e, ticks);
                e->agg->hits++;
                e->agg->total += e->outer ? ticks - e->start : 0;
                top = depth > 0 ? es[depth - 1].agg : &discarded;
            }
            else if (kind <= PYLU_EV_LINE_MARK) {
                /* A line of the frame on top closes its open slice; LINE opens the next. */
                if (overflow == 0 && depth > 0 && es[depth - 1].code == code) {
                    live_entry *e = &es[depth - 1];
                    close_line(e, ticks);
                    if (kind == PYLU_EV_LINE) {
                        e->line = rec->kind_line >> 4;
                        e->line_start = ticks;
                    }
                }
            }
        }
    }
    st->depth = depth;
    st->last = last;
    st->overflow = overflow;
}

void
pylu_live_thread_free(pylu_live_thread *st)
{
    if (st != NULL) {
        free(st->e);
        free(st);
    }
}

/* ------------------------------------------------------------------ reading them */

typedef struct {
    uint64_t key;
    uint64_t hits, total, self;
} agg_copy;

static size_t
count_aggs(size_t *line_slots)
{
    size_t n = 0;
    *line_slots = zero_code_agg.line_n + lines.used;
    for (agg_chunk *c = chunks; c != NULL; c = c->next) {
        n += c->used;
        for (size_t i = 0; i < c->used; i++) {
            *line_slots += c->aggs[i].line_n;
        }
    }
    return n + 1;
}

/* Copy a function's line aggregates that have hits; returns the new count. */
static size_t
copy_lines(const func_agg *a, agg_copy *l, size_t nl)
{
    for (uint32_t i = 0; i < a->line_n; i++) {
        if (a->lines[i].hits) {
            l[nl++] = (agg_copy){((uint64_t)a->code << 32) | (a->line_lo + i), a->lines[i].hits,
                                 a->lines[i].total, 0};
        }
    }
    return nl;
}

/* Copy under the lock, report after it: the callbacks build Python objects, which may run
 * arbitrary code (GC finalizers) that must not find the lock held. */
int
pylu_live_snapshot(void *ctx, pylu_live_func_fn on_func, pylu_live_line_fn on_line)
{
    double ns_per_tick = 1e9 / pylu_clock_ticks_per_sec();
    pthread_mutex_lock(&live_mutex);
    size_t nf = 0, nl = 0, line_slots;
    agg_copy *f = malloc(count_aggs(&line_slots) * sizeof *f);
    agg_copy *l = malloc((line_slots + 1) * sizeof *l);
    if (f != NULL && l != NULL) {
        if (zero_code_agg.hits) {
            f[nf++] = (agg_copy){0, zero_code_agg.hits, zero_code_agg.total, zero_code_agg.self};
        }
        nl = copy_lines(&zero_code_agg, l, nl);
        for (agg_chunk *c = chunks; c != NULL; c = c->next) {
            for (size_t i = 0; i < c->used; i++) {
                const func_agg *a = &c->aggs[i];
                if (a->hits) {
                    f[nf++] = (agg_copy){a->code, a->hits, a->total, a->self};
                }
                nl = copy_lines(a, l, nl);
            }
        }
        for (size_t i = 0; i < lines.cap; i++) {
            const line_agg *a = lines.slots[i].value;
            if (a != NULL && a->hits) {
                l[nl++] = (agg_copy){lines.slots[i].key, a->hits, a->total, 0};
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
    if (codes == NULL) {
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (codes[i] == code) {
            return 1;
        }
    }
    return 0;
}

static void
reset_agg(func_agg *a)
{
    a->hits = a->total = a->self = 0;
    if (a->line_n) {
        memset(a->lines, 0, a->line_n * sizeof *a->lines);
    }
}

int
pylu_live_reset(const uint32_t *codes, size_t n)
{
    pthread_mutex_lock(&live_mutex);
    /* Aggregates are kept (stack entries point at them), only zeroed. */
    if (code_listed(0, codes, n)) {
        reset_agg(&zero_code_agg);
    }
    for (agg_chunk *c = chunks; c != NULL; c = c->next) {
        for (size_t i = 0; i < c->used; i++) {
            func_agg *a = &c->aggs[i];
            if (code_listed(a->code, codes, n)) {
                reset_agg(a);
            }
        }
    }
    for (size_t i = 0; i < lines.cap; i++) {
        line_agg *a = lines.slots[i].value;
        if (a != NULL && code_listed((uint32_t)(lines.slots[i].key >> 32), codes, n)) {
            a->hits = a->total = 0;
        }
    }
    pthread_mutex_unlock(&live_mutex);
    return 0;
}
