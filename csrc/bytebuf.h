/* bytebuf.h — a growable byte buffer and the log format's integer encodings (logformat.h:
 * LEB128 varints, zigzag). Header-only: the encoder's inner loop inlines them. No Python.h. */
#ifndef PYLU_BYTEBUF_H
#define PYLU_BYTEBUF_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} pylu_bytebuf;

/* Room for `extra` more bytes: 0, or -1 when out of memory (the buffer is unchanged). */
static inline int
pylu_buf_reserve(pylu_bytebuf *b, size_t extra)
{
    if (b->len + extra <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) {
        cap *= 2;
    }
    uint8_t *d = realloc(b->data, cap);
    if (d == NULL) {
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

static inline void
pylu_buf_free(pylu_bytebuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Unchecked: the caller reserved room (a varint is at most 10 bytes). */
static inline uint8_t *
pylu_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint64_t
pylu_zigzag64(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline uint64_t
pylu_zigzag32(int32_t v)
{
    return (uint64_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

static inline int
pylu_buf_put_byte(pylu_bytebuf *b, uint8_t byte)
{
    if (pylu_buf_reserve(b, 1) < 0) {
        return -1;
    }
    b->data[b->len++] = byte;
    return 0;
}

static inline int
pylu_buf_put_varints(pylu_bytebuf *b, int n, const uint64_t *v)
{
    if (pylu_buf_reserve(b, (size_t)n * 10) < 0) {
        return -1;
    }
    uint8_t *p = b->data + b->len;
    for (int i = 0; i < n; i++) {
        p = pylu_put_varint(p, v[i]);
    }
    b->len = (size_t)(p - b->data);
    return 0;
}

/* A "str" of the format: varint length, then the bytes. */
static inline int
pylu_buf_put_str(pylu_bytebuf *b, const char *s, size_t n)
{
    if (pylu_buf_reserve(b, n + 10) < 0) {
        return -1;
    }
    uint8_t *p = pylu_put_varint(b->data + b->len, n);
    memcpy(p, s, n);
    b->len = (size_t)(p + n - b->data);
    return 0;
}

static inline int
pylu_buf_append(pylu_bytebuf *b, const void *data, size_t n)
{
    if (n == 0) {
        return 0;   /* data may be NULL (an empty buffer) */
    }
    if (pylu_buf_reserve(b, n) < 0) {
        return -1;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

#endif
