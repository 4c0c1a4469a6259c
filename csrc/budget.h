/* budget.h — the log directory's size budget and the names of log segments.
 *
 * A process's log is a sequence of segment files (the contract shared with
 * pyliveupdate/logdir.py, which lists logs per process):
 *   <dir>/pylu-<pid>-<start unix ns>.pylog        segment 0
 *   <dir>/pylu-<pid>-<start unix ns>.<n>.pylog    segment n = 1, 2, ...
 * The writer starts a new segment past a size; then the directory is held within its
 * budget by deleting the oldest segments that no process writes any more (every segment
 * of a log but its last, and the last of a process that is gone). No Python.h.
 */
#ifndef PYLU_BUDGET_H
#define PYLU_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#define PYLU_BUDGET_MAX_DEFAULT (1ull << 30)   /* default: min(1 GiB, 10% of free space) */
#define PYLU_SEGMENT_MIN (64u << 10)
#define PYLU_SEGMENT_MAX (256u << 20)

/* The path of segment n of a log. -1 if it does not fit in size. */
int pylu_segment_path(char *out, size_t size, const char *dir, int pid, uint64_t start_ns,
                      uint32_t n);
/* Parse a file name (no directory). 0 and the fields, or -1 if it is not a segment. */
int pylu_segment_parse(const char *name, int *pid, uint64_t *start_ns, uint32_t *n);

/* The default budget of a directory: min(1 GiB, 10% of its file system's free space). */
uint64_t pylu_budget_default(const char *dir);
/* The segment size for a budget: an eighth of it, within PYLU_SEGMENT_MIN..MAX. */
uint64_t pylu_segment_bytes(uint64_t budget);

typedef struct {
    uint64_t files;      /* segments deleted */
    uint64_t bytes;
    uint64_t kept_bytes; /* what the directory's logs hold afterwards */
} pylu_budget_result;

/* Delete the oldest segments no process writes until the logs in dir fit the budget.
 * `current` (a path) is never deleted. 0, or -1 with errno when dir cannot be read. */
int pylu_budget_enforce(const char *dir, uint64_t budget, const char *current,
                        pylu_budget_result *out);

#endif
