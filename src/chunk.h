/* chunk.h - reference-counted bytes shared between many output buffers.
 *
 * An event is encoded once per worker (an SSE block, a WebSocket frame) and
 * the same chunk is appended to every client's output with
 * evbuffer_add_reference: no per-client copy.  The chunk is freed when the
 * last buffer has sent it and its creator has dropped its reference. */
#ifndef PARLEY_CHUNK_H
#define PARLEY_CHUNK_H

#include <stddef.h>

struct evbuffer;

struct chunk {
    int refs;
    size_t len;
    char data[];
};

/* A chunk of LEN bytes (to be filled by the caller), one reference held. */
struct chunk *chunk_new(size_t len);
void chunk_unref(struct chunk *c);

/* Adds C to OUT by reference (taking a reference of its own). */
int chunk_append(struct evbuffer *out, struct chunk *c);

/* The same for C's bytes from OFFSET on. */
int chunk_append_from(struct evbuffer *out, struct chunk *c, size_t offset);

/* Gives back the memory of a chunk's bytes past LEN, before it is shared
 * (one reference).  Returns the chunk, moved perhaps. */
struct chunk *chunk_shrink(struct chunk *c, size_t len);

/* For bus_event_cache: drops the cache's reference. */
void chunk_free_cached(void *c);

#endif
