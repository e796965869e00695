/* sse_parse.h - a text/event-stream reader, pure: bytes in, events out.
 *
 * It reads what an upstream server streams (the agent's answer), following
 * the WHATWG "event stream interpretation": lines end with CRLF, LF or CR
 * (a CRLF split between two feeds counts once); a line starting with ':' is
 * a comment; "data:" lines of one event are joined with "\n"; a blank line
 * ends the event, and an event without data is not reported.  One space
 * after the colon is dropped.  "event:" names the event; "id:" and "retry:"
 * are ignored (nothing here reconnects), and a byte-order mark is not
 * stripped (agents send none).  Bytes may arrive split anywhere, down to one
 * at a time; an event not ended by a blank line is never reported.
 *
 * Memory is bounded: a line or an event's data longer than the parser's
 * limit fails the stream (PL_ERR, sticky) instead of growing. */
#ifndef PARLEY_SSE_PARSE_H
#define PARLEY_SSE_PARSE_H

#include <stddef.h>

/* The default limit on one line and on one event's data, in bytes: an
 * agent's delta is a few hundred bytes; this leaves room for long ones. */
#define SSE_PARSE_MAX_DEFAULT (256 * 1024)
#define SSE_PARSE_TYPE_MAX 64

struct sse_parser {
    size_t max;                 /* limit on a line and on an event's data */
    char *line;                 /* the line being received, not terminated */
    size_t line_len, line_cap;
    char *data;                 /* the event's data so far, each line + "\n" */
    size_t data_len, data_cap;
    char type[SSE_PARSE_TYPE_MAX];  /* the event's name, "" until set */
    int after_cr;               /* the last byte ended a line with CR */
    int dispatched;             /* the last call returned an event: reset first */
    int failed;
    unsigned long comments;     /* comment lines seen (keep-alives) */
};

/* One event; the pointers are the parser's and valid until the next call. */
struct sse_event {
    const char *type;           /* "message" unless named by "event:" */
    const char *data;           /* NUL-terminated, lines joined with "\n" */
    size_t len;
};

/* Prepares P with a limit of MAX bytes (0: SSE_PARSE_MAX_DEFAULT). */
void sse_parser_init(struct sse_parser *p, size_t max);

/* Frees what P holds; P may be initialized again. */
void sse_parser_free(struct sse_parser *p);

/* Reads bytes of BUF (LEN of them) until an event is complete, and sets
 * *USED to the number consumed.  Returns PL_OK with *EV set (feed the rest,
 * BUF + *USED, in the next call), PL_AGAIN when all LEN bytes were consumed
 * without completing one, or PL_ERR when a line or an event's data passed
 * the limit or memory ran out (and from then on). */
int sse_parse_feed(struct sse_parser *p, const char *buf, size_t len, size_t *used,
                   struct sse_event *ev);

#endif
