/* logdecode.h — decoding the log format's integers and events (logformat.h), every
 * version. Header-only: the reader's inner loop inlines it. No Python.h. */
#ifndef PYLU_LOGDECODE_H
#define PYLU_LOGDECODE_H

#include <stdint.h>

#include "kinds.h"
#include "logformat.h"

/* A thread's decoding state within one frame (events are deltas against it). */
typedef struct {
    uint32_t code;
    uint32_t line;
    uint64_t ticks;
} pylu_dec_thread;

/* A varint within [*pp, end): 0, or -1 when it runs past end or past 64 bits. */
static inline int
pylu_get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && p < end; shift += 7) {
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* No bounds checks: the caller knows at least 10 bytes remain. */
static inline uint64_t
pylu_get_varint_fast(const uint8_t **pp)
{
    const uint8_t *p = *pp;
    uint64_t b = *p++, v = b & 0x7F;
    if (b & 0x80) {
        int shift = 7;
        do {
            b = *p++;
            v |= (b & 0x7F) << shift;
            shift += 7;
        } while ((b & 0x80) && shift < 70);
    }
    *pp = p;
    return v;
}

static inline int64_t pylu_unzigzag64(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }
static inline int32_t pylu_unzigzag32(uint64_t v) { return (int32_t)((uint32_t)(v >> 1) ^ -(uint32_t)(v & 1)); }

/* Up to this many bytes an event's fields take after its tag (four varints). */
#define PYLU_EVENT_FIELDS_MAX 40

/* Read varint `n` of an event: unchecked when the frame has room for every field. */
#define PYLU_FIELD(dst)                                                         \
    do {                                                                       \
        if (roomy) {                                                           \
            (dst) = pylu_get_varint_fast(&p);                                  \
        }                                                                      \
        else if (pylu_get_varint(&p, end, &(dst)) < 0) {                       \
            return -1;                                                         \
        }                                                                      \
    } while (0)

/* Whether a record's tag is an event's in this format version. */
static inline int
pylu_is_event_tag(int version, uint8_t tag)
{
    return (tag & PYLU_TAG_EVENT) || (version >= 3 && tag >= PYLU_TAG_TINY);
}

/* Decode the event whose tag was just read (p after it) into *kind and *line, updating
 * the thread's state. Returns 0, or -1 when the event is malformed or cut off. */
static inline int
pylu_decode_event(int version, uint8_t tag, const uint8_t **pp, const uint8_t *end,
                  pylu_dec_thread *t, uint32_t *kind, uint32_t *line)
{
    if (!(tag & PYLU_TAG_EVENT)) {   /* v3 tiny form (the caller checked the tag) */
        uint32_t d = (uint32_t)tag - PYLU_TAG_TINY, ret = d >= PYLU_TINY_SPAN;
        *kind = ret ? PYLU_EV_RETURN : PYLU_EV_CALL;
        *line = 0;
        t->ticks += d - (ret ? PYLU_TINY_SPAN : 0);
        return 0;
    }
    const uint8_t *p = *pp;
    int roomy = end - p >= PYLU_EVENT_FIELDS_MAX;
    uint64_t v, delta;
    if (version >= 2) {
        uint32_t k = (tag >> PYLU_TAG_KIND_SHIFT) & 7;
        if (k != 0) {
            *kind = k;
            if (k == PYLU_EV_LINE || k == PYLU_EV_LINE_MARK) {
                PYLU_FIELD(v);
                t->line += (uint32_t)pylu_unzigzag32(v);
                *line = t->line;
            }
            else {
                *line = 0;
            }
            PYLU_FIELD(delta);
            t->ticks += (delta << PYLU_TAG_DELTA_BITS) | (tag & 0xF);
        }
        else {
            if (p >= end) {
                return -1;
            }
            uint8_t ext = *p++;
            roomy = end - p >= PYLU_EVENT_FIELDS_MAX;
            *kind = (ext >> PYLU_TAG_KIND_SHIFT) & 7;
            if (*kind == 0) {
                return -1;
            }
            if (ext & PYLU_EXT_CODE) {
                PYLU_FIELD(v);
                t->code += (uint32_t)pylu_unzigzag32(v);
            }
            v = 0;
            if (ext & PYLU_EXT_LINE) {
                PYLU_FIELD(v);
            }
            t->line = (uint32_t)v;
            *line = t->line;
            PYLU_FIELD(delta);
            uint64_t magnitude = (delta << PYLU_TAG_DELTA_BITS) | (tag & 0xF);
            t->ticks += (ext & PYLU_EXT_NEGATIVE) ? -magnitude : magnitude;
        }
    }
    else {
        *kind = (tag >> PYLU_TAG_KIND_SHIFT) & 7;
        if (tag & PYLU_V1_EVENT_CODE) {
            PYLU_FIELD(v);
            t->code += (uint32_t)pylu_unzigzag32(v);
        }
        v = 0;
        if (tag & PYLU_V1_EVENT_LINE) {
            PYLU_FIELD(v);
        }
        *line = (uint32_t)v;
        PYLU_FIELD(delta);
        t->ticks += (uint64_t)pylu_unzigzag64(delta);
    }
    *pp = p;
    return 0;
}

#undef PYLU_FIELD

#endif
