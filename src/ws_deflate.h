/* ws_deflate.h - permessage-deflate (RFC 7692) with no per-connection state.
 *
 * parley always takes "no context takeover" both ways: every message is
 * compressed and inflated on its own.  So one compressed payload is valid
 * for every subscriber, and a connection keeps nothing of zlib's: the
 * worker has one deflate stream and one inflate stream, reset per message.
 *
 * Negotiation accepts the first permessage-deflate offer it can honour and
 * answers it with server_no_context_takeover and client_no_context_takeover
 * (RFC 7692 7.1.1.2 lets a server require the latter).  An offer it cannot
 * honour (an unknown or repeated parameter, a malformed value, a server
 * window below 9 bits, which zlib cannot produce) is declined; a header it
 * cannot parse declines every offer in it.  Declining never fails the handshake:
 * the connection simply goes uncompressed. */
#ifndef PARLEY_WS_DEFLATE_H
#define PARLEY_WS_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

#define WS_DEFLATE_RESPONSE_MAX 128

/* Judges OFFERS, one Sec-WebSocket-Extensions header's value.
 * MAX_BITS is the widest window parley compresses with (ws_deflate_window_
 * bits).  On acceptance returns the window the connection's messages may
 * use (9..MAX_BITS) and writes the response header's value to RESPONSE;
 * returns 0 when every offer is declined (RESPONSE untouched). */
int ws_deflate_negotiate(const char *offers, int max_bits, char *response, size_t size);

/* Sets the worker's compression: zlib LEVEL (1-9) and window MAX_BITS. */
void ws_deflate_setup(int level, int max_bits);

/* Compresses LEN bytes at DATA into OUT (room for ws_deflate_bound(LEN)
 * bytes) as a permessage-deflate payload (the 00 00 ff ff tail removed).
 * Returns its length, or 0 when it would not be shorter than LEN (send the
 * message uncompressed then) or zlib failed (logged). */
size_t ws_deflate_compress(const void *data, size_t len, uint8_t *out);
size_t ws_deflate_bound(size_t len);

/* Whether a payload compressed with the worker's window is valid for a
 * connection that accepted WINDOW_BITS: always when the window is the
 * worker's, otherwise when the message fits in the smaller window (no
 * distance can then reach past it). */
int ws_deflate_fits(size_t len, int window_bits);

/* The outcome of ws_deflate_inflate. */
enum ws_inflate_result {
    WS_INFLATE_OK,
    WS_INFLATE_TOO_BIG,         /* the inflated message passes the limit: 1009 */
    WS_INFLATE_INVALID,         /* not a valid deflate stream: 1007 */
    WS_INFLATE_NO_MEMORY,       /* 1011 */
};

/* Inflates the compressed message IN (LEN bytes, without the tail) into a
 * malloc'd buffer *OUT of *OUT_LEN bytes (NUL-terminated), stopping as soon
 * as more than MAX bytes come out: a bomb costs at most MAX + 1 bytes. */
enum ws_inflate_result ws_deflate_inflate(const uint8_t *in, size_t len, size_t max, char **out, size_t *out_len);

#endif
