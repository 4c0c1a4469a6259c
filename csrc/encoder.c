/* encoder.c — packing and compressing the log; see encoder.h and logformat.h. */
#include "encoder.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "logformat.h"

static int
fail(pylu_encoder *e, int code, const char *what, int err)
{
    e->err_what = what;
    e->err_errno = err;
    return code;
}

/* Level 1, the default: zstd's level 1 searching for matches 16 positions apart where
 * it finds none (targetLength, the "acceleration" of its negative levels) while its
 * literals stay Huffman-coded (negative levels store them raw, which doubles our log).
 * Flusher instructions per event (callgrind, tests/c/flusher_bench): fib 65.9 -> 45.3,
 * loop 52.7 -> 44.3, line timing 123.8 -> 111.0; bytes per event 0.483 -> 0.515,
 * 0.667 -> 0.676, 0.703 -> 0.869 (the budget is 2.5). Literal mode is zstd's
 * experimental parameter 5 (ZSTD_c_literalCompressionMode, 1 = always Huffman, since
 * 1.4.0); a libzstd that refuses it keeps raw literals' speed and size, still readable. */
static size_t
accelerate(ZSTD_CCtx *cctx)
{
    size_t zr = ZSTD_CCtx_setParameter(cctx, ZSTD_c_targetLength, 16);
    if (!ZSTD_isError(zr)) {
        (void)ZSTD_CCtx_setParameter(cctx, ZSTD_c_experimentalParam5, 1);
    }
    return zr;
}

int
pylu_encoder_init(pylu_encoder *e, struct pylu_sink *sink, int level, char *err,
                  size_t err_size)
{
    memset(e, 0, sizeof *e);
    e->sink = sink;
    e->cctx = ZSTD_createCCtx();
    if (e->cctx == NULL) {
        snprintf(err, err_size, "out of memory (zstd context)");
        return -1;
    }
    size_t zr = ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(zr)) {
        zr = ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_checksumFlag, 1);
    }
    if (!ZSTD_isError(zr) && level <= 3) {
        /* Fast levels: a 128 KiB window instead of 512 KiB. On a 7.8 M-event trace (fib +
         * line-timed loop) the same size (0.420 vs 0.416 bytes/event), ~13% less time
         * compressing, and a smaller cache footprint beside the program. */
        zr = ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_windowLog, 17);
    }
    if (!ZSTD_isError(zr) && level == 1) {
        zr = accelerate(e->cctx);
    }
    if (ZSTD_isError(zr)) {
        snprintf(err, err_size, "zstd: %s", ZSTD_getErrorName(zr));
        pylu_encoder_free(e);
        return -1;
    }
    return 0;
}

void
pylu_encoder_free(pylu_encoder *e)
{
    ZSTD_freeCCtx(e->cctx);
    e->cctx = NULL;
    pylu_buf_free(&e->pack);
    pylu_buf_free(&e->out);
}

void
pylu_encoder_error(const pylu_encoder *e, char *buf, size_t size)
{
    if (e->err_errno) {
        snprintf(buf, size, "%s: %s", e->err_what, strerror(e->err_errno));
    }
    else {
        snprintf(buf, size, "%s", e->err_what ? e->err_what : "no error");
    }
}

static void
put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

int
pylu_encoder_write_header(pylu_encoder *e, const pylu_log_header *h)
{
    size_t argv_len = h->argv_len > PYLU_HEADER_MAX_ARGV ? PYLU_HEADER_MAX_ARGV : h->argv_len;
    uint8_t hdr[PYLU_HEADER_FIXED + PYLU_HEADER_MAX_ARGV];
    /* Everything in the log counts log ticks: the header says how long one is. */
    e->tick_shift = pylu_log_tick_shift(h->ticks_per_sec);
    double log_tps = h->ticks_per_sec / (double)(1u << e->tick_shift);
    uint64_t tps_bits;
    memcpy(&tps_bits, &log_tps, sizeof tps_bits);
    memcpy(hdr, PYLU_LOG_MAGIC, PYLU_LOG_MAGIC_LEN);
    put_le(hdr + PYLU_HDR_VERSION, PYLU_LOG_VERSION, 2);
    put_le(hdr + PYLU_HDR_SIZE, PYLU_HEADER_FIXED + argv_len, 2);
    put_le(hdr + PYLU_HDR_PID, h->pid, 4);
    put_le(hdr + PYLU_HDR_START_UNIX_NS, h->start_unix_ns, 8);
    put_le(hdr + PYLU_HDR_START_TICKS, h->start_ticks >> e->tick_shift, 8);
    put_le(hdr + PYLU_HDR_TICKS_PER_SEC, tps_bits, 8);
    put_le(hdr + PYLU_HDR_CLOCK, h->clock, 4);
    put_le(hdr + PYLU_HDR_ARGV_LEN, argv_len, 4);
    put_le(hdr + PYLU_HDR_SEGMENT, h->segment, 4);
    put_le(hdr + PYLU_HDR_SEGMENT + 4, 0, 4);
    if (argv_len) {
        memcpy(hdr + PYLU_HEADER_FIXED, h->argv, argv_len);
    }
    int err = pylu_sink_write(e->sink, hdr, PYLU_HEADER_FIXED + argv_len);
    return err ? fail(e, PYLU_ENC_SINK, "write failed", err) : 0;
}

