/* http_head.c - strict request head checks ahead of the HTTP parser. */
#include "http_head.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "parley.h"

/* The parts of a request line, in order, then its header lines. */
enum {
    RL_START,                   /* before the method (empty lines are skipped here) */
    RL_EMPTY_LF,                /* the LF of an empty line */
    RL_METHOD,
    RL_TARGET_FIRST,
    RL_SCHEME,                  /* absolute-form: the scheme's letters */
    RL_SCHEME_SLASHES,          /* the "//" after its colon */
    RL_TARGET,
    RL_VERSION,                 /* "HTTP/" DIGIT "." DIGIT */
    RL_LF,
    RL_FIELDS,
};

enum { F_LINE_START, F_NAME, F_VALUE, F_LF, F_END_LF };

int http_tchar(unsigned char c)
{
    return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* HTAB, SP, VCHAR and obs-text: what a field value may hold. */
static int http_field_vchar(unsigned char c)
{
    return c == '\t' || (c >= ' ' && c != 0x7f);
}

/* The names of the fields that frame a message, matched as a name comes in. */
static const char *const http_framing_names[] = { "content-length", "transfer-encoding" };

/* The name byte C at position F->len - 1: which framing names still fit. */
static void http_field_match(struct http_field *f, unsigned char c)
{
    for (size_t i = 0; i < PL_ARRAY_LEN(http_framing_names); i++) {
        const char *name = http_framing_names[i];

        if (f->len > strlen(name) || tolower(c) != name[f->len - 1]) {
            f->match &= ~(1u << i);
        }
    }
}

enum http_field_result http_field_feed(struct http_field *f, unsigned char c)
{
    if (f->state == F_LINE_START) {
        f->len = 0;
        f->match = (1u << PL_ARRAY_LEN(http_framing_names)) - 1;
        f->framing = 0;
    }
    f->len++;
    switch (f->state) {
    case F_LINE_START:
        if (c == '\r') {
            f->state = F_END_LF;
            return HTTP_FIELD_AGAIN;
        }
        f->state = F_NAME;
        http_field_match(f, c);
        return http_tchar(c) ? HTTP_FIELD_AGAIN : HTTP_FIELD_BAD;  /* obs-fold starts with a blank */
    case F_NAME:
        if (c == ':') {
            f->name_len = f->len - 1;
            f->state = F_VALUE;
            for (size_t i = 0; i < PL_ARRAY_LEN(http_framing_names); i++) {
                f->framing |= (f->match >> i & 1) && f->name_len == strlen(http_framing_names[i]);
            }
            return HTTP_FIELD_AGAIN;
        }
        http_field_match(f, c);
        return http_tchar(c) ? HTTP_FIELD_AGAIN : HTTP_FIELD_BAD;  /* also a blank before the colon */
    case F_VALUE:
        if (c == '\r') {
            f->state = F_LF;
            return HTTP_FIELD_AGAIN;
        }
        return http_field_vchar(c) ? HTTP_FIELD_AGAIN : HTTP_FIELD_BAD;
    case F_LF:
        f->state = F_LINE_START;
        return c == '\n' ? HTTP_FIELD_LINE : HTTP_FIELD_BAD;
    default:
        return c == '\n' ? HTTP_FIELD_END : HTTP_FIELD_BAD;
    }
}

static int http_head_refuse(struct http_head_scan *s, int status, const char *reason)
{
    s->reason = reason;
    return status;
}

static int http_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* Skips a quoted-string starting at V[I] (a '"'); returns where it ends,
 * or 0 when it is not one. */
static size_t http_head_quoted(const char *v, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '"') {
            return i + 1;
        }
        if (c == '\\' && ++i == len) {
            break;
        }
    }
    return 0;       /* field values hold no CTL, so only the end can be wrong */
}

/* Skips the parameters after a transfer coding, *( OWS ";" OWS token "="
 * ( token / quoted-string ) ), from V[I]; returns where they end, or 0 when
 * one is malformed. */
static size_t http_head_params(const char *v, size_t len, size_t i)
{
    for (;;) {
        size_t j = i, name;

        while (j < len && http_ows((unsigned char)v[j])) {
            j++;
        }
        if (j == len || v[j] != ';') {
            return i;
        }
        for (j++; j < len && http_ows((unsigned char)v[j]); j++) {
        }
        for (name = j; j < len && http_tchar((unsigned char)v[j]); j++) {
        }
        while (j < len && http_ows((unsigned char)v[j])) {
            j++;
        }
        if (j == name || j == len || v[j] != '=') {
            return 0;
        }
        for (j++; j < len && http_ows((unsigned char)v[j]); j++) {
        }
        if (j < len && v[j] == '"') {
            i = http_head_quoted(v, len, j);
        } else {
            for (i = j; i < len && http_tchar((unsigned char)v[i]); i++) {
            }
            i = i > j ? i : 0;
        }
        if (i == 0) {
            return 0;
        }
    }
}

