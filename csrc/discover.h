/* discover.h — finding codes for wide-scope updates: one Python "decider" asked once
 * per code and matcher generation, reached from the frame hook (first entry of a code)
 * and from a function watcher (a function created after the update). */
#ifndef PYLU_DISCOVER_H
#define PYLU_DISCOVER_H

#include "compat.h"
#include "codestate.h"

/* Current matcher generation; 0 while no matcher is registered. */
extern uint32_t pylu_match_gen;
extern uint64_t pylu_decider_errors;
extern uint64_t pylu_decider_calls;

/* decider(code) -> ignored; it arms matched codes through the normal arm path.
 * None removes it.  Each call bumps the generation so every code is asked again. */
int pylu_discover_set_decider(PyObject *decider);

/* Is a decision for this code due?  (cheap; called on hot paths) */
static inline int
pylu_discover_due(const pylu_codestate *st)
{
    return pylu_match_gen != 0 && (st == NULL || st->seen_gen != pylu_match_gen);
}

/* Ask the decider about `code` (saves/restores any in-flight exception, never raises).
 * Returns the code's state afterwards, or NULL. */
pylu_codestate *pylu_discover_decide(PyObject *code);

/* Discovery of code created later: a function watcher (PyFunction_AddWatcher) offers
 * each new function's code and a __code__ assignment's new code. */
int pylu_discover_watch_functions(int on);
int pylu_discover_watching_functions(void);

#endif