/* ------------------------------------------------------------------ frames */

int
pylu_encoder_frame_open(pylu_encoder *e, uint64_t ticks, uint64_t ns)
{
    if (e->frame_open) {
        return 0;
    }
    uint64_t v[2] = {ticks >> e->tick_shift, ns};
    if (pylu_buf_put_byte(&e->pack, PYLU_TAG_CALIB) < 0 ||
        pylu_buf_put_varints(&e->pack, 2, v) < 0) {
        return fail(e, PYLU_ENC_NOMEM, "out of memory", 0);
    }
    e->frame_open = 1;
    e->frame_no++;
    e->selected = UINT32_MAX;
    return 0;
}

static int
compress(pylu_encoder *e, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {e->pack.data, e->pack.len, 0};
    size_t remaining;
    do {
        if (pylu_buf_reserve(&e->out, ZSTD_CStreamOutSize()) < 0) {
            return fail(e, PYLU_ENC_NOMEM, "out of memory compressing", 0);
        }
        ZSTD_outBuffer out = {e->out.data, e->out.cap, e->out.len};
        remaining = ZSTD_compressStream2(e->cctx, &out, &in, mode);
        e->out.len = out.pos;
        if (ZSTD_isError(remaining)) {
            return fail(e, PYLU_ENC_ZSTD, ZSTD_getErrorName(remaining), 0);
        }
    } while (in.pos < in.size || (mode == ZSTD_e_end && remaining != 0));
    e->frame_raw += e->pack.len;
    e->pack.len = 0;
    return 0;
}

int
pylu_encoder_feed(pylu_encoder *e)
{
    return e->frame_open && e->pack.len > 0 ? compress(e, ZSTD_e_continue) : 0;
}

int
pylu_encoder_frame_end(pylu_encoder *e)
{
    if (!e->frame_open) {
        return 0;
    }
    e->frame_open = 0;
    int rc = compress(e, ZSTD_e_end);
    e->frame_raw = 0;
    if (rc < 0) {
        return rc;
    }
    size_t n = e->out.len;
    e->out.len = 0;
    int err = pylu_sink_write(e->sink, e->out.data, n);
    if (err) {
        return fail(e, PYLU_ENC_SINK, "write failed", err);
    }
    e->frames++;
    if (pylu_sink_check(e->sink) != 0) {
        return fail(e, PYLU_ENC_SINK, "the log file was deleted", 0);
    }
    return 0;
}

void
pylu_encoder_discard(pylu_encoder *e)
{
    if (e->frame_open) {
        ZSTD_CCtx_reset(e->cctx, ZSTD_reset_session_only);
    }
    e->frame_open = 0;
    e->pack.len = 0;
    e->out.len = 0;
    e->frame_raw = 0;
}

size_t
pylu_encoder_frame_size(const pylu_encoder *e)
{
    return e->frame_raw + e->pack.len;
}

pylu_bytebuf *
pylu_encoder_pending(pylu_encoder *e)
{
    return &e->pack;
}

/* ------------------------------------------------------------------ records */

int
pylu_encoder_thread(pylu_encoder *e, uint32_t thread, int32_t os_tid, const char *name,
                    size_t name_len)
{
    uint64_t v[2] = {thread, (uint64_t)(uint32_t)os_tid};
    if (pylu_buf_put_byte(&e->pack, PYLU_TAG_THREAD) < 0 ||
        pylu_buf_put_varints(&e->pack, 2, v) < 0 ||
        pylu_buf_put_str(&e->pack, name, name_len) < 0) {
        return fail(e, PYLU_ENC_NOMEM, "out of memory packing", 0);
    }
    return 0;
}

