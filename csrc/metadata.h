/* metadata.h — what any thread queues for the log besides events: code descriptions
 * (CODE records) and text lines (TEXT records). The flusher takes them before the events
 * they describe (docs/DESIGN.md §3: metadata precedes its first use).
 *
 * Concurrency: one mutex (taken by describers, text writers and the flusher, never on the
 * event hot path). Code descriptions outlive sessions: every later log, and a forked
 * child's log, starts with all of them. No Python.h.
 */
#ifndef PYLU_METADATA_H
#define PYLU_METADATA_H

#include <stddef.h>
#include <stdint.h>

#include "bytebuf.h"

/* Describe a code id for the log (qualified name, file, first line, module). Any thread,
 * once per id, before the id's first event. Copies the strings. Returns 0, or -1 when out
 * of memory (the code then shows as unknown). */
int pylu_record_code(uint32_t code_id, const char *qualname, const char *filename,
                     uint32_t firstlineno, const char *module);

/* Queue a TEXT record from the calling thread (kind: pylu_text_kind). Returns 0, or -1
 * when nothing records (the line is not queued) or out of memory. */
int pylu_record_text(int kind, const char *text, size_t len);

/* ---- the flusher ---- */
/* A new log begins: every code description is due again, queued texts are dropped. */
void pylu_metadata_session_begin(void);
/* A new segment of the log begins: every code description is due again (texts stay). */
void pylu_metadata_rewind_codes(void);
/* Append to `out` the CODE records not yet taken in this session, then the queued TEXT
 * records (which leave the queue either way). -1: out of memory, nothing taken.
 * out NULL: only drop the queued texts (the log failed). */
int pylu_metadata_take(pylu_bytebuf *out);
/* Whether anything waits to be taken (the flusher's last look before it dozes). */
int pylu_metadata_pending(void);
/* Code descriptions and text lines queued since the process started. */
void pylu_metadata_counts(uint64_t *codes, uint64_t *texts);

/* fork: prepare takes the lock, parent releases it, child releases it and drops the
 * parent's queued texts (they are the parent's to write). */
void pylu_metadata_fork_prepare(void);
void pylu_metadata_fork_parent(void);
void pylu_metadata_fork_child(void);

#endif
