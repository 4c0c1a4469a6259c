/* logfile.h — one .pylog segment file opened for reading: mapped, header checked and
 * parsed (logformat.h, versions 1 and 2). Reader side only. */
#ifndef PYLU_LOGFILE_H
#define PYLU_LOGFILE_H

#include "compat.h"

typedef struct {
    PyObject *path;          /* bytes (owned) */
    uint8_t *map;
    size_t size;
    size_t header_size;      /* frames start here */
    int version;
    uint32_t pid;
    uint64_t start_unix_ns;
    uint64_t start_ticks;
    double ticks_per_sec;
    unsigned clock;
    uint32_t segment;        /* 0 for version 1 */
    PyObject *argv;          /* list of str (owned) */
} pylu_logfile;

/* Open and check a file (path: bytes, borrowed). 0, or -1 with OSError or ValueError
 * ("... not a pyliveupdate log ..."); f is then empty. */
int pylu_logfile_open(pylu_logfile *f, PyObject *path);
/* Unmap and forget (idempotent). */
void pylu_logfile_close(pylu_logfile *f);
/* The header as LogReader.header shows it (a new dict). */
PyObject *pylu_logfile_header(const pylu_logfile *f);
/* Whether g continues the log of f (same process, start and clock). */
int pylu_logfile_same_log(const pylu_logfile *f, const pylu_logfile *g);

#endif
