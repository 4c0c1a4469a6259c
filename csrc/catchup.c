/* catchup.c — live aggregates on demand: the log read back into them; see catchup.h. */
#define _GNU_SOURCE
#include "catchup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "budget.h"
#include "clock.h"
#include "logdecode.h"
#include "logformat.h"

/* Events are fed to a thread's shadow stack in batches of this many (one span). */
#define BATCH 1024u

/* A thread met in the log: its decoding state, and a shadow stack of its own while the
 * thread has no drain state any more (it ended; its records still count). */
typedef struct {
    uint32_t thread;
    uint32_t frame;            /* the frame `dec` belongs to */
    pylu_dec_thread dec;
    pylu_live_thread *own;
} catchup_thread;

struct pylu_catchup {
    uint32_t segment;          /* the segment file read now */
    uint64_t offset;           /* its next frame; 0 = its header is not read yet */
    uint32_t frame_no;         /* frames decoded (stamps the threads' decoding state) */
    ZSTD_DCtx *dctx;
    uint8_t *raw;
    size_t raw_cap;
    catchup_thread *threads;
    size_t nthreads, threads_cap;
    struct pylu_rec batch[BATCH];
    unsigned int nbatch;
    pylu_live_thread **batch_stack;   /* whose stack the batch goes to */
};

static catchup_thread *
thread_of(struct pylu_catchup *c, uint32_t thread)
{
    for (size_t i = 0; i < c->nthreads; i++) {
        if (c->threads[i].thread == thread) {
            return &c->threads[i];
        }
    }
    if (c->nthreads == c->threads_cap) {
        size_t cap = c->threads_cap ? c->threads_cap * 2 : 16;
        catchup_thread *grown = realloc(c->threads, cap * sizeof *grown);
        if (grown == NULL) {
            return NULL;
        }
        c->threads = grown;
        c->threads_cap = cap;
    }
    c->threads[c->nthreads] = (catchup_thread){.thread = thread, .frame = UINT32_MAX};
    return &c->threads[c->nthreads++];
}

/* The shadow stack a thread's events go to: its drain state's while it has one, so the
 * records drained after the hand-over continue the same stack. */
static pylu_live_thread **
stack_of(pylu_log_session *s, catchup_thread *t)
{
    for (size_t i = 0; i < s->nthreads; i++) {
        if (s->threads[i].ring->thread == t->thread) {
            return &s->threads[i].live;
        }
    }
    return &t->own;
}

static void
feed_batch(struct pylu_catchup *c)
{
    if (c->nbatch > 0) {
        pylu_rec_span span = {c->batch, BATCH - 1, 0, c->nbatch};
        pylu_live_feed(c->batch_stack, &span);
        c->nbatch = 0;
    }
}

static int
skip_varints(const uint8_t **p, const uint8_t *end, int n)
{
    uint64_t v;
    while (n-- > 0) {
        if (pylu_get_varint(p, end, &v) < 0) {
            return -1;
        }
    }
    return 0;
}

static int
skip_str(const uint8_t **p, const uint8_t *end)
{
    uint64_t len;
    if (pylu_get_varint(p, end, &len) < 0 || len > (uint64_t)(end - *p)) {
        return -1;
    }
    *p += len;
    return 0;
}

/* Feed one decompressed frame's events. 1 at the log's END, 0, -1 when malformed. */
static int
feed_frame(pylu_log_session *s, struct pylu_catchup *c, const uint8_t *p, const uint8_t *end)
{
    unsigned shift = s->enc.tick_shift;
    catchup_thread *cur = NULL;
    c->frame_no++;
    while (p < end) {
        uint8_t tag = *p++;
        if (pylu_is_event_tag(PYLU_LOG_VERSION, tag)) {
            uint32_t kind, line;
            if (cur == NULL ||
                pylu_decode_event(PYLU_LOG_VERSION, tag, &p, end, &cur->dec, &kind, &line) < 0) {
                return -1;
            }
            if (c->nbatch == BATCH) {
                feed_batch(c);
            }
            c->batch[c->nbatch++] = (struct pylu_rec){cur->dec.ticks << shift, cur->dec.code,
                                                      (line << 4) | kind};
            continue;
        }
        uint64_t v;
        int bad = 0;
        switch (tag) {
        case PYLU_TAG_THREAD_SELECT:
            feed_batch(c);
            if (pylu_get_varint(&p, end, &v) < 0 || (cur = thread_of(c, (uint32_t)v)) == NULL) {
                return -1;
            }
            if (cur->frame != c->frame_no) {   /* deltas start again in every frame */
                cur->frame = c->frame_no;
                cur->dec = (pylu_dec_thread){0, 0, 0};
            }
            c->batch_stack = stack_of(s, cur);
            break;
        case PYLU_TAG_CODE:
            bad = skip_varints(&p, end, 2) || skip_str(&p, end) || skip_str(&p, end) ||
                  skip_str(&p, end);
            break;
        case PYLU_TAG_THREAD:
            bad = skip_varints(&p, end, 2) || skip_str(&p, end);
            break;
        case PYLU_TAG_TEXT:
            bad = skip_varints(&p, end, 3) || skip_str(&p, end);
            break;
        case PYLU_TAG_DROP:
        case PYLU_TAG_CALIB:
            bad = skip_varints(&p, end, 2);
            break;
        case PYLU_TAG_END:
            feed_batch(c);
            return 1;
        case PYLU_TAG_SEGMENT_END:
            break;
        default:
            return -1;
        }
        if (bad) {
            return -1;
        }
    }
    feed_batch(c);
    return 0;
}

