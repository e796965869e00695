/* ring_bench.c - how fast the bus ring carries records from one writer to two reader processes.
 *
 * usage: ring_bench [N] [payload] [capacity] [free]
 *
 * The writer pushes N records (default 5000000) of PAYLOAD bytes (100) into a
 * ring of CAPACITY bytes (16 MiB).  The ring has no backpressure, so a writer
 * that outruns its readers only measures overruns.  By default the writer
 * therefore holds back while it is more than half a ring ahead of the slowest
 * reader, which they tell it through a side channel of this program, and the
 * readers' rates are what the ring delivers.  With "free" it never waits.
 *
 * build: gcc -O2 -Isrc bench/ring_bench.c src/bus_ring.c -o ring_bench */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus_ring.h"

#define READERS 2
#define PUBLISH_EVERY 64        /* records between a reader's progress reports */

struct bench_reader {
    uint64_t pos;               /* progress, for the writer's pacing */
    uint64_t records;
    uint64_t overruns;
    uint64_t lost;              /* records skipped by overruns */
    uint64_t bad;               /* out of order: must stay 0 */
    double end;                 /* when the last record was in */
} __attribute__((aligned(64)));

struct bench_ctl {
    uint32_t ready;
    uint32_t done;
    uint64_t n;                 /* records the writer will push */
    double start;
    struct bench_reader rd[READERS];
};

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *shared_map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

static void reader_run(const struct bus_ring *ring, struct bench_ctl *ctl, int i)
{
    struct bench_reader *me = &ctl->rd[i];
    struct bus_ring_reader rd = { .pos = 0 };
    size_t max = bus_ring_max_record(ring), len;
    unsigned char *buf = malloc(max);
    uint64_t expect = 0, seq;
    uint32_t type;
    int done, rc;

    __atomic_add_fetch(&ctl->ready, 1, __ATOMIC_RELEASE);
    for (;;) {
        done = __atomic_load_n(&ctl->done, __ATOMIC_ACQUIRE);
        rc = bus_ring_read(ring, &rd, &type, buf, max, &len);
        if (rc == PL_OK) {
            memcpy(&seq, buf, sizeof(seq));
            if (seq < expect) {
                me->bad++;
            } else {
                me->lost += seq - expect;
            }
            expect = seq + 1;
            if (++me->records % PUBLISH_EVERY == 0) {
                __atomic_store_n(&me->pos, rd.pos, __ATOMIC_RELAXED);
            }
        } else if (rc == BUS_RING_OVERRUN) {
            me->overruns++;
        } else if (done) {
            break;
        } else {
            /* Two cores, three processes: let the writer have the CPU. */
            sched_yield();
        }
    }
    me->end = now();
    /* Records lost to an overrun at the very end show no gap. */
    me->lost += ctl->n - expect;
    __atomic_store_n(&me->pos, UINT64_MAX, __ATOMIC_RELAXED);
    free(buf);
}

static uint64_t slowest_reader(struct bench_ctl *ctl)
{
    uint64_t min = UINT64_MAX;

    for (int i = 0; i < READERS; i++) {
        uint64_t pos = __atomic_load_n(&ctl->rd[i].pos, __ATOMIC_RELAXED);
        if (pos < min) {
            min = pos;
        }
    }
    return min;
}

static void writer_run(struct bus_ring *ring, struct bench_ctl *ctl, uint64_t n,
                       size_t payload, size_t capacity, int paced)
{
    unsigned char *buf = calloc(1, payload);
    struct iovec iov = { .iov_base = buf, .iov_len = payload };

    while (__atomic_load_n(&ctl->ready, __ATOMIC_ACQUIRE) < READERS) {
        usleep(1000);
    }
    ctl->start = now();
    for (uint64_t seq = 0; seq < n; seq++) {
        memcpy(buf, &seq, sizeof(seq));
        bus_ring_push(ring, 1, &iov, 1);
        if (paced && seq % PUBLISH_EVERY == 0) {
            while (bus_ring_head(ring) - slowest_reader(ctl) > capacity / 2) {
                sched_yield();
            }
        }
    }
    __atomic_store_n(&ctl->done, 1, __ATOMIC_RELEASE);
    free(buf);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 5000000;
    size_t payload = argc > 2 ? strtoul(argv[2], NULL, 10) : 100;
    size_t capacity = argc > 3 ? strtoul(argv[3], NULL, 10) : 16u << 20;
    int paced = !(argc > 4 && strcmp(argv[4], "free") == 0);
    struct bench_ctl *ctl = shared_map(sizeof(*ctl));
    struct bus_ring *ring = bus_ring_init(shared_map(bus_ring_zone_size(capacity)), capacity);
    double wrote;
    int failed = 0;

    if (ring == NULL || payload < sizeof(uint64_t) || payload > bus_ring_max_record(ring)) {
        fprintf(stderr, "usage: ring_bench [N] [payload 8..capacity/4-8] "
                "[capacity: power of two >= 4096] [free]\n");
        return 2;
    }
    ctl->n = n;
    for (int i = 0; i < READERS; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            reader_run(ring, ctl, i);
            _exit(0);
        }
    }
    writer_run(ring, ctl, n, payload, capacity, paced);
    wrote = now() - ctl->start;
    for (int i = 0; i < READERS; i++) {
        int status;
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed = 1;
        }
    }

    printf("ring: %zu-byte records, %d readers, %zu KiB ring, %s: writer %.2fM/s",
           payload, READERS, capacity >> 10, paced ? "paced" : "free", n / wrote / 1e6);
    for (int i = 0; i < READERS; i++) {
        const struct bench_reader *r = &ctl->rd[i];
        printf(", reader%d %.2fM/s (%" PRIu64 " overruns, %" PRIu64 " lost)", i,
               r->records / (r->end - ctl->start) / 1e6, r->overruns, r->lost);
        if (r->bad > 0 || r->records + r->lost != n) {
            failed = 1;
        }
    }
    printf("\n");
    if (failed) {
        fprintf(stderr, "ring_bench: a reader failed or lost count\n");
    }
    return failed;
}
