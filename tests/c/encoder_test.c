/* encoder_test.c — the encoder alone, through a memory sink: no files, no threads.
 *
 * Packs known records, decompresses each frame and compares the bytes with the format of
 * logformat.h written out by hand; checks per-frame delta resets, the header, and that a
 * failing or lost sink is reported with its reason.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "encoder.h"
#include "logdecode.h"
#include "logformat.h"

static int failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
            failures++;                                                    \
        }                                                                  \
    } while (0)

/* ------------------------------------------------------------------ a memory sink */

struct memory_sink {
    struct pylu_sink base;
    pylu_bytebuf data;
    size_t writes;         /* write() calls: one per frame */
    int fail_with;         /* errno to fail writes with (0: succeed) */
    int lost;              /* check() reports the destination gone */
};

static int
memory_write(struct pylu_sink *sink, const void *data, size_t n)
{
    struct memory_sink *m = (struct memory_sink *)sink;
    if (m->fail_with) {
        return m->fail_with;
    }
    if (pylu_buf_append(&m->data, data, n) < 0) {
        return ENOMEM;
    }
    m->writes++;
    sink->bytes += n;
    return 0;
}

static int
memory_check(struct pylu_sink *sink)
{
    return ((struct memory_sink *)sink)->lost ? ENOENT : 0;
}

static void
memory_close(struct pylu_sink *sink)
{
    pylu_buf_free(&((struct memory_sink *)sink)->data);
}

static const struct pylu_sink_ops memory_ops = {memory_write, memory_check, memory_close};

/* ------------------------------------------------------------------ helpers */

static struct pylu_rec
rec(uint64_t ticks, uint32_t code, pylu_event_kind kind, uint32_t line)
{
    return (struct pylu_rec){ticks, code, (line << 4) | (uint32_t)kind};
}

static pylu_rec_span
span_of(const struct pylu_rec *buf, unsigned int mask, unsigned int head, unsigned int tail)
{
    return (pylu_rec_span){buf, mask, head, tail};
}

/* Decompress the frame at `at` of the sink's bytes into out; returns its compressed size. */
static size_t
frame_at(const struct memory_sink *m, size_t at, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t csize = ZSTD_findFrameCompressedSize(m->data.data + at, m->data.len - at);
    if (ZSTD_isError(csize)) {
        return 0;
    }
    *out_len = ZSTD_decompress(out, cap, m->data.data + at, csize);
    return ZSTD_isError(*out_len) ? 0 : csize;
}

static int
same_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len,
           const char *what)
{
    if (got_len == want_len && memcmp(got, want, want_len) == 0) {
        return 1;
    }
    fprintf(stderr, "%s: got %zu bytes:", what, got_len);
    for (size_t i = 0; i < got_len; i++) {
        fprintf(stderr, " %02x", got[i]);
    }
    fprintf(stderr, "\n%s: want %zu bytes:", what, want_len);
    for (size_t i = 0; i < want_len; i++) {
        fprintf(stderr, " %02x", want[i]);
    }
    fprintf(stderr, "\n");
    return 0;
}

/* Events: the short form's tag, the long form's tag and its second byte, the tiny form. */
#define SHORT(kind, d) (uint8_t)(PYLU_TAG_EVENT | ((kind) << PYLU_TAG_KIND_SHIFT) | (d))
#define LONG(d) (uint8_t)(PYLU_TAG_EVENT | (d))
#define EXT(kind) (uint8_t)((kind) << PYLU_TAG_KIND_SHIFT)
#define TINY_CALL(d) (uint8_t)(PYLU_TAG_TINY + (d))
#define TINY_RETURN(d) (uint8_t)(PYLU_TAG_TINY + PYLU_TINY_SPAN + (d))

/* ------------------------------------------------------------------ tests */

