/* test_ws_frame.c - RFC 6455 framing and handshake rules, fed whole, byte by byte and split everywhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"
#include "unit.h"
#include "ws_frame.h"


#define DEFAULT_MAX ((size_t)1 << 20)
#define MAX_FRAMES 8

/* Where a case's violation becomes visible: once the frame's header is in,
 * once its last byte is in, or (0, 1, ...) once that payload byte is in. */
#define FAIL_HEADER (-1)
#define FAIL_END (-2)

/* The masking key of the example in RFC 6455 section 5.7. */
static const uint8_t rfc_mask[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* One client frame to send.  B0 is the first header byte (FIN, RSV bits,
 * opcode).  DATA NULL means N bytes of generated ASCII.  DECLARED, when
 * non-zero, is the length written in the header although only N bytes
 * follow, so a frame can stop after its header or partway.  CLOSE_CODE is
 * what the parser must report for a close frame. */
struct fspec {
    uint8_t b0;
    const char *data;
    size_t n;
    uint64_t declared;
    int unmasked;
    int close_code;
};

#define FR(b0, s) { (b0), (s), sizeof(s) - 1, 0, 0, 0 }
#define TXT(s) FR(0x81, s)
#define TXT_START(s) FR(0x01, s)
#define CONT(s) FR(0x00, s)
#define CONT_END(s) FR(0x80, s)
#define PING(s) FR(0x89, s)
#define PONG(s) FR(0x8A, s)
#define CLOSE(s, code) { 0x88, (s), sizeof(s) - 1, 0, 0, (code) }
#define GEN(b0, n) { (b0), NULL, (n), 0, 0, 0 }
#define HDR(b0, len) { (b0), NULL, 0, (len), 0, 0 }
#define PART(b0, s, len) { (b0), (s), sizeof(s) - 1, (len), 0, 0 }
#define UNMASKED(b0, s) { (b0), (s), sizeof(s) - 1, 0, 1, 0 }

#define FRAMES(...) .f = { __VA_ARGS__ }, .nf = sizeof((struct fspec[]){ __VA_ARGS__ }) / sizeof(struct fspec)

/* A stream of frames and what the parser must make of it: every complete
 * frame before the failing one, then ERR (a close code, 0 for none).
 * Frames after the failing one are sent too, and must change nothing. */
struct wcase {
    const char *what;
    struct fspec f[MAX_FRAMES];
    size_t nf;
    int err;
    size_t fail_frame;
    int fail_at;
    size_t max_message;         /* 0: DEFAULT_MAX */
    int deflate;                /* permessage-deflate negotiated */
};

#define FAILS(code, frame, at) .err = (code), .fail_frame = (frame), .fail_at = (at)

static const struct wcase frame_cases[] = {
    /* Streams the parser must accept. */
    { "single text", FRAMES(TXT("Hello")) },
    { "empty text", FRAMES(TXT("")) },
    { "two messages back to back", FRAMES(TXT("one"), TXT("two")) },
    { "fragmented message", FRAMES(TXT_START("Hel"), CONT_END("lo")) },
    { "fragments with ping and pong between",
      FRAMES(TXT_START("Hel"), PING("p"), CONT("l"), PONG(""), CONT_END("lo"), TXT("next")) },
    { "empty fragments", FRAMES(TXT_START(""), CONT(""), CONT_END("")) },
    { "2-byte characters split across fragments",
      FRAMES(TXT_START("\xce"), CONT("\xba\xe1\xbd"), CONT_END("\xb9\xcf\x83\xce\xbc\xce\xb5")) },
    { "4-byte character split over three fragments", FRAMES(TXT_START("a\xf0"), CONT("\x9f\x98"), CONT_END("\x80z")) },
    { "ping with invalid UTF-8 inside a split character",
      FRAMES(TXT_START("\xe2\x82"), PING("\xff\xfe"), CONT_END("\xac")) },
    { "UTF-8 range edges",
      FRAMES(TXT("\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
                 "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf")) },
    { "long ASCII then multi-byte", FRAMES(TXT("abcdefghijklmnopqrstuvwxyz0123456789\xc3\xa9\xe2\x82\xac!")) },
    { "control frames around a message",
      FRAMES(PING("abc"), TXT("x"), PONG("y"), CLOSE("\x03\xe8" "bye", 1000)) },
    { "empty close", FRAMES(CLOSE("", 1005)) },
    { "close with multi-byte reason", FRAMES(CLOSE("\x0b\xb8" "caf\xc3\xa9", 3000)) },
    { "ping of 125 bytes", FRAMES(GEN(0x89, 125)) },
    { "close of 125 bytes", FRAMES(CLOSE("\x03\xe9" "0123456789012345678901234567890123456789012345678901234567890"
                                         "12345678901234567890123456789012345678901234567890123456789012", 1001)) },
    { "text of 125 bytes (7-bit length)", FRAMES(GEN(0x81, 125)) },
    { "text of 126 bytes (16-bit length)", FRAMES(GEN(0x81, 126), TXT("after")) },
    { "text of 65535 bytes (16-bit length)", FRAMES(GEN(0x81, 65535)) },
    { "text of 65536 bytes (64-bit length)", FRAMES(GEN(0x81, 65536), PING("after")) },
    { "message exactly at the limit", FRAMES(TXT_START("12345"), PING("0123456789xyz"), CONT_END("67890")),
      .max_message = 10 },
    { "frame still arriving", FRAMES(TXT("ab"), PART(0x81, "abc", 10)) },
    { "header only, payload not yet sent", FRAMES(HDR(0x81, 1000)) },

    /* Header violations, judged once the header is in. */
    { "RSV1", FRAMES(FR(0xC1, "a")), FAILS(1002, 0, FAIL_HEADER) },
    { "RSV2", FRAMES(FR(0xA1, "a")), FAILS(1002, 0, FAIL_HEADER) },
    { "RSV3", FRAMES(FR(0x91, "a")), FAILS(1002, 0, FAIL_HEADER) },
    { "RSV on a ping after a message", FRAMES(TXT("ok"), FR(0x99, "a")), FAILS(1002, 1, FAIL_HEADER) },
    { "unmasked text", FRAMES(UNMASKED(0x81, "Hello")), FAILS(1002, 0, FAIL_HEADER) },
    { "unmasked ping", FRAMES(UNMASKED(0x89, "")), FAILS(1002, 0, FAIL_HEADER) },
    { "ping of 126 bytes", FRAMES(GEN(0x89, 126)), FAILS(1002, 0, FAIL_HEADER) },
    { "close of 126 bytes", FRAMES(HDR(0x88, 126)), FAILS(1002, 0, FAIL_HEADER) },
    { "pong with 64-bit length", FRAMES(HDR(0x8A, 65536)), FAILS(1002, 0, FAIL_HEADER) },
    { "fragmented ping", FRAMES(FR(0x09, "")), FAILS(1002, 0, FAIL_HEADER) },
    { "fragmented close", FRAMES(FR(0x08, "\x03\xe8")), FAILS(1002, 0, FAIL_HEADER) },
    { "fragmented pong inside a message", FRAMES(TXT_START("a"), FR(0x0A, "")), FAILS(1002, 1, FAIL_HEADER) },
    { "64-bit length with the top bit", FRAMES(HDR(0x81, UINT64_C(1) << 63)), FAILS(1002, 0, FAIL_HEADER) },
    { "64-bit length all ones", FRAMES(HDR(0x81, UINT64_MAX)), FAILS(1002, 0, FAIL_HEADER) },
    { "binary", FRAMES(FR(0x82, "abc")), FAILS(1003, 0, FAIL_HEADER) },
    { "binary start", FRAMES(FR(0x02, "abc")), FAILS(1003, 0, FAIL_HEADER) },
    { "binary inside a text message", FRAMES(TXT_START("a"), FR(0x82, "b")), FAILS(1003, 1, FAIL_HEADER) },
    { "continuation without a start", FRAMES(CONT_END("a")), FAILS(1002, 0, FAIL_HEADER) },
    { "non-final continuation without a start", FRAMES(CONT("a")), FAILS(1002, 0, FAIL_HEADER) },
    { "continuation after a complete message", FRAMES(TXT("a"), CONT_END("b")), FAILS(1002, 1, FAIL_HEADER) },
    { "text inside a fragmented message", FRAMES(TXT_START("a"), TXT("b")), FAILS(1002, 1, FAIL_HEADER) },
    { "text start after a ping inside a message", FRAMES(TXT_START("a"), PING(""), TXT_START("b")),
      FAILS(1002, 2, FAIL_HEADER) },
    { "oversize text, header only", FRAMES(HDR(0x81, 11)), FAILS(1009, 0, FAIL_HEADER), .max_message = 10 },
    { "oversize 16-bit length, header only", FRAMES(HDR(0x81, 60000)), FAILS(1009, 0, FAIL_HEADER),
      .max_message = 1000 },
    { "oversize 64-bit length, header only", FRAMES(HDR(0x81, UINT64_C(1) << 40)), FAILS(1009, 0, FAIL_HEADER) },
    { "largest 64-bit length, header only", FRAMES(HDR(0x81, (UINT64_C(1) << 63) - 1)), FAILS(1009, 0, FAIL_HEADER) },
    { "fragments adding up past the limit", FRAMES(TXT_START("123456"), PING("xy"), HDR(0x80, 5)),
      FAILS(1009, 2, FAIL_HEADER), .max_message = 10 },

    /* UTF-8, checked as the bytes arrive: the verdict needs no more. */
    { "overlong C0 AF", FRAMES(PART(0x81, "ab\xc0\xaf", 100)), FAILS(1007, 0, 2) },
    { "overlong C1 BF", FRAMES(TXT("\xc1\xbf")), FAILS(1007, 0, 0) },
    { "overlong E0 80 AF", FRAMES(PART(0x81, "x\xe0\x80\xaf", 100)), FAILS(1007, 0, 2) },
    { "overlong F0 80 80 AF", FRAMES(PART(0x81, "\xf0\x80\x80\xaf", 100)), FAILS(1007, 0, 1) },
    { "surrogate ED A0 80", FRAMES(PART(0x81, "abcdefghij\xed\xa0\x80", 100)), FAILS(1007, 0, 11) },
    { "surrogate ED BF BF", FRAMES(TXT("\xed\xbf\xbf")), FAILS(1007, 0, 1) },
    { "past U+10FFFF F4 90 80 80", FRAMES(PART(0x81, "\xf4\x90\x80\x80", 100)), FAILS(1007, 0, 1) },
    { "lead byte F5", FRAMES(PART(0x81, "\xf5\x80\x80\x80", 100)), FAILS(1007, 0, 0) },
    { "byte FF", FRAMES(TXT("abc\xff")), FAILS(1007, 0, 3) },
    { "stray continuation", FRAMES(PART(0x81, "abcdefgh\x80", 100)), FAILS(1007, 0, 8) },
    { "character cut by ASCII", FRAMES(TXT("\xc3" "a")), FAILS(1007, 0, 1) },
    { "bad byte in a later fragment", FRAMES(TXT_START("ok"), PING("p"), PART(0x00, "fine\xfe", 50)),
      FAILS(1007, 2, 4) },
    { "overlong split across fragments", FRAMES(TXT_START("\xe0"), CONT_END("\x80\xaf")), FAILS(1007, 1, 0) },
    { "truncated 2-byte at message end", FRAMES(TXT("\xce")), FAILS(1007, 0, FAIL_END) },
    { "truncated 3-byte at message end", FRAMES(TXT_START("a\xe2\x82"), CONT_END("")), FAILS(1007, 1, FAIL_END) },
    { "truncated 4-byte at message end", FRAMES(TXT("\xf0\x9f\x98")), FAILS(1007, 0, FAIL_END) },

    /* Close frames, judged when complete. */
    { "close of 1 byte", FRAMES(FR(0x88, "\x03")), FAILS(1002, 0, FAIL_END) },
    /* The next header byte, 0xE8, would complete code 1000 for a parser
     * that reads past the payload. */
    { "close of 1 byte, then more", FRAMES(FR(0x88, "\x03"), FR(0xE8, "")), FAILS(1002, 0, FAIL_END) },
    { "bad frame, then a good one", FRAMES(TXT("a"), FR(0xC1, "b"), TXT("c")), FAILS(1002, 1, FAIL_HEADER) },
    { "close reason not UTF-8", FRAMES(FR(0x88, "\x03\xe8" "ab\xff")), FAILS(1007, 0, FAIL_END) },
    { "close reason truncated", FRAMES(FR(0x88, "\x03\xe8" "\xc3")), FAILS(1007, 0, FAIL_END) },
    { "close between fragments", FRAMES(TXT_START("a"), CLOSE("\x03\xe8", 1000)) },

    /* permessage-deflate: RSV1 marks a message's first frame compressed;
     * its bytes are not text yet, so they pass unchecked. */
    { "compressed text", FRAMES(FR(0xC1, "\xff\xfe\x00")), .deflate = 1 },
    { "compressed fragments around a ping", FRAMES(FR(0x41, "\xff"), PING("p"), CONT_END("\xfe"), TXT("plain")),
      .deflate = 1 },
    { "plain text still checked", FRAMES(FR(0xC1, "\xff"), TXT("\xff")), FAILS(1007, 1, 0), .deflate = 1 },
    { "RSV1 without the extension", FRAMES(FR(0xC1, "a")), FAILS(1002, 0, FAIL_HEADER) },
    { "RSV1 on a continuation", FRAMES(FR(0x41, "a"), FR(0xC0, "b")), FAILS(1002, 1, FAIL_HEADER), .deflate = 1 },
    { "RSV1 on a continuation of plain text", FRAMES(TXT_START("a"), FR(0xC0, "b")), FAILS(1002, 1, FAIL_HEADER),
      .deflate = 1 },
    { "RSV1 on a ping", FRAMES(FR(0xC9, "")), FAILS(1002, 0, FAIL_HEADER), .deflate = 1 },
    { "RSV1 on a close", FRAMES(FR(0xC8, "\x03\xe8")), FAILS(1002, 0, FAIL_HEADER), .deflate = 1 },
    { "RSV2 with the extension", FRAMES(FR(0xA1, "a")), FAILS(1002, 0, FAIL_HEADER), .deflate = 1 },
    { "RSV1 and RSV3", FRAMES(FR(0xD1, "a")), FAILS(1002, 0, FAIL_HEADER), .deflate = 1 },
    { "compressed binary", FRAMES(FR(0xC2, "a")), FAILS(1003, 0, FAIL_HEADER), .deflate = 1 },
    { "compressed message within deflate's slack", FRAMES(HDR(0xC1, 74)), .max_message = 10, .deflate = 1 },
    { "compressed message past the slack", FRAMES(HDR(0xC1, 75)), FAILS(1009, 0, FAIL_HEADER), .max_message = 10,
      .deflate = 1 },
    { "plain message keeps the exact limit", FRAMES(HDR(0x81, 11)), FAILS(1009, 0, FAIL_HEADER), .max_message = 10,
      .deflate = 1 },
};

/* A growable byte string. */
struct bytes {
    uint8_t *data;
    size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
        ck_assert_ptr_nonnull(b->data);
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

/* What the parser made of a stream: its frames, then its verdict. */
struct event {
    int opcode, fin, close_code, compressed;
    const uint8_t *data;
    size_t len;
    const uint8_t *reason;
    size_t reason_len;
};

struct outcome {
    struct event ev[MAX_FRAMES];
    size_t nev;
    int err;                    /* close code, 0 for none */
    size_t err_at;              /* bytes delivered when the verdict came */
    size_t err_before;          /* bytes delivered by the call before */
};

/* A case turned into wire bytes: masked frames and the expected outcome. */
struct plan {
    struct bytes wire;
    uint8_t *clear[MAX_FRAMES]; /* each frame's payload before masking */
    size_t fail_pos;            /* bytes needed to see the violation */
    struct outcome want;
};

/* Writes a client frame's header by hand (not with ws_frame_header, which
 * is tested against this), with the minimal length encoding. */
static void wire_header(struct bytes *w, uint8_t b0, uint64_t len, const uint8_t *mask)
{
    uint8_t h[WS_HEADER_MAX];
    size_t n = 2;

    h[0] = b0;
    if (len <= 125) {
        h[1] = (uint8_t)len;
    } else if (len <= 0xFFFF) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        n = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++) {
            h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        }
        n = 10;
    }
    if (mask != NULL) {
        h[1] |= 0x80;
        memcpy(h + n, mask, 4);
        n += 4;
    }
    bytes_add(w, h, n);
}