/* Decompress the frame at src into c->raw; its length, or -1 when damaged. */
static long
decompress(struct pylu_catchup *c, const uint8_t *src, size_t csize)
{
    ZSTD_DCtx_reset(c->dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {src, csize, 0};
    size_t len = 0;
    for (;;) {
        if (c->raw_cap - len < ZSTD_DStreamOutSize()) {
            size_t cap = c->raw_cap ? c->raw_cap * 2 : (1u << 20);
            uint8_t *raw = cap <= 4 * (size_t)PYLU_FRAME_MAX_BYTES ? realloc(c->raw, cap) : NULL;
            if (raw == NULL) {
                return -1;
            }
            c->raw = raw;
            c->raw_cap = cap;
        }
        ZSTD_outBuffer out = {c->raw, c->raw_cap, len};
        size_t rc = ZSTD_decompressStream(c->dctx, &out, &in);
        len = out.pos;
        if (ZSTD_isError(rc)) {
            return -1;
        }
        if (rc == 0) {
            return (long)len;
        }
        if (in.pos == in.size && out.pos < out.size) {
            return -1;
        }
    }
}

/* Read frames of the current segment file from c->offset until its end or the deadline.
 * 1 when the file ended (or is gone), 0 at the deadline, -1 when it cannot be read. */
static int
read_segment(pylu_log_session *s, struct pylu_catchup *c, uint64_t deadline, int *log_end)
{
    char path[4096];
    if (pylu_segment_path(path, sizeof path, s->seg.dir, s->seg.pid, s->seg.log_ns,
                          c->segment) < 0) {
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT && c->segment < s->seg.n) {
            s->live_missed_segments++;   /* deleted by the budget before we read it */
            return 1;
        }
        return -1;
    }
    struct stat st;
    const uint8_t *map = NULL;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        map = m == MAP_FAILED ? NULL : m;
    }
    close(fd);
    if (map == NULL) {
        return -1;
    }
    size_t size = (size_t)st.st_size;
    int rc = 0;
    if (c->offset == 0) {
        if (size < PYLU_HEADER_FIXED ||
            memcmp(map, PYLU_LOG_MAGIC, PYLU_LOG_MAGIC_LEN) != 0 ||
            (map[PYLU_HDR_VERSION] | map[PYLU_HDR_VERSION + 1] << 8) != PYLU_LOG_VERSION) {
            rc = -1;
        }
        c->offset = (uint64_t)(map[PYLU_HDR_SIZE] | map[PYLU_HDR_SIZE + 1] << 8);
    }
    while (rc == 0 && c->offset < size) {
        size_t csize = ZSTD_findFrameCompressedSize(map + c->offset, size - c->offset);
        long len = ZSTD_isError(csize) ? -1 : decompress(c, map + c->offset, csize);
        int fed = len < 0 ? -1 : feed_frame(s, c, c->raw, c->raw + len);
        if (fed < 0) {
            rc = -1;
            break;
        }
        c->offset += csize;
        if (fed == 1) {
            *log_end = 1;
            break;
        }
        if (pylu_clock_mono_ns() >= deadline) {
            break;
        }
    }
    if (rc == 0 && (c->offset >= size || *log_end)) {
        rc = 1;
    }
    munmap((void *)map, size);
    return rc;
}

int
pylu_catchup_step(pylu_log_session *s, uint64_t budget_ns)
{
    struct pylu_catchup *c = s->catchup;
    if (c == NULL) {
        c = s->catchup = calloc(1, sizeof *c);
        if (c == NULL || (c->dctx = ZSTD_createDCtx()) == NULL) {
            return PYLU_CATCHUP_FAILED;
        }
    }
    uint64_t deadline = pylu_clock_mono_ns() + budget_ns;
    pylu_live_lock();
    int result = PYLU_CATCHUP_MORE;
    for (;;) {
        int log_end = 0;
        int rc = read_segment(s, c, deadline, &log_end);
        if (rc < 0) {
            result = PYLU_CATCHUP_FAILED;
            break;
        }
        if (rc == 0) {
            break;   /* the deadline: more after the next drain */
        }
        if (c->segment < s->seg.n && !log_end) {
            c->segment++;   /* on to the next segment file */
            c->offset = 0;
            continue;
        }
        /* The end of what is written: end the open frame, so that everything drained so
         * far is in the file, and read it too; with no frame open we have met the drain. */
        if (!s->enc.frame_open || s->failed || log_end) {
            result = PYLU_CATCHUP_DONE;
            break;
        }
        pylu_live_unlock();
        pylu_session_frame_end(s);
        pylu_live_lock();
    }
    pylu_live_unlock();
    return result;
}

void
pylu_catchup_keep_stack(pylu_log_session *s, uint32_t thread, pylu_live_thread *stack)
{
    catchup_thread *t = thread_of(s->catchup, thread);
    pylu_live_lock();
    if (t != NULL && t->own == NULL) {
        t->own = stack;
        stack = NULL;
    }
    pylu_live_thread_free(stack);
    pylu_live_unlock();
}

void
pylu_catchup_free(pylu_log_session *s)
{
    struct pylu_catchup *c = s->catchup;
    if (c == NULL) {
        return;
    }
    pylu_live_lock();
    for (size_t i = 0; i < c->nthreads; i++) {
        pylu_live_thread_free(c->threads[i].own);
    }
    pylu_live_unlock();
    ZSTD_freeDCtx(c->dctx);
    free(c->threads);
    free(c->raw);
    free(c);
    s->catchup = NULL;
}
