/* recorder_fork.c — fork handlers of the recording parts, in one lock order; see
 * recorder_fork.h. Lock order everywhere: live, session (flusher), metadata, registry. */
#include "recorder_fork.h"

#include <pthread.h>

#include "flusher.h"
#include "live.h"
#include "metadata.h"
#include "ring.h"

static void
prepare(void)
{
    pylu_live_lock();
    pylu_flusher_fork_prepare();
    pylu_metadata_fork_prepare();
    pylu_registry_atfork_prepare();
}

static void
parent(void)
{
    pylu_registry_atfork_parent();
    pylu_metadata_fork_parent();
    pylu_flusher_fork_parent();
    pylu_live_unlock();
}

static void
child(void)
{
    pylu_registry_atfork_child();    /* first: the session's threads point to its rings */
    pylu_metadata_fork_child();
    pylu_flusher_fork_child();
    pylu_live_unlock();
}

static void
install_once(void)
{
    pthread_atfork(prepare, parent, child);
}

void
pylu_recorder_install_atfork(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_once);
}
