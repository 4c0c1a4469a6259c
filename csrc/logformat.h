/* logformat.h — the pyliveupdate log (.pylog) format, version 3. The one place it is defined.
 *
 * A log is a fixed header followed by independent zstd frames (checksummed). Each frame
 * decompresses to a byte stream of records. A frame never depends on an earlier frame's
 * compression state, so a log cut anywhere (SIGKILL, disk full) is readable up to its last
 * complete frame; the writer ends a frame at least every frame_ms (100 ms by default).
 *
 * Integers are little-endian. "varint" is LEB128 (7 bits per byte, high bit = more),
 * "zigzag" maps signed to unsigned (0,-1,1,-2 -> 0,1,2,3), "str" is varint length + UTF-8.
 *
 * Header (uncompressed, PYLU_HEADER_FIXED bytes + argv):
 *
 *   0        8       10      12      16              24              32
 *   +--------+-------+-------+-------+---------------+---------------+
 *   | magic  |version|hdr len|  pid  | start_unix_ns |  start_ticks  |
 *   +--------+-------+-------+-------+---------------+---------------+
 *   32              40      44        48        52        56
 *   +---------------+-------+---------+---------+---------+------------------------+
 *   | ticks_per_sec | clock |argv len | segment |    0    | argv (NUL-separated)   |
 *   |   (f64)       | (u32) |  (u32)  |  (u32)  |  (u32)  |                        |
 *   +---------------+-------+---------+---------+---------+------------------------+
 *   clock: 1 = TSC, 2 = CLOCK_MONOTONIC (ticks are ns). hdr len = 56 + argv len.
 *   A log may be a sequence of segment files (csrc/budget.h names them): every segment
 *   has the same pid, start_unix_ns and start_ticks, and `segment` 0, 1, 2, ...; each
 *   repeats the CODE and THREAD records its events need, so it reads on its own.
 *   Version 1 has no segment field: hdr len = 48 + argv len, argv at 48.
 *
 * Records in a frame. The first byte is a tag.
 *
 *   Event (tag bit 7 set). Each thread has a code, a line and a tick count, all 0 at the
 *   start of each frame; an event updates them.
 *     7   6   5   4   3   2   1   0
 *   +---+-----------+---------------+
 *   | 1 |   kind    |      d        |   d: the low 4 bits of the tick delta (unsigned)
 *   +---+-----------+---------------+
 *   Short form, kind 1..7 (pylu_event_kind): the code is the thread's current one.
 *     LINE, LINE_MARK: zigzag varint (line - the thread's line), then varint (delta >> 4)
 *     other kinds:     line 0, then varint (delta >> 4)
 *   Long form, kind 0: one more byte, then the fields it announces, then the delta:
 *     0 kkk C L N 0    kkk: the kind; C: zigzag varint (code_id - the thread's code)
 *                      follows; L: varint line follows (else line 0); N: the tick delta
 *                      is negative (d and the varint hold its magnitude)
 *     then [code delta if C] [line if L] varint (|delta| >> 4)
 *   The writer uses the long form when the code changes, when a function event carries a
 *   line, or when time steps back.
 *   Tiny form (version 3), one byte 0x20..0x7F: a CALL (0x20 + d) or RETURN (0x50 + d) of
 *   the thread's code, line 0, d = the whole tick delta (0..47). Most events of a fib or
 *   loop trace: zstd's time goes with the bytes it is given, about one an event here.
 *   The event belongs to the current thread (last THREAD_SELECT in this frame).
 *
 *   Version 1 (still read): tag 1 kkk L C 0 0, then [zigzag varint code delta if C]
 *   [varint line if L] zigzag varint tick delta.
 *   Version 2 (still read): as version 3 without the tiny form; ticks are clock ticks.
 *
 *   Other records (tag 0x01..0x1F; 0x09..0x1F are unused):
 *   THREAD_SELECT 0x01  varint thread          following events belong to this thread
 *   CODE          0x02  varint code_id, varint firstlineno, str qualname, str filename,
 *                       str module
 *   THREAD        0x03  varint thread, varint os_tid, str name   (before its first use)
 *   TEXT          0x04  varint thread, varint ticks, varint text kind, str text
 *   DROP          0x05  varint thread, varint dropped so far (cumulative)
 *   CALIB         0x06  varint ticks, varint ns since the header's start_ticks
 *   END           0x07  (no payload) the writer closed the log; nothing follows
 *   SEGMENT_END   0x08  (no payload) the log continues in the next segment file
 *
 * Ticks (version 3): a log tick is 2^s clock ticks, s = pylu_log_tick_shift(the clock's
 * rate), the coarsest power of two that is at most 8 ns. The header's start_ticks and
 * ticks_per_sec, CALIB and TEXT ticks and event deltas are all in log ticks, so a reader
 * needs nothing but the header. Live aggregates (recorder_live) keep the clock's ticks.
 *
 * Time: ns = calib_ns + (ticks - calib_ticks) * rate, with the latest CALIB point and
 * rate = (latest - first CALIB) ns per tick once two points exist (else 1e9/ticks_per_sec).
 * The first CALIB is (start_ticks, 0), written at the head of the first frame.
 */
