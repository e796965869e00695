/* ws_frame.c - RFC 6455 frame parsing and handshake helpers, no I/O. */
#include "ws_frame.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "parley.h"

/* The close codes this module reports (RFC 6455 section 7.4.1). */
enum {
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005,
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_TOO_BIG = 1009,
};

/* XORs LEN bytes at P, which sit at offset OFF of the payload, with the
 * masking key.  The key is widened to a word already rotated to OFF, so a
 * frame unmasked over several calls gets the same result as in one. */
static void ws_unmask(uint8_t *p, size_t len, const uint8_t mask[4], size_t off)
{
    uint8_t key[8];
    uint64_t k, w;
    size_t i = 0;

    for (size_t j = 0; j < sizeof(key); j++) {
        key[j] = mask[(off + j) & 3];
    }
    memcpy(&k, key, sizeof(k));
    for (; len - i >= 8; i += 8) {
        memcpy(&w, p + i, 8);
        w ^= k;
        memcpy(p + i, &w, 8);
    }
    /* i is a multiple of 8 here, so key[i & 3] is still in phase. */
    for (; i < len; i++) {
        p[i] ^= key[i & 3];
    }
}

void ws_parser_init(struct ws_parser *p, size_t max_message, int deflate)
{
    memset(p, 0, sizeof(*p));
    p->max_message = max_message;
    p->deflate = deflate;
}

/* The most a message may take on the wire: compressed, deflate's worst
 * case (incompressible text in stored blocks) adds a little. */
static uint64_t ws_parser_limit(const struct ws_parser *p, int compressed)
{
    return compressed ? (uint64_t)p->max_message + (p->max_message >> 8) + 64 : p->max_message;
}

/* Reads and judges the header at BUF.  Returns 0 while it is incomplete,
 * 1 once it is accepted (and stored in P), or the negated close code.  All
 * rules are applied together once the whole header is in, so the verdict
 * does not depend on how the bytes were split. */
static int ws_parser_header(struct ws_parser *p, const uint8_t *buf, size_t len)
{
    size_t need = 2;
    uint64_t plen;
    int fin, opcode, masked, rsv1, compressed;

    if (len < 2) {
        return 0;
    }
    fin = buf[0] >> 7;
    opcode = buf[0] & 0x0F;
    masked = buf[1] >> 7;
    plen = buf[1] & 0x7F;
    need += plen == 126 ? 2 : plen == 127 ? 8 : 0;
    need += masked ? 4 : 0;
    if (len < need) {
        return 0;
    }
    if (plen == 126) {
        plen = (uint64_t)buf[2] << 8 | buf[3];
    } else if (plen == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++) {
            plen = plen << 8 | buf[2 + i];
        }
    }

    /* RSV2 and RSV3 belong to no extension parley speaks; RSV1 is
     * permessage-deflate's, on the first frame of a data message only. */
    rsv1 = (buf[0] & 0x40) != 0;
    if ((buf[0] & 0x30) || (rsv1 && (!p->deflate || (opcode != WS_OP_TEXT && opcode != WS_OP_BINARY)))) {
        return -WS_CLOSE_PROTOCOL;
    }
    switch (opcode) {
    case WS_OP_CONT:
    case WS_OP_TEXT:
    case WS_OP_BINARY:
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        break;
    default:
        return -WS_CLOSE_PROTOCOL;
    }
    if (!masked) {
        return -WS_CLOSE_PROTOCOL;
    }
    if (opcode >= WS_OP_CLOSE && (plen > WS_CONTROL_MAX || !fin)) {
        return -WS_CLOSE_PROTOCOL;
    }
    /* RFC 6455 5.2: the length in the fewest bytes that hold it. */
    if (plen >> 63 || ((buf[1] & 0x7F) == 126 && plen < 126) || ((buf[1] & 0x7F) == 127 && plen < 65536)) {
        return -WS_CLOSE_PROTOCOL;
    }

    if (opcode < WS_OP_CLOSE) {
        if (opcode == WS_OP_BINARY || (opcode == WS_OP_CONT && p->in_message && p->message_opcode == WS_OP_BINARY)) {
            /* Remember a refused binary start, so a caller that carries on
             * regardless gets its continuation refused the same way. */
            if (opcode == WS_OP_BINARY && !fin && !p->in_message) {
                p->in_message = 1;
                p->message_opcode = WS_OP_BINARY;
            }
            return -WS_CLOSE_UNSUPPORTED;
        }
        if (opcode == WS_OP_CONT && !p->in_message) {
            return -WS_CLOSE_PROTOCOL;
        }
        if (opcode == WS_OP_TEXT && p->in_message) {
            return -WS_CLOSE_PROTOCOL;
        }
        /* message_len never exceeds the limit, so this cannot wrap.  The
         * second test keeps the frame size representable as ssize_t even
         * for an unlimited max_message. */
        compressed = opcode == WS_OP_TEXT ? rsv1 : p->message_compressed;
        if (plen > ws_parser_limit(p, compressed) - p->message_len || plen > (uint64_t)SSIZE_MAX - WS_HEADER_MAX) {
            return -WS_CLOSE_TOO_BIG;
        }
        if (opcode == WS_OP_TEXT) {
            p->in_message = 1;
            p->message_opcode = WS_OP_TEXT;
            p->message_compressed = rsv1;
        }
        p->message_len += plen;
    }

    p->have_header = 1;
    p->opcode = opcode;
    p->fin = fin;
    p->len = plen;
    p->header_len = need;
    memcpy(p->mask, buf + need - 4, 4);
    p->unmasked = 0;
    return 1;
}

