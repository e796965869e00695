/* secret.c - keys from files or the environment, checked, never logged. */
#include "secret.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "parley.h"

/* Reads at most OUTLEN bytes of PATH into OUT; returns the count, or -1. */
static long secret_read_file(const char *path, char *out, size_t outlen)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL) {
        return -1;
    }
    n = fread(out, 1, outlen - 1, f);
    if (fgetc(f) != EOF) {
        n = outlen;             /* too long: the caller refuses it */
    }
    fclose(f);
    return (long)n;
}

int secret_load(const char *file, const char *env, const char *what, char *out, size_t outlen)
{
    const char *source = "none", *value;
    size_t n = 0, start = 0;
    long got;

    out[0] = '\0';
    if (file[0] != '\0') {
        source = "file";
        if ((got = secret_read_file(file, out, outlen)) < 0) {
            log_error(errno, "event=key_unreadable key=%s file=%s", what, file);
            return PL_ERR;
        }
        n = (size_t)got;
    } else if (env[0] != '\0' && (value = getenv(env)) != NULL) {
        source = "env";
        n = strlen(value);
        if (n < outlen) {
            memcpy(out, value, n);
        }
    }
    if (n >= outlen) {
        log_error(0, "event=key_invalid key=%s source=%s reason=\"longer than %zu bytes\"", what, source, outlen - 1);
        out[0] = '\0';
        return PL_ERR;
    }
    while (n > 0 && isspace((unsigned char)out[n - 1])) {
        n--;
    }
    while (start < n && isspace((unsigned char)out[start])) {
        start++;
    }
    memmove(out, out + start, n - start);
    out[n - start] = '\0';
    for (const char *p = out; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            log_error(0, "event=key_invalid key=%s source=%s reason=\"spaces or control characters inside\"",
                      what, source);
            out[0] = '\0';
            return PL_ERR;
        }
    }
    log_info("event=key_loaded key=%s source=%s set=%s", what, source, out[0] != '\0' ? "yes" : "no");
    return PL_OK;
}
