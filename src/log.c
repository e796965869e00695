/* log.c - levelled key=value logging, reopened on SIGUSR1. */
#include "log.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "parley.h"

static struct {
    enum log_level min;
    int fd;
    char path[4096];
    char proc[32];
} logger = { .min = LOG_LEVEL_INFO, .fd = STDERR_FILENO, .proc = "parleyd" };

static const char *const log_names[] = { "debug", "info", "warn", "error" };

int log_level_parse(const char *name)
{
    for (size_t i = 0; i < PL_ARRAY_LEN(log_names); i++) {
        if (strcmp(name, log_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

void log_set_level(enum log_level level)
{
    logger.min = level;
}

int log_enabled(enum log_level level)
{
    return level >= logger.min;
}

void log_set_proc(const char *name)
{
    snprintf(logger.proc, sizeof(logger.proc), "%s", name);
}

static int log_open_fd(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
    }
    return fd;
}

int log_open(const char *path, char *err, size_t errlen)
{
    int fd = STDERR_FILENO;

    if (path != NULL && path[0] != '\0') {
        fd = log_open_fd(path, err, errlen);
        if (fd < 0) {
            return PL_ERR;
        }
    }
    if (logger.fd != STDERR_FILENO) {
        close(logger.fd);
    }
    logger.fd = fd;
    snprintf(logger.path, sizeof(logger.path), "%s", fd == STDERR_FILENO ? "" : path);
    return PL_OK;
}

int log_reopen(void)
{
    char err[256];
    int fd;

    if (logger.path[0] == '\0') {
        return PL_OK;
    }
    fd = log_open_fd(logger.path, err, sizeof(err));
    if (fd < 0) {
        log_error(0, "event=log_reopen_failed reason=\"%s\"", err);
        return PL_ERR;
    }
    dup2(fd, logger.fd);
    close(fd);
    return PL_OK;
}

const char *log_value(const char *s, int quoted, char *buf, size_t len)
{
    size_t o = 0;

    for (; *s && o + 1 < len; s++) {
        unsigned char c = (unsigned char)*s;
        buf[o++] = (c < ' ' || (c == ' ' && !quoted) || c == '"' || c == 0x7f) ? '?' : (char)c;
    }
    buf[o] = '\0';
    return buf;
}

void log_write(enum log_level level, int errnum, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int w;
    va_list ap;

    if (level < logger.min) {
        return;
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
    w = snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s proc=%s pid=%ld ",
                 (long)(tv.tv_usec / 1000), log_names[level], logger.proc, (long)getpid());
    n += (size_t)w;

    va_start(ap, fmt);
    w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    n = (w < 0) ? n : n + (size_t)w;
    if (n > sizeof(line) - 64) {
        n = sizeof(line) - 64;       /* truncated: keep room for errno and \n */
    }
    if (errnum != 0) {
        w = snprintf(line + n, sizeof(line) - n, " errno=%d err=\"%s\"", errnum, strerror(errnum));
        n += (size_t)w;
    }
    if (n >= sizeof(line) - 1) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';

    /* One write per line keeps lines from different processes whole. */
    while (write(logger.fd, line, n) < 0 && errno == EINTR) {
    }
}

int log_every_due(struct log_every *e, unsigned *count)
{
    int64_t now = clock_coarse_ms();

    e->count++;
    if (e->last_ms != 0 && now - e->last_ms < 1000) {
        return 0;
    }
    e->last_ms = now;
    *count = e->count;
    e->count = 0;
    return 1;
}