static void plan_build(struct plan *pl, const struct wcase *c, int random_mask)
{
    int compressed = 0;

    memset(pl, 0, sizeof(*pl));
    pl->fail_pos = SIZE_MAX;
    ck_assert_uint_le(c->nf, MAX_FRAMES);
    for (size_t i = 0; i < c->nf; i++) {
        const struct fspec *f = &c->f[i];
        uint64_t len = f->declared ? f->declared : f->n;
        uint8_t mask[4], *clear = malloc(f->n + 1);
        size_t payload;

        ck_assert_ptr_nonnull(clear);
        pl->clear[i] = clear;
        for (size_t j = 0; j < f->n; j++) {
            clear[j] = f->data ? (uint8_t)f->data[j] : (uint8_t)('a' + j % 26);
        }
        for (int j = 0; j < 4; j++) {
            mask[j] = random_mask ? (uint8_t)random() : rfc_mask[j];
        }
        wire_header(&pl->wire, f->b0, len, f->unmasked ? NULL : mask);
        payload = pl->wire.len;
        for (size_t j = 0; j < f->n; j++) {
            uint8_t b = clear[j] ^ (f->unmasked ? 0 : mask[j & 3]);

            bytes_add(&pl->wire, &b, 1);
        }

        if (c->err != 0 && i == c->fail_frame) {
            pl->fail_pos = c->fail_at == FAIL_HEADER ? payload
                         : c->fail_at == FAIL_END ? payload + f->n
                         : payload + (size_t)c->fail_at + 1;
            ck_assert_uint_le(pl->fail_pos, pl->wire.len);
        }
        if (len == f->n && (c->err == 0 || i < c->fail_frame)) {
            struct event *e = &pl->want.ev[pl->want.nev++];

            e->opcode = f->b0 & 0x0F;
            e->fin = f->b0 >> 7;
            if (e->opcode == WS_OP_TEXT) {
                compressed = (f->b0 & 0x40) != 0;
            }
            e->compressed = e->opcode < WS_OP_CLOSE && compressed;
            e->data = clear;
            e->len = f->n;
            if (e->opcode == WS_OP_CLOSE) {
                e->close_code = f->close_code;
                if (f->n >= 2) {
                    e->reason = clear + 2;
                    e->reason_len = f->n - 2;
                }
            }
        }
    }
    pl->want.err = c->err;
}

