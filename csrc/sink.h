/* sink.h — where the encoder's bytes go. A small interface (as memray's sink.h), so the
 * encoder is tested and measured without files (null sink, or a test's memory sink).
 *
 * A sink is used by one thread at a time (the flusher). No Python.h.
 */
#ifndef PYLU_SINK_H
#define PYLU_SINK_H

#include <stddef.h>
#include <stdint.h>

struct pylu_sink;

struct pylu_sink_ops {
    /* Write all n bytes. 0, or a positive errno (the bytes may be partly written). */
    int (*write)(struct pylu_sink *sink, const void *data, size_t n);
    /* 0 while what is written can still be read back; else a positive errno (ENOENT:
     * the file was deleted, so going on would fill an inode nobody can read). */
    int (*check)(struct pylu_sink *sink);
    void (*close)(struct pylu_sink *sink);
};

struct pylu_sink {
    const struct pylu_sink_ops *ops;
    uint64_t bytes;   /* written so far (kept by the implementations) */
};

static inline int
pylu_sink_write(struct pylu_sink *s, const void *data, size_t n)
{
    return s->ops->write(s, data, n);
}

static inline int
pylu_sink_check(struct pylu_sink *s)
{
    return s->ops->check(s);
}

static inline void
pylu_sink_close(struct pylu_sink *s)
{
    if (s != NULL) {
        s->ops->close(s);
    }
}

/* A new file, created 0600 with O_EXCL|O_NOFOLLOW. NULL with a positive errno in *err. */
struct pylu_sink *pylu_sink_file_create(const char *path, int *err);
/* Counts bytes and drops them (benchmarks, encoder tests). NULL when out of memory. */
struct pylu_sink *pylu_sink_null_create(void);

#endif
