/* bus_ring.h - a single-writer, many-reader ring of records in shared memory.
 *
 * The bus process is the only writer: it appends each message it receives
 * from Redis once, and every worker reads it with its own cursor.  Readers
 * never write to the ring, so a reader that crashes or stalls cannot wedge
 * the writer or the other readers.  A reader that falls more than the ring's
 * capacity behind detects it (BUS_RING_OVERRUN) instead of reading torn or
 * recycled bytes, and is moved to the newest position so that it can recover
 * what it missed from the rooms' streams.
 *
 * Records are variable-length: a 32-bit type chosen by the caller and up to
 * bus_ring_max_record() bytes of payload.  Positions are 64-bit byte offsets
 * that only grow, so they double as sequence numbers. */
#ifndef PARLEY_BUS_RING_H
#define PARLEY_BUS_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "parley.h"

#define BUS_RING_OVERRUN (-3)

struct bus_ring;

struct bus_ring_reader {
    uint64_t pos;               /* next byte offset to read */
};

/* Bytes of shared memory a ring with CAPACITY bytes of data needs.
 * CAPACITY must be a power of two, at least 4096. */
size_t bus_ring_zone_size(size_t capacity);

/* Lays out an empty ring in MEM (bus_ring_zone_size(capacity) bytes, zeroed
 * or not, 8-byte aligned).  Done once by the master before forking.
 * Returns NULL when CAPACITY or the alignment of MEM is wrong. */
struct bus_ring *bus_ring_init(void *mem, size_t capacity);

/* Largest payload one record may carry (a quarter of the capacity, less the
 * 8-byte record header). */
size_t bus_ring_max_record(const struct bus_ring *ring);

/* Writer only: appends one record whose payload is the concatenation of
 * IOV[0..IOVCNT).  Returns PL_OK, or PL_ERR when it is larger than
 * bus_ring_max_record(). */
int bus_ring_push(struct bus_ring *ring, uint32_t type, const struct iovec *iov, int iovcnt);

/* Starts a reader at the current end: it will see records pushed from now. */
void bus_ring_reader_init(const struct bus_ring *ring, struct bus_ring_reader *rd);

/* Copies the next record's payload into BUF (BUFLEN >= bus_ring_max_record()
 * always suffices) and sets *TYPE and *LEN.  Returns PL_OK, PL_AGAIN when
 * there is nothing new, or BUS_RING_OVERRUN when records were overwritten
 * before this reader got to them; the reader then continues from the newest
 * position.  A BUFLEN too small for the next record returns PL_ERR and skips
 * nothing: the same record is returned by the next call.  Never writes to
 * the ring, so any number of processes may read at once. */
int bus_ring_read(const struct bus_ring *ring, struct bus_ring_reader *rd,
                  uint32_t *type, void *buf, size_t buflen, size_t *len);

/* The writer's position (bytes ever written). */
uint64_t bus_ring_head(const struct bus_ring *ring);

#endif
