/* http_head.h - checks on a request head before libevhtp parses it.
 *
 * The worker hands libevhtp a request head only once all of it has
 * arrived (see http.c), and checks it on the way: the framing a request
 * announces (Content-Length, Transfer-Encoding) must be unambiguous, and
 * the request line and the header block must fit the limits.  Pure code:
 * no I/O, fuzzed (tests/fuzz/fuzz_http_head.c). */
#ifndef PARLEY_HTTP_HEAD_H
#define PARLEY_HTTP_HEAD_H

#include <stddef.h>
#include <stdint.h>

/* A request line this long or longer gets 414: libevhtp's parser keeps the
 * target in an 8 KiB buffer. */
#define HTTP_MAX_REQUEST_LINE 8000

/* Where a scan of one request head stands; zero it for each new head. */
struct http_head_scan {
    size_t scanned;             /* bytes looked at */
    size_t line;                /* where the line being read starts */
    size_t headers;             /* where the header lines start; 0 until the request line is in */
    uint64_t length;            /* Content-Length, when have_length */
    int have_length;
    int chunked;                /* Transfer-Encoding seen */
};

/* Scans the request head at the start of BUF, of which LEN bytes have
 * arrived (BUF may grow between calls, never shrink; each byte is looked at
 * once).  Returns 0 when the head is complete and acceptable, -1 when it is
 * not complete yet, or the status to refuse it with: 414 for a request line
 * of HTTP_MAX_REQUEST_LINE bytes or more, 431 for header lines over
 * MAX_HEADERS bytes, 400 for an invalid or conflicting Content-Length or
 * one next to Transfer-Encoding, 413 for a Content-Length over MAX_BODY.
 * The answer does not depend on how the bytes were split between calls. */
int http_head_scan(struct http_head_scan *s, const char *buf, size_t len, size_t max_headers,
                   uint64_t max_body);

#endif
