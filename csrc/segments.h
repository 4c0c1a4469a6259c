/* segments.h — a log's files: the first segment, the next ones, the directory's budget.
 *
 * Names: see budget.h. The session writes through `sink`; when it has grown past
 * `segment_bytes` the flusher ends the segment (SEGMENT_END) and calls
 * pylu_segments_next(), which opens the next file, writes its header and brings the
 * directory back within its budget. No Python.h.
 */
#ifndef PYLU_SEGMENTS_H
#define PYLU_SEGMENTS_H

#include <stddef.h>
#include <stdint.h>

#include "encoder.h"
#include "sink.h"

typedef struct {
    char dir[4096];
    int pid;
    uint64_t log_ns;           /* the log's id in its file names (creation time) */
    uint32_t n;                /* the segment being written */
    char path[4096];           /* its file */
    struct pylu_sink *sink;
    pylu_log_header header;    /* of every segment (but the number); argv borrowed */
    uint64_t budget;           /* bytes the directory's logs may take */
    uint64_t segment_bytes;    /* a segment ends past this size */
    uint64_t deleted_files, deleted_bytes;   /* by the budget, in this session */
    uint64_t written_before;   /* bytes of the earlier segments of this session */
} pylu_segments;

/* Create segment 0 and write its header through enc (its sink is set). budget 0: the
 * directory's default; segment_bytes 0: from the budget. -1 with a message in err. */
int pylu_segments_open(pylu_segments *sg, const char *dir, uint64_t budget,
                       uint64_t segment_bytes, const pylu_log_header *header,
                       pylu_encoder *enc, char *err, size_t err_size);
/* Whether the segment being written is full (check after a frame ends). */
int pylu_segments_full(const pylu_segments *sg);
/* Open the next segment (the caller has ended this one with SEGMENT_END) and write its
 * header through enc; then keep the directory within budget. Returns the segments the
 * budget deleted now (>= 0), or -1 with errno (the log cannot go on). */
int pylu_segments_next(pylu_segments *sg, pylu_encoder *enc);
/* Bytes written to all segments of this session. */
uint64_t pylu_segments_bytes(const pylu_segments *sg);
void pylu_segments_close(pylu_segments *sg);

#endif