static void plan_free(struct plan *pl)
{
    for (size_t i = 0; i < MAX_FRAMES; i++) {
        free(pl->clear[i]);
    }
    free(pl->wire.data);
}

/* How a stream is delivered: all at once, a byte at a time, in two pieces
 * cut at K, or in random pieces of 1-9 bytes. */
enum { DELIVER_WHOLE, DELIVER_BYTES, DELIVER_SPLIT, DELIVER_RANDOM };

struct delivery {
    int how;
    size_t k;
    unsigned seed;
};

static size_t delivery_next(struct delivery *d, size_t delivered, size_t len)
{
    size_t next;

    switch (d->how) {
    case DELIVER_BYTES:
        next = delivered + 1;
        break;
    case DELIVER_SPLIT:
        next = delivered < d->k ? d->k : len;
        break;
    case DELIVER_RANDOM:
        next = delivered + 1 + (size_t)(rand_r(&d->seed) % 9);
        break;
    default:
        next = len;
        break;
    }
    return next < len ? next : len;
}

/* Plays WIRE to a parser the way a connection would: appends what arrives
 * to a receive buffer, feeds what is not consumed yet from the same start,
 * and consumes each frame returned. */
static void deliver(const struct bytes *wire, size_t max_message, int deflate, struct delivery d, struct outcome *got)
{
    struct ws_parser p;
    struct ws_frame f;
    uint8_t *rb = malloc(wire->len + 1);
    size_t start = 0, delivered = 0, before;
    ssize_t rc;

    ck_assert_ptr_nonnull(rb);
    memset(got, 0, sizeof(*got));
    ws_parser_init(&p, max_message, deflate);
    while (delivered < wire->len) {
        before = delivered;
        delivered = delivery_next(&d, delivered, wire->len);
        memcpy(rb + before, wire->data + before, delivered - before);
        for (;;) {
            rc = ws_parser_feed(&p, rb + start, delivered - start, &f);
            if (rc == 0) {
                /* Asking again without new bytes changes nothing; in
                 * particular nothing is unmasked twice. */
                ck_assert_int_eq(ws_parser_feed(&p, rb + start, delivered - start, &f), 0);
                break;
            }
            if (rc < 0) {
                got->err = (int)-rc;
                got->err_at = delivered;
                got->err_before = before;
                free(rb);
                return;
            }
            ck_assert_uint_le((size_t)rc, delivered - start);
            ck_assert_ptr_eq(f.payload + f.len, rb + start + rc);
            ck_assert_uint_ge((size_t)rc, f.len + 6);
            ck_assert_uint_lt(got->nev, MAX_FRAMES);
            struct event *e = &got->ev[got->nev++];
            uint8_t *copy = malloc(f.len + 1);

            ck_assert_ptr_nonnull(copy);
            memcpy(copy, f.payload, f.len);
            e->opcode = f.opcode;
            e->fin = f.fin;
            e->compressed = f.compressed;
            e->data = copy;
            e->len = f.len;
            e->close_code = f.close_code;
            if (f.close_reason != NULL) {
                ck_assert_ptr_eq(f.close_reason, f.payload + 2);
                ck_assert_uint_eq(f.close_reason_len, f.len - 2);
                e->reason = copy + 2;
                e->reason_len = f.close_reason_len;
            }
            start += (size_t)rc;
        }
    }
    free(rb);
}

