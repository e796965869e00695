/* utf8.h - UTF-8 validation: whole buffers, or fed in pieces.
 *
 * Accepts exactly RFC 3629's UTF-8: no overlong forms, no UTF-16
 * surrogates, nothing past U+10FFFF.  Fed incrementally, the verdict does
 * not depend on where the pieces were cut, so a WebSocket message can be
 * judged as its fragments and frames arrive (RFC 6455 8.1).  Used for
 * WebSocket text, client JSON and every string parley puts in an event.
 * Pure code, mostly ASCII fast-pathed. */
#ifndef PARLEY_UTF8_H
#define PARLEY_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* A validator; zeroed, it is fresh. */
struct utf8 {
    uint32_t state;             /* 0: between characters */
};

/* Feeds LEN bytes.  Returns 0 while valid so far, -1 on an invalid byte
 * (sticky: later calls keep failing). */
int utf8_feed(struct utf8 *u, const uint8_t *s, size_t len);

/* Non-zero when the bytes so far end on a character boundary. */
int utf8_complete(const struct utf8 *u);

/* Whole-buffer check: non-zero when S is valid, complete UTF-8. */
int utf8_valid(const uint8_t *s, size_t len);

#endif