static void
test_frames_hold_exactly_the_format(void)
{
    struct memory_sink m = {.base = {&memory_ops, 0}};
    pylu_encoder e;
    char err[256];
    CHECK(pylu_encoder_init(&e, &m.base, 1, err, sizeof err) == 0, "init: %s", err);

    /* A clock of 100 MHz: a log tick is a clock tick (10 ns is more than 8). */
    pylu_log_header h = {.pid = 4242, .start_unix_ns = 1, .start_ticks = 1000,
                         .ticks_per_sec = 1e8, .clock = 2, .argv = "a\0bc", .argv_len = 5};
    CHECK(pylu_encoder_write_header(&e, &h) == 0, "header");
    CHECK(m.data.len == PYLU_HEADER_FIXED + 5, "header size %zu", m.data.len);
    CHECK(memcmp(m.data.data, PYLU_LOG_MAGIC, PYLU_LOG_MAGIC_LEN) == 0, "magic");
    CHECK(m.data.data[PYLU_HDR_PID] == (4242 & 0xFF) && m.data.data[PYLU_HDR_PID + 1] == 4242 >> 8,
          "pid");
    size_t header_len = m.data.len;

    /* Frame 1: thread 0 with a ring of 4 slots whose records wrap around (head 3). */
    struct pylu_rec ring0[4];
    ring0[3] = rec(1010, 7, PYLU_EV_CALL, 0);
    ring0[0] = rec(1012, 7, PYLU_EV_LINE, 300);
    ring0[1] = rec(1011, 9, PYLU_EV_RETURN, 0);   /* time may step back: zigzag */
    struct pylu_rec ring1[2] = {rec(1020, 9, PYLU_EV_CALL, 0), rec(1025, 9, PYLU_EV_UNWIND, 0)};
    pylu_enc_thread t0 = {0}, t1 = {0};
    CHECK(pylu_encoder_frame_open(&e, 1000, 0) == 0, "open");
    CHECK(pylu_encoder_thread(&e, 0, 77, "Main", 4) == 0, "thread");
    pylu_rec_span s0 = span_of(ring0, 3, 3, 6);
    CHECK(pylu_encoder_events(&e, &t0, 0, &s0) == 0, "events 0");
    CHECK(pylu_encoder_feed(&e) == 0, "feed");   /* a feed in between changes nothing */
    pylu_rec_span s1 = span_of(ring1, 1, 0, 2);
    CHECK(pylu_encoder_events(&e, &t1, 1, &s1) == 0, "events 1");
    CHECK(pylu_encoder_drop(&e, 1, 5) == 0, "drop");
    CHECK(pylu_encoder_frame_end(&e) == 0, "end");
    CHECK(e.frames == 1 && m.writes == 2, "one write per frame: %zu", m.writes);

    const uint8_t want1[] = {
        PYLU_TAG_CALIB, 0xE8, 0x07, 0x00,                   /* ticks 1000, ns 0 */
        PYLU_TAG_THREAD, 0x00, 77, 4, 'M', 'a', 'i', 'n',
        PYLU_TAG_THREAD_SELECT, 0x00,
        LONG(0x2), EXT(1) | PYLU_EXT_CODE, 14, 0x3F,        /* code +7, ticks +1010 */
        SHORT(6, 0x2), 0xD8, 0x04, 0x00,                    /* line +300, ticks +2 */
        LONG(0x1), EXT(3) | PYLU_EXT_CODE | PYLU_EXT_NEGATIVE, 4, 0x00,   /* ticks -1 */
        PYLU_TAG_THREAD_SELECT, 0x01,
        LONG(0xC), EXT(1) | PYLU_EXT_CODE, 18, 0x3F,        /* a thread's deltas are its own */
        SHORT(5, 0x5), 0x00,
        PYLU_TAG_DROP, 0x01, 5,
    };
    uint8_t raw[4096];
    size_t raw_len = 0;
    size_t c1 = frame_at(&m, header_len, raw, sizeof raw, &raw_len);
    CHECK(c1 > 0, "frame 1 decompresses");
    CHECK(same_bytes(raw, raw_len, want1, sizeof want1, "frame 1"), "frame 1 bytes");

    /* Frame 2: deltas start again from 0; the thread is selected again. A mark moves the
     * line back, a function event with a line takes the long form, a long gap two bytes;
     * a CALL or RETURN of the same code within 47 ticks is one byte. */
    struct pylu_rec more[8] = {rec(1030, 7, PYLU_EV_RETURN, 0), rec(6030, 7, PYLU_EV_LINE_MARK, 298),
                               rec(6040, 7, PYLU_EV_CALL, 12), rec(6041, 7, PYLU_EV_LINE, 11),
                               rec(6050, 7, PYLU_EV_CALL, 0), rec(6097, 7, PYLU_EV_RETURN, 0),
                               rec(6145, 7, PYLU_EV_CALL, 0), rec(6145, 7, PYLU_EV_YIELD, 0)};
    CHECK(pylu_encoder_frame_open(&e, 1028, 28) == 0, "open 2");
    pylu_rec_span s2 = span_of(more, 7, 0, 8);
    CHECK(pylu_encoder_events(&e, &t0, 0, &s2) == 0, "events 2");
    CHECK(pylu_encoder_end_record(&e) == 0, "end record");
    CHECK(pylu_encoder_frame_end(&e) == 0, "end 2");
    const uint8_t want2[] = {
        PYLU_TAG_CALIB, 0x84, 0x08, 28,
        PYLU_TAG_THREAD_SELECT, 0x00,
        LONG(0x6), EXT(3) | PYLU_EXT_CODE, 14, 0x40,        /* ticks +1030 */
        SHORT(7, 0x8), 0xD4, 0x04, 0xB8, 0x02,              /* line +298, ticks +5000 */
        LONG(0xA), EXT(1) | PYLU_EXT_LINE, 12, 0x00,
        SHORT(6, 0x1), 0x01, 0x00,                          /* line -1 */
        TINY_CALL(9), TINY_RETURN(47),
        SHORT(1, 0x0), 0x03,                                /* ticks +48: not tiny */
        SHORT(4, 0x0), 0x00,                                /* only CALL and RETURN are */
        PYLU_TAG_END,
    };
    size_t c2 = frame_at(&m, header_len + c1, raw, sizeof raw, &raw_len);
    CHECK(c2 > 0 && header_len + c1 + c2 == m.data.len, "frame 2 ends the bytes");
    CHECK(same_bytes(raw, raw_len, want2, sizeof want2, "frame 2"), "frame 2 bytes");
    CHECK(m.base.bytes == m.data.len, "bytes counted");

    pylu_encoder_free(&e);
    memory_close(&m.base);
}