static void outcome_free(struct outcome *o)
{
    for (size_t i = 0; i < o->nev; i++) {
        free((void *)o->ev[i].data);
    }
}

static void outcome_check(const char *what, const char *how, const struct plan *pl, const struct outcome *got)
{
    const struct outcome *want = &pl->want;

    ck_assert_msg(got->nev == want->nev, "%s (%s): %zu frames, want %zu", what, how, got->nev, want->nev);
    for (size_t i = 0; i < want->nev; i++) {
        const struct event *g = &got->ev[i], *w = &want->ev[i];

        ck_assert_msg(g->opcode == w->opcode && g->fin == w->fin && g->compressed == w->compressed,
                      "%s (%s): frame %zu opcode %d fin %d compressed %d", what, how, i, g->opcode, g->fin,
                      g->compressed);
        ck_assert_msg(g->len == w->len && memcmp(g->data, w->data, w->len) == 0, "%s (%s): frame %zu payload", what,
                      how, i);
        ck_assert_msg(g->close_code == w->close_code, "%s (%s): frame %zu close code %d, want %d", what, how, i,
                      g->close_code, w->close_code);
        ck_assert_msg(g->reason_len == w->reason_len && (w->reason_len == 0 || memcmp(g->reason, w->reason,
                                                                                       w->reason_len) == 0),
                      "%s (%s): frame %zu close reason", what, how, i);
    }
    ck_assert_msg(got->err == want->err, "%s (%s): verdict %d, want %d", what, how, got->err, want->err);
    if (want->err != 0) {
        /* Reported on the first call that had the bytes it needed. */
        ck_assert_msg(got->err_before < pl->fail_pos && pl->fail_pos <= got->err_at,
                      "%s (%s): verdict after %zu bytes, needs %zu", what, how, got->err_at, pl->fail_pos);
    }
}

