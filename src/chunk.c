/* chunk.c - shared, reference-counted output bytes. */
#include "chunk.h"

#include <stdlib.h>

#include <event2/buffer.h>

#include "parley.h"

struct chunk *chunk_new(size_t len)
{
    struct chunk *c = malloc(sizeof(*c) + len);

    if (c != NULL) {
        c->refs = 1;
        c->len = len;
    }
    return c;
}

struct chunk *chunk_shrink(struct chunk *c, size_t len)
{
    struct chunk *smaller = realloc(c, sizeof(*c) + len);

    c = smaller != NULL ? smaller : c;
    c->len = len;
    return c;
}

void chunk_unref(struct chunk *c)
{
    if (c != NULL && --c->refs == 0) {
        free(c);
    }
}

static void chunk_sent(const void *data, size_t len, void *arg)
{
    PL_UNUSED(data);
    PL_UNUSED(len);
    chunk_unref(arg);
}

int chunk_append(struct evbuffer *out, struct chunk *c)
{
    return chunk_append_from(out, c, 0);
}

int chunk_append_from(struct evbuffer *out, struct chunk *c, size_t offset)
{
    c->refs++;
    if (evbuffer_add_reference(out, c->data + offset, c->len - offset, chunk_sent, c) != 0) {
        c->refs--;
        return PL_ERR;
    }
    return PL_OK;
}

void chunk_free_cached(void *c)
{
    chunk_unref(c);
}
