/* handoff.c — the stub's reader waits for a command here, without the GIL. When one
 * arrives it asks the main thread, through a pending call, to step aside until the
 * command's reply is out (handoff_release) or HANDOFF_MAX_NS have passed.
 *
 * Why: a thread that wakes up wants the GIL back, and a busy main thread keeps it for
 * the switch interval (5 ms) at every hop — reader, executor, each send — so a command
 * to a busy process took ~6 ms where ~1 ms is its own work. The pending call runs at the
 * main thread's next eval breaker, a point where it could switch threads anyway. It is
 * bounded: a command that waits for something the main thread holds (the import lock)
 * gets it back after HANDOFF_MAX_NS. A pending call that runs late (the main thread
 * was in C) finds the command done and returns at once. Other threads are not touched.
 * No mutex, so a fork at any moment leaves nothing locked in the child. */
#include "handoff.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Longest the main thread steps aside for one command. */
#define HANDOFF_MAX_NS (20 * 1000000ull)

static _Atomic uint32_t release_seq;     /* a futex word: bumped when a reply is out */
/* release_seq + 1 of the pending call queued and not run yet (0: none). A call queued
 * for an earlier command (the main thread was in C) does not hold back the next one. */
static _Atomic uint32_t queued_for;
static _Atomic uint64_t queued_at;       /* when the pending call was queued */
static _Atomic unsigned long long lent, lent_ns, late, reach_ns;   /* statistics */

static uint64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs in the main thread, with the GIL, at an eval breaker. */
static int
step_aside(void *arg)
{
    uint32_t seq = (uint32_t)(uintptr_t)arg;
    atomic_fetch_add(&reach_ns, mono_ns() - atomic_load(&queued_at));
    uint32_t mine = seq + 1;
    atomic_compare_exchange_strong(&queued_for, &mine, 0);
    if (atomic_load(&release_seq) != seq) {
        atomic_fetch_add(&late, 1);      /* the command was answered meanwhile */
        return 0;
    }
    uint64_t start = mono_ns(), now = start;
    Py_BEGIN_ALLOW_THREADS
    while (atomic_load(&release_seq) == seq && now - start < HANDOFF_MAX_NS) {
        uint64_t left = HANDOFF_MAX_NS - (now - start);
        struct timespec ts = {(time_t)(left / 1000000000u), (long)(left % 1000000000u)};
        syscall(SYS_futex, &release_seq, FUTEX_WAIT_PRIVATE, seq, &ts, NULL, 0);
        now = mono_ns();
    }
    Py_END_ALLOW_THREADS
    atomic_fetch_add(&lent, 1);
    atomic_fetch_add(&lent_ns, now - start);
    return 0;
}

static void
ask_main_thread(void)
{
    uint32_t seq = atomic_load(&release_seq);
    uint32_t queued = atomic_load(&queued_for);
    if (queued == seq + 1 || !atomic_compare_exchange_strong(&queued_for, &queued, seq + 1)) {
        return;                          /* asked already for this command */
    }
    atomic_store(&queued_at, mono_ns());
    /* Needs no thread state. -1: the queue is full; the command waits as before. */
    if (Py_AddPendingCall(step_aside, (void *)(uintptr_t)seq) < 0) {
        atomic_store(&queued_for, 0);
    }
}

PyDoc_STRVAR(wait_readable_doc,
"handoff_wait_readable(fd, timeout, lend=True) -> bool\n\n"
"Wait without the GIL until fd is readable (True) or timeout seconds pass (False;\n"
"None waits forever). When it is readable and lend is true, the main thread is asked\n"
"to lend the GIL until handoff_release() (at most 20 ms).");

static PyObject *
handoff_wait_readable(PyObject *self, PyObject *args, PyObject *kwargs)
{
    PYLU_UNUSED(self);
    static char *kwlist[] = {"fd", "timeout", "lend", NULL};
    int fd, lend = 1;
    PyObject *timeout_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iO|p:handoff_wait_readable", kwlist,
                                     &fd, &timeout_obj, &lend)) {
        return NULL;
    }
    if (fd < 0) {
        Py_RETURN_TRUE;                  /* closed meanwhile: recv() raises at once */
    }
    double timeout = -1.0;
    if (timeout_obj != Py_None) {
        timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
        if (timeout < 0) {
            return PyErr_Format(PyExc_ValueError, "timeout must be >= 0 or None");
        }
    }
    uint64_t deadline = timeout < 0 ? 0 : mono_ns() + (uint64_t)(timeout * 1e9);
    for (;;) {
        int ms = -1;
        if (timeout >= 0) {
            uint64_t now = mono_ns();
            uint64_t left = now < deadline ? deadline - now : 0;
            ms = left / 1000000u > INT_MAX ? INT_MAX : (int)((left + 999999u) / 1000000u);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n, err;
        Py_BEGIN_ALLOW_THREADS
        n = poll(&p, 1, ms);
        err = errno;
        if (n > 0 && lend) {
            ask_main_thread();           /* before we queue for the GIL ourselves */
        }
        Py_END_ALLOW_THREADS
        if (n > 0) {
            Py_RETURN_TRUE;              /* readable, closed or failed: recv() says which */
        }
        if (n == 0) {
            Py_RETURN_FALSE;
        }
        if (err != EINTR) {
            errno = err;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (PyErr_CheckSignals() < 0) {
            return NULL;
        }
    }
}

PyDoc_STRVAR(release_doc,
"handoff_release()\n\nThe command is answered: the main thread takes the GIL back.");

static PyObject *
handoff_release(PyObject *self, PyObject *unused)
{
    PYLU_UNUSED(self);
    PYLU_UNUSED(unused);
    atomic_fetch_add(&release_seq, 1);
    syscall(SYS_futex, &release_seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(stats_doc,
"handoff_stats() -> dict\n\nHow often the main thread lent the GIL (lent), for how long "
"in all (lent_s, seconds), how often its call came after the reply (late), and the\n"
"time from asking to its call, in all (reach_s).");

static PyObject *
handoff_stats(PyObject *self, PyObject *unused)
{
    PYLU_UNUSED(self);
    PYLU_UNUSED(unused);
    return Py_BuildValue("{s:K,s:d,s:K,s:d}", "lent", atomic_load(&lent),
                         "lent_s", (double)atomic_load(&lent_ns) / 1e9, "late", atomic_load(&late),
                         "reach_s", (double)atomic_load(&reach_ns) / 1e9);
}

PyMethodDef pylu_handoff_methods[] = {
    {"handoff_wait_readable", (PyCFunction)(void (*)(void))handoff_wait_readable,
     METH_VARARGS | METH_KEYWORDS, wait_readable_doc},
    {"handoff_release", handoff_release, METH_NOARGS, release_doc},
    {"handoff_stats", handoff_stats, METH_NOARGS, stats_doc},
    {NULL, NULL, 0, NULL},
};

/* A forked child has no command in flight: a call queued in the parent that the child
 * runs returns at once, and the child may queue its own. */
static void
after_fork_child(void)
{
    atomic_fetch_add(&release_seq, 1);
    atomic_store(&queued_for, 0);
}

int
pylu_handoff_exec(PyObject *module)
{
    PYLU_UNUSED(module);
    static int installed;
    if (!installed && pthread_atfork(NULL, NULL, after_fork_child) != 0) {
        PyErr_SetString(PyExc_OSError, "pthread_atfork failed");
        return -1;
    }
    installed = 1;
    return 0;
}