static void deliver_check(const struct plan *pl, size_t max, int deflate, struct delivery d, const char *what, const char *how)
{
    struct outcome got;

    deliver(&pl->wire, max, deflate, d, &got);
    outcome_check(what, how, pl, &got);
    outcome_free(&got);
}

/* Plays a case every way, masked with the RFC key and with random keys. */
static void case_check(const struct wcase *c)
{
    size_t max = c->max_message ? c->max_message : DEFAULT_MAX;
    struct plan pl;
    char how[64];

    for (int random_mask = 0; random_mask < 2; random_mask++) {
        size_t len;

        plan_build(&pl, c, random_mask);
        len = pl.wire.len;
        deliver_check(&pl, max, c->deflate, (struct delivery){ .how = DELIVER_WHOLE }, c->what, "whole");
        deliver_check(&pl, max, c->deflate, (struct delivery){ .how = DELIVER_BYTES }, c->what, "byte by byte");
        for (size_t k = 1; k < len; k++) {
            /* Cutting a long frame everywhere would take minutes; near its
             * header and end is where the parser changes state. */
            if (len > 4096 && k > 64 && k < len - 64 && k % 4093 != 0) {
                continue;
            }
            snprintf(how, sizeof(how), "split at %zu", k);
            deliver_check(&pl, max, c->deflate, (struct delivery){ .how = DELIVER_SPLIT, .k = k }, c->what, how);
        }
        for (unsigned seed = 1; seed <= 8; seed++) {
            snprintf(how, sizeof(how), "random pieces, seed %u", seed);
            deliver_check(&pl, max, c->deflate, (struct delivery){ .how = DELIVER_RANDOM, .seed = seed }, c->what, how);
        }
        plan_free(&pl);
    }
}

START_TEST(frame_streams)
{
    case_check(&frame_cases[_i]);
}
END_TEST

START_TEST(reserved_opcodes)
{
    static const int reserved[] = { 3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF };
    char what[64];

    for (size_t i = 0; i < PL_ARRAY_LEN(reserved); i++) {
        for (int fin = 0; fin <= 1; fin++) {
            struct wcase c = { what, FRAMES(FR((uint8_t)(fin << 7 | reserved[i]), "ab")),
                               FAILS(1002, 0, FAIL_HEADER) };

            snprintf(what, sizeof(what), "opcode %#x fin %d", reserved[i], fin);
            case_check(&c);
            /* The same inside a fragmented message. */
            struct wcase inside = { what, FRAMES(TXT_START("a"), FR((uint8_t)(fin << 7 | reserved[i]), "")),
                                    FAILS(1002, 1, FAIL_HEADER) };
            case_check(&inside);
        }
    }
}
END_TEST

