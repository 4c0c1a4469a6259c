/* logfile.c — mapping a .pylog segment and reading its header; see logfile.h. */
#include "logfile.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logformat.h"

static uint64_t
get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static int
map_file(pylu_logfile *f, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, f->path);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        PyErr_Format(PyExc_ValueError, "%s: not a regular file, not a pyliveupdate log", path);
        return -1;
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            f->size = 0;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, f->path);
            close(fd);
            return -1;
        }
        f->map = m;
        madvise(m, f->size, MADV_SEQUENTIAL);
    }
    close(fd);
    return 0;
}

static PyObject *
argv_list(const uint8_t *a, const uint8_t *aend)
{
    PyObject *argv = PyList_New(0);
    while (argv != NULL && a < aend) {
        const uint8_t *z = memchr(a, '\0', (size_t)(aend - a));
        size_t n = z ? (size_t)(z - a) : (size_t)(aend - a);
        PyObject *s = PyUnicode_DecodeUTF8((const char *)a, (Py_ssize_t)n, "replace");
        if (s == NULL || PyList_Append(argv, s) < 0) {
            Py_CLEAR(argv);
        }
        Py_XDECREF(s);
        a += n + 1;
    }
    return argv;
}

static int
parse_header(pylu_logfile *f, const char *path)
{
    if (f->size == 0) {
        PyErr_Format(PyExc_ValueError, "%s: empty file, not a pyliveupdate log", path);
        return -1;
    }
    if (f->size < PYLU_LOG_MAGIC_LEN || memcmp(f->map, PYLU_LOG_MAGIC, PYLU_LOG_MAGIC_LEN) != 0) {
        PyErr_Format(PyExc_ValueError, "%s: not a pyliveupdate log (no .pylog magic)", path);
        return -1;
    }
    if (f->size < PYLU_HEADER_FIXED_V1) {
        PyErr_Format(PyExc_ValueError, "%s: pyliveupdate log with a truncated header "
                     "(%zu bytes)", path, f->size);
        return -1;
    }
    unsigned version = (unsigned)get_le(f->map + PYLU_HDR_VERSION, 2);
    if (version < PYLU_LOG_VERSION_OLDEST || version > PYLU_LOG_VERSION) {
        PyErr_Format(PyExc_ValueError, "%s: pyliveupdate log format version %u; this reader "
                     "reads versions %d to %d", path, version, PYLU_LOG_VERSION_OLDEST,
                     PYLU_LOG_VERSION);
        return -1;
    }
    size_t fixed = version == 1 ? PYLU_HEADER_FIXED_V1 : PYLU_HEADER_FIXED;
    size_t hsize = (size_t)get_le(f->map + PYLU_HDR_SIZE, 2);
    size_t argv_len = (size_t)get_le(f->map + PYLU_HDR_ARGV_LEN, 4);
    if (hsize != fixed + argv_len || hsize > f->size) {
        PyErr_Format(PyExc_ValueError, "%s: pyliveupdate log with a damaged header", path);
        return -1;
    }
    uint64_t tps_bits = get_le(f->map + PYLU_HDR_TICKS_PER_SEC, 8);
    memcpy(&f->ticks_per_sec, &tps_bits, sizeof f->ticks_per_sec);
    if (!(f->ticks_per_sec > 1e3 && f->ticks_per_sec < 1e12)) {
        PyErr_Format(PyExc_ValueError, "%s: pyliveupdate log with a damaged header "
                     "(ticks per second)", path);
        return -1;
    }
    f->version = (int)version;
    f->header_size = hsize;
    f->pid = (uint32_t)get_le(f->map + PYLU_HDR_PID, 4);
    f->start_unix_ns = get_le(f->map + PYLU_HDR_START_UNIX_NS, 8);
    f->start_ticks = get_le(f->map + PYLU_HDR_START_TICKS, 8);
    f->clock = (unsigned)get_le(f->map + PYLU_HDR_CLOCK, 4);
    f->segment = version == 1 ? 0 : (uint32_t)get_le(f->map + PYLU_HDR_SEGMENT, 4);
    f->argv = argv_list(f->map + fixed, f->map + hsize);
    return f->argv == NULL ? -1 : 0;
}

int
pylu_logfile_open(pylu_logfile *f, PyObject *path)
{
    memset(f, 0, sizeof *f);
    f->path = Py_NewRef(path);
    if (map_file(f, PyBytes_AS_STRING(path)) < 0 || parse_header(f, PyBytes_AS_STRING(path)) < 0) {
        pylu_logfile_close(f);
        return -1;
    }
    return 0;
}

void
pylu_logfile_close(pylu_logfile *f)
{
    if (f->map != NULL) {
        munmap(f->map, f->size);
    }
    f->map = NULL;
    f->size = 0;
    Py_CLEAR(f->path);
    Py_CLEAR(f->argv);
}

PyObject *
pylu_logfile_header(const pylu_logfile *f)
{
    return Py_BuildValue(
        "{s:i,s:I,s:K,s:s,s:I,s:d,s:K,s:I,s:O}",
        "version", f->version, "pid", (unsigned)f->pid,
        "start_unix_ns", (unsigned long long)f->start_unix_ns,
        "clock", f->clock == 1 ? "tsc" : f->clock == 2 ? "monotonic" : "unknown",
        "clock_id", f->clock, "ticks_per_sec", f->ticks_per_sec,
        "start_ticks", (unsigned long long)f->start_ticks, "segment", (unsigned)f->segment,
        "argv", f->argv);
}

int
pylu_logfile_same_log(const pylu_logfile *f, const pylu_logfile *g)
{
    return f->pid == g->pid && f->start_unix_ns == g->start_unix_ns &&
           f->start_ticks == g->start_ticks && f->clock == g->clock && f->version == g->version;
}