#ifndef PYLU_LOGFORMAT_H
#define PYLU_LOGFORMAT_H

#include <stdint.h>

#include "kinds.h"   /* event kinds (tag bits 4-6) and text kinds (TEXT records) */

#define PYLU_LOG_MAGIC "\x89PYLULG\n"
#define PYLU_LOG_MAGIC_LEN 8
#define PYLU_LOG_VERSION 3          /* what the writer writes */
#define PYLU_LOG_VERSION_OLDEST 1   /* the oldest the reader reads */
#define PYLU_HEADER_FIXED 56
#define PYLU_HEADER_FIXED_V1 48
#define PYLU_HEADER_MAX_ARGV 16384

#define PYLU_TAG_EVENT 0x80
#define PYLU_TAG_KIND_SHIFT 4
#define PYLU_TAG_DELTA_BITS 4       /* v2: low bits of the tick delta in the tag */
#define PYLU_TAG_TINY 0x20          /* v3: tags 0x20..0x7F are one-byte events */
#define PYLU_TINY_SPAN 48           /* deltas 0..47: CALL at 0x20 + d, RETURN at 0x50 + d */
#define PYLU_LOG_TICK_NS 8.0        /* a log tick is at most this long (v3) */
#define PYLU_EXT_CODE 0x08          /* v2 long form's second byte */
#define PYLU_EXT_LINE 0x04
#define PYLU_EXT_NEGATIVE 0x02
#define PYLU_V1_EVENT_LINE 0x08     /* v1 tag bits */
#define PYLU_V1_EVENT_CODE 0x04

enum {
    PYLU_TAG_THREAD_SELECT = 0x01,
    PYLU_TAG_CODE = 0x02,
    PYLU_TAG_THREAD = 0x03,
    PYLU_TAG_TEXT = 0x04,
    PYLU_TAG_DROP = 0x05,
    PYLU_TAG_CALIB = 0x06,
    PYLU_TAG_END = 0x07,
    PYLU_TAG_SEGMENT_END = 0x08,
};

/* Log ticks per clock tick as a shift: the largest s with 2^s clock ticks <= 8 ns. */
static inline unsigned
pylu_log_tick_shift(double ticks_per_sec)
{
    unsigned s = 0;
    while (s < 20 && ticks_per_sec * (PYLU_LOG_TICK_NS * 1e-9) >= (double)(2u << s)) {
        s++;
    }
    return s;
}

/* Header byte offsets. */
enum {
    PYLU_HDR_VERSION = 8,
    PYLU_HDR_SIZE = 10,
    PYLU_HDR_PID = 12,
    PYLU_HDR_START_UNIX_NS = 16,
    PYLU_HDR_START_TICKS = 24,
    PYLU_HDR_TICKS_PER_SEC = 32,
    PYLU_HDR_CLOCK = 40,
    PYLU_HDR_ARGV_LEN = 44,
    PYLU_HDR_SEGMENT = 48,
};

/* The decoded event of LogReader.chunks(): 24 bytes, little-endian. */
typedef struct {
    int64_t ts_ns;
    uint32_t code_id;
    uint32_t line;
    uint32_t thread;
    uint16_t kind;
    uint16_t pad;
} pylu_decoded_event;

/* Largest uncompressed frame the writer produces; readers may refuse bigger ones. */
#define PYLU_FRAME_MAX_BYTES (8u << 20)
#define PYLU_FRAME_TARGET_BYTES (4u << 20)

#endif
