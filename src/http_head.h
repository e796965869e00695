/* http_head.h - request heads checked strictly before libevhtp parses them.
 *
 * The worker hands libevhtp a request only once all of it has arrived (see
 * http.c), and this module judges the head on the way, by RFC 9112:
 *
 *   request-line = method SP request-target SP HTTP-version CRLF
 *     method: 1*( "A"-"Z" / "_" ) (what libevhtp can parse); target:
 *     origin-form ("/" ...) or absolute-form (ALPHA+ "://" ...), VCHARs only;
 *     version "HTTP/" DIGIT "." DIGIT: 1.0 and 1.1 are served, another -> 505.
 *   field-line = token ":" OWS *( HTAB / SP / VCHAR / obs-text ) OWS CRLF
 *     no whitespace before the colon, no obs-fold, no other control byte.
 *   Every line ends in CRLF: a bare LF (or CR) is refused.  Empty lines
 *   before the request line are skipped.
 *   Host: exactly one in HTTP/1.1, at most one in HTTP/1.0, of host[:port]
 *   characters.  Content-Length: 1*DIGIT, repeated only verbatim.
 *   Transfer-Encoding: only "chunked" as the one coding is served; chunked
 *   not final (or absent from a Transfer-Encoding field), chunked twice, an
 *   empty list element, Transfer-Encoding with Content-Length or in an
 *   HTTP/1.0 request -> 400; another coding before a final chunked -> 501.
 *
 * Pure code: no I/O, fuzzed (tests/fuzz/fuzz_http_head.c). */
#ifndef PARLEY_HTTP_HEAD_H
#define PARLEY_HTTP_HEAD_H

#include <stddef.h>
#include <stdint.h>

/* A request line longer than this (with its CRLF and any empty lines before
 * it) gets 414: libevhtp's parser keeps the target in an 8 KiB buffer. */
#define HTTP_MAX_REQUEST_LINE 8000

/* Room http_head_rewrite needs beyond the head it rewrites. */
#define HTTP_HEAD_REWRITE_EXTRA 48

/* One field section (the headers, or a chunked body's trailers) checked a
 * byte at a time.  Zero it before the first line. */
struct http_field {
    int state;
    size_t len;                 /* bytes of the line so far */
    size_t name_len;            /* once the colon is in */
    unsigned match;             /* the framing field names the name may still be */
    int framing;                /* once the colon is in: Content-Length or Transfer-Encoding */
};

enum http_field_result {
    HTTP_FIELD_AGAIN,           /* inside a line */
    HTTP_FIELD_LINE,            /* a field line ended (its LF was the byte fed) */
    HTTP_FIELD_END,             /* the empty line that ends the section */
    HTTP_FIELD_BAD,             /* the byte breaks the field-line grammar */
};

/* Feeds one byte C of a field section. */
enum http_field_result http_field_feed(struct http_field *f, unsigned char c);

/* Where a scan of one request head stands; zero it for each new head. */
struct http_head_scan {
    size_t scanned;             /* bytes looked at */
    size_t start;               /* where the request line starts (after empty lines) */
    size_t line;                /* where the line being read starts */
    size_t headers;             /* where the header lines start; 0 until the request line is in */
    size_t mark;                /* where the request-line part being read starts */
    int state;                  /* which request-line part is being read */
    int version;                /* 10 or 11, once the request line is in */
    struct http_field field;
    int hosts;                  /* Host fields */
    int framing_fields;         /* Content-Length and Transfer-Encoding fields */
    int have_length;
    unsigned length_digits;
    uint64_t length;            /* Content-Length, when have_length */
    int transfer_fields;        /* Transfer-Encoding fields */
    int codings;                /* transfer codings listed in them */
    int chunked_codings;        /* of which "chunked" */
    int chunked_last;           /* the last coding listed was "chunked" */
    /* The verdict on a complete head that was accepted: */
    int chunked;                /* the body is chunked */
    int expect_continue;        /* "Expect: 100-continue" in an HTTP/1.1 request */
    /* Why the head was refused: plain text for the error message (no quotes). */
    const char *reason;
};

/* Scans the request head at the start of BUF, of which LEN bytes have
 * arrived (BUF may grow between calls, never shrink; each byte is looked at
 * once).  Returns 0 when the head is complete and acceptable (S->scanned is
 * then its length, and S->start where its request line starts), PL_AGAIN
 * when it is not complete yet, or the status to refuse it with (and
 * S->reason): 414 for a request line over HTTP_MAX_REQUEST_LINE bytes, 431
 * for header lines over MAX_HEADERS bytes, 505 for an HTTP version other
 * than 1.0 and 1.1, 501 for a transfer coding other than chunked, 413 for a
 * Content-Length over MAX_BODY, 400 for anything else above.  The answer
 * does not depend on how the bytes were split between calls. */
int http_head_scan(struct http_head_scan *s, const char *buf, size_t len, size_t max_headers,
                   uint64_t max_body);

/* Writes to OUT (room for LEN + HTTP_HEAD_REWRITE_EXTRA bytes) the head of
 * LEN bytes at HEAD (request line to the empty line, as accepted by
 * http_head_scan) without its Content-Length and Transfer-Encoding fields
 * and with "Content-Length: BODY" instead, so that libevhtp frames the body
 * exactly as the scan did.  Returns the length written. */
size_t http_head_rewrite(const char *head, size_t len, uint64_t body, char *out);

/* Whether C may appear in a token (RFC 9110 5.6.2). */
int http_tchar(unsigned char c);

#endif
