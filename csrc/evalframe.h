/* evalframe.h — PEP 523 frame-evaluation hook: function records for wide scopes. */
#ifndef PYLU_EVALFRAME_H
#define PYLU_EVALFRAME_H

#include "compat.h"

/* Install (chained to the hook found there) or remove.  `forward_only` makes the hook
 * a pure forwarder (bench floor). */
int pylu_evalframe_install(int forward_only);
int pylu_evalframe_remove(void);
int pylu_evalframe_installed(void);

#endif
