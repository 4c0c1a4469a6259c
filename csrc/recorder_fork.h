/* recorder_fork.h — the recorder across fork(): every part's lock is taken before the
 * fork and released on both sides, in one order; in the child each part drops what
 * belongs to the parent (its rings, session, queued texts). No Python.h. */
#ifndef PYLU_RECORDER_FORK_H
#define PYLU_RECORDER_FORK_H

/* Install the pthread_atfork handlers (once; idempotent). A child of a recording parent
 * then calls pylu_flusher_restart_in_child() (os.register_at_fork, recorder_py.c). */
void pylu_recorder_install_atfork(void);

#endif
