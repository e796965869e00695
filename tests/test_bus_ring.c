/* test_bus_ring.c - the shared-memory ring: records, wrap-around, overruns, concurrent readers. */
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus_ring.h"
#include "parley.h"
#include "unit.h"

#define SMALL_CAP 4096
#define MAX_READERS 2

/* The ring under test lives in a shared mapping, as in parleyd, so that the
 * tests with reader processes need nothing special. */
static void *zone;
static size_t zone_len;
static struct bus_ring *ring;
static size_t max_rec;
static unsigned char *rbuf;     /* max_rec bytes, for reads */
static unsigned char *wbuf;     /* max_rec bytes, for building records */

static void *shared_map(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

static void ring_open(size_t capacity)
{
    zone_len = bus_ring_zone_size(capacity);
    zone = shared_map(zone_len);
    /* Garbage rather than zeroes, since bus_ring_init promises not to care. */
    memset(zone, 0xa5, zone_len);
    ring = bus_ring_init(zone, capacity);
    ck_assert_ptr_nonnull(ring);
    max_rec = bus_ring_max_record(ring);
    /* Private: each reader process copies into its own. */
    rbuf = malloc(2 * max_rec);
    ck_assert_ptr_nonnull(rbuf);
    wbuf = rbuf + max_rec;
}

static void ring_close(void)
{
    if (zone != NULL) {
        munmap(zone, zone_len);
        free(rbuf);
        zone = NULL;
    }
}

/* Records carry their sequence number in the first 8 bytes; the rest, their
 * length and their type all follow from it, so any mix-up of two records, a
 * torn copy or a stale byte shows. */

static unsigned char pattern_byte(uint64_t seq, size_t i)
{
    uint64_t x = (seq + 1) * 0x9e3779b97f4a7c15ULL ^ (i + 1) * 0xbf58476d1ce4e5b9ULL;

    return (unsigned char)(x >> 40 ^ x >> 13);
}

static uint32_t record_type(uint64_t seq)
{
    return (uint32_t)(seq * 2654435761u);
}

/* SPAN 0 means "vary the length across the whole range the ring allows". */
static size_t record_len(uint64_t seq, size_t span)
{
    if (span == 0) {
        span = max_rec - 7;
    }
    return 8 + (size_t)(seq * 7919 % span);
}

static size_t record_build(uint64_t seq, size_t len, unsigned char *buf)
{
    memcpy(buf, &seq, sizeof(seq));
    for (size_t i = sizeof(seq); i < len; i++) {
        buf[i] = pattern_byte(seq, i);
    }
    return len;
}

/* Returns 0, with *SEQ set, when BUF holds an intact record as record_push()
 * made it; any torn or stale byte makes it -1. */
static int record_check(const unsigned char *buf, size_t len, uint32_t type, size_t span,
                        uint64_t *seq)
{
    if (len < sizeof(*seq)) {
        return -1;
    }
    memcpy(seq, buf, sizeof(*seq));
    if (len != record_len(*seq, span) || type != record_type(*seq)) {
        return -1;
    }
    for (size_t i = sizeof(*seq); i < len; i++) {
        if (buf[i] != pattern_byte(*seq, i)) {
            return -1;
        }
    }
    return 0;
}

/* Pushes record SEQ split into two pieces, so that every push also checks
 * the concatenation. */
static int record_push(uint64_t seq, size_t span)
{
    size_t len = record_build(seq, record_len(seq, span), wbuf);
    struct iovec iov[2] = {
        { .iov_base = wbuf, .iov_len = len / 3 },
        { .iov_base = wbuf + len / 3, .iov_len = len - len / 3 },
    };

    return bus_ring_push(ring, record_type(seq), iov, 2);
}

static void record_expect(struct bus_ring_reader *rd, uint64_t seq, size_t span)
{
    uint32_t type;
    size_t len;
    uint64_t got;

    ck_assert_int_eq(bus_ring_read(ring, rd, &type, rbuf, max_rec, &len), PL_OK);
    ck_assert_int_eq(record_check(rbuf, len, type, span, &got), 0);
    ck_assert_uint_eq(got, seq);
}

static int read_any(struct bus_ring_reader *rd, uint32_t *type, size_t *len)
{
    return bus_ring_read(ring, rd, type, rbuf, max_rec, len);
}

static void push_text(uint32_t type, const char *text)
{
    struct iovec iov = { .iov_base = (void *)text, .iov_len = strlen(text) };

    ck_assert_int_eq(bus_ring_push(ring, type, &iov, 1), PL_OK);
}

static void expect_again(struct bus_ring_reader *rd)
{
    uint64_t before = rd->pos;
    uint32_t type;
    size_t len;

    ck_assert_int_eq(read_any(rd, &type, &len), PL_AGAIN);
    ck_assert_uint_eq(rd->pos, before);
}

START_TEST(init_checks_capacity)
{
    static uint64_t mem[(SMALL_CAP + 4096) / 8];

    ck_assert_ptr_null(bus_ring_init(mem, 2048));
    ck_assert_ptr_null(bus_ring_init(mem, 4095));
    ck_assert_ptr_null(bus_ring_init(mem, 6144));
    ck_assert_ptr_null(bus_ring_init((char *)mem + 4, SMALL_CAP));
    ck_assert_uint_ge(bus_ring_zone_size(SMALL_CAP), SMALL_CAP);
    ck_assert_uint_le(bus_ring_zone_size(SMALL_CAP), sizeof(mem));
    ring = bus_ring_init(mem, SMALL_CAP);
    ck_assert_ptr_nonnull(ring);
    ck_assert_uint_eq(bus_ring_max_record(ring), SMALL_CAP / 4 - 8);
    ck_assert_uint_eq(bus_ring_head(ring), 0);
}
END_TEST

START_TEST(round_trip_iovec)
{
    struct bus_ring_reader rd;
    struct iovec iov[4] = {
        { .iov_base = "hello", .iov_len = 5 },
        { .iov_base = NULL, .iov_len = 0 },
        { .iov_base = ", ", .iov_len = 2 },
        { .iov_base = "world", .iov_len = 5 },
    };
    uint32_t type;
    size_t len;

    ring_open(SMALL_CAP);
    bus_ring_reader_init(ring, &rd);
    ck_assert_int_eq(bus_ring_push(ring, 7, iov, 4), PL_OK);
    ck_assert_int_eq(read_any(&rd, &type, &len), PL_OK);
    ck_assert_uint_eq(type, 7);
    ck_assert_uint_eq(len, 12);
    ck_assert_mem_eq(rbuf, "hello, world", 12);
    ck_assert_uint_eq(rd.pos, bus_ring_head(ring));
}
END_TEST

START_TEST(types_and_empty_payloads)
{
    static const uint32_t types[] = { 0, 1, 0x80000000u, UINT32_MAX, 0xffffu };
    struct bus_ring_reader rd;
    uint32_t type;
    size_t len;

    ring_open(SMALL_CAP);
    bus_ring_reader_init(ring, &rd);
    for (size_t i = 0; i < PL_ARRAY_LEN(types); i++) {
        ck_assert_int_eq(bus_ring_push(ring, types[i], NULL, 0), PL_OK);
        push_text(types[i], "x");
    }
    for (size_t i = 0; i < PL_ARRAY_LEN(types); i++) {
        ck_assert_int_eq(read_any(&rd, &type, &len), PL_OK);
        ck_assert_uint_eq(type, types[i]);
        ck_assert_uint_eq(len, 0);
        ck_assert_int_eq(read_any(&rd, &type, &len), PL_OK);
        ck_assert_uint_eq(type, types[i]);
        ck_assert_uint_eq(len, 1);
        ck_assert_int_eq(rbuf[0], 'x');
    }
    expect_again(&rd);
}
END_TEST

START_TEST(again_when_empty)
{
    struct bus_ring_reader rd = { .pos = 0 };

    ring_open(SMALL_CAP);
    expect_again(&rd);
    expect_again(&rd);
    ck_assert_int_eq(record_push(1, 20), PL_OK);
    record_expect(&rd, 1, 20);
    expect_again(&rd);
}
END_TEST

/* True when one more push could overwrite what RD has not read yet: a
 * record may need its own size plus a wrap marker of up to that size. */
static int push_may_lap(const struct bus_ring_reader *rd)
{
    return bus_ring_head(ring) - rd->pos + 2 * (max_rec + 8) > SMALL_CAP;
}

/* Pushes N records of every length the ring allows, reading after every
 * push (IN_STEP) or only when another push could lap the reader, and
 * returns how many wrap markers the reader went past. */
static unsigned wrap_run(uint64_t n, int in_step)
{
    struct bus_ring_reader rd = { .pos = 0 };
    uint64_t next = 0;
    unsigned pads = 0;

    for (uint64_t seq = 0; seq < n; seq++) {
        while (next < seq && (in_step || push_may_lap(&rd))) {
            uint64_t before = rd.pos;

            record_expect(&rd, next, 0);
            if (rd.pos - before > 8 + ((record_len(next, 0) + 7) & ~(size_t)7)) {
                pads++;
            }
            next++;
        }
        ck_assert_int_eq(record_push(seq, 0), PL_OK);
    }
    while (next < n) {
        record_expect(&rd, next++, 0);
    }
    expect_again(&rd);
    return pads;
}

START_TEST(wrap_around_in_step)
{
    ring_open(SMALL_CAP);
    ck_assert_uint_gt(wrap_run(20000, 1), 100);
    ck_assert_uint_gt(bus_ring_head(ring), 1000 * SMALL_CAP);
}
END_TEST

START_TEST(wrap_around_in_batches)
{
    ring_open(SMALL_CAP);
    ck_assert_uint_gt(wrap_run(20000, 0), 100);
}
END_TEST

START_TEST(oversize_rejected)
{
    struct bus_ring_reader rd = { .pos = 0 };
    struct iovec iov[3];
    uint32_t type;
    size_t len;

    ring_open(SMALL_CAP);
    for (int i = 0; i < 3; i++) {
        iov[i].iov_base = wbuf;
    }
    iov[0].iov_len = max_rec + 1;
    ck_assert_int_eq(bus_ring_push(ring, 1, iov, 1), PL_ERR);
    /* Oversize only when put together. */
    iov[0].iov_len = max_rec / 2;
    iov[1].iov_len = max_rec / 2;
    iov[2].iov_len = max_rec - 2 * (max_rec / 2) + 1;
    ck_assert_int_eq(bus_ring_push(ring, 1, iov, 3), PL_ERR);
    /* Lengths whose sum wraps around must not pass as small. */
    iov[0].iov_len = 16;
    iov[1].iov_len = SIZE_MAX - 8;
    ck_assert_int_eq(bus_ring_push(ring, 1, iov, 2), PL_ERR);
    ck_assert_uint_eq(bus_ring_head(ring), 0);
    expect_again(&rd);

    memset(wbuf, 'm', max_rec);
    iov[0].iov_len = max_rec;
    ck_assert_int_eq(bus_ring_push(ring, 2, iov, 1), PL_OK);
    ck_assert_int_eq(read_any(&rd, &type, &len), PL_OK);
    ck_assert_uint_eq(len, max_rec);
    ck_assert_mem_eq(rbuf, wbuf, max_rec);
}
END_TEST

START_TEST(small_buffer_skips_nothing)
{
    struct bus_ring_reader rd = { .pos = 0 };
    uint32_t type;
    size_t len;

    ring_open(SMALL_CAP);
    ck_assert_int_eq(record_push(3, 100), PL_OK);
    len = record_len(3, 100);
    ck_assert_int_eq(bus_ring_read(ring, &rd, &type, rbuf, len - 1, &len), PL_ERR);
    ck_assert_uint_eq(rd.pos, 0);
    record_expect(&rd, 3, 100);
}
END_TEST

/* Pushes a record of 56 bytes, 64 with the header, so that SMALL_CAP / 64
 * of them fill the ring exactly. */
static void push_56(uint32_t seq)
{
    struct iovec iov = { .iov_base = wbuf, .iov_len = 56 };

    wbuf[0] = (unsigned char)seq;
    ck_assert_int_eq(bus_ring_push(ring, seq, &iov, 1), PL_OK);
}

/* Leaves RD with exactly SMALL_CAP bytes unread. */
static void fill_exactly(struct bus_ring_reader *rd)
{
    rd->pos = bus_ring_head(ring);
    for (uint32_t seq = 0; seq < SMALL_CAP / 64; seq++) {
        push_56(seq);
    }
    ck_assert_uint_eq(bus_ring_head(ring) - rd->pos, SMALL_CAP);
}

START_TEST(full_ring_still_readable)
{
    struct bus_ring_reader rd;
    uint32_t type;
    size_t len;

    ring_open(SMALL_CAP);
    push_56(99);                /* so that the fill does not start at 0 */
    fill_exactly(&rd);
    for (uint32_t i = 0; i < SMALL_CAP / 64; i++) {
        ck_assert_int_eq(read_any(&rd, &type, &len), PL_OK);
        ck_assert_uint_eq(type, i);
        ck_assert_uint_eq(len, 56);
        ck_assert_int_eq(rbuf[0], (unsigned char)i);
    }
    expect_again(&rd);
}
END_TEST

START_TEST(overrun_when_lapped)
{
    struct bus_ring_reader rd;
    uint32_t type;
    size_t len;

    ring_open(SMALL_CAP);
    fill_exactly(&rd);
    /* One byte more than the ring holds overwrites the oldest record. */
    push_text(99, "");
    ck_assert_int_eq(read_any(&rd, &type, &len), BUS_RING_OVERRUN);
    ck_assert_uint_eq(rd.pos, bus_ring_head(ring));
    expect_again(&rd);
    for (uint64_t seq = 1000; seq < 1003; seq++) {
        ck_assert_int_eq(record_push(seq, 0), PL_OK);
    }
    for (uint64_t seq = 1000; seq < 1003; seq++) {
        record_expect(&rd, seq, 0);
    }
    expect_again(&rd);

    /* Lapped many times over. */
    for (uint64_t seq = 0; seq < 500; seq++) {
        ck_assert_int_eq(record_push(seq, 0), PL_OK);
    }
    ck_assert_int_eq(read_any(&rd, &type, &len), BUS_RING_OVERRUN);
    expect_again(&rd);
}
END_TEST

START_TEST(late_reader_sees_only_new)
{
    struct bus_ring_reader early = { .pos = 0 }, late;

    ring_open(SMALL_CAP);
    for (uint64_t seq = 0; seq < 5; seq++) {
        ck_assert_int_eq(record_push(seq, 50), PL_OK);
    }
    bus_ring_reader_init(ring, &late);
    expect_again(&late);
    ck_assert_int_eq(record_push(5, 50), PL_OK);
    record_expect(&late, 5, 50);
    expect_again(&late);
    for (uint64_t seq = 0; seq < 6; seq++) {
        record_expect(&early, seq, 50);
    }
}
END_TEST

/* Starts a reader at POS, which need not be a record boundary, and reads
 * until it stops; whatever it finds there must not make it crash, run past
 * head or return more than a record. */
static void read_from_anywhere(uint64_t pos)
{
    struct bus_ring_reader rd = { .pos = pos };
    uint64_t head = bus_ring_head(ring);
    uint32_t type;
    size_t len;
    int rc;

    for (int steps = 0; steps < SMALL_CAP; steps++) {
        rc = read_any(&rd, &type, &len);
        ck_assert(rc == PL_OK || rc == PL_AGAIN || rc == BUS_RING_OVERRUN);
        ck_assert_uint_le(rd.pos - (head - SMALL_CAP), SMALL_CAP);
        if (rc != PL_OK) {
            return;
        }
        ck_assert_uint_le(len, max_rec);
    }
    ck_abort_msg("reader from %" PRIu64 " did not stop", pos);
}

START_TEST(bogus_positions_never_crash)
{
    /* Payloads that look like headers when read as one: a wrap marker, too
     * long, past head, past the end of the buffer, empty. */
    static const uint64_t fakes[] = {
        0xffffffffu, 0xffffffffu | 5ull << 32, 0xfffffff0u, 1020, 1016, 2000, 0, 8, 4000,
    };
    struct iovec iov = { .iov_base = (void *)fakes, .iov_len = sizeof(fakes) };

    ring_open(SMALL_CAP);
    for (int i = 0; bus_ring_head(ring) < 3 * SMALL_CAP + 1000; i++) {
        iov.iov_len = sizeof(fakes) - (size_t)(i % 5) * 8;
        ck_assert_int_eq(bus_ring_push(ring, 1, &iov, 1), PL_OK);
        ck_assert_int_eq(record_push((uint64_t)i, 0), PL_OK);
    }
    for (uint64_t back = 0; back <= SMALL_CAP + 16; back++) {
        read_from_anywhere(bus_ring_head(ring) - back);
    }
    read_from_anywhere(bus_ring_head(ring) + 8);
    read_from_anywhere(UINT64_MAX - 7);
}
END_TEST

/* What a reader checks, in another process or against a writer in a signal
 * handler: every record intact, sequence numbers strictly increasing, and
 * records missing only right after an overrun. */

struct read_report {
    uint64_t records;
    uint64_t overruns;
    uint64_t missed;            /* records skipped, all right after overruns */
    char error[160];
};

struct read_check {
    size_t span;                /* as for record_len() */
    uint64_t expect;            /* next sequence number due */
    int after_overrun;
    struct read_report rep;
};

/* Accounts for one bus_ring_read() result RC (a record in rbuf if PL_OK).
 * Returns -1 with rep.error set when the reader went wrong. */
static int read_check_step(struct read_check *c, int rc, uint32_t type, size_t len)
{
    uint64_t seq;

    if (rc == PL_AGAIN) {
        return 0;
    }
    if (rc == BUS_RING_OVERRUN) {
        c->rep.overruns++;
        c->after_overrun = 1;
        return 0;
    }
    if (rc != PL_OK) {
        snprintf(c->rep.error, sizeof(c->rep.error), "read returned %d", rc);
        return -1;
    }
    if (record_check(rbuf, len, type, c->span, &seq) != 0) {
        snprintf(c->rep.error, sizeof(c->rep.error),
                 "corrupt record after seq %" PRIu64 " (len %zu)", c->expect, len);
        return -1;
    }
    if (seq < c->expect || (seq > c->expect && !c->after_overrun)) {
        snprintf(c->rep.error, sizeof(c->rep.error), "seq %" PRIu64 " where %" PRIu64
                 " was due%s", seq, c->expect, c->after_overrun ? " after an overrun" : "");
        return -1;
    }
    c->rep.missed += seq - c->expect;
    c->rep.records++;
    c->expect = seq + 1;
    c->after_overrun = 0;
    return 0;
}

/* At the end the reader must have had the last record, or been told that
 * it lost it. */
static void read_check_end(struct read_check *c, uint64_t records)
{
    if (c->rep.error[0] == '\0' && c->expect != records && !c->after_overrun) {
        snprintf(c->rep.error, sizeof(c->rep.error),
                 "stopped at seq %" PRIu64 " of %" PRIu64 " silently", c->expect, records);
    }
}

/* A writer in a signal handler: it interrupts the reader anywhere, even in
 * the middle of copying a record, and pushes until the reader is lapped by
 * a few bytes or not quite, so that exactly the bytes being copied may be
 * overwritten.  Without the check after the copy, the reader would return
 * torn records here. */

static struct bus_ring_reader sig_rd;
static volatile sig_atomic_t sig_ticks;
static uint64_t sig_seq;
static int sig_failed;

static void sig_writer(int signo)
{
    uint64_t pos = __atomic_load_n(&sig_rd.pos, __ATOMIC_RELAXED);
    uint64_t r = (sig_seq * 2654435761u >> 7) % (2 * max_rec);
    uint64_t target = pos + SMALL_CAP - max_rec + r;

    PL_UNUSED(signo);
    while (bus_ring_head(ring) < target) {
        if (record_push(sig_seq++, 0) != PL_OK) {
            sig_failed = 1;
        }
    }
    sig_ticks++;
}

START_TEST(writer_interrupting_reader)
{
    struct read_check c = { .span = 0 };
    struct sigaction sa = { .sa_handler = sig_writer };
    struct itimerval it = { .it_interval = { 0, 20 }, .it_value = { 0, 20 } };
    struct timespec t0, now;
    uint32_t type;
    size_t len;
    int rc;

    ring_open(SMALL_CAP);
    sig_rd.pos = 0;
    sig_seq = 0;
    sig_ticks = 0;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        /* Spin rather than sleep on PL_AGAIN: the point is to be
         * interrupted inside bus_ring_read(). */
        rc = bus_ring_read(ring, &sig_rd, &type, rbuf, max_rec, &len);
        if (read_check_step(&c, rc, type, len) != 0) {
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (sig_ticks < 20000 && now.tv_sec - t0.tv_sec + (now.tv_nsec - t0.tv_nsec) / 1e9 < 0.5);

    memset(&it, 0, sizeof(it));
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    signal(SIGALRM, SIG_IGN);
    ck_assert_msg(c.rep.error[0] == '\0', "%s", c.rep.error);
    ck_assert_int_eq(sig_failed, 0);
    ck_assert_int_gt(sig_ticks, 100);
    ck_assert_uint_gt(c.rep.overruns, 0);
    ck_assert_uint_gt(c.rep.records, 100);
}
END_TEST

/* Reader processes.  The parent is the writer; each reader checks every
 * record it gets and sends a report back through a pipe. */

struct proc_ctl {
    uint32_t ready;             /* readers that are about to read */
    uint32_t done;              /* the writer has pushed everything */
};

struct proc_test {
    size_t capacity;
    uint64_t records;
    size_t span;                /* as for record_len() */
    unsigned delay_us[MAX_READERS];     /* a reader's pause after each record */
};

static void proc_read(const struct proc_test *t, struct proc_ctl *ctl, unsigned delay_us,
                      struct read_check *c)
{
    struct bus_ring_reader rd = { .pos = 0 };
    uint32_t type;
    size_t len;
    int done, rc;

    __atomic_add_fetch(&ctl->ready, 1, __ATOMIC_RELEASE);
    for (;;) {
        /* Loaded before the read: if the writer was done then, an empty
         * ring means there is nothing more to come. */
        done = __atomic_load_n(&ctl->done, __ATOMIC_ACQUIRE);
        rc = read_any(&rd, &type, &len);
        if (read_check_step(c, rc, type, len) != 0) {
            return;
        }
        if (rc == PL_AGAIN) {
            if (done) {
                break;
            }
            sched_yield();
        } else if (rc == PL_OK && delay_us > 0) {
            usleep(delay_us);
        }
    }
    read_check_end(c, t->records);
}

static pid_t proc_reader_start(const struct proc_test *t, struct proc_ctl *ctl, int i, int *fd)
{
    int p[2];
    pid_t pid;

    ck_assert_int_eq(pipe(p), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct read_check c = { .span = t->span };

        close(p[0]);
        proc_read(t, ctl, t->delay_us[i], &c);
        _exit(write(p[1], &c.rep, sizeof(c.rep)) == (ssize_t)sizeof(c.rep) ? 0 : 1);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

static void proc_wait_ready(struct proc_ctl *ctl, uint32_t n)
{
    for (int i = 0; __atomic_load_n(&ctl->ready, __ATOMIC_ACQUIRE) < n; i++) {
        ck_assert_msg(i < 10000, "reader processes did not start");
        usleep(1000);
    }
}

static void proc_reader_finish(pid_t pid, int fd, int i, struct read_report *rep)
{
    int status;

    ck_assert_int_eq(read(fd, rep, sizeof(*rep)), (ssize_t)sizeof(*rep));
    close(fd);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader %d died", i);
    ck_assert_msg(rep->error[0] == '\0', "reader %d: %s", i, rep->error);
}

/* Runs T with MAX_READERS reader processes and fills REPS. */
static void proc_run(const struct proc_test *t, struct read_report *reps)
{
    struct proc_ctl *ctl;
    pid_t pids[MAX_READERS];
    int fds[MAX_READERS];

    ring_open(t->capacity);
    ctl = shared_map(sizeof(*ctl));
    for (int i = 0; i < MAX_READERS; i++) {
        pids[i] = proc_reader_start(t, ctl, i, &fds[i]);
    }
    proc_wait_ready(ctl, MAX_READERS);
    for (uint64_t seq = 0; seq < t->records; seq++) {
        ck_assert_int_eq(record_push(seq, t->span), PL_OK);
    }
    __atomic_store_n(&ctl->done, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < MAX_READERS; i++) {
        proc_reader_finish(pids[i], fds[i], i, &reps[i]);
        ck_assert_uint_le(reps[i].records + reps[i].missed, t->records);
        if (reps[i].overruns == 0) {
            ck_assert_uint_eq(reps[i].records, t->records);
        }
    }
    munmap(ctl, sizeof(*ctl));
}

START_TEST(processes_never_lapped)
{
    /* About 12 MB of records in a 16 MiB ring: no reader can be lapped, so
     * each must get every record. */
    const struct proc_test t = { .capacity = 16u << 20, .records = 100000, .span = 200 };
    struct read_report reps[MAX_READERS];

    proc_run(&t, reps);
    for (int i = 0; i < MAX_READERS; i++) {
        ck_assert_uint_eq(reps[i].overruns, 0);
        ck_assert_uint_eq(reps[i].records, t.records);
    }
}
END_TEST

START_TEST(processes_keeping_up)
{
    /* Readers usually keep up with a 64 KiB ring, but on a loaded machine a
     * reader may be descheduled long enough to be lapped: only what it
     * reads, and what it is told it missed, can be checked. */
    const struct proc_test t = { .capacity = 64u << 10, .records = 200000, .span = 200 };
    struct read_report reps[MAX_READERS];

    proc_run(&t, reps);
}
END_TEST

START_TEST(processes_lapped)
{
    /* The writer laps both readers of a 4 KiB ring all the time, sometimes
     * while they are copying.  The slow reader would need 200000 pauses to
     * keep up, so it must overrun.  It may not see a gap, though: on a busy
     * machine the writer can be done before the reader first runs. */
    const struct proc_test t = { .capacity = SMALL_CAP, .records = 200000, .span = 0,
                                 .delay_us = { 0, 50 } };
    struct read_report reps[MAX_READERS];

    proc_run(&t, reps);
    ck_assert_uint_gt(reps[1].overruns, 0);
    ck_assert_uint_lt(reps[1].records, t.records);
}
END_TEST

Suite *suite_bus_ring(void)
{
    Suite *s = suite_create("bus_ring");
    TCase *tc = tcase_create("records");
    TCase *procs = tcase_create("concurrent");

    tcase_add_checked_fixture(tc, NULL, ring_close);
    tcase_add_test(tc, init_checks_capacity);
    tcase_add_test(tc, round_trip_iovec);
    tcase_add_test(tc, types_and_empty_payloads);
    tcase_add_test(tc, again_when_empty);
    tcase_add_test(tc, wrap_around_in_step);
    tcase_add_test(tc, wrap_around_in_batches);
    tcase_add_test(tc, oversize_rejected);
    tcase_add_test(tc, small_buffer_skips_nothing);
    tcase_add_test(tc, full_ring_still_readable);
    tcase_add_test(tc, overrun_when_lapped);
    tcase_add_test(tc, late_reader_sees_only_new);
    tcase_add_test(tc, bogus_positions_never_crash);
    suite_add_tcase(s, tc);

    /* Generous: ASan and a busy two-core machine slow these down. */
    tcase_set_timeout(procs, 60);
    tcase_add_checked_fixture(procs, NULL, ring_close);
    tcase_add_test(procs, writer_interrupting_reader);
    tcase_add_test(procs, processes_never_lapped);
    tcase_add_test(procs, processes_keeping_up);
    tcase_add_test(procs, processes_lapped);
    suite_add_tcase(s, procs);
    return s;
}