/* Close codes, as ws_close_code_valid judges them and as the parser does
 * when they arrive in a close frame. */
static const struct {
    int code, valid;
} close_codes[] = {
    { 0, 0 }, { 999, 0 }, { 1000, 1 }, { 1001, 1 }, { 1002, 1 }, { 1003, 1 }, { 1004, 0 }, { 1005, 0 },
    { 1006, 0 }, { 1007, 1 }, { 1008, 1 }, { 1009, 1 }, { 1010, 1 }, { 1011, 1 }, { 1012, 0 }, { 1013, 0 },
    { 1014, 0 }, { 1015, 0 }, { 1016, 0 }, { 2000, 0 }, { 2999, 0 }, { 3000, 1 }, { 3999, 1 }, { 4000, 1 },
    { 4999, 1 }, { 5000, 0 }, { 32768, 0 }, { 65535, 0 },
};

START_TEST(close_codes_valid)
{
    ck_assert_msg(ws_close_code_valid(close_codes[_i].code) == close_codes[_i].valid, "code %d",
                  close_codes[_i].code);
}
END_TEST

START_TEST(close_codes_parsed)
{
    int code = close_codes[_i].code;
    char payload[] = { (char)(code >> 8), (char)code, 'o', 'k' };
    char what[64];

    snprintf(what, sizeof(what), "close code %d", code);
    for (size_t n = 2; n <= 4; n += 2) {
        struct wcase c = { what, FRAMES({ 0x88, payload, n, 0, 0, code }) };

        if (!close_codes[_i].valid) {
            c.err = 1002;
            c.fail_at = FAIL_END;
        }
        case_check(&c);
    }
}
END_TEST

/* RFC 6455 section 5.7: a masked "Hello" as the RFC spells it out. */
START_TEST(rfc_masked_hello)
{
    uint8_t buf[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    struct ws_parser p;
    struct ws_frame f;

    ws_parser_init(&p, 100, 0);
    ck_assert_int_eq(ws_parser_feed(&p, buf, sizeof(buf), &f), sizeof(buf));
    ck_assert_int_eq(f.opcode, WS_OP_TEXT);
    ck_assert_int_eq(f.fin, 1);
    ck_assert_ptr_eq(f.payload, buf + 6);
    ck_assert_uint_eq(f.len, 5);
    ck_assert_mem_eq(f.payload, "Hello", 5);
    ck_assert_int_eq(f.close_code, 0);
    ck_assert_ptr_null(f.close_reason);
}
END_TEST

/* RFC 6455 5.2: a length in more bytes than it needs is a protocol error,
 * judged from the header alone (the payload need not be there). */
START_TEST(non_minimal_lengths)
{
    static const struct { uint8_t head[10]; size_t n; int ok; } cases[] = {
        { { 0x81, 0xFE, 0x00, 0x05 }, 4, 0 },                                 /* 5 in 16 bits */
        { { 0x81, 0xFE, 0x00, 0x7D }, 4, 0 },                                 /* 125 in 16 bits */
        { { 0x81, 0xFE, 0x00, 0x7E }, 4, 1 },                                 /* 126: needs 16 */
        { { 0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0x00, 0x05 }, 10, 0 },              /* 5 in 64 bits */
        { { 0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF }, 10, 0 },              /* 65535 in 64 */
        { { 0x81, 0xFF, 0, 0, 0, 0, 0, 1, 0x00, 0x00 }, 10, 1 },              /* 65536: needs 64 */
    };
    uint8_t buf[14];
    struct ws_parser p;
    struct ws_frame f;

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        memcpy(buf, cases[i].head, cases[i].n);
        memset(buf + cases[i].n, 0x11, 4);      /* the mask */
        ws_parser_init(&p, 1 << 20, 0);
        ck_assert_msg(ws_parser_feed(&p, buf, cases[i].n + 4, &f) == (cases[i].ok ? 0 : -1002), "case %zu", i);
    }
}
END_TEST

/* The state is back to "between messages" after a final fragment, and
 * only per-frame state is reset after a frame inside a message. */
START_TEST(state_reset)
{
    struct plan pl;
    struct wcase c = { "state", FRAMES(TXT_START("\xc3"), PING("x"), CONT_END("\xa9")) };
    struct ws_parser p;
    struct ws_frame f;
    size_t start = 0;
    ssize_t rc;

    plan_build(&pl, &c, 0);
    ws_parser_init(&p, 50, 0);
    rc = ws_parser_feed(&p, pl.wire.data, pl.wire.len, &f);
    ck_assert_int_gt(rc, 0);
    start += (size_t)rc;
    ck_assert_int_eq(p.have_header, 0);
    ck_assert_uint_eq(p.unmasked, 0);
    ck_assert_int_eq(p.in_message, 1);
    ck_assert_uint_eq(p.message_len, 1);
    ck_assert_int_eq(utf8_complete(&p.utf8), 0);
    rc = ws_parser_feed(&p, pl.wire.data + start, pl.wire.len - start, &f);
    ck_assert_int_eq(f.opcode, WS_OP_PING);
    start += (size_t)rc;
    ck_assert_int_eq(p.in_message, 1);
    ck_assert_uint_eq(p.message_len, 1);
    rc = ws_parser_feed(&p, pl.wire.data + start, pl.wire.len - start, &f);
    ck_assert_int_eq(rc, (ssize_t)(pl.wire.len - start));
    ck_assert_int_eq(f.opcode, WS_OP_CONT);
    ck_assert_int_eq(f.fin, 1);
    ck_assert_int_eq(p.have_header, 0);
    ck_assert_int_eq(p.in_message, 0);
    ck_assert_uint_eq(p.message_len, 0);
    ck_assert_int_eq(utf8_complete(&p.utf8), 1);
    plan_free(&pl);
}
END_TEST

