/* sse_parse.c - a text/event-stream reader, pure: bytes in, events out. */
#include "sse_parse.h"

#include <stdlib.h>
#include <string.h>

#include "parley.h"

#define SSE_PARSE_CAP_MIN 256

void sse_parser_init(struct sse_parser *p, size_t max)
{
    memset(p, 0, sizeof(*p));
    p->max = max > 0 ? max : SSE_PARSE_MAX_DEFAULT;
}

void sse_parser_free(struct sse_parser *p)
{
    free(p->line);
    free(p->data);
    p->line = p->data = NULL;
    p->line_cap = p->data_cap = 0;
}

/* Makes room for NEED bytes in *BUF; the callers have checked the limit. */
static int sse_parse_reserve(char **buf, size_t *cap, size_t need)
{
    size_t n = *cap > 0 ? *cap : SSE_PARSE_CAP_MIN;
    char *b;

    if (need <= *cap) {
        return PL_OK;
    }
    while (n < need) {
        n *= 2;
    }
    if ((b = realloc(*buf, n)) == NULL) {
        return PL_ERR;
    }
    *buf = b;
    *cap = n;
    return PL_OK;
}

/* Interprets the complete line in P->line.  Returns PL_OK when it was the
 * blank line that ends an event with data, PL_AGAIN otherwise, PL_ERR when
 * the event's data would pass the limit. */
static int sse_parse_line(struct sse_parser *p)
{
    const char *line = p->line, *colon, *value;
    size_t len = p->line_len, name_len, value_len;

    p->line_len = 0;
    if (len == 0) {
        if (p->data_len == 0) {
            p->type[0] = '\0';
            return PL_AGAIN;
        }
        p->data[--p->data_len] = '\0';  /* the last line's "\n" */
        return PL_OK;
    }
    if (line[0] == ':') {
        p->comments++;
        return PL_AGAIN;
    }
    colon = memchr(line, ':', len);
    name_len = colon != NULL ? (size_t)(colon - line) : len;
    value = colon != NULL ? colon + 1 : line + len;
    value_len = len - (size_t)(value - line);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        if (value_len + 1 > p->max - p->data_len
            || sse_parse_reserve(&p->data, &p->data_cap, p->data_len + value_len + 1) != PL_OK) {
            return PL_ERR;
        }
        if (value_len > 0) {
            memcpy(p->data + p->data_len, value, value_len);
        }
        p->data_len += value_len;
        p->data[p->data_len++] = '\n';
    } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        /* Names are cut at the buffer's size; agents use none or short ones. */
        size_t n = value_len < sizeof(p->type) - 1 ? value_len : sizeof(p->type) - 1;
        memcpy(p->type, value, n);
        p->type[n] = '\0';
    }
    return PL_AGAIN;
}

int sse_parse_feed(struct sse_parser *p, const char *buf, size_t len, size_t *used,
                   struct sse_event *ev)
{
    size_t i = 0;

    *used = 0;
    if (p->failed) {
        return PL_ERR;
    }
    if (p->dispatched) {
        p->dispatched = 0;
        p->data_len = 0;
        p->type[0] = '\0';
    }
    while (i < len) {
        size_t end = i;
        int rc;

        if (p->after_cr) {
            p->after_cr = 0;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        while (end < len && buf[end] != '\n' && buf[end] != '\r') {
            end++;
        }
        if (end > i) {
            if (end - i > p->max - p->line_len
                || sse_parse_reserve(&p->line, &p->line_cap, p->line_len + (end - i)) != PL_OK) {
                p->failed = 1;
                *used = end;
                return PL_ERR;
            }
            memcpy(p->line + p->line_len, buf + i, end - i);
            p->line_len += end - i;
        }
        if (end == len) {
            i = end;
            break;
        }
        p->after_cr = buf[end] == '\r';
        i = end + 1;
        rc = sse_parse_line(p);
        if (rc == PL_ERR) {
            p->failed = 1;
            *used = i;
            return PL_ERR;
        }
        if (rc == PL_OK) {
            p->dispatched = 1;
            ev->type = p->type[0] != '\0' ? p->type : "message";
            ev->data = p->data;
            ev->len = p->data_len;
            *used = i;
            return PL_OK;
        }
    }
    *used = i;
    return PL_AGAIN;
}
