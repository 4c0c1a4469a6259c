/* encoder.h — turns ring records and metadata into the log format (logformat.h): packs
 * records, compresses them into checksummed zstd frames, and writes whole frames to a
 * sink (sink.h). One encoder per log; used by one thread (the flusher). No clock reads,
 * no files, no locks: the session supplies calibration points and the sink.
 *
 * Errors: negative PYLU_ENC_* codes; pylu_encoder_error() says what failed. After an
 * error the open frame is unusable: the caller stops and discards it.
 */
#ifndef PYLU_ENCODER_H
#define PYLU_ENCODER_H

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "bytebuf.h"
#include "ring.h"
#include "sink.h"

enum {
    PYLU_ENC_OK = 0,
    PYLU_ENC_NOMEM = -1,  /* packing or compressing ran out of memory */
    PYLU_ENC_ZSTD = -2,   /* libzstd refused (its error name is kept) */
    PYLU_ENC_SINK = -3,   /* the sink failed (errno kept), or lost the file */
};

/* The fields of the log header (logformat.h). */
typedef struct {
    uint32_t pid;
    uint64_t start_unix_ns;
    uint64_t start_ticks;
    double ticks_per_sec;
    uint32_t clock;          /* pylu_clock_kind */
    const char *argv;        /* NUL-separated; cut to PYLU_HEADER_MAX_ARGV */
    size_t argv_len;
    uint32_t segment;        /* 0, 1, 2, ... of a log cut into segment files */
} pylu_log_header;

/* Per-thread delta state: events encode code, line and ticks against the thread's
 * previous event in the same frame. Zero-initialised before the thread's first event. */
typedef struct {
    uint32_t frame;          /* frame number the state belongs to; 0 = none yet */
    uint32_t code;
    uint32_t line;
    uint64_t ticks;
} pylu_enc_thread;

typedef struct {
    struct pylu_sink *sink;  /* borrowed: the caller closes it */
    ZSTD_CCtx *cctx;
    pylu_bytebuf pack;       /* records packed since the last feed to zstd */
    pylu_bytebuf out;        /* compressed bytes of the open frame, written when it ends */
    size_t frame_raw;        /* uncompressed bytes fed into the open frame */
    int frame_open;
    uint32_t frame_no;       /* frames begun, the open one included */
    uint32_t selected;       /* thread of the last THREAD_SELECT in the open frame */
    uint64_t frames;         /* frames written */
    unsigned tick_shift;     /* log tick = 2^tick_shift clock ticks (set by the header) */
    const char *err_what;
    int err_errno;
} pylu_encoder;

/* level: zstd level. 0, or -1 with a message in err. */
int pylu_encoder_init(pylu_encoder *e, struct pylu_sink *sink, int level, char *err,
                      size_t err_size);
void pylu_encoder_free(pylu_encoder *e);
/* "what: strerror" of the last failure. */
void pylu_encoder_error(const pylu_encoder *e, char *buf, size_t size);

int pylu_encoder_write_header(pylu_encoder *e, const pylu_log_header *h);

/* Begin a frame with a CALIB point (ticks, ns since the header's start_ticks). */
int pylu_encoder_frame_open(pylu_encoder *e, uint64_t ticks, uint64_t ns);
/* Compress what is packed into the open frame (spreads the work over drain cycles). */
int pylu_encoder_feed(pylu_encoder *e);
/* Finish the open frame and write it whole to the sink; then check the sink. */
int pylu_encoder_frame_end(pylu_encoder *e);
/* Drop the open frame (after a failure: nothing more is written). */
void pylu_encoder_discard(pylu_encoder *e);
/* Uncompressed bytes of the open frame, fed or not. */
size_t pylu_encoder_frame_size(const pylu_encoder *e);

/* Records into the open frame. */
int pylu_encoder_thread(pylu_encoder *e, uint32_t thread, int32_t os_tid, const char *name,
                        size_t name_len);
int pylu_encoder_events(pylu_encoder *e, pylu_enc_thread *t, uint32_t thread,
                        const pylu_rec_span *span);
int pylu_encoder_drop(pylu_encoder *e, uint32_t thread, uint64_t dropped_so_far);
int pylu_encoder_text(pylu_encoder *e, uint32_t thread, uint64_t ticks, int kind,
                      const char *text, size_t len);
int pylu_encoder_end_record(pylu_encoder *e);
int pylu_encoder_segment_end_record(pylu_encoder *e);
/* The next segment goes to another sink (its header next); counters carry on. */
void pylu_encoder_set_sink(pylu_encoder *e, struct pylu_sink *sink);
/* Whole records already in the format (CODE, TEXT) are appended here. */
pylu_bytebuf *pylu_encoder_pending(pylu_encoder *e);

#endif