/* A continuation of a refused binary message is refused as binary too,
 * should the caller carry on after the first verdict. */
START_TEST(binary_continuation)
{
    struct wcase c = { "binary", FRAMES(FR(0x02, "ab"), CONT("c"), CONT_END("d")) };
    struct ws_parser p;
    struct ws_frame f;
    struct plan pl;
    size_t second;

    plan_build(&pl, &c, 1);
    second = 6 + 2;
    ws_parser_init(&p, 100, 0);
    ck_assert_int_eq(ws_parser_feed(&p, pl.wire.data, 6, &f), -1003);
    ck_assert_int_eq(ws_parser_feed(&p, pl.wire.data + second, 6, &f), -1003);
    ck_assert_int_eq(ws_parser_feed(&p, pl.wire.data + second + 7, 6, &f), -1003);
    plan_free(&pl);
}
END_TEST

START_TEST(zero_limit)
{
    struct wcase empty = { "limit 0, empty", FRAMES(TXT(""), TXT_START(""), PING("p"), CONT_END("")),
                           .max_message = 0 };
    struct wcase one = { "limit 0, one byte", FRAMES(TXT(""), HDR(0x81, 1)), FAILS(1009, 1, FAIL_HEADER) };
    struct ws_parser p;
    struct ws_frame f;
    struct plan pl;

    /* case_check treats max_message 0 as the default, so play these here. */
    for (int i = 0; i < 2; i++) {
        const struct wcase *c = i ? &one : &empty;

        plan_build(&pl, c, 0);
        deliver_check(&pl, 0, 0, (struct delivery){ .how = DELIVER_BYTES }, c->what, "byte by byte");
        deliver_check(&pl, 0, 0, (struct delivery){ .how = DELIVER_WHOLE }, c->what, "whole");
        plan_free(&pl);
    }
    ws_parser_init(&p, 0, 0);
    ck_assert_int_eq(ws_parser_feed(&p, (uint8_t *)"", 0, &f), 0);
}
END_TEST

/* ws_frame_header against the RFC's examples, then read back by the
 * parser (with a mask key added) for every length encoding. */
START_TEST(header_encoder)
{
    static const struct {
        int opcode, fin;
        uint64_t len;
        size_t n;
        uint8_t bytes[10];
    } cases[] = {
        { WS_OP_TEXT, 1, 5, 2, { 0x81, 0x05 } },
        { WS_OP_TEXT, 0, 3, 2, { 0x01, 0x03 } },
        { WS_OP_CONT, 1, 2, 2, { 0x80, 0x02 } },
        { WS_OP_PING, 1, 0, 2, { 0x89, 0x00 } },
        { WS_OP_CLOSE, 1, 2, 2, { 0x88, 0x02 } },
        { WS_OP_TEXT, 1, 125, 2, { 0x81, 0x7d } },
        { WS_OP_TEXT, 1, 126, 4, { 0x81, 0x7e, 0x00, 0x7e } },
        { WS_OP_BINARY, 1, 256, 4, { 0x82, 0x7e, 0x01, 0x00 } },
        { WS_OP_TEXT, 1, 65535, 4, { 0x81, 0x7e, 0xff, 0xff } },
        { WS_OP_BINARY, 1, 65536, 10, { 0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 } },
        { WS_OP_TEXT, 1, UINT64_C(0x0102030405060708), 10, { 0x81, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8 } },
    };
    uint8_t h[WS_HEADER_MAX];
    struct ws_parser p;
    struct ws_frame f;

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        size_t n = ws_frame_header(h, cases[i].opcode, cases[i].fin, cases[i].len);

        ck_assert_uint_eq(n, cases[i].n);
        ck_assert_mem_eq(h, cases[i].bytes, n);
        if (cases[i].opcode == WS_OP_BINARY || cases[i].opcode == WS_OP_CONT) {
            continue;
        }
        /* As a client would send it: mask bit and key added. */
        h[1] |= 0x80;
        memcpy(h + n, rfc_mask, 4);
        ws_parser_init(&p, SIZE_MAX / 2, 0);
        ck_assert_int_eq(ws_parser_feed(&p, h, n + 3, &f), 0);
        ck_assert_int_eq(p.have_header, 0);
        ck_assert_int_eq(ws_parser_feed(&p, h, n + 4, &f), cases[i].len == 0 ? (ssize_t)n + 4 : 0);
        if (cases[i].len != 0) {
            ck_assert_int_eq(p.have_header, 1);
            ck_assert_uint_eq(p.len, cases[i].len);
            ck_assert_uint_eq(p.header_len, n + 4);
            ck_assert_int_eq(p.opcode, cases[i].opcode);
            ck_assert_int_eq(p.fin, cases[i].fin);
        }
    }
}
END_TEST

