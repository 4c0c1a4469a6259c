/* segments.c — a log's segment files and its directory's budget; see segments.h. */
#define _GNU_SOURCE
#include "segments.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "clock.h"

/* Create the file of segment sg->n and write its header. 0, or a positive errno. */
static int
create(pylu_segments *sg, pylu_encoder *enc)
{
    int err = 0;
    if (pylu_segment_path(sg->path, sizeof sg->path, sg->dir, sg->pid, sg->log_ns, sg->n) < 0) {
        return ENAMETOOLONG;
    }
    struct pylu_sink *sink = pylu_sink_file_create(sg->path, &err);
    if (sink == NULL) {
        return err;
    }
    pylu_encoder_set_sink(enc, sink);
    pylu_log_header h = sg->header;
    h.segment = sg->n;
    if (pylu_encoder_write_header(enc, &h) < 0) {
        err = enc->err_errno ? enc->err_errno : EIO;
        pylu_encoder_set_sink(enc, NULL);
        pylu_sink_close(sink);
        unlink(sg->path);
        return err;
    }
    sg->sink = sink;
    return 0;
}

static int
enforce(pylu_segments *sg)
{
    pylu_budget_result res;
    if (pylu_budget_enforce(sg->dir, sg->budget, sg->path, &res) < 0) {
        return 0;   /* the directory cannot be listed: nothing deleted, the log goes on */
    }
    sg->deleted_files += res.files;
    sg->deleted_bytes += res.bytes;
    return (int)res.files;
}

int
pylu_segments_open(pylu_segments *sg, const char *dir, uint64_t budget,
                   uint64_t segment_bytes, const pylu_log_header *header,
                   pylu_encoder *enc, char *err, size_t err_size)
{
    memset(sg, 0, sizeof *sg);
    if (snprintf(sg->dir, sizeof sg->dir, "%s", dir) >= (int)sizeof sg->dir) {
        snprintf(err, err_size, "log directory name too long");
        return -1;
    }
    sg->pid = (int)getpid();
    sg->log_ns = pylu_clock_realtime_ns();
    sg->header = *header;
    sg->budget = budget ? budget : pylu_budget_default(dir);
    sg->segment_bytes = segment_bytes ? segment_bytes : pylu_segment_bytes(sg->budget);
    int rc = create(sg, enc);
    if (rc != 0) {
        snprintf(err, err_size, "cannot create %s: %s", sg->path, strerror(rc));
        return -1;
    }
    enforce(sg);
    return 0;
}

int
pylu_segments_full(const pylu_segments *sg)
{
    return sg->sink != NULL && sg->sink->bytes >= sg->segment_bytes;
}

int
pylu_segments_next(pylu_segments *sg, pylu_encoder *enc)
{
    sg->written_before += sg->sink->bytes;
    pylu_sink_close(sg->sink);
    sg->sink = NULL;
    sg->n++;
    int rc = create(sg, enc);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return enforce(sg);
}

uint64_t
pylu_segments_bytes(const pylu_segments *sg)
{
    return sg->written_before + (sg->sink ? sg->sink->bytes : 0);
}

void
pylu_segments_close(pylu_segments *sg)
{
    pylu_sink_close(sg->sink);
    sg->sink = NULL;
}
