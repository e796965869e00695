/* log.h - levelled, one-line key=value logging to stderr or a file.
 *
 * Every line reads "ts=... level=... proc=... event=... key=value...", so it
 * is easy to grep and journald-friendly.  Each line goes out in one write(2)
 * so that the master and workers can share one O_APPEND file. */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Returns the level for "debug", "info", "warn" or "error", or -1. */
int log_level_parse(const char *name);

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

/* Names this process in every line, e.g. "master" or "worker.1". */
void log_set_proc(const char *name);

/* Sends lines to PATH (appending), or to stderr when PATH is NULL or empty.
 * Returns PL_OK, or PL_ERR with the reason in ERR. */
int log_open(const char *path, char *err, size_t errlen);

/* Reopens the current file (after logrotate moved it); SIGUSR1. */
int log_reopen(void);

/* Copies S into BUF (of LEN bytes) fit to stand as a log value: quotes and
 * control bytes become '?', and so do spaces unless QUOTED (the caller
 * writes key="value").  Returns BUF. */
const char *log_value(const char *s, int quoted, char *buf, size_t len);

/* Writes one line.  FMT gives "event=name key=value ..."; a non-zero ERRNUM
 * appends errno and its text. */
void log_write(enum log_level level, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A condition that can repeat many times a second (accept failing, a
 * connection cap met) is logged at most once a second, with how often it
 * happened: call log_every_due() each time; it returns non-zero when a line
 * is due and sets *COUNT to the occurrences since the last line, this one
 * included. */
struct log_every {
    int64_t last_ms;            /* when the last line went out, 0: never */
    unsigned count;             /* occurrences since */
};

int log_every_due(struct log_every *e, unsigned *count);

#define log_debug(...) do { if (log_enabled(LOG_LEVEL_DEBUG)) \
    log_write(LOG_LEVEL_DEBUG, 0, __VA_ARGS__); } while (0)
#define log_info(...)  log_write(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LEVEL_WARN, 0, __VA_ARGS__)
#define log_error(errnum, ...) log_write(LOG_LEVEL_ERROR, (errnum), __VA_ARGS__)

#endif