/* Takes in the transfer codings one Transfer-Encoding field lists. */
static int http_head_codings(struct http_head_scan *s, const char *v, size_t len)
{
    size_t i = 0;

    s->transfer_fields++;
    for (;;) {
        size_t name = i, end;
        int chunked;

        while (i < len && http_tchar((unsigned char)v[i])) {
            i++;
        }
        if (i == name || (end = http_head_params(v, len, i)) == 0) {
            return http_head_refuse(s, 400, "malformed Transfer-Encoding (empty or invalid transfer coding)");
        }
        chunked = end == name + 7 && strncasecmp(v + name, "chunked", 7) == 0;
        s->codings++;
        s->chunked_codings += chunked;
        s->chunked_last = chunked;
        for (i = end; i < len && http_ows((unsigned char)v[i]); i++) {
        }
        if (i == len) {
            return 0;
        }
        if (v[i] != ',') {
            return http_head_refuse(s, 400, "malformed Transfer-Encoding");
        }
        for (i++; i < len && http_ows((unsigned char)v[i]); i++) {
        }
    }
}

static int http_head_length(struct http_head_scan *s, const char *v, size_t len)
{
    uint64_t n = 0;
    size_t i;

    for (i = 0; i < len && isdigit((unsigned char)v[i]); i++) {
        n = i < 19 ? n * 10 + (uint64_t)(v[i] - '0') : UINT64_MAX;
    }
    if (len == 0 || i != len) {
        return http_head_refuse(s, 400, "invalid Content-Length");
    }
    /* Repeated only verbatim (RFC 9110 8.6): all digits, so the same value
     * with as many digits. */
    if (s->have_length && (n != s->length || len != s->length_digits)) {
        return http_head_refuse(s, 400, "conflicting Content-Length fields");
    }
    s->have_length = 1;
    s->length = n;
    s->length_digits = (unsigned)len;
    return 0;
}

/* RFC 9112 3.2: a Host value is uri-host [ ":" port ]. */
static int http_head_host(struct http_head_scan *s, const char *v, size_t len)
{
    if (++s->hosts > 1) {
        return http_head_refuse(s, 400, "more than one Host field");
    }
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)v[i]) && strchr("-._~%!$&'()*+,;=:[]", v[i]) == NULL) {
            return http_head_refuse(s, 400, "invalid Host");
        }
    }
    return 0;
}

static int http_head_is(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && strncasecmp(name, want, len) == 0;
}

/* Takes in one complete field line of LEN bytes at LINE (with its CRLF)
 * whose name is NAME_LEN bytes long. */
static int http_head_field(struct http_head_scan *s, const char *line, size_t len, size_t name_len)
{
    const char *v = line + name_len + 1;
    size_t vlen = len - name_len - 3;       /* without the colon and the CRLF */

    while (vlen > 0 && http_ows((unsigned char)v[0])) {
        v++;
        vlen--;
    }
    while (vlen > 0 && http_ows((unsigned char)v[vlen - 1])) {
        vlen--;
    }
    if (http_head_is(line, name_len, "Content-Length")) {
        s->framing_fields++;
        return http_head_length(s, v, vlen);
    }
    if (http_head_is(line, name_len, "Transfer-Encoding")) {
        s->framing_fields++;
        return http_head_codings(s, v, vlen);
    }
    if (http_head_is(line, name_len, "Host")) {
        return http_head_host(s, v, vlen);
    }
    if (http_head_is(line, name_len, "Expect") && http_head_is(v, vlen, "100-continue")) {
        s->expect_continue = s->version == 11;
    }
    return 0;
}

/* The whole head is in: how is the body framed, and is that acceptable? */
static int http_head_end(struct http_head_scan *s, uint64_t max_body)
{
    if (s->transfer_fields > 0) {
        if (s->have_length) {
            return http_head_refuse(s, 400, "Content-Length together with Transfer-Encoding");
        }
        if (s->version == 10) {
            return http_head_refuse(s, 400, "Transfer-Encoding in an HTTP/1.0 request");
        }
        if (!s->chunked_last) {
            return http_head_refuse(s, 400, "chunked must be the final transfer coding");
        }
        if (s->chunked_codings > 1) {
            return http_head_refuse(s, 400, "chunked applied more than once");
        }
        if (s->codings > 1) {
            return http_head_refuse(s, 501, "only the chunked transfer coding is supported");
        }
        s->chunked = 1;
    }
    if (s->hosts == 0 && s->version == 11) {
        return http_head_refuse(s, 400, "an HTTP/1.1 request needs a Host field");
    }
    if (s->have_length && s->length > max_body) {
        return http_head_refuse(s, 413, "the request body is larger than max_body");
    }
    return 0;
}

