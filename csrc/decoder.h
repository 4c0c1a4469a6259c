/* decoder.h — decoding a log (one segment file, or a log's segments in order) frame by
 * frame into 24-byte events and metadata tuples; the engine of LogReader (reader.c).
 *
 * Events of a frame land in a flat array; metadata tuples in a list, each tagged with
 * the number of events before it, so iteration replays the exact log order. A damaged
 * file yields every complete frame, then stops with `error` saying where and why.
 */
#ifndef PYLU_DECODER_H
#define PYLU_DECODER_H

#include <zstd.h>

#include "compat.h"
#include "logdecode.h"
#include "logfile.h"
#include "logformat.h"

/* Interned first items of the metadata tuples (owned by the module). */
typedef struct {
    PyObject *code, *thread, *text, *drop;
} pylu_meta_names;

typedef struct {
    pylu_dec_thread dec;
    uint32_t frame;   /* frame number `dec` belongs to (reset per frame) */
    int64_t last_ns;  /* kept across frames and files: a thread's time never goes back */
} pylu_thread_state;

typedef struct {
    const pylu_meta_names *names;
    PyObject *paths;            /* list of bytes: the files, in log order */
    Py_ssize_t next_path;
    pylu_logfile file;          /* the file being read (map NULL: none) */
    pylu_logfile first;         /* identity of the log: the first file's header fields */
    size_t pos;                 /* offset of the next frame in `file` */
    PyObject *header;           /* dict of the first file */
    PyObject *segments;         /* list of (segment number, path) opened so far */
    PyObject *error;            /* None or str */
    int complete;               /* END read */
    int continued;              /* the last file read ended with SEGMENT_END */
    int done;
    uint32_t frame_no;
    ZSTD_DCtx *dctx;
    uint8_t *raw;               /* one decompressed frame */
    size_t raw_cap;
    pylu_decoded_event *events; /* decoded events of the current frame */
    size_t nevents, events_cap;
    PyObject *metas;            /* metadata tuples of the current frame */
    size_t *meta_at;            /* events decoded before each meta */
    size_t meta_cap;
    size_t ev_i, meta_i;        /* consumers' cursor in the current frame */
    pylu_thread_state *threads;
    size_t threads_cap;
    /* time conversion (logformat.h: Time) */
    double ns_per_tick;
    int have_calib;
    uint64_t first_ticks, last_ticks;
    int64_t first_ns, last_ns;
} pylu_decoder;

/* paths: a list of bytes (borrowed). Opens the first file. 0, or -1 with an exception. */
int pylu_decoder_open(pylu_decoder *d, PyObject *paths, const pylu_meta_names *names);
/* Decode the next frame. 1: a frame, 0: no more (see error/complete), -1: an exception. */
int pylu_decoder_next_frame(pylu_decoder *d);
/* Unmap; no more frames. */
void pylu_decoder_release(pylu_decoder *d);
void pylu_decoder_free(pylu_decoder *d);
int pylu_decoder_traverse(pylu_decoder *d, visitproc visit, void *arg);

#endif