/* A 1 GHz clock: the log counts 8 ns ticks everywhere a tick is written, and its header
 * says so (rate and start in log ticks). */
static void
test_log_ticks_are_said_by_the_header(void)
{
    struct memory_sink m = {.base = {&memory_ops, 0}};
    pylu_encoder e;
    char err[256];
    CHECK(pylu_encoder_init(&e, &m.base, 1, err, sizeof err) == 0, "init: %s", err);
    pylu_log_header h = {.pid = 1, .start_ticks = 8000, .ticks_per_sec = 1e9, .clock = 2};
    CHECK(pylu_encoder_write_header(&e, &h) == 0, "header");
    double tps;
    memcpy(&tps, m.data.data + PYLU_HDR_TICKS_PER_SEC, sizeof tps);
    CHECK(tps == 1.25e8 && m.data.data[PYLU_HDR_START_TICKS] == 1000 % 256 &&
          m.data.data[PYLU_HDR_START_TICKS + 1] == 1000 / 256, "rate %g", tps);
    size_t header_len = m.data.len;
    struct pylu_rec two[2] = {rec(8100, 3, PYLU_EV_CALL, 0), rec(8107, 3, PYLU_EV_RETURN, 0)};
    pylu_enc_thread t = {0};
    pylu_rec_span s = span_of(two, 1, 0, 2);
    CHECK(pylu_encoder_frame_open(&e, 8040, 40) == 0, "open");
    CHECK(pylu_encoder_events(&e, &t, 0, &s) == 0, "events");
    CHECK(pylu_encoder_text(&e, 0, 8200, PYLU_TEXT_ENGINE, "x", 1) == 0, "text");
    CHECK(pylu_encoder_frame_end(&e) == 0, "end");
    const uint8_t want[] = {
        PYLU_TAG_CALIB, 0xED, 0x07, 40,                     /* 8040 / 8 = 1005 */
        PYLU_TAG_THREAD_SELECT, 0x00,
        LONG(0x4), EXT(1) | PYLU_EXT_CODE, 6, 0x3F,         /* 8100 / 8 = 1012 */
        TINY_RETURN(1),                                     /* 8107 / 8 = 1013 */
        PYLU_TAG_TEXT, 0x00, 0x81, 0x08, PYLU_TEXT_ENGINE, 1, 'x',   /* 1025 */
    };
    uint8_t raw[256];
    size_t raw_len = 0;
    CHECK(frame_at(&m, header_len, raw, sizeof raw, &raw_len) > 0, "decompresses");
    CHECK(same_bytes(raw, raw_len, want, sizeof want, "log ticks"), "log ticks bytes");
    pylu_encoder_free(&e);
    memory_close(&m.base);
}

