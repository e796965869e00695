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

/* The longest request line accepted (414 beyond); libevhtp's parser keeps
 * the target in an 8 KiB buffer. */
#define HTTP_MAX_REQUEST_LINE 8000

/* Checks a request head at the start of BUF (LEN bytes buffered) before
 * libevhtp parses it.  Returns 0 when the head is complete and acceptable,
 * -1 when it is not complete yet, or the status to refuse it with: 414 for
 * a request line over HTTP_MAX_REQUEST_LINE, 431 for header lines over
 * MAX_HEADERS bytes, 400 for an invalid or conflicting Content-Length or
 * one next to Transfer-Encoding, 413 for a Content-Length over MAX_BODY. */
int http_head_check(const char *buf, size_t len, size_t max_headers, uint64_t max_body);

#endif