/* Judges the complete frame at BUF, fills OUT and resets the per-frame
 * state (and the message state after a final fragment). */
static ssize_t ws_parser_finish(struct ws_parser *p, uint8_t *buf, struct ws_frame *out)
{
    uint8_t *payload = buf + p->header_len;
    size_t len = (size_t)p->len;
    ssize_t size = (ssize_t)(p->header_len + len);
    struct ws_frame f = {
        .opcode = p->opcode,
        .fin = p->fin,
        .compressed = p->opcode < WS_OP_CLOSE && p->message_compressed,
        .payload = payload,
        .len = len,
    };

    if (p->opcode == WS_OP_CLOSE) {
        if (len == 0) {
            f.close_code = WS_CLOSE_NO_STATUS;
        } else if (len == 1) {
            return -WS_CLOSE_PROTOCOL;
        } else {
            f.close_code = payload[0] << 8 | payload[1];
            if (!ws_close_code_valid(f.close_code)) {
                return -WS_CLOSE_PROTOCOL;
            }
            if (!utf8_valid(payload + 2, len - 2)) {
                return -WS_CLOSE_INVALID_DATA;
            }
            f.close_reason = payload + 2;
            f.close_reason_len = len - 2;
        }
    } else if (p->opcode < WS_OP_CLOSE && p->fin) {
        /* Every byte has been fed already; a message may still end in the
         * middle of a character. */
        if (!p->message_compressed && !utf8_complete(&p->utf8)) {
            return -WS_CLOSE_INVALID_DATA;
        }
        p->in_message = 0;
        p->message_opcode = 0;
        p->message_compressed = 0;
        p->message_len = 0;
        p->utf8 = (struct utf8){ 0 };
    }

    p->have_header = 0;
    p->opcode = 0;
    p->fin = 0;
    p->len = 0;
    p->header_len = 0;
    p->unmasked = 0;
    *out = f;
    return size;
}

ssize_t ws_parser_feed(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_frame *out)
{
    uint8_t *payload;
    size_t avail;
    int rc;

    if (!p->have_header) {
        rc = ws_parser_header(p, buf, len);
        if (rc <= 0) {
            return rc;
        }
    }
    if (len < p->header_len) {
        return 0;
    }
    payload = buf + p->header_len;
    avail = len - p->header_len;
    if (avail > p->len) {
        avail = (size_t)p->len;
    }
    if (avail > p->unmasked) {
        ws_unmask(payload + p->unmasked, avail - p->unmasked, p->mask, p->unmasked);
        /* Check text as it arrives, so a bad byte fails the connection
         * without waiting for (and buffering) the rest of the frame.
         * Binary is refused at the header, so every data frame is text;
         * compressed text is checked once inflated. */
        if (p->opcode < WS_OP_CLOSE && !p->message_compressed && utf8_feed(&p->utf8, payload + p->unmasked, avail - p->unmasked) < 0) {
            return -WS_CLOSE_INVALID_DATA;
        }
        p->unmasked = avail;
    }
    if (avail < p->len) {
        return 0;
    }
    return ws_parser_finish(p, buf, out);
}

int ws_close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

size_t ws_frame_header(uint8_t *out, int opcode, int fin, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (len <= WS_CONTROL_MAX) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    }
    return 10;
}

/* Non-zero for a character of the standard base64 alphabet (no padding). */
static int ws_b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int ws_accept_key(const char *key, char *out)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char text[24 + sizeof(guid) - 1];
    unsigned char digest[SHA_DIGEST_LENGTH];
    size_t n;

    if (key == NULL) {
        return PL_ERR;
    }
    while (*key == ' ' || *key == '\t') {
        key++;
    }
    n = strlen(key);
    while (n > 0 && (key[n - 1] == ' ' || key[n - 1] == '\t')) {
        n--;
    }
    /* 16 bytes are 22 base64 characters and "==", nothing else.  Unused
     * low bits in the 22nd character are tolerated, as most decoders do. */
    if (n != 24 || key[22] != '=' || key[23] != '=') {
        return PL_ERR;
    }
    for (size_t i = 0; i < 22; i++) {
        if (!ws_b64_char(key[i])) {
            return PL_ERR;
        }
    }
    /* The accept value hashes the key as sent, not its decoded bytes. */
    memcpy(text, key, 24);
    memcpy(text + 24, guid, sizeof(guid) - 1);
    SHA1(text, sizeof(text), digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    return PL_OK;
}

int ws_header_has_token(const char *value, const char *token)
{
    const char *p = value, *end, *e;
    size_t tlen;

    if (value == NULL || token == NULL || (tlen = strlen(token)) == 0) {
        return 0;
    }
    for (;;) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        end = p + strcspn(p, ",");
        e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }
        if ((size_t)(e - p) == tlen && strncasecmp(p, token, tlen) == 0) {
            return 1;
        }
        if (*end == '\0') {
            return 0;
        }
        p = end + 1;
    }
}
