/* ws_frame.h - RFC 6455 framing, pure: bytes in, frames and verdicts out.
 *
 * No sockets here, so every rule is unit-tested byte by byte and fuzzed.
 * The parser is fed the bytes a connection has received and not yet
 * consumed (the caller keeps the rest and appends new bytes after it).  It
 * judges a frame as soon as its header is complete - an oversized message
 * is refused before its payload is buffered - and validates text as UTF-8
 * incrementally, across fragments and inside a frame still arriving, so a
 * bad byte fails the connection at once.
 *
 * With permessage-deflate negotiated (ws_deflate.h), RSV1 on a message's
 * first frame marks it compressed: its frames are passed through as they
 * are, for the caller to inflate the whole message and check its text
 * then; its compressed size may pass the limit by a little (deflate's worst
 * case), the inflated size is the caller's to limit.
 *
 * Violations are reported as the close code to send:
 *   1002 protocol error: RSV bits (RSV1 is allowed only as above, so never
 *        on a continuation, a control frame or without the extension),
 *        reserved opcode, unmasked client frame,
 *        control frame > 125 bytes or fragmented, 64-bit length with the top
 *        bit set, continuation without a start, data frame inside a
 *        fragmented message, close payload of 1 byte or with an invalid code
 *   1003 binary data (not part of the chat protocol)
 *   1007 text (or a close reason) that is not valid UTF-8
 *   1009 message longer than the limit */
#ifndef PARLEY_WS_FRAME_H
#define PARLEY_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "utf8.h"
#include <sys/types.h>

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

#define WS_HEADER_MAX 14        /* 2 + 8 (length) + 4 (mask) */
#define WS_CONTROL_MAX 125

struct ws_parser {
    size_t max_message;         /* ws_max_message */
    /* the frame being received */
    int have_header;
    int opcode, fin;
    uint8_t mask[4];
    uint64_t len;
    size_t header_len;
    size_t unmasked;            /* payload bytes unmasked and checked so far */
    int deflate;                /* permessage-deflate negotiated: RSV1 allowed */
    /* the data message being assembled from fragments */
    int in_message;
    int message_opcode;
    int message_compressed;
    uint64_t message_len;
    struct utf8 utf8;
};

/* A complete frame, payload unmasked in place in the caller's buffer. */
struct ws_frame {
    int opcode;
    int fin;                    /* for data frames: the message ends here */
    int compressed;             /* for data frames: of a compressed message */
    uint8_t *payload;
    size_t len;
    int close_code;             /* WS_OP_CLOSE: the code, or 1005 when absent */
    const uint8_t *close_reason;
    size_t close_reason_len;
};

/* DEFLATE: permessage-deflate was negotiated. */
void ws_parser_init(struct ws_parser *p, size_t max_message, int deflate);

/* Looks at BUF (LEN bytes received and not consumed yet).  Returns:
 *   > 0  a complete frame occupying that many bytes (consume them); *OUT set
 *   0    more bytes are needed (nothing to consume; call again with more)
 *   < 0  the negated close code for a violation: fail the connection.
 * Bytes of the current frame are unmasked in BUF as they arrive, so the
 * same bytes must be passed again (at the same start) on the next call. */
ssize_t ws_parser_feed(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_frame *out);

/* Non-zero for a code a peer may send in a close frame (1000-1003,
 * 1007-1011, 3000-4999). */
int ws_close_code_valid(int code);

/* Writes an unmasked server frame header for a payload of LEN bytes into
 * OUT (WS_HEADER_MAX bytes); returns the header's length. */
size_t ws_frame_header(uint8_t *out, int opcode, int fin, uint64_t len);

/* Checks a Sec-WebSocket-Key (base64 of exactly 16 bytes) and computes the
 * Sec-WebSocket-Accept for it into OUT (29 bytes incl. NUL).  Returns 0, or
 * -1 when the key is invalid. */
int ws_accept_key(const char *key, char *out);

/* Non-zero when the comma-separated header VALUE holds TOKEN, compared
 * case-insensitively with surrounding spaces ignored ("keep-alive, Upgrade"
 * holds "upgrade"). */
int ws_header_has_token(const char *value, const char *token);

#endif
