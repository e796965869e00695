/* http_chunked.h - a chunked body decoded strictly, fed in pieces: a
 * request's (http.c), and the agent upstream's response (http_response.c).
 *
 * RFC 9112 7.1, with the sizes bounded:
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-size   = 1*16HEXDIG (no size needs more digits: more -> 400)
 *   chunk-ext    = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
 *                  but no BWS between chunk-size and the first ";": parsers
 *                  differ there (h11 refuses it), so parley refuses it too
 *   last-chunk   = 1*"0" [ chunk-ext ] CRLF
 *
 * Extensions are checked and dropped; trailer fields are checked like
 * header fields (http_field_feed) and dropped, except that Content-Length
 * and Transfer-Encoding there are refused.  A chunk size that takes the
 * body past max_body -> 413 as soon as its line ends (before its data
 * arrives); trailers over max_trailer bytes -> 431; a chunk line over
 * HTTP_CHUNK_LINE_MAX bytes, a bare LF, data not followed by CRLF, and
 * anything else outside the grammar -> 400.
 *
 * Pure code: no I/O, fuzzed (tests/fuzz/fuzz_http_chunked.c). */
#ifndef PARLEY_HTTP_CHUNKED_H
#define PARLEY_HTTP_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#include "http_head.h"

/* The longest chunk line (size, extensions and CRLF) taken. */
#define HTTP_CHUNK_LINE_MAX 1024

struct http_chunked {
    int state;
    unsigned digits;            /* of the chunk size being read */
    uint64_t size;              /* that size, then the chunk's bytes still to come */
    uint64_t body;              /* bytes decoded so far */
    uint64_t max_body;
    size_t line;                /* bytes of the chunk line, or of the trailers, so far */
    size_t max_trailer;
    struct http_field field;    /* the trailer line being read */
    const char *reason;         /* why the body was refused (plain text, no quotes) */
};

void http_chunked_init(struct http_chunked *c, uint64_t max_body, size_t max_trailer);

/* Decodes the LEN bytes at IN, the next bytes of the body.  The data goes
 * to OUT (room for LEN bytes; OUT may be IN), *OUTLEN bytes of it.
 * Returns PL_AGAIN when all LEN bytes were taken and the body goes on, 0
 * when it ended (its last byte was IN[*USED - 1]; what follows belongs to
 * the next request), or the status to refuse it with (and C->reason).  The
 * answer and the data do not depend on how the bytes were split. */
int http_chunked_decode(struct http_chunked *c, const char *in, size_t len, size_t *used,
                        char *out, size_t *outlen);

#endif
