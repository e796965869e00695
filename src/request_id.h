/* request_id.h - the ids that name requests in responses and log lines.
 *
 * A worker numbers its requests after a random 32-bit prefix drawn at its
 * start: 16 hex digits, unlikely to repeat across workers and instances.
 * An id a proxy sent (X-Request-Id) is kept instead when it is tame, so one
 * id follows a request from HAProxy's log line to parleyd's. */
#ifndef PARLEY_REQUEST_ID_H
#define PARLEY_REQUEST_ID_H

#include <stddef.h>

/* Worker start-up: draws the prefix. */
void request_id_init(void);

/* A fresh id into BUF (17 bytes will do). */
void request_id_new(char *buf, size_t len);

/* Whether a client's own id may stand in for a fresh one: 1..64
 * characters of A-Z a-z 0-9 . _ : - (nothing that could forge a log
 * field). */
int request_id_acceptable(const char *id);

#endif
