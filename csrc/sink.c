/* sink.c — the file sink and the null sink; see sink.h. */
#define _GNU_SOURCE
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ file */

struct file_sink {
    struct pylu_sink base;
    int fd;
};

static int
file_write(struct pylu_sink *sink, const void *data, size_t n)
{
    struct file_sink *f = (struct file_sink *)sink;
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        p += w;
        n -= (size_t)w;
        sink->bytes += (uint64_t)w;
    }
    return 0;
}

static int
file_check(struct pylu_sink *sink)
{
    struct stat st;
    if (fstat(((struct file_sink *)sink)->fd, &st) == 0 && st.st_nlink == 0) {
        return ENOENT;
    }
    return 0;
}

static void
file_close(struct pylu_sink *sink)
{
    close(((struct file_sink *)sink)->fd);
    free(sink);
}

static const struct pylu_sink_ops file_ops = {file_write, file_check, file_close};

struct pylu_sink *
pylu_sink_file_create(const char *path, int *err)
{
    struct file_sink *f = calloc(1, sizeof *f);
    if (f == NULL) {
        *err = ENOMEM;
        return NULL;
    }
    f->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (f->fd < 0) {
        *err = errno;
        free(f);
        return NULL;
    }
    f->base.ops = &file_ops;
    return &f->base;
}

/* ------------------------------------------------------------------ null */

static int
null_write(struct pylu_sink *sink, const void *data, size_t n)
{
    (void)data;
    sink->bytes += n;
    return 0;
}

static int
null_check(struct pylu_sink *sink)
{
    (void)sink;
    return 0;
}

static void
null_close(struct pylu_sink *sink)
{
    free(sink);
}

static const struct pylu_sink_ops null_ops = {null_write, null_check, null_close};

struct pylu_sink *
pylu_sink_null_create(void)
{
    struct pylu_sink *s = calloc(1, sizeof *s);
    if (s != NULL) {
        s->ops = &null_ops;
    }
    return s;
}