int
pylu_encoder_drop(pylu_encoder *e, uint32_t thread, uint64_t dropped_so_far)
{
    uint64_t v[2] = {thread, dropped_so_far};
    if (pylu_buf_put_byte(&e->pack, PYLU_TAG_DROP) < 0 ||
        pylu_buf_put_varints(&e->pack, 2, v) < 0) {
        return fail(e, PYLU_ENC_NOMEM, "out of memory packing", 0);
    }
    return 0;
}

int
pylu_encoder_text(pylu_encoder *e, uint32_t thread, uint64_t ticks, int kind, const char *text,
                  size_t len)
{
    uint64_t v[3] = {thread, ticks >> e->tick_shift, (uint64_t)kind};
    if (pylu_buf_put_byte(&e->pack, PYLU_TAG_TEXT) < 0 ||
        pylu_buf_put_varints(&e->pack, 3, v) < 0 ||
        pylu_buf_put_str(&e->pack, text, len) < 0) {
        return fail(e, PYLU_ENC_NOMEM, "out of memory packing", 0);
    }
    return 0;
}

static int
put_tag(pylu_encoder *e, uint8_t tag)
{
    if (pylu_buf_put_byte(&e->pack, tag) < 0) {
        return fail(e, PYLU_ENC_NOMEM, "out of memory packing", 0);
    }
    return 0;
}

int
pylu_encoder_end_record(pylu_encoder *e)
{
    return put_tag(e, PYLU_TAG_END);
}

int
pylu_encoder_segment_end_record(pylu_encoder *e)
{
    return put_tag(e, PYLU_TAG_SEGMENT_END);
}

void
pylu_encoder_set_sink(pylu_encoder *e, struct pylu_sink *sink)
{
    e->sink = sink;
}

/* Largest packed event: tag, long-form byte, code delta (5), line (4), delta (10). */
#define EVENT_MAX_BYTES 21

static inline int
is_line_kind(uint32_t kind)
{
    return kind == PYLU_EV_LINE || kind == PYLU_EV_LINE_MARK;
}

/* Any event but the two-byte kind: the short form with a line, or the long form. Out of
 * line so the common loop keeps its few registers. */
static __attribute__((noinline)) uint8_t *
put_event(uint8_t *p, const struct pylu_rec *rec, int64_t delta, pylu_enc_thread *st)
{
    uint32_t kind = rec->kind_line & 0xFu, line = rec->kind_line >> 4;
    if (rec->code_id == st->code && delta >= 0 && (line == 0 || is_line_kind(kind))) {
        *p++ = (uint8_t)(PYLU_TAG_EVENT | (kind << PYLU_TAG_KIND_SHIFT) | (delta & 0xF));
        if (is_line_kind(kind)) {
            p = pylu_put_varint(p, pylu_zigzag32((int32_t)(line - st->line)));
            st->line = line;
        }
        return pylu_put_varint(p, (uint64_t)delta >> PYLU_TAG_DELTA_BITS);
    }
    uint64_t magnitude = delta < 0 ? -(uint64_t)delta : (uint64_t)delta;
    *p++ = (uint8_t)(PYLU_TAG_EVENT | (magnitude & 0xF));
    uint8_t *ext = p++;
    *ext = (uint8_t)(kind << PYLU_TAG_KIND_SHIFT);
    if (rec->code_id != st->code) {
        *ext |= PYLU_EXT_CODE;
        p = pylu_put_varint(p, pylu_zigzag32((int32_t)(rec->code_id - st->code)));
        st->code = rec->code_id;
    }
    if (line != 0) {
        *ext |= PYLU_EXT_LINE;
        p = pylu_put_varint(p, line);
    }
    if (delta < 0) {
        *ext |= PYLU_EXT_NEGATIVE;
    }
    st->line = line;
    return pylu_put_varint(p, magnitude >> PYLU_TAG_DELTA_BITS);
}

/* The packing loop's state, kept in registers: the last event's log ticks, code, line;
 * tiny_key the code_id/kind_line word of a RETURN of that code (see pack_one). */
typedef struct {
    uint64_t ticks, tiny_key;
    uint32_t code, line;
    unsigned shift;
} pack_state;

static inline uint64_t
tiny_key(uint32_t code)
{
    return code | (uint64_t)PYLU_EV_RETURN << 32;
}