static int http_head_method_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || c == '_';
}

/* The byte at S->scanned of a request line; returns 0 or a status. */
static int http_head_request_byte(struct http_head_scan *s, const char *buf, unsigned char c)
{
    size_t at = s->scanned - s->mark;
    int ok = 0;

    switch (s->state) {
    case RL_START:
        s->start = s->scanned;
        s->state = c == '\r' ? RL_EMPTY_LF : RL_METHOD;
        ok = c == '\r' || http_head_method_char(c);
        break;
    case RL_EMPTY_LF:
        s->state = RL_START;
        ok = c == '\n';
        break;
    case RL_METHOD:
        s->state = c == ' ' ? RL_TARGET_FIRST : RL_METHOD;
        ok = c == ' ' || http_head_method_char(c);
        break;
    case RL_TARGET_FIRST:
        s->mark = s->scanned;
        s->state = c == '/' ? RL_TARGET : RL_SCHEME;
        ok = c == '/' || isalpha(c);
        break;
    case RL_SCHEME:
        s->mark = s->scanned;
        s->state = c == ':' ? RL_SCHEME_SLASHES : RL_SCHEME;
        ok = c == ':' || isalpha(c);
        break;
    case RL_SCHEME_SLASHES:
        s->state = at == 2 ? RL_TARGET : RL_SCHEME_SLASHES;
        ok = c == '/';
        break;
    case RL_TARGET:
        s->mark = s->scanned + 1;
        s->state = c == ' ' ? RL_VERSION : RL_TARGET;
        ok = c >= ' ' && c < 0x7f;      /* VCHARs up to the SP */
        break;
    case RL_VERSION:
        s->state = at == 8 ? RL_LF : RL_VERSION;
        ok = at < 5 ? c == (unsigned char)"HTTP/"[at]
           : at == 6 ? c == '.'
           : at == 8 ? c == '\r'
           : isdigit(c) != 0;
        break;
    default:    /* RL_LF */
        if (c != '\n') {
            break;          /* a CR without LF */
        }
        s->state = RL_FIELDS;
        s->headers = s->scanned + 1;
        s->version = (buf[s->mark + 5] - '0') * 10 + (buf[s->mark + 7] - '0');
        if (s->version != 10 && s->version != 11) {
            return http_head_refuse(s, 505, "only HTTP/1.0 and HTTP/1.1 are served");
        }
        return 0;
    }
    return ok ? 0 : http_head_refuse(s, 400, "malformed request line");
}

int http_head_scan(struct http_head_scan *s, const char *buf, size_t len, size_t max_headers, uint64_t max_body)
{
    int status;

    for (; s->scanned < len; s->scanned++) {
        unsigned char c = (unsigned char)buf[s->scanned];

        if (s->state != RL_FIELDS) {
            if (s->scanned >= HTTP_MAX_REQUEST_LINE) {
                return http_head_refuse(s, 414, "the request line is too long");
            }
            if ((status = http_head_request_byte(s, buf, c)) != 0) {
                return status;
            }
            continue;
        }
        if (s->scanned - s->headers >= max_headers) {
            return http_head_refuse(s, 431, "the request headers are too large");
        }
        switch (http_field_feed(&s->field, c)) {
        case HTTP_FIELD_AGAIN:
            break;
        case HTTP_FIELD_LINE:
            status = http_head_field(s, buf + s->scanned + 1 - s->field.len, s->field.len, s->field.name_len);
            if (status != 0) {
                return status;
            }
            break;
        case HTTP_FIELD_END:
            s->scanned++;
            return http_head_end(s, max_body);
        default:
            return http_head_refuse(s, 400, "malformed header field (RFC 9112 5: token, colon, "
                                            "visible characters, CRLF; no obs-fold)");
        }
    }
    return PL_AGAIN;
}

size_t http_head_rewrite(const char *head, size_t len, uint64_t body, char *out)
{
    const char *p = head, *end = head + len - 2;    /* up to the empty line */
    size_t n = 0;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p)) + 1;
        size_t name = strcspn(p, ":\r");

        if (p == head || (!http_head_is(p, name, "Content-Length")
                          && !http_head_is(p, name, "Transfer-Encoding"))) {
            memcpy(out + n, p, (size_t)(eol - p));
            n += (size_t)(eol - p);
        }
        p = eol;
    }
    n += (size_t)snprintf(out + n, HTTP_HEAD_REWRITE_EXTRA, "Content-Length: %llu\r\n\r\n",
                          (unsigned long long)body);
    return n;
}
