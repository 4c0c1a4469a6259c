/* calltree.h — the call-tree aggregation behind CallTreeBuilder (docs/DESIGN.md §5b):
 * its state (calltree.c aggregates, calltree_py.c is the Python type). */
#ifndef PYLU_CALLTREE_H
#define PYLU_CALLTREE_H

#include "parts.h"

#include <stdint.h>

#include "logformat.h"

#define WIRE_SIZE ((Py_ssize_t)sizeof(pylu_decoded_event))   /* LogReader.chunks() records */
#define NO_NODE UINT32_MAX
#define ROOT_CODE UINT32_MAX    /* code id of a thread's root node */

typedef struct {
    uint32_t parent;
    uint32_t code;
    uint64_t hits;     /* closed CALL slices: completed calls */
    uint64_t slices;   /* closed CALL + RESUME slices */
    uint64_t running;  /* slices still open at the end, charged up to it by finish() */
    int64_t running_ns;   /* the part of total_ns those slices account for */
    int64_t total_ns;
    int64_t self_ns;
} ct_node;

typedef struct {
    uint32_t node;
    uint32_t code;
    uint32_t line;     /* open line slice, 0 when none */
    uint16_t call_hit; /* a CALL inside the window: counts as a hit once closed */
    uint16_t slice_hit;
    int64_t start;
    int64_t child_ns;
    int64_t line_start;
} ct_frame;

typedef struct {
    uint32_t thread;
    uint32_t root;
    ct_frame *stack;
    size_t depth;
    size_t cap;
    ct_frame orphan;   /* line slice of a code whose frame opened before recording */
    uint64_t unmatched_closes;   /* close events with no open slice of that code */
    uint64_t forced_closes;      /* slices closed because an outer slice closed first */
    uint64_t gap_closes;         /* slices closed at a recording gap (dropped records) */
    uint64_t stray_lines;        /* LINE/LINE_MARK whose frame is not on top */
    int64_t first_ts;
    int64_t last_ts;
} ct_thread;

typedef struct {
    uint32_t thread_index;
    uint32_t code;
    uint32_t line;
    uint32_t used;
    uint64_t hits;
    int64_t total_ns;
} ct_line;

typedef struct {
    PyObject_HEAD
    int64_t lo, hi;           /* time window, inclusive, ns since log start */
    ct_node *nodes;
    size_t n_nodes, cap_nodes;
    uint32_t *node_index;     /* open addressing: node id + 1, 0 = empty */
    size_t index_cap;
    ct_thread *threads;
    size_t n_threads, cap_threads;
    size_t last_thread;       /* cache: events come in runs per thread */
    uint32_t *thread_index;   /* open addressing: thread index + 1, 0 = empty */
    size_t thread_index_cap;
    ct_line *lines;
    size_t n_lines, lines_cap;
    uint64_t events;
    uint64_t bad_kinds;
    int finished;             /* finish() ran: open slices were charged, no more feeding */
    int64_t last_ts;
} CallTreeBuilder;

/* How a slice ends: its own close event, the end of the log, or a recording gap. */
typedef enum { END_CLOSED, END_LOG, END_GAP } slice_end;

/* Index tables sized to cap (a power of two). 0, or -1 with MemoryError. */
int pylu_ct_rehash_nodes(CallTreeBuilder *b, size_t cap);
int pylu_ct_rehash_threads(CallTreeBuilder *b, size_t cap);
/* Aggregate n packed events. 0, or -1 with an exception. */
int pylu_ct_consume(CallTreeBuilder *b, const unsigned char *p, Py_ssize_t n);
/* Close every open slice of t at ts (and its orphan line slice). */
int pylu_ct_close_all(CallTreeBuilder *b, ct_thread *t, int64_t ts, slice_end how);

#endif
