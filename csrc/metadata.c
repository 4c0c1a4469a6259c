/* metadata.c — code descriptions and text lines queued for the log; see metadata.h. */
#include "metadata.h"

#include <pthread.h>
#include <stdatomic.h>

#include "clock.h"
#include "kinds.h"
#include "logformat.h"
#include "ring.h"

static pthread_mutex_t meta_mutex = PTHREAD_MUTEX_INITIALIZER;
static pylu_bytebuf codes_all;    /* every CODE record ever described, in order */
static size_t codes_taken;        /* how much of codes_all the current log has */
static uint64_t codes_count;
static pylu_bytebuf texts_pending;
static uint64_t texts_count;

int
pylu_record_code(uint32_t code_id, const char *qualname, const char *filename,
                 uint32_t firstlineno, const char *module)
{
    const char *strs[3] = {qualname ? qualname : "", filename ? filename : "",
                           module ? module : ""};
    uint64_t head[2] = {code_id, firstlineno};
    pthread_mutex_lock(&meta_mutex);
    size_t mark = codes_all.len;
    int rc = pylu_buf_put_byte(&codes_all, PYLU_TAG_CODE);
    rc = rc < 0 ? rc : pylu_buf_put_varints(&codes_all, 2, head);
    for (int i = 0; i < 3 && rc == 0; i++) {
        rc = pylu_buf_put_str(&codes_all, strs[i], strlen(strs[i]));
    }
    if (rc < 0) {
        codes_all.len = mark;
    }
    else {
        codes_count++;
    }
    pthread_mutex_unlock(&meta_mutex);
    pylu_registry_wake_if_dozing();
    return rc;
}

int
pylu_record_text(int kind, const char *text, size_t len)
{
    uint32_t session = atomic_load_explicit(&pylu_session, memory_order_acquire);
    if (session == 0 || (pylu_tls.session != session && pylu_ring_enter_slow() == NULL)) {
        return -1;
    }
    uint64_t ticks = pylu_clock_ticks() >> pylu_log_tick_shift(pylu_clock_ticks_per_sec());
    uint64_t v[3] = {pylu_tls.ring->thread, ticks, (uint64_t)kind};
    pthread_mutex_lock(&meta_mutex);
    size_t mark = texts_pending.len;
    int rc = pylu_buf_put_byte(&texts_pending, PYLU_TAG_TEXT);
    rc = rc < 0 ? rc : pylu_buf_put_varints(&texts_pending, 3, v);
    rc = rc < 0 ? rc : pylu_buf_put_str(&texts_pending, text, len);
    if (rc < 0) {
        texts_pending.len = mark;
    }
    else {
        texts_count++;
    }
    pthread_mutex_unlock(&meta_mutex);
    pylu_registry_wake_if_dozing();
    return rc;
}

void
pylu_metadata_session_begin(void)
{
    pthread_mutex_lock(&meta_mutex);
    codes_taken = 0;
    texts_pending.len = 0;
    pthread_mutex_unlock(&meta_mutex);
}

void
pylu_metadata_rewind_codes(void)
{
    pthread_mutex_lock(&meta_mutex);
    codes_taken = 0;
    pthread_mutex_unlock(&meta_mutex);
}

int
pylu_metadata_take(pylu_bytebuf *out)
{
    int rc = 0;
    pthread_mutex_lock(&meta_mutex);
    size_t codes_new = codes_all.len - codes_taken;
    if (out == NULL) {
        rc = 0;   /* the log failed: texts are dropped, codes stay due */
    }
    else if (pylu_buf_reserve(out, codes_new + texts_pending.len) < 0) {
        rc = -1;
    }
    else {
        pylu_buf_append(out, codes_all.data + codes_taken, codes_new);
        pylu_buf_append(out, texts_pending.data, texts_pending.len);
        codes_taken = codes_all.len;
    }
    texts_pending.len = 0;
    pthread_mutex_unlock(&meta_mutex);
    return rc;
}

int
pylu_metadata_pending(void)
{
    pthread_mutex_lock(&meta_mutex);
    int pending = codes_taken < codes_all.len || texts_pending.len > 0;
    pthread_mutex_unlock(&meta_mutex);
    return pending;
}

void
pylu_metadata_counts(uint64_t *codes, uint64_t *texts)
{
    pthread_mutex_lock(&meta_mutex);
    *codes = codes_count;
    *texts = texts_count;
    pthread_mutex_unlock(&meta_mutex);
}

void pylu_metadata_fork_prepare(void) { pthread_mutex_lock(&meta_mutex); }
void pylu_metadata_fork_parent(void) { pthread_mutex_unlock(&meta_mutex); }

void
pylu_metadata_fork_child(void)
{
    texts_pending.len = 0;
    pthread_mutex_unlock(&meta_mutex);
}
