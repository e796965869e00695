/* http_gate.h - parley's own HTTP/1.1 framing, in front of libevhtp.
 *
 * libevhtp only parses what the gate hands it.  Every byte read from a
 * plain HTTP connection is held here; while libevhtp is idle the gate
 * checks the next request head whole (http_head.h), collects its body
 * (Content-Length bytes, or a chunked body decoded by http_chunked.h) and
 * hands libevhtp exactly that one request, with a head that frames it by
 * Content-Length alone: libevhtp's own chunk parser never runs, and both
 * agree where the next request starts.  One request per hand-over also
 * keeps libevhtp off its "pipelined data left" path.  A refused request
 * (malformed, too large, or slower than http_header_timeout as a whole)
 * is answered with the JSON error of its status and the connection closed
 * with a lingering close.  Used by http.c alone; runs in workers. */
#ifndef PARLEY_HTTP_GATE_H
#define PARLEY_HTTP_GATE_H

#include <evhtp.h>

struct worker_env;

/* Worker start-up: the limits, and the timer that enforces each request's
 * deadline. */
int http_gate_init(const struct worker_env *w);

/* Every connection HTP accepts goes through the gate from now on. */
void http_gate_attach(evhtp_t *htp);

/* libevhtp is done with REQ: the next request held on its connection is
 * handed over from the loop (not from inside libevhtp's bookkeeping). */
void http_gate_request_done(evhtp_request_t *req);

/* CONN leaves HTTP for a long-lived stream: the bytes held after its last
 * request (a WebSocket frame) go back to its input, and the gate forgets it. */
void http_gate_release(evhtp_connection_t *conn);

/* The worker is stopping: every keep-alive connection that has served a
 * request and is idle closes now, so a proxy that pooled it learns at once. */
void http_gate_close_idle(void);

#endif
