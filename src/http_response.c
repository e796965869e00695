/* http_response.c - an HTTP/1.1 response read from bytes (see http_response.h). */
#include "http_response.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parley.h"

enum {
    RS_STATUS,                  /* the status line */
    RS_HEADERS,
    RS_LENGTH,                  /* Content-Length bytes */
    RS_CLOSE,                   /* until the connection closes */
    RS_CHUNKED,
    RS_END,
    RS_FAILED,
};

void http_response_init(struct http_response *r)
{
    memset(r, 0, sizeof(*r));
    r->state = RS_STATUS;
}

static enum http_response_event http_response_fail(struct http_response *r, enum http_response_error error)
{
    r->state = RS_FAILED;
    r->error = error;
    return HTTP_RESPONSE_ERROR;
}

static int http_response_status_line(struct http_response *r, const char *line)
{
    int minor, code, n = 0;

    if (sscanf(line, "HTTP/1.%d %3d%n", &minor, &code, &n) < 2 || code < 100
        || (line[n] != '\0' && line[n] != ' ')) {
        return PL_ERR;
    }
    r->status = code;
    snprintf(r->reason, sizeof(r->reason), "%s", line + n + (line[n] == ' '));
    r->chunked = 0;
    r->length = -1;
    r->json = 0;
    return PL_OK;
}

/* Whether V names "chunked" anywhere, in any case (strcasestr is GNU). */
static int http_response_names_chunked(const char *v)
{
    for (; *v != '\0'; v++) {
        if (strncasecmp(v, "chunked", 7) == 0) {
            return 1;
        }
    }
    return 0;
}

static void http_response_field(struct http_response *r, char *line)
{
    char *colon = strchr(line, ':'), *v, *end;
    long long n;

    if (colon == NULL) {
        return;
    }
    *colon = '\0';
    for (v = colon + 1; *v == ' ' || *v == '\t'; v++) {
    }
    if (strcasecmp(line, "Transfer-Encoding") == 0) {
        r->chunked = http_response_names_chunked(v);
    } else if (strcasecmp(line, "Content-Length") == 0) {
        errno = 0;
        n = strtoll(v, &end, 10);
        r->length = isdigit((unsigned char)*v) && errno == 0 && (*end == '\0' || isspace((unsigned char)*end))
                  ? n : -1;
    } else if (strcasecmp(line, "Content-Type") == 0) {
        r->json = strncasecmp(v, "application/json", 16) == 0;
    }
}

/* The empty line after the final head: how the body is framed. */
static void http_response_body_begin(struct http_response *r)
{
    if (r->status == 204 || r->status == 304) {
        r->state = RS_END;
    } else if (r->chunked) {
        http_chunked_init(&r->chunks, UINT64_MAX, HTTP_RESPONSE_HEAD_MAX);
        r->state = RS_CHUNKED;
    } else if (r->length >= 0) {
        r->left = (uint64_t)r->length;
        r->state = r->left > 0 ? RS_LENGTH : RS_END;
    } else {
        r->state = RS_CLOSE;
    }
}

/* A complete head line (without its line end): AGAIN, HEAD or ERROR. */
static enum http_response_event http_response_line(struct http_response *r)
{
    if (r->state == RS_STATUS) {
        if (http_response_status_line(r, r->line) != PL_OK) {
            return http_response_fail(r, HTTP_RESPONSE_BAD_STATUS);
        }
        r->state = RS_HEADERS;
    } else if (r->line_len > 0) {
        http_response_field(r, r->line);
    } else if (r->status < 200) {
        r->state = RS_STATUS;           /* 1xx: the real answer follows */
    } else {
        http_response_body_begin(r);
        return HTTP_RESPONSE_HEAD;
    }
    return HTTP_RESPONSE_AGAIN;
}

static enum http_response_event http_response_head(struct http_response *r, const char *buf, size_t len,
                                                   size_t *used)
{
    enum http_response_event ev = HTTP_RESPONSE_AGAIN;
    size_t i;

    for (i = 0; i < len && ev == HTTP_RESPONSE_AGAIN; i++) {
        if (buf[i] != '\n') {
            /* One byte more than the limit may be the CR of a CRLF. */
            if (r->line_len > HTTP_RESPONSE_LINE_MAX) {
                ev = http_response_fail(r, HTTP_RESPONSE_LONG_LINE);
            } else {
                r->line[r->line_len++] = buf[i];
            }
            continue;
        }
        r->head_bytes += r->line_len + 1;
        if (r->line_len > 0 && r->line[r->line_len - 1] == '\r') {
            r->line_len--;
        }
        r->line[r->line_len] = '\0';
        if (r->line_len > HTTP_RESPONSE_LINE_MAX) {
            ev = http_response_fail(r, HTTP_RESPONSE_LONG_LINE);
        } else if (r->head_bytes > HTTP_RESPONSE_HEAD_MAX) {
            ev = http_response_fail(r, HTTP_RESPONSE_LONG_HEAD);
        } else {
            ev = http_response_line(r);
        }
        if (ev != HTTP_RESPONSE_ERROR) {
            r->line_len = 0;
        }
    }
    *used = i;
    return ev;
}

/* Some of a chunked body, decoded in place. */
static enum http_response_event http_response_chunked(struct http_response *r, char *buf, size_t len,
                                                      size_t *used, size_t *datalen)
{
    int rc = http_chunked_decode(&r->chunks, buf, len, used, buf, datalen);

    if (rc == 0) {
        r->state = RS_END;
    } else if (rc != PL_AGAIN) {
        http_response_fail(r, HTTP_RESPONSE_BAD_CHUNK);
    }
    /* Data decoded before the end, or before an error, comes first. */
    return *datalen > 0 ? HTTP_RESPONSE_DATA
         : rc == PL_AGAIN ? HTTP_RESPONSE_AGAIN
         : rc == 0 ? HTTP_RESPONSE_END : HTTP_RESPONSE_ERROR;
}

enum http_response_event http_response_feed(struct http_response *r, char *buf, size_t len, size_t *used,
                                            const char **data, size_t *datalen)
{
    *used = 0;
    *data = buf;
    *datalen = 0;
    switch (r->state) {
    case RS_STATUS:
    case RS_HEADERS:
        return http_response_head(r, buf, len, used);
    case RS_LENGTH:
        if (len == 0) {
            return HTTP_RESPONSE_AGAIN;
        }
        *used = *datalen = len < r->left ? len : (size_t)r->left;
        if ((r->left -= *datalen) == 0) {
            r->state = RS_END;
        }
        return HTTP_RESPONSE_DATA;
    case RS_CLOSE:
        *used = *datalen = len;
        return len > 0 ? HTTP_RESPONSE_DATA : HTTP_RESPONSE_AGAIN;
    case RS_CHUNKED:
        return http_response_chunked(r, buf, len, used, datalen);
    case RS_END:
        return HTTP_RESPONSE_END;
    default:
        return HTTP_RESPONSE_ERROR;
    }
}

enum http_response_event http_response_eof(struct http_response *r)
{
    if (r->state == RS_CLOSE || r->state == RS_END) {
        r->state = RS_END;
        return HTTP_RESPONSE_END;
    }
    if (r->state != RS_FAILED) {
        http_response_fail(r, HTTP_RESPONSE_CUT);
    }
    return HTTP_RESPONSE_ERROR;
}
