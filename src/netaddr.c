/* netaddr.c - address lists, prefix matching and X-Forwarded-For. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

/* Parses one address (LEN bytes at S, no prefix) into NET with full bits. */
static int netaddr_parse(const char *s, size_t len, struct netaddr_net *net)
{
    char text[NETADDR_TEXT_MAX];

    if (len == 0 || len >= sizeof(text)) {
        return PL_ERR;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    memset(net, 0, sizeof(*net));
    if (inet_pton(AF_INET, text, net->addr) == 1) {
        net->family = AF_INET;
        net->bits = 32;
    } else if (inet_pton(AF_INET6, text, net->addr) == 1) {
        net->family = AF_INET6;
        net->bits = 128;
    } else {
        return PL_ERR;
    }
    return PL_OK;
}

/* One "ADDR" or "ADDR/BITS" of a list. */
static int netaddr_parse_net(const char *s, size_t len, struct netaddr_net *net)
{
    const char *slash = memchr(s, '/', len);
    char *end;
    long bits;

    if (slash == NULL) {
        return netaddr_parse(s, len, net);
    }
    if (netaddr_parse(s, (size_t)(slash - s), net) != PL_OK || slash + 1 == s + len
        || slash[1] < '0' || slash[1] > '9') {
        return PL_ERR;
    }
    bits = strtol(slash + 1, &end, 10);
    if (end != s + len || bits > net->bits) {
        return PL_ERR;
    }
    net->bits = (int)bits;
    return PL_OK;
}

int netaddr_set_parse(const char *list, struct netaddr_set *set, char *err, size_t errlen)
{
    const char *item;
    size_t n;

    set->n = 0;
    while ((item = pl_list_next(&list, &n)) != NULL) {
        if (set->n == NETADDR_SET_MAX) {
            snprintf(err, errlen, "more than %d addresses or networks", NETADDR_SET_MAX);
            return PL_ERR;
        }
        if (netaddr_parse_net(item, n, &set->net[set->n]) != PL_OK) {
            snprintf(err, errlen, "'%.*s' is not an IP address or network (ADDR or ADDR/BITS)", (int)n, item);
            return PL_ERR;
        }
        set->n++;
    }
    return PL_OK;
}

static int netaddr_in(const struct netaddr_net *net, const struct netaddr_net *addr)
{
    int full = net->bits / 8, rest = net->bits % 8;

    if (net->family != addr->family || memcmp(net->addr, addr->addr, (size_t)full) != 0) {
        return 0;
    }
    return rest == 0 || ((net->addr[full] ^ addr->addr[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

static int netaddr_set_has(const struct netaddr_set *set, const struct netaddr_net *addr)
{
    for (int i = 0; i < set->n; i++) {
        if (netaddr_in(&set->net[i], addr)) {
            return 1;
        }
    }
    return 0;
}

static int netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr_net *out)
{
    memset(out, 0, sizeof(*out));
    out->family = sa->sa_family;
    if (sa->sa_family == AF_INET) {
        memcpy(out->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        out->bits = 32;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(out->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        out->bits = 128;
    } else {
        return PL_ERR;
    }
    return PL_OK;
}

int netaddr_set_contains(const struct netaddr_set *set, const struct sockaddr *sa)
{
    struct netaddr_net a;

    return netaddr_from_sockaddr(sa, &a) == PL_OK && netaddr_set_has(set, &a);
}

/* An IPv4 address written as IPv6 (::ffff:a.b.c.d) is the IPv4 address. */
static void netaddr_unmap(struct netaddr_net *a)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    if (a->family == AF_INET6 && memcmp(a->addr, mapped, sizeof(mapped)) == 0) {
        memmove(a->addr, a->addr + 12, 4);
        memset(a->addr + 4, 0, 12);
        a->family = AF_INET;
        a->bits = 32;
    }
}

static void netaddr_format(const struct netaddr_net *a, char *out, size_t outlen)
{
    char text[NETADDR_TEXT_MAX];
    struct netaddr_net plain = *a;

    netaddr_unmap(&plain);
    if (inet_ntop(plain.family, plain.addr, text, sizeof(text)) == NULL) {
        snprintf(text, sizeof(text), "-");
    }
    snprintf(out, outlen, "%s", text);
}

void netaddr_limit_key(const char *addr, char *out, size_t outlen)
{
    struct netaddr_net a;
    char text[NETADDR_TEXT_MAX];

    if (netaddr_parse(addr, strlen(addr), &a) != PL_OK) {
        snprintf(out, outlen, "%s", addr);
        return;
    }
    netaddr_unmap(&a);
    if (a.family == AF_INET6) {
        memset(a.addr + 8, 0, 8);       /* one /64: what one client usually holds */
        inet_ntop(AF_INET6, a.addr, text, sizeof(text));
        snprintf(out, outlen, "%s/64", text);
        return;
    }
    netaddr_format(&a, out, outlen);
}

/* Parses one X-Forwarded-For entry (LEN bytes at S): spaces around it,
 * "[v6]" and a port after an IPv4 address or a bracketed IPv6 one (as some
 * proxies write them) are allowed. */
static int netaddr_parse_hop(const char *s, size_t len, struct netaddr_net *hop)
{
    const char *colon;

    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
        len--;
    }
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL || (close + 1 < s + len && close[1] != ':')) {
            return PL_ERR;
        }
        s++;
        len = (size_t)(close - s);
    } else if ((colon = memchr(s, ':', len)) != NULL && memchr(s, '.', (size_t)(colon - s)) != NULL
               && memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)) == NULL) {
        len = (size_t)(colon - s);          /* "1.2.3.4:5678" */
    }
    return netaddr_parse(s, len, hop);
}

void netaddr_client(const struct sockaddr *peer, const char *xff, const struct netaddr_set *trusted,
                    char *out, size_t outlen)
{
    struct netaddr_net client, hop;
    const char *end;

    if (netaddr_from_sockaddr(peer, &client) != PL_OK) {
        snprintf(out, outlen, "-");
        return;
    }
    end = xff != NULL ? xff + strlen(xff) : NULL;
    while (end != NULL && netaddr_set_has(trusted, &client)) {
        const char *start = end;

        while (start > xff && start[-1] != ',') {
            start--;
        }
        if (netaddr_parse_hop(start, (size_t)(end - start), &hop) != PL_OK) {
            break;
        }
        client = hop;
        end = start > xff ? start - 1 : NULL;     /* at the comma before it */
    }
    netaddr_format(&client, out, outlen);
}
