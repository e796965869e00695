/* fuzz_ws_frame.c - libFuzzer target: the frame parser fed whole and in two pieces, with and without
 * permessage-deflate (compressed messages inflated under the limit), UTF-8 likewise.
 * links: utf8.c ws_deflate.c log.c */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ws_deflate.h"
#include "ws_frame.h"

/* Small enough that the fuzzer reaches 1009 with short inputs. */
#define FUZZ_MAX_MESSAGE 512
/* A compressed message may take a little more on the wire. */
#define FUZZ_MAX_COMPRESSED (FUZZ_MAX_MESSAGE + (FUZZ_MAX_MESSAGE >> 8) + 64)

/* What one delivery made of the input: a log of every frame returned
 * (a fixed record, then the payload) and the last verdict. */
struct run {
    uint8_t *log;
    size_t log_len, log_cap;
    ssize_t verdict;
    int deflate;                /* permessage-deflate negotiated */
    /* the text message being received, as this harness sees it */
    uint8_t msg[FUZZ_MAX_COMPRESSED];
    size_t msg_len;
    int in_msg;
};

static void run_log(struct run *r, const void *p, size_t n)
{
    if (r->log_len + n > r->log_cap) {
        r->log_cap = (r->log_len + n) * 2;
        r->log = realloc(r->log, r->log_cap);
        CHECK(r->log != NULL);
    }
    memcpy(r->log + r->log_len, p, n);
    r->log_len += n;
}

/* A compressed message inflates within the limit, or is refused as too
 * big or invalid; never anything else, never past the limit. */
static void inflate_check(const uint8_t *msg, size_t len)
{
    char *text = NULL;
    size_t got = 0;

    switch (ws_deflate_inflate(msg, len, FUZZ_MAX_MESSAGE, &text, &got)) {
    case WS_INFLATE_OK:
        CHECK(text != NULL && got <= FUZZ_MAX_MESSAGE && text[got] == '\0');
        free(text);
        break;
    case WS_INFLATE_TOO_BIG:
    case WS_INFLATE_INVALID:
        CHECK(text == NULL);
        break;
    default:
        CHECK(!"inflate ran out of memory");
    }
}

/* Checks a frame the parser returned for the bytes at IN (the original,
 * still masked input) and logs it. */
static void frame_check(struct run *r, const struct ws_frame *f, const uint8_t *win, ssize_t size, const uint8_t *in)
{
    size_t header = (size_t)(f->payload - win);
    const uint8_t *mask = in + header - 4;
    int record[5] = { f->opcode, f->fin, f->close_code, (int)f->len, (int)f->close_reason_len };

    CHECK(f->payload >= win && header >= 6 && header <= WS_HEADER_MAX);
    CHECK(header + f->len == (size_t)size);
    for (size_t i = 0; i < f->len; i++) {
        CHECK(f->payload[i] == (in[header + i] ^ mask[i & 3]));
    }
    switch (f->opcode) {
    case WS_OP_TEXT:
    case WS_OP_CONT:
        CHECK(f->opcode == WS_OP_TEXT ? !r->in_msg : r->in_msg);
        CHECK(f->close_code == 0 && f->close_reason == NULL);
        CHECK(!f->compressed || r->deflate);
        CHECK(r->msg_len + f->len <= (f->compressed ? FUZZ_MAX_COMPRESSED : FUZZ_MAX_MESSAGE));
        memcpy(r->msg + r->msg_len, f->payload, f->len);
        r->msg_len += f->len;
        r->in_msg = !f->fin;
        if (f->fin && f->compressed) {
            inflate_check(r->msg, r->msg_len);
            r->msg_len = 0;
        } else if (f->fin) {
            /* The incremental check across fragments agrees with a
             * whole-message check. */
            CHECK(utf8_valid(r->msg, r->msg_len));
            r->msg_len = 0;
        }
        break;
    case WS_OP_CLOSE:
        CHECK(f->fin && f->len <= WS_CONTROL_MAX);
        if (f->len == 0) {
            CHECK(f->close_code == 1005 && f->close_reason_len == 0);
        } else {
            CHECK(f->len >= 2 && ws_close_code_valid(f->close_code));
            CHECK(f->close_code == (f->payload[0] << 8 | f->payload[1]));
            CHECK(f->close_reason == f->payload + 2 && f->close_reason_len == f->len - 2);
            CHECK(utf8_valid(f->close_reason, f->close_reason_len));
        }
        break;
    case WS_OP_PING:
    case WS_OP_PONG:
        CHECK(f->fin && f->len <= WS_CONTROL_MAX);
        CHECK(f->close_code == 0 && f->close_reason == NULL);
        break;
    default:
        CHECK(!"unexpected opcode");
    }
    run_log(r, record, sizeof(record));
    run_log(r, f->payload, f->len);
}

/* After -1007: the text really is bad (not merely unfinished where more
 * could follow), or the close reason is. */
