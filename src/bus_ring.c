/* bus_ring.c - single-writer, many-reader record ring in shared memory. */
#include "bus_ring.h"

#include <stddef.h>
#include <string.h>

/* Every record starts with one 8-byte header word: the payload length in
 * the low 32 bits, the caller's type in the high 32 bits.  It is read and
 * written as a single 64-bit atomic so that a reader can neither see half of
 * it nor have the compiler fetch it twice (once to validate, once to use). */
#define RING_HDR        8u
#define RING_ALIGN      8u
#define RING_MIN_CAP    4096u
#define RING_LINE       64

/* The length of a wrap marker: the rest of the buffer is unused and the
 * next record starts at offset 0.  No real record can be this long. */
#define RING_PAD        UINT32_MAX

/* Keeps a record's length well inside 32 bits even for huge rings. */
#define RING_LEN_MAX    0x7ffffff8u

struct bus_ring {
    /* Set by bus_ring_init before the fork, read-only afterwards. */
    uint64_t capacity;
    uint64_t mask;
    uint64_t max_record;
    char pad0[RING_LINE - 3 * sizeof(uint64_t)];

    /* Written by the writer only.  reserve >= head always: reserve is how
     * far the writer may be touching bytes right now, head how far records
     * are complete.  They share a cache line because a reader loads both
     * for every record, and one miss is cheaper than two. */
    uint64_t reserve;
    uint64_t head;
    char pad1[RING_LINE - 2 * sizeof(uint64_t)];

    uint64_t data[];            /* capacity bytes */
};

_Static_assert(offsetof(struct bus_ring, reserve) == RING_LINE, "ring layout");
_Static_assert(offsetof(struct bus_ring, data) == 2 * RING_LINE, "ring layout");

static inline unsigned char *ring_bytes(const struct bus_ring *ring)
{
    return (unsigned char *)ring->data;
}

static inline uint64_t *ring_word(const struct bus_ring *ring, uint64_t off)
{
    return (uint64_t *)(ring_bytes(ring) + off);
}

static inline uint64_t ring_record_size(uint64_t len)
{
    return RING_HDR + ((len + RING_ALIGN - 1) & ~(uint64_t)(RING_ALIGN - 1));
}

size_t bus_ring_zone_size(size_t capacity)
{
    return sizeof(struct bus_ring) + capacity;
}

struct bus_ring *bus_ring_init(void *mem, size_t capacity)
{
    struct bus_ring *ring = mem;
    uint64_t max;

    if (capacity < RING_MIN_CAP || (capacity & (capacity - 1)) != 0
        || ((uintptr_t)mem & (RING_ALIGN - 1)) != 0) {
        return NULL;
    }
    max = capacity / 4 - RING_HDR;
    if (max > RING_LEN_MAX) {
        max = RING_LEN_MAX;
    }
    memset(ring, 0, sizeof(*ring));
    ring->capacity = capacity;
    ring->mask = capacity - 1;
    ring->max_record = max;
    /* Children inherit the ring through fork, which orders these stores
     * before anything they do; the fence is for a ring shared otherwise. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return ring;
}

size_t bus_ring_max_record(const struct bus_ring *ring)
{
    return ring->max_record;
}

uint64_t bus_ring_head(const struct bus_ring *ring)
{
    return __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE);
}

int bus_ring_push(struct bus_ring *ring, uint32_t type, const struct iovec *iov, int iovcnt)
{
    uint64_t len = 0, head, start, end, off;
    unsigned char *dst;

    for (int i = 0; i < iovcnt; i++) {
        /* Compared piece by piece so that huge iov_len values cannot wrap
         * the sum around. */
        if (iov[i].iov_len > ring->max_record - len) {
            return PL_ERR;
        }
        len += iov[i].iov_len;
    }

    /* Only this process stores head, so it needs no ordering to read it. */
    head = __atomic_load_n(&ring->head, __ATOMIC_RELAXED);
    off = head & ring->mask;
    start = head;
    if (off + ring_record_size(len) > ring->capacity) {
        start = head + (ring->capacity - off);
    }
    end = start + ring_record_size(len);

    /* Announce the bytes about to change before changing any: a reader that
     * copied some of them will then see reserve past its position plus the
     * capacity and discard its copy.  The release fence keeps the data stores
     * below from becoming visible before the new reserve. */
    __atomic_store_n(&ring->reserve, end, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);

    if (start != head) {
        /* off is 8-aligned and capacity a multiple of 8, so the marker fits. */
        __atomic_store_n(ring_word(ring, off), (uint64_t)RING_PAD, __ATOMIC_RELAXED);
    }
    off = start & ring->mask;
    __atomic_store_n(ring_word(ring, off), (uint64_t)type << 32 | len, __ATOMIC_RELAXED);
    dst = ring_bytes(ring) + off + RING_HDR;
    for (int i = 0; i < iovcnt; i++) {
        /* An empty piece may have a NULL base, which memcpy must not see. */
        if (iov[i].iov_len > 0) {
            memcpy(dst, iov[i].iov_base, iov[i].iov_len);
            dst += iov[i].iov_len;
        }
    }

    __atomic_store_n(&ring->head, end, __ATOMIC_RELEASE);
    return PL_OK;
}