START_TEST(accept_key_rfc)
{
    static const struct {
        const char *key, *accept;
    } cases[] = {
        { "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" },      /* RFC 6455 section 1.3 */
        { "x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk=" },
        { "AAAAAAAAAAAAAAAAAAAAAA==", "ICX+Yqv66kxgM0FcWaLWlFLwTAI=" },
        { "  dGhlIHNhbXBsZSBub25jZQ==\t ", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" },
        /* Unused bits set in the last character: still 16 bytes. */
        { "dGhlIHNhbXBsZSBub25jZR==", "Zgw8jYXtqX5qJr7MJ1Q/MqzeSRI=" },
    };
    char out[29];

    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        memset(out, 'x', sizeof(out));
        ck_assert_int_eq(ws_accept_key(cases[i].key, out), PL_OK);
        ck_assert_str_eq(out, cases[i].accept);
    }
}
END_TEST

START_TEST(accept_key_invalid)
{
    static const char *const bad[] = {
        "",
        "   ",
        "dGhlIHNhbXBsZSBub25jZQ",           /* padding missing */
        "dGhlIHNhbXBsZSBub25jZQ=",          /* half the padding */
        "dGhlIHNhbXBsZSBub25jZQ===",
        "dGhlIHNhbXBsZSBub25jZQ==x",
        "dGhlIHNhbXBsZSBub25jZQ== x",
        "AAAAAAAAAAAAAAAAAAAA",             /* 15 bytes */
        "AAAAAAAAAAAAAAAAAAAAAAA=",         /* 17 bytes */
        "AAAAAAAAAAAAAAAAAAAAAAAA",         /* 18 bytes */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", /* 35 bytes */
        "dGhlIHNhbXBsZSBub25jZ-==",         /* base64url, not base64 */
        "dGhlIHNhbXBsZSBub25jZ_==",
        "dGhlIHNh!XBsZSBub25jZQ==",
        "dGhlIHNh XBsZSBub25jZQ==",
        "dGhlIHNh=XBsZSBub25jZQ==",
        "dGhlIHNhbXBsZSBub25jZQ\xc3\xa9",
        "====dGhlIHNhbXBsZSBub25j",
        NULL,
    };
    char out[29] = "untouched";

    for (size_t i = 0; i < PL_ARRAY_LEN(bad); i++) {
        ck_assert_msg(ws_accept_key(bad[i], out) == PL_ERR, "'%s'", bad[i] ? bad[i] : "(null)");
        ck_assert_str_eq(out, "untouched");
    }
}
END_TEST

static const struct {
    const char *value, *token;
    int has;
} token_cases[] = {
    { "Upgrade", "upgrade", 1 },
    { "upgrade", "Upgrade", 1 },
    { "UPGRADE", "upgrade", 1 },
    { "keep-alive, Upgrade", "upgrade", 1 },
    { "keep-alive,upgrade ", "upgrade", 1 },
    { "  Upgrade  ,keep-alive", "upgrade", 1 },
    { "keep-alive,\tUpgrade\t", "upgrade", 1 },
    { "a,,upgrade", "upgrade", 1 },
    { "websocket", "websocket", 1 },
    { "upgrades", "upgrade", 0 },
    { "keep-alive, upgrades", "upgrade", 0 },
    { "xupgrade", "upgrade", 0 },
    { "up grade", "upgrade", 0 },
    { "upgrade-x, keep-alive", "upgrade", 0 },
    { "keep-alive", "upgrade", 0 },
    { "", "upgrade", 0 },
    { ",", "upgrade", 0 },
    { "upgrade", "", 0 },
    { NULL, "upgrade", 0 },
};

START_TEST(header_tokens)
{
    ck_assert_msg(ws_header_has_token(token_cases[_i].value, token_cases[_i].token) == token_cases[_i].has,
                  "'%s' holds '%s'", token_cases[_i].value ? token_cases[_i].value : "(null)", token_cases[_i].token);
}
END_TEST

Suite *suite_ws_frame(void)
{
    Suite *s = suite_create("ws_frame");
    TCase *frames = tcase_create("frames");
    TCase *handshake = tcase_create("handshake");

    /* Each stream is played a few thousand ways. */
    tcase_set_timeout(frames, 60);
    srandom(6455);
    tcase_add_loop_test(frames, frame_streams, 0, PL_ARRAY_LEN(frame_cases));
    tcase_add_test(frames, reserved_opcodes);
    tcase_add_loop_test(frames, close_codes_valid, 0, PL_ARRAY_LEN(close_codes));
    tcase_add_loop_test(frames, close_codes_parsed, 0, PL_ARRAY_LEN(close_codes));
    tcase_add_test(frames, rfc_masked_hello);
    tcase_add_test(frames, non_minimal_lengths);
    tcase_add_test(frames, state_reset);
    tcase_add_test(frames, binary_continuation);
    tcase_add_test(frames, zero_limit);
    tcase_add_test(frames, header_encoder);
    tcase_add_test(handshake, accept_key_rfc);
    tcase_add_test(handshake, accept_key_invalid);
    tcase_add_loop_test(handshake, header_tokens, 0, PL_ARRAY_LEN(token_cases));
    suite_add_tcase(s, frames);
    suite_add_tcase(s, handshake);
    return s;
}