static void
test_sink_failures_are_reported(void)
{
    struct memory_sink m = {.base = {&memory_ops, 0}};
    pylu_encoder e;
    char err[256], why[256];
    CHECK(pylu_encoder_init(&e, &m.base, 1, err, sizeof err) == 0, "init: %s", err);
    struct pylu_rec one[1] = {rec(5, 1, PYLU_EV_CALL, 0)};
    pylu_enc_thread t = {0};
    pylu_rec_span s = span_of(one, 0, 0, 1);

    m.fail_with = ENOSPC;
    pylu_encoder_frame_open(&e, 0, 0);
    pylu_encoder_events(&e, &t, 0, &s);
    CHECK(pylu_encoder_frame_end(&e) == PYLU_ENC_SINK, "a failed write is an error");
    pylu_encoder_error(&e, why, sizeof why);
    CHECK(strcmp(why, "write failed: No space left on device") == 0, "why: %s", why);
    CHECK(e.frames == 0, "no frame counted");
    pylu_encoder_discard(&e);

    m.fail_with = 0;
    m.lost = 1;
    pylu_encoder_frame_open(&e, 0, 0);
    pylu_encoder_events(&e, &t, 0, &s);
    CHECK(pylu_encoder_frame_end(&e) == PYLU_ENC_SINK, "a lost file is an error");
    pylu_encoder_error(&e, why, sizeof why);
    CHECK(strcmp(why, "the log file was deleted") == 0, "why: %s", why);
    pylu_encoder_free(&e);
    memory_close(&m.base);
}

static void
test_null_sink_counts_bytes(void)
{
    struct pylu_sink *null = pylu_sink_null_create();
    pylu_encoder e;
    char err[256];
    CHECK(null != NULL && pylu_encoder_init(&e, null, 1, err, sizeof err) == 0, "init");
    struct pylu_rec recs[1024];
    for (unsigned int i = 0; i < 1024; i++) {
        recs[i] = rec(100 + 37 * i, 1 + (i & 3), (i & 1) ? PYLU_EV_RETURN : PYLU_EV_CALL, 0);
    }
    pylu_enc_thread t = {0};
    pylu_rec_span s = span_of(recs, 1023, 0, 1024);
    pylu_encoder_frame_open(&e, 0, 0);
    CHECK(pylu_encoder_events(&e, &t, 0, &s) == 0, "events");
    CHECK(pylu_encoder_frame_end(&e) == 0 && e.frames == 1, "frame");
    CHECK(null->bytes > 0 && null->bytes < 1024 * 4, "compressed: %llu bytes",
          (unsigned long long)null->bytes);
    pylu_encoder_free(&e);
    pylu_sink_close(null);
}

/* Random records (any kind, codes and lines jumping, time stepping back now and then,
 * gaps short and long) come back exactly through logdecode.h, the reader's decoder, in
 * log ticks: the clock's ticks shifted as the header says. */
