/* utf8.c - incremental UTF-8 validation (RFC 3629), no decoding. */
#include "utf8.h"

#include <string.h>

#include "parley.h"

/* Validator states.  ACCEPT must stay 0, as the header promises a zeroed
 * struct is a fresh validator.  Every state after REJECT names the range
 * the next byte has to fall in (see utf8_want below). */
enum {
    UTF8_ACCEPT = 0,
    UTF8_REJECT,
    UTF8_TAIL1,                 /* 1 continuation byte left */
    UTF8_TAIL2,                 /* 2 left */
    UTF8_TAIL3,                 /* 3 left */
    UTF8_E0,                    /* after E0 */
    UTF8_ED,                    /* after ED */
    UTF8_F0,                    /* after F0 */
    UTF8_F4,                    /* after F4 */
};

/* For each state inside a character: the bytes allowed next and the state
 * they lead to.  The narrowed ranges after E0, ED, F0 and F4 are what
 * keeps out overlong forms, UTF-16 surrogates and code points past
 * U+10FFFF, so a decoded value never has to be built. */
static const struct {
    uint8_t lo, hi, next;
} utf8_want[] = {
    [UTF8_TAIL1] = { 0x80, 0xBF, UTF8_ACCEPT },
    [UTF8_TAIL2] = { 0x80, 0xBF, UTF8_TAIL1 },
    [UTF8_TAIL3] = { 0x80, 0xBF, UTF8_TAIL2 },
    [UTF8_E0] = { 0xA0, 0xBF, UTF8_TAIL1 },     /* E0 80-9F is overlong */
    [UTF8_ED] = { 0x80, 0x9F, UTF8_TAIL1 },     /* ED A0-BF is a surrogate */
    [UTF8_F0] = { 0x90, 0xBF, UTF8_TAIL2 },     /* F0 80-8F is overlong */
    [UTF8_F4] = { 0x80, 0x8F, UTF8_TAIL2 },     /* F4 90+ is past U+10FFFF */
};

/* The state after byte C in STATE (neither ACCEPT's ASCII fast path nor
 * REJECT come here). */
static uint32_t utf8_step(uint32_t state, uint8_t c)
{
    if (state == UTF8_ACCEPT) {
        if (c < 0x80) {
            return UTF8_ACCEPT;
        }
        /* 80-BF cannot start a character, and C0/C1 could only start an
         * overlong form of an ASCII character. */
        if (c < 0xC2) {
            return UTF8_REJECT;
        }
        if (c < 0xE0) {
            return UTF8_TAIL1;
        }
        if (c < 0xF0) {
            return c == 0xE0 ? UTF8_E0 : c == 0xED ? UTF8_ED : UTF8_TAIL2;
        }
        if (c < 0xF5) {
            return c == 0xF0 ? UTF8_F0 : c == 0xF4 ? UTF8_F4 : UTF8_TAIL3;
        }
        return UTF8_REJECT;
    }
    if (state >= PL_ARRAY_LEN(utf8_want) || state == UTF8_REJECT) {
        return UTF8_REJECT;
    }
    return c >= utf8_want[state].lo && c <= utf8_want[state].hi ? utf8_want[state].next : UTF8_REJECT;
}

int utf8_feed(struct utf8 *u, const uint8_t *s, size_t len)
{
    uint32_t state = u->state;
    size_t i = 0;
    uint64_t w;

    if (state == UTF8_REJECT) {
        return -1;
    }
    while (i < len) {
        if (state == UTF8_ACCEPT) {
            /* Chat text is mostly ASCII: skip it eight bytes at a time.
             * memcpy keeps the load legal at any alignment. */
            while (len - i >= 8) {
                memcpy(&w, s + i, 8);
                if (w & UINT64_C(0x8080808080808080)) {
                    break;
                }
                i += 8;
            }
            while (i < len && s[i] < 0x80) {
                i++;
            }
            if (i == len) {
                break;
            }
        }
        state = utf8_step(state, s[i++]);
        if (state == UTF8_REJECT) {
            break;
        }
    }
    u->state = state;
    return state == UTF8_REJECT ? -1 : 0;
}

int utf8_complete(const struct utf8 *u)
{
    return u->state == UTF8_ACCEPT;
}

int utf8_valid(const uint8_t *s, size_t len)
{
    struct utf8 u = { 0 };

    return utf8_feed(&u, s, len) == 0 && utf8_complete(&u);
}

