/* drain.h — the flusher thread's body (drain.c). No Python.h. */
#ifndef PYLU_DRAIN_H
#define PYLU_DRAIN_H

/* The thread of one session (arg: its pylu_session): runs until the session's stop
 * request, then writes the END record. */
void *pylu_drain_main(void *arg);

#endif
