/* http_response.h - an HTTP/1.1 response read from bytes, pure: bytes in,
 * events out.
 *
 * What the agent's upstream answers (agent_http.c): a status line, header
 * lines, an empty line, then a body framed by "Transfer-Encoding: chunked",
 * by Content-Length, or by the end of the connection.  Interim (1xx)
 * responses are skipped; a 204 or 304 has no body.
 *
 * The head is read leniently, as HTTP clients do: a line ends with CRLF or
 * a bare LF; the status line is "HTTP/1.x NNN[ reason]"; a line without a
 * colon is ignored, and only three fields matter, the last of each winning:
 * Transfer-Encoding (chunked when it names "chunked"), Content-Length (read
 * when it is digits) and Content-Type (whether it is application/json).
 * A line over HTTP_RESPONSE_LINE_MAX bytes, or heads over
 * HTTP_RESPONSE_HEAD_MAX bytes together, fail the response.
 *
 * A chunked body goes through the same strict decoder as request bodies
 * (http_chunked.h), one decoder rather than two: chunk lines must end in
 * CRLF, extensions must follow the grammar, trailers are checked and
 * dropped (up to HTTP_RESPONSE_HEAD_MAX bytes).
 *
 * Bytes may arrive split anywhere, down to one at a time: the events, and
 * the body's bytes taken together, do not depend on how.  Nothing here
 * allocates.
 *
 * Pure code: no I/O, fuzzed (tests/fuzz/fuzz_http_response.c). */
#ifndef PARLEY_HTTP_RESPONSE_H
#define PARLEY_HTTP_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "http_chunked.h"

#define HTTP_RESPONSE_LINE_MAX 8192         /* a status or header line, without its LF */
#define HTTP_RESPONSE_HEAD_MAX (64 * 1024)  /* all head lines together, 1xx heads too */

enum http_response_event {
    HTTP_RESPONSE_AGAIN,        /* every byte was taken: feed more */
    HTTP_RESPONSE_HEAD,         /* the final head is in: status, reason, framing, json */
    HTTP_RESPONSE_DATA,         /* the next bytes of the body */
    HTTP_RESPONSE_END,          /* the body is complete; what follows is not looked at */
    HTTP_RESPONSE_ERROR,        /* the response is broken: see error */
};

enum http_response_error {
    HTTP_RESPONSE_BAD_STATUS,   /* not "HTTP/1.x NNN": line holds it */
    HTTP_RESPONSE_LONG_LINE,    /* a head line over HTTP_RESPONSE_LINE_MAX */
    HTTP_RESPONSE_LONG_HEAD,    /* heads over HTTP_RESPONSE_HEAD_MAX */
    HTTP_RESPONSE_BAD_CHUNK,    /* refused by the chunked decoder: chunked.reason */
    HTTP_RESPONSE_CUT,          /* the connection closed before the end */
};

struct http_response {
    int state;
    /* The head, valid from HTTP_RESPONSE_HEAD on: */
    int status;                 /* 200..999 */
    char reason[64];            /* the reason phrase, cut to fit */
    int chunked;                /* Transfer-Encoding names chunked */
    int64_t length;             /* Content-Length, -1 when absent or not digits */
    int json;                   /* Content-Type: application/json */
    /* While reading: */
    enum http_response_error error;
    size_t head_bytes;
    uint64_t left;              /* of a Content-Length body */
    struct http_chunked chunks;
    size_t line_len;
    char line[HTTP_RESPONSE_LINE_MAX + 2];  /* the line being read (and a CR); the status line on BAD_STATUS */
};

void http_response_init(struct http_response *r);

/* Reads the LEN bytes at BUF, the next bytes of the response, up to the
 * next event, and sets *USED to the number taken.  Returns AGAIN when all
 * were taken without one; HEAD; DATA with the body bytes at *DATA, *DATALEN
 * of them (they point into BUF, which a chunked body is decoded in place
 * in: BUF is changed); END; or ERROR (and then again on every call).
 * Feed the rest, BUF + *USED, in the next call: a response with an empty
 * body reports HEAD, then END even when no byte is left. */
enum http_response_event http_response_feed(struct http_response *r, char *buf, size_t len, size_t *used,
                                             const char **data, size_t *datalen);

/* The connection closed after the bytes fed so far: END when that ends
 * the body (one without a length, or one already complete), else ERROR
 * with HTTP_RESPONSE_CUT (or the error already found). */
enum http_response_event http_response_eof(struct http_response *r);

#endif
