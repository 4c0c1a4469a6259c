/* ring_stress.c — ring + flusher without Python: many producers, exact accounting.
 *
 * Each round starts a log, runs PRODUCERS threads (more than cores) that each emit
 * EVENTS records, some threads exit early (their rings are orphaned and freed by the
 * flusher while others still produce), and checks written + dropped == produced.
 * Run under ThreadSanitizer by `make tsan`: any data race report fails the run.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flusher.h"
#include "record.h"
#include "recorder_fork.h"

#define PRODUCERS 8
#define EVENTS 200000

static uint64_t produced[PRODUCERS];

static void *
producer(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t n = (id % 3 == 0) ? EVENTS / 4 : EVENTS;   /* some threads leave early */
    for (uint64_t i = 0; i < n; i++) {
        pylu_record((pylu_event_kind)(1 + i % 7), (uint32_t)(100 + id), (uint32_t)(i & 1023));
        if ((i & 0xFFFF) == 0) {
            pylu_record_text(2, "checkpoint", 10);
        }
    }
    produced[id] = n;
    return NULL;
}

static int
round_trip(const char *dir, uint32_t slots)
{
    struct pylu_flusher_config cfg = {.directory = dir, .ring_slots = slots, .level = 1,
                                      .flush_ms = 1, .frame_ms = 20};
    char path[4096], err[4608];
    if (pylu_flusher_start(&cfg, path, sizeof path, err, sizeof err) < 0) {
        fprintf(stderr, "start: %s\n", err);
        return 1;
    }
    pthread_t t[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        pylu_record_code((uint32_t)(100 + i), "producer", "ring_stress.c", 1, "stress");
        pthread_create(&t[i], NULL, producer, (void *)(intptr_t)i);
    }
    pylu_flusher_flush();
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(t[i], NULL);
    }
    pylu_flusher_stop();
    struct pylu_stats st;
    pylu_flusher_stats(&st);
    uint64_t want = 0;
    for (int i = 0; i < PRODUCERS; i++) {
        want += produced[i];
    }
    printf("slots=%u produced=%llu written=%llu dropped=%llu frames=%llu bytes=%llu threads=%llu\n",
           slots, (unsigned long long)want, (unsigned long long)st.events,
           (unsigned long long)st.dropped, (unsigned long long)st.frames,
           (unsigned long long)st.bytes_written, (unsigned long long)st.threads);
    unlink(path);
    if (st.ring_bytes != 0) {
        fprintf(stderr, "FAIL: %llu bytes of rings still mapped after stop\n",
                (unsigned long long)st.ring_bytes);
        return 1;
    }
    if (st.events + st.dropped != want || st.error[0] != '\0' || st.threads != PRODUCERS) {
        fprintf(stderr, "FAIL: accounting (error: %s)\n", st.error);
        return 1;
    }
    return 0;
}

int
main(void)
{
    char dir[] = "/tmp/pylu-ring-stress-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    pylu_recorder_install_atfork();
    int rc = round_trip(dir, 65536) || round_trip(dir, 64) || round_trip(dir, 4);
    rmdir(dir);
    if (rc == 0) {
        printf("ring stress: OK\n");
    }
    return rc;
}
