/* budget.c — segment names and the log directory's budget; see budget.h. */
#define _GNU_SOURCE
#include "budget.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int
pylu_segment_path(char *out, size_t size, const char *dir, int pid, uint64_t start_ns,
                  uint32_t n)
{
    int len = n == 0 ? snprintf(out, size, "%s/pylu-%d-%" PRIu64 ".pylog", dir, pid, start_ns)
                     : snprintf(out, size, "%s/pylu-%d-%" PRIu64 ".%" PRIu32 ".pylog", dir, pid,
                                start_ns, n);
    return len < 0 || (size_t)len >= size ? -1 : 0;
}

int
pylu_segment_parse(const char *name, int *pid, uint64_t *start_ns, uint32_t *n)
{
    unsigned long long ns;
    unsigned int seg = 0;
    int p, used = 0;
    if (sscanf(name, "pylu-%d-%llu%n", &p, &ns, &used) != 2 || p <= 0) {
        return -1;
    }
    const char *rest = name + used;
    if (strcmp(rest, ".pylog") != 0) {
        int more = 0;
        if (sscanf(rest, ".%u%n", &seg, &more) != 1 || seg == 0 ||
            strcmp(rest + more, ".pylog") != 0) {
            return -1;
        }
    }
    *pid = p;
    *start_ns = ns;
    *n = seg;
    return 0;
}

uint64_t
pylu_budget_default(const char *dir)
{
    struct statvfs vfs;
    uint64_t budget = PYLU_BUDGET_MAX_DEFAULT;
    if (statvfs(dir, &vfs) == 0) {
        uint64_t tenth = (uint64_t)vfs.f_bavail * vfs.f_frsize / 10;
        if (tenth < budget) {
            budget = tenth;
        }
    }
    return budget;
}

uint64_t
pylu_segment_bytes(uint64_t budget)
{
    uint64_t seg = budget / 8;
    return seg < PYLU_SEGMENT_MIN ? PYLU_SEGMENT_MIN : seg > PYLU_SEGMENT_MAX ? PYLU_SEGMENT_MAX : seg;
}

typedef struct {
    char name[256];
    int pid;
    uint64_t start_ns;
    uint32_t n;
    uint64_t bytes;
    int last;            /* the highest segment of its log */
} seg_file;

static int
older_first(const void *a, const void *b)
{
    const seg_file *x = a, *y = b;
    if (x->start_ns != y->start_ns) {
        return x->start_ns < y->start_ns ? -1 : 1;
    }
    if (x->pid != y->pid) {
        return x->pid < y->pid ? -1 : 1;
    }
    return x->n < y->n ? -1 : x->n > y->n;
}

static int
same_log(const seg_file *x, const seg_file *y)
{
    return x->pid == y->pid && x->start_ns == y->start_ns;
}

static int
process_gone(int pid)
{
    return kill(pid, 0) < 0 && errno == ESRCH;
}

int
pylu_budget_enforce(const char *dir, uint64_t budget, const char *current,
                    pylu_budget_result *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -1;
    }
    seg_file *files = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    const char *current_name = current ? strrchr(current, '/') : NULL;
    current_name = current_name ? current_name + 1 : current;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        seg_file f = {0};
        struct stat st;
        if (strlen(ent->d_name) >= sizeof f.name ||
            pylu_segment_parse(ent->d_name, &f.pid, &f.start_ns, &f.n) < 0 ||
            fstatat(dirfd(d), ent->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            seg_file *grown = realloc(files, cap * sizeof *grown);
            if (grown == NULL) {
                break;
            }
            files = grown;
        }
        strcpy(f.name, ent->d_name);
        f.bytes = (uint64_t)st.st_size;
        files[n++] = f;
        total += f.bytes;
    }
    if (total > budget && n > 0) {
        qsort(files, n, sizeof *files, older_first);
        for (size_t i = 0; i < n; i++) {
            files[i].last = i + 1 == n || !same_log(&files[i], &files[i + 1]);
        }
        for (size_t i = 0; i < n && total > budget; i++) {
            seg_file *f = &files[i];
            if ((current_name && strcmp(f->name, current_name) == 0) ||
                (f->last && !process_gone(f->pid))) {
                continue;   /* someone may still write it */
            }
            if (unlinkat(dirfd(d), f->name, 0) == 0) {
                out->files++;
                out->bytes += f->bytes;
                total -= f->bytes;
            }
        }
    }
    out->kept_bytes = total;
    free(files);
    closedir(d);
    return 0;
}