static void invalid_check(const struct run *r, const struct ws_parser *p, const uint8_t *win, size_t n)
{
    const uint8_t *payload = win + p->header_len;
    size_t avail = n - p->header_len < p->len ? n - p->header_len : (size_t)p->len;
    struct utf8 u = { 0 };
    int rc;

    CHECK(p->have_header && n >= p->header_len);
    if (p->opcode == WS_OP_CLOSE) {
        CHECK(avail == p->len && avail >= 2 && !utf8_valid(payload + 2, avail - 2));
        return;
    }
    CHECK(p->opcode == WS_OP_TEXT || p->opcode == WS_OP_CONT);
    rc = utf8_feed(&u, r->msg, r->msg_len);
    rc |= utf8_feed(&u, payload, avail);
    if (avail == p->len && p->fin) {
        CHECK(rc < 0 || !utf8_complete(&u));
    } else {
        CHECK(rc < 0);
    }
}

/* Feeds the bytes IN[*START, END) like a connection, each call on an
 * exactly sized copy so that ASan sees any read past them.  Returns 0
 * when more is needed, or the verdict. */
static ssize_t run_feed(struct run *r, struct ws_parser *p, uint8_t *rb, const uint8_t *in, size_t *start,
                        size_t end)
{
    struct ws_frame f;
    ssize_t rc;

    for (;;) {
        size_t n = end - *start;
        uint8_t *win = malloc(n ? n : 1);

        CHECK(win != NULL);
        memcpy(win, rb + *start, n);
        rc = ws_parser_feed(p, win, n, &f);
        CHECK(rc == 0 || (rc > 0 && (size_t)rc <= n) || rc == -1002 || rc == -1003 || rc == -1007 || rc == -1009);
        if (rc > 0) {
            frame_check(r, &f, win, rc, in + *start);
        } else if (rc == -1007) {
            invalid_check(r, p, win, n);
        } else if (rc == 0 && p->have_header) {
            CHECK(p->unmasked <= p->len && p->header_len + p->unmasked <= n);
        }
        /* Keep what was unmasked in place, as a connection's buffer would. */
        memcpy(rb + *start, win, n);
        free(win);
        if (rc <= 0) {
            r->verdict = rc;
            return rc;
        }
        *start += (size_t)rc;
    }
}

/* Delivers IN in two pieces, the first of SPLIT bytes (SPLIT == LEN: all
 * at once). */
static void run_deliver(struct run *r, const uint8_t *in, size_t len, size_t split)
{
    struct ws_parser p;
    uint8_t *rb = malloc(len ? len : 1);
    size_t start = 0;

    CHECK(rb != NULL);
    memcpy(rb, in, len);
    ws_parser_init(&p, FUZZ_MAX_MESSAGE, r->deflate);
    if (run_feed(r, &p, rb, in, &start, split) == 0 && split < len) {
        run_feed(r, &p, rb, in, &start, len);
    }
    free(rb);
}

/* The validator's verdict on S fed in the given pieces: -1 invalid, 0
 * unfinished, 1 valid. */
static int utf8_verdict(const uint8_t *s, size_t len, size_t split, size_t step)
{
    struct utf8 u = { 0 };
    int rc = 0;

    if (step == 0) {
        rc |= utf8_feed(&u, s, split);
        rc |= utf8_feed(&u, s + split, len - split);
    } else {
        for (size_t i = 0; i < len; i += step) {
            int one = utf8_feed(&u, s + i, len - i < step ? len - i : step);

            /* Invalid is sticky. */
            CHECK(rc == 0 || one < 0);
            rc |= one;
        }
    }
    return rc < 0 ? -1 : utf8_complete(&u);
}

/* A plain decoder to hold the state machine to: builds each code point
 * and rejects overlongs, surrogates and values past U+10FFFF by value. */
static int utf8_reference(const uint8_t *s, size_t len)
{
    static const uint32_t least[] = { 0, 0x80, 0x800, 0x10000 };

    for (size_t i = 0; i < len;) {
        size_t more = s[i] < 0x80 ? 0 : s[i] >= 0xC0 && s[i] < 0xE0 ? 1 : s[i] >= 0xE0 && s[i] < 0xF0 ? 2
                    : s[i] >= 0xF0 && s[i] < 0xF8 ? 3 : 4;
        uint32_t cp = s[i] & (0x7F >> more);

        if (more == 4 || len - i <= more) {
            return 0;
        }
        for (size_t j = 1; j <= more; j++) {
            if ((s[i + j] & 0xC0) != 0x80) {
                return 0;
            }
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < least[more] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) {
            return 0;
        }
        i += more + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole = { 0 }, split = { 0 };
    const uint8_t *in = data + 1;
    size_t len, cut;
    int v;

    if (size == 0) {
        return 0;
    }
    len = size - 1;
    cut = data[0] % (len + 1);

    for (int deflate = 0; deflate <= 1; deflate++) {
        whole = (struct run){ .deflate = deflate };
        split = (struct run){ .deflate = deflate };
        run_deliver(&whole, in, len, len);
        run_deliver(&split, in, len, cut);
        /* Where the input was cut changes nothing. */
        CHECK(whole.verdict == split.verdict);
        CHECK(whole.log_len == split.log_len
              && (whole.log_len == 0 || memcmp(whole.log, split.log, whole.log_len) == 0));
        free(whole.log);
        free(split.log);
    }

    v = utf8_verdict(in, len, 0, len);
    CHECK(v == utf8_verdict(in, len, cut, 0));
    CHECK(v == utf8_verdict(in, len, 0, 1));
    CHECK(v == utf8_verdict(in, len, 0, 1 + data[0] % 13));
    CHECK((v == 1) == utf8_valid(in, len));
    CHECK((v == 1) == utf8_reference(in, len));
    return 0;
}