static void
test_round_trip_through_the_decoder(double ticks_per_sec, unsigned shift)
{
    enum { N = 20000 };
    static struct pylu_rec recs[N];
    uint64_t seed = 12345, ticks = 1u << 20;
    for (int i = 0; i < N; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t r = (uint32_t)(seed >> 33);
        pylu_event_kind kind = (pylu_event_kind)(1 + r % 7);
        uint32_t code = (r >> 3) % 8 == 0 ? (r >> 6) : 5;
        uint32_t line = (r >> 9) % 3 == 0 ? 0 : (r >> 11) % 5 == 0 ? PYLU_REC_LINE_MAX : (r >> 13) % 400;
        ticks += (r >> 20) % 31 == 0   ? (uint64_t)-(int64_t)((r >> 14) % 50)
                 : (r >> 25) % 2 == 0 ? (r >> 14) % (60u << shift)
                                      : (r >> 14) % 100000;
        recs[i] = rec(ticks, code, kind, line);
    }
    struct memory_sink m = {.base = {&memory_ops, 0}};
    pylu_encoder e;
    char err[256];
    CHECK(pylu_encoder_init(&e, &m.base, 1, err, sizeof err) == 0, "init: %s", err);
    pylu_log_header h = {.pid = 1, .start_ticks = 1u << 20, .ticks_per_sec = ticks_per_sec,
                         .clock = 1};
    CHECK(pylu_encoder_write_header(&e, &h) == 0 && e.tick_shift == shift, "shift %u",
          e.tick_shift);
    size_t header_len = m.data.len;
    pylu_enc_thread t = {0};
    pylu_encoder_frame_open(&e, 0, 0);
    for (unsigned int at = 0; at < N; at += 4096) {   /* spans as drains hand them over */
        pylu_rec_span span = span_of(recs, 32767, at, at + 4096 < N ? at + 4096 : N);
        CHECK(pylu_encoder_events(&e, &t, 3, &span) == 0, "events");
    }
    CHECK(pylu_encoder_frame_end(&e) == 0, "end");
    static uint8_t raw[N * 24];
    size_t raw_len = 0;
    CHECK(frame_at(&m, header_len, raw, sizeof raw, &raw_len) > 0, "decompresses");
    const uint8_t *p = raw, *end = raw + raw_len;
    pylu_dec_thread dt = {0, 0, 0};
    uint64_t v = 0;
    int i = 0, bad = 0, tiny = 0;
    while (p < end && !bad) {
        uint8_t tag = *p++;
        if (pylu_is_event_tag(PYLU_LOG_VERSION, tag)) {
            tiny += !(tag & PYLU_TAG_EVENT);
            uint32_t kind, line;
            if (pylu_decode_event(PYLU_LOG_VERSION, tag, &p, end, &dt, &kind, &line) < 0 ||
                i >= N) {
                bad = 1;
                break;
            }
            const struct pylu_rec *want = &recs[i++];
            if (dt.ticks != want->ticks >> shift || dt.code != want->code_id ||
                kind != (want->kind_line & 0xF) || line != want->kind_line >> 4) {
                fprintf(stderr, "event %d: got (%llu, %u, %u, %u)\n", i - 1,
                        (unsigned long long)dt.ticks, dt.code, kind, line);
                bad = 1;
            }
        }
        else if (tag == PYLU_TAG_THREAD_SELECT) {
            bad = pylu_get_varint(&p, end, &v) < 0 || v != 3;
        }
        else if (tag == PYLU_TAG_CALIB) {
            bad = pylu_get_varint(&p, end, &v) < 0 || pylu_get_varint(&p, end, &v) < 0;
        }
        else {
            bad = 1;
        }
    }
    CHECK(!bad && i == N, "round trip: %d of %d events, bad=%d", i, N, bad);
    CHECK(tiny > N / 50, "tiny events: %d", tiny);
    pylu_encoder_free(&e);
    memory_close(&m.base);
}

int
main(void)
{
    test_frames_hold_exactly_the_format();
    test_sink_failures_are_reported();
    test_null_sink_counts_bytes();
    test_round_trip_through_the_decoder(1e8, 0);
    test_round_trip_through_the_decoder(1e9, 3);       /* CLOCK_MONOTONIC: 8 ns log ticks */
    test_round_trip_through_the_decoder(2.6e9, 4);     /* a 2.6 GHz TSC: 16 ticks, 6.2 ns */
    test_log_ticks_are_said_by_the_header();
    if (failures) {
        fprintf(stderr, "encoder test: %d failure(s)\n", failures);
        return 1;
    }
    printf("encoder test: OK\n");
    return 0;
}