void bus_ring_reader_init(const struct bus_ring *ring, struct bus_ring_reader *rd)
{
    rd->pos = bus_ring_head(ring);
}

/* True when the writer may have started overwriting the byte at position
 * START (and so any byte after it that the caller copied).  The acquire fence
 * orders the caller's copy before the load of reserve: if the copy saw any
 * byte of a newer record, this load sees the reserve announced before it. */
static inline int ring_lapped(const struct bus_ring *ring, uint64_t start)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&ring->reserve, __ATOMIC_RELAXED) - start > ring->capacity;
}

static int ring_overrun(const struct bus_ring *ring, struct bus_ring_reader *rd)
{
    rd->pos = bus_ring_head(ring);
    return BUS_RING_OVERRUN;
}

/* The copy from shared memory races with the writer by design (a seqlock):
 * whatever it copies is only trusted after ring_lapped() says the writer did
 * not reach it.  Until then every length is validated before it is used, so
 * garbage can cost a record but never an out-of-bounds access.
 *
 * A BUFLEN smaller than the record returns PL_ERR and leaves the reader
 * where it was, so a retry with a bigger buffer gets the same record. */
int bus_ring_read(const struct bus_ring *ring, struct bus_ring_reader *rd,
                  uint32_t *type, void *buf, size_t buflen, size_t *len)
{
    uint64_t head = __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE);
    uint64_t start = rd->pos, pos = start, off, word, need;
    uint32_t rlen;

    if (pos == head) {
        return PL_AGAIN;
    }
    /* Also catches a position beyond head, as the difference wraps, and one
     * that is not a record boundary, as those are all 8-aligned. */
    if (head - pos > ring->capacity || (pos & (RING_ALIGN - 1)) != 0) {
        return ring_overrun(ring, rd);
    }

    off = pos & ring->mask;
    word = __atomic_load_n(ring_word(ring, off), __ATOMIC_RELAXED);
    if ((uint32_t)word == RING_PAD) {
        /* The writer publishes a marker together with the record after it,
         * so the marker can never be the last thing before head. */
        pos += ring->capacity - off;
        if (pos >= head) {
            return ring_overrun(ring, rd);
        }
        off = 0;
        word = __atomic_load_n(ring_word(ring, off), __ATOMIC_RELAXED);
    }

    rlen = (uint32_t)word;
    need = ring_record_size(rlen);
    if (rlen > ring->max_record || off + need > ring->capacity || need > head - pos) {
        /* Torn by the writer, or not a ring at all: either way this reader
         * cannot know what it missed. */
        return ring_overrun(ring, rd);
    }
    if (rlen > buflen) {
        if (ring_lapped(ring, start)) {
            return ring_overrun(ring, rd);
        }
        return PL_ERR;
    }

    memcpy(buf, ring_bytes(ring) + off + RING_HDR, rlen);
    if (ring_lapped(ring, start)) {
        return ring_overrun(ring, rd);
    }
    rd->pos = pos + need;
    *type = (uint32_t)(word >> 32);
    *len = rlen;
    return PL_OK;
}