/* One record into p; returns the end of what it wrote. */
static inline __attribute__((always_inline)) uint8_t *
pack_one(uint8_t *p, const struct pylu_rec *rec, pack_state *s, pylu_enc_thread *t)
{
    uint64_t rticks = rec->ticks >> s->shift, delta = rticks - s->ticks;
    s->ticks = rticks;
    /* code_id and kind_line as one word (offsets 8 and 12, little-endian): a CALL or
     * RETURN (kind_line 1 or 3: no line) of the thread's code is one compare. */
    uint64_t word;
    memcpy(&word, (const char *)rec + offsetof(struct pylu_rec, code_id), sizeof word);
    uint32_t kind_line = (uint32_t)(word >> 32);
    /* Soon after the thread's last event: one byte, most of a fib or loop trace. */
    if (__builtin_expect(delta < PYLU_TINY_SPAN &&
                         (word | (uint64_t)2 << 32) == s->tiny_key,
                         1)) {
        *p++ = (uint8_t)(PYLU_TAG_TINY + (kind_line & 2u) * (PYLU_TINY_SPAN / 2) + delta);
        return p;
    }
    if (__builtin_expect(rec->code_id == s->code && delta < (1u << 11), 1)) {
        /* kind_line < LINE: any other function event without a line, a tag and one byte
         * within 2047 ticks. */
        if (kind_line < PYLU_EV_LINE) {
            uint16_t two = (uint16_t)(PYLU_TAG_EVENT | (kind_line << PYLU_TAG_KIND_SHIFT) |
                                      (delta & 0xF) | ((delta >> PYLU_TAG_DELTA_BITS) << 8));
            memcpy(p, &two, 2);   /* little-endian: the tag first */
            return p + 2;
        }
        /* A line of the same code near the last one: put_event's short form in three
         * bytes (tag, line step, delta), inline: line timing's common case. */
        uint32_t step = pylu_zigzag32((int32_t)((kind_line >> 4) - s->line));
        if ((kind_line & 0xEu) == PYLU_EV_LINE && step < 0x80) {
            p[0] = (uint8_t)(PYLU_TAG_EVENT | ((kind_line & 0xFu) << PYLU_TAG_KIND_SHIFT) |
                             (delta & 0xF));
            p[1] = (uint8_t)step;
            p[2] = (uint8_t)(delta >> PYLU_TAG_DELTA_BITS);
            s->line = kind_line >> 4;
            return p + 3;
        }
    }
    t->code = s->code;
    t->line = s->line;
    p = put_event(p, rec, (int64_t)delta, t);
    s->code = t->code;
    s->line = t->line;
    s->tiny_key = tiny_key(s->code);
    return p;
}

int
pylu_encoder_events(pylu_encoder *e, pylu_enc_thread *t, uint32_t thread,
                    const pylu_rec_span *span)
{
    uint64_t n = (uint64_t)(unsigned int)(span->tail - span->head);
    if (n == 0) {
        return 0;
    }
    if (pylu_buf_reserve(&e->pack, 16 + n * EVENT_MAX_BYTES) < 0) {
        return fail(e, PYLU_ENC_NOMEM, "out of memory packing", 0);
    }
    if (t->frame != e->frame_no) {
        *t = (pylu_enc_thread){.frame = e->frame_no};
    }
    uint8_t *p = e->pack.data + e->pack.len;
    if (e->selected != thread) {
        *p++ = PYLU_TAG_THREAD_SELECT;
        p = pylu_put_varint(p, thread);
        e->selected = thread;
    }
    /* Locals only in the loop (pack_one inlined): the byte stores through p may alias
     * anything, which would make the compiler reload every field after each of them. */
    pack_state s = {t->ticks, tiny_key(t->code), t->code, t->line, e->tick_shift};
    const struct pylu_rec *runs[2][2];
    pylu_span_runs(span, runs);
    for (int run = 0; run < 2; run++) {
        const struct pylu_rec *rec = runs[run][0], *end = runs[run][1];
        /* Four records to a cache line: one prefetch, 16 lines ahead (the producer's core
         * wrote them), and one loop test per line. */
        for (; end - rec >= 4; rec += 4) {
            __builtin_prefetch(rec + 64);
            p = pack_one(p, rec, &s, t);
            p = pack_one(p, rec + 1, &s, t);
            p = pack_one(p, rec + 2, &s, t);
            p = pack_one(p, rec + 3, &s, t);
        }
        for (; rec != end; rec++) {
            p = pack_one(p, rec, &s, t);
        }
    }
    e->pack.len = (size_t)(p - e->pack.data);
    t->code = s.code;
    t->line = s.line;
    t->ticks = s.ticks;
    return 0;
}
