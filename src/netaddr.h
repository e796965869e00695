/* netaddr.h - IP networks, and who a client is behind trusted proxies.
 *
 * A connection's peer is the client, unless the peer is one of the
 * operator's trusted proxies (trusted_proxies): then the client is the
 * address the proxies put in X-Forwarded-For, read from the right and
 * stopping at the first address that is not itself a trusted proxy (each
 * proxy appends the address it saw, so only the part written by trusted
 * proxies can be believed).  Pure code: no I/O. */
#ifndef PARLEY_NETADDR_H
#define PARLEY_NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NETADDR_SET_MAX 32
#define NETADDR_TEXT_MAX 48         /* an IPv6 address as text (or its /64), NUL included */

/* One address (BITS = its full length) or network (a CIDR prefix). */
struct netaddr_net {
    int family;                     /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int bits;
};

struct netaddr_set {
    struct netaddr_net net[NETADDR_SET_MAX];
    int n;
};

/* Parses a list of addresses and networks separated by commas or spaces
 * ("10.0.0.0/8, 127.0.0.1 ::1") into SET.  An empty list is an empty set.
 * Returns PL_OK, or PL_ERR with the reason in ERR. */
int netaddr_set_parse(const char *list, struct netaddr_set *set, char *err, size_t errlen);

/* Whether SA (AF_INET or AF_INET6) lies in one of SET's networks. */
int netaddr_set_contains(const struct netaddr_set *set, const struct sockaddr *sa);

/* Writes the client's address as text into OUT: PEER's, or - when PEER is
 * in TRUSTED and XFF (the X-Forwarded-For value, may be NULL) names one -
 * the nearest untrusted address of XFF.  A malformed XFF entry stops the
 * walk: the address seen so far is the answer, never a spoofed one. */
void netaddr_client(const struct sockaddr *peer, const char *xff, const struct netaddr_set *trusted,
                    char *out, size_t outlen);

/* What a per-address limit counts ADDR (text from netaddr_client) under,
 * into OUT: an IPv4 address as itself (also when written as IPv6), an
 * IPv6 address as its /64 - a client usually holds a whole /64 and could
 * otherwise take a fresh budget with every address in it. */
void netaddr_limit_key(const char *addr, char *out, size_t outlen);

#endif
