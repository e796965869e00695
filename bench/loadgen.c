/* loadgen.c - fan-out load generator: N WebSocket or SSE subscribers, HTTP publishers.
 *
 * Opens N subscribers to parley or nchan on loopback (spread over source
 * addresses 127.0.0.1..127.0.0.K, optionally over P forked processes),
 * publishes M messages over keep-alive HTTP (closed loop, or open loop at a
 * fixed rate with pipelining), and measures every delivery: latency from the
 * send time embedded in the message, losses, duplicates and reordering.  It
 * also samples the servers' CPU time (/proc/PID/stat) around the measurement
 * window and their memory (Pss, /proc/PID/smaps_rollup) before and after the
 * subscribers connect, so servers can be compared by CPU per delivery and
 * memory per idle connection.  The last line printed is machine-readable:
 *
 *   RESULT target=parley kind=ws pub=http subs=1000 ... p99_us=... lost=0 ...
 *
 * Process layout: the parent creates the session, samples the servers,
 * publishes and aggregates; P children hold the subscribers, each in one
 * single-threaded libevent loop, and talk to the parent over a socketpair
 * with short text lines (READY, DRAIN, the report and its histogram).
 *
 * Every message's content is "n=<seq> p=<publisher connection> t=<ns>",
 * t being CLOCK_MONOTONIC (system-wide, so comparable across processes).
 * Order is checked per publisher connection, the only order a server can
 * promise when several connections publish at once.
 *
 * With --rooms K, subscriber i joins room i mod K and message n goes to
 * room n mod K (rooms ROOM-0 .. ROOM-<K-1>): each subscriber expects the
 * messages of its room only, and one of another room counts as
 * unrecognised.  The subscribers then connect in a random order, so that a
 * balancer in front does not see the rooms in step with its own turns.
 * Order is still checked per publisher connection, within the subscriber's
 * room.
 *
 * With --chat, the subscribers are the users of a chat: each posts in its
 * room (content "n=<its own count> p=<user> t=<ns>") on a schedule, from
 * the subscriber processes, which report what the server took per room;
 * order and duplicates are then checked per user.  The parent only
 * coordinates (START, STOP, POSTED, EXPECT, DRAIN, EXIT) and measures,
 * memory included after the traffic and after an idle time.
 *
 * Besides --server-pids (the servers' total), --cpu NAME=PIDS measures the
 * CPU of a group of processes on its own (Redis, a proxy in front), both
 * while the subscribers connect and while messages are published.
 *
 * With --deflate, WebSocket subscribers offer permessage-deflate (RFC 7692)
 * as browsers do, check the server's answer (a server may decline), and
 * inflate compressed messages (RSV1) before the checks above: one zlib
 * stream per process, reset per message, when the server promised
 * server_no_context_takeover, else a stream per connection kept across
 * messages.  With --inflate-once a process inflates the same compressed
 * bytes once (all subscribers of a room get the same bytes), so that its
 * CPU, shared with the servers on a small machine, does not depend on
 * compression; every other delivery is still compared byte for byte.  Every delivery's frame bytes (headers included) and payload
 * bytes are counted, with or without --deflate.  --msg-size pads every
 * message with chat-like text; --history-pages times parley's history
 * pages instead of publishing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_PUBS 16
#define MAX_PROCS 64
#define MAX_ROOMS 10000
#define MAX_CPU_GROUPS 4
#define MAX_SRC_ADDRS 254
#define RBUF_READ (64 * 1024)          /* bytes read per read() */
#define MAX_PENDING (1024 * 1024)      /* unparsed bytes a subscriber may hold */
#define MAX_FRAME (16 * 1024 * 1024)
#define MAX_ERRORS_SHOWN 5
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define SEEN_SLOTS 16                  /* --inflate-once: messages remembered per process */

enum target { TARGET_PARLEY, TARGET_NCHAN };
enum kind { KIND_WS, KIND_SSE, KIND_MIXED };

struct options {
    enum target target;
    enum kind kind;
    char host[64];
    int port;
    int subs;
    int procs;
    int src_addrs;
    long msgs;
    double rate;                /* 0: closed loop */
    int pubs;
    char room[65];
    int rooms;
    const char *server_pids;
    int ncpu_groups;
    struct cpu_group {
        char name[32];
        const char *pids;
    } cpu_groups[MAX_CPU_GROUPS];
    int settle_ms;
    int drain_ms;
    int hold_ms;
    int connect_timeout_ms;
    int concurrency;
    int quiet;
    int pub_ws;                 /* parley: publish over WebSocket, as the web client does */
    int cmid;                   /* parley: every message carries a client_msg_id */
    /* --chat: every subscriber is a user who posts to its own room */
    int chat;
    int secs;                   /* how long the users post */
    int post_every_ms;          /* each user's period in the small rooms */
    int big_room;               /* users 0..N-1 are in room 0, the others in rooms 1.. */
    int big_post_every_ms;      /* each user's period in the big room */
    int posters;                /* HTTP connections per process for posts */
    int idle_ms;                /* after the run: idle this long, then Pss again */
    const char *jwt_secret;     /* parley: a JWT per user, signed with this */
    int deflate;                /* WebSocket subscribers offer permessage-deflate (RFC 7692) */
    int inflate_once;           /* ... and a process inflates each distinct compressed message once */
    int msg_size;               /* content of this many bytes, chat-like text after the fields; 0: fields only */
    int history_pages;          /* parley: instead of publishing, every subscriber asks for this many pages */
    int history_limit;          /* messages per history page */
};

static struct options opt = {
    .target = TARGET_PARLEY, .kind = KIND_WS, .host = "127.0.0.1", .subs = 1000, .procs = 1,
    .msgs = 1000, .rate = 100, .pubs = 2, .rooms = 1, .settle_ms = 1000, .drain_ms = 5000,
    .connect_timeout_ms = 15000, .concurrency = 100, .secs = 60, .post_every_ms = 10000,
    .big_post_every_ms = 100000, .posters = 4, .history_limit = 50,
};

static char token[128];         /* parley session token, "" for nchan */

/* The room of user (subscriber) I: I mod --rooms, or with --big-room N,
 * room 0 for the first N and I mod the other rooms for the rest. */
static int user_room(int i)
{
    if (opt.big_room == 0) {
        return i % opt.rooms;
    }
    return i < opt.big_room ? 0 : 1 + (i - opt.big_room) % (opt.rooms - 1);
}

/* User I's place among the users of its room, and how many there are. */
static int user_slot(int i)
{
    if (opt.big_room == 0) {
        return i / opt.rooms;
    }
    return i < opt.big_room ? i : (i - opt.big_room) / (opt.rooms - 1);
}

static int room_users(int r)
{
    int small = opt.rooms - (opt.big_room > 0), users = opt.subs - opt.big_room;

    if (opt.big_room > 0 && r == 0) {
        return opt.big_room;
    }
    return (users + small - 1) / small;
}

/* The name of room R: --room itself when there is one room, else ROOM-R
 * (parse_args checks that the longest fits). */
static void room_name(int r, char *out, size_t cap)
{
    if (opt.rooms == 1) {
        snprintf(out, cap, "%s", opt.room);
    } else {
        snprintf(out, cap, "%s-%d", opt.room, r);
    }
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    fputs("loadgen: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* ---- latency histogram: log-linear, 128 sub-buckets per power of two (<1% error) ---- */

#define HIST_SUB_BITS 7
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_MAX_BITS 44             /* values up to 2^44 ns, about 4.9 hours */
#define HIST_BUCKETS (HIST_SUB * (HIST_MAX_BITS - HIST_SUB_BITS + 1))

struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t total;
};

static int hist_index(uint64_t v)
{
    int k;

    if (v >= (UINT64_C(1) << HIST_MAX_BITS)) {
        v = (UINT64_C(1) << HIST_MAX_BITS) - 1;
    }
    if (v < HIST_SUB) {
        return (int)v;
    }
    k = 63 - __builtin_clzll(v);
    return HIST_SUB + (k - HIST_SUB_BITS) * HIST_SUB + (int)((v >> (k - HIST_SUB_BITS)) - HIST_SUB);
}

/* The middle of bucket IDX. */
static double hist_value(int idx)
{
    int k, sub;

    if (idx < HIST_SUB) {
        return idx;
    }
    k = (idx - HIST_SUB) / HIST_SUB + HIST_SUB_BITS;
    sub = (idx - HIST_SUB) % HIST_SUB + HIST_SUB;
    return ldexp(sub + 0.5, k - HIST_SUB_BITS);
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->total++;
}

static double hist_percentile(const struct hist *h, double p)
{
    uint64_t rank = (uint64_t)ceil(p * (double)h->total), seen = 0;

    if (h->total == 0) {
        return 0;
    }
    if (rank < 1) {
        rank = 1;
    }
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            return hist_value(i);
        }
    }
    return hist_value(HIST_BUCKETS - 1);
}

/* ---- small helpers ---- */

struct buf {
    char *p;
    uint32_t len;
    uint32_t cap;
};

static int buf_append(struct buf *b, const char *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;

        while (cap < b->len + n) {
            cap *= 2;
        }
        if (cap > MAX_PENDING + RBUF_READ || (p = realloc(b->p, cap)) == NULL) {
            return -1;
        }
        b->p = p;
        b->cap = (uint32_t)cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += (uint32_t)n;
    return 0;
}

static void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Keeps the last N bytes of B (which start at B->p + B->len - N). */
static void buf_keep_tail(struct buf *b, size_t n)
{
    if (n == 0) {
        buf_free(b);
        return;
    }
    memmove(b->p, b->p + b->len - n, n);
    b->len = (uint32_t)n;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            poll(&pfd, 1, 1000);
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void base64_encode(const unsigned char *in, int n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, n);
}

/* The Sec-WebSocket-Accept value for KEY (RFC 6455 section 4.2.2). */
static void ws_accept_for(const char *key, char out[29])
{
    char cat[64 + sizeof(WS_GUID)];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int n = snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);

    EVP_Digest(cat, (size_t)n, md, &mdlen, EVP_sha1(), NULL);
    base64_encode(md, (int)mdlen, out);
}

/* ---- HTTP/1.1 response parsing, for publishers and handshakes ---- */

/* Finds header NAME in the header block HDR (HLEN bytes, status line
 * included) and copies its value to OUT.  Returns 1 if it is there. */
static int http_header(const char *hdr, size_t hlen, const char *name, char *out, size_t cap)
{
    const char *end = hdr + hlen, *line = memchr(hdr, '\n', hlen);
    size_t nlen = strlen(name);

    while (line != NULL && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL) {
            eol = end;
        }
        if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1, *ve = eol;
            size_t n;

            while (v < ve && (*v == ' ' || *v == '\t')) {
                v++;
            }
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) {
                ve--;
            }
            n = (size_t)(ve - v) < cap - 1 ? (size_t)(ve - v) : cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
        line = eol < end ? eol : NULL;
    }
    return 0;
}

/* The status line of the response at P, for error messages. */
static void http_status_line(const char *p, size_t len, char *out, size_t cap)
{
    size_t n = 0;

    while (n < len && p[n] != '\r' && p[n] != '\n') {
        n++;
    }
    if (n > cap - 1) {
        n = cap - 1;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!isprint((unsigned char)out[i])) {
            out[i] = '?';
        }
    }
}

/* Parses one whole response (head and Content-Length or chunked body) at P.
 * Returns 1 with *STATUS, *USED (bytes of this response), *BODY, *BODYLEN
 * (raw body) and *CLOSE; 0 if more bytes are needed; -1 if malformed. */
static int http_response_parse(const char *p, size_t len, int *status, size_t *used,
                               const char **body, size_t *bodylen, int *close)
{
    const char *end = memmem(p, len, "\r\n\r\n", 4);
    char val[64];
    size_t hlen;

    if (end == NULL) {
        return len > 65536 ? -1 : 0;
    }
    hlen = (size_t)(end + 4 - p);
    if (hlen < 12 || memcmp(p, "HTTP/1.", 7) != 0) {
        return -1;
    }
    *status = atoi(p + 9);
    *close = http_header(p, hlen, "Connection", val, sizeof(val)) && strcasestr(val, "close") != NULL;
    *body = p + hlen;
    if (http_header(p, hlen, "Transfer-Encoding", val, sizeof(val)) && strcasestr(val, "chunked")) {
        size_t off = hlen;

        for (;;) {
            const char *eol = memmem(p + off, len - off, "\r\n", 2);
            unsigned long size;

            if (eol == NULL) {
                return 0;
            }
            size = strtoul(p + off, NULL, 16);
            off = (size_t)(eol + 2 - p);
            if (size == 0) {
                const char *fin = memmem(p + off, len - off, "\r\n", 2);   /* no trailers expected */
                if (fin == NULL) {
                    return 0;
                }
                *bodylen = (size_t)(p + off - *body);
                *used = (size_t)(fin + 2 - p);
                return 1;
            }
            if (len - off < size + 2) {
                return 0;
            }
            off += size + 2;
        }
    }
    if (http_header(p, hlen, "Content-Length", val, sizeof(val))) {
        size_t cl = strtoul(val, NULL, 10);
        if (len - hlen < cl) {
            return 0;
        }
        *bodylen = cl;
        *used = hlen + cl;
        return 1;
    }
    if (*status == 204 || *status == 304 || *status / 100 == 1) {
        *bodylen = 0;
        *used = hlen;
        return 1;
    }
    return -1;                  /* a body up to the close: not usable on keep-alive */
}

static int dial_loopback(int nonblock, const struct sockaddr_in *src)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    int one = 1;

    if (fd < 0) {
        return -1;
    }
    inet_pton(AF_INET, opt.host, &sa.sin_addr);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (src != NULL) {
        /* Choose the port at connect() time, per destination: without this
         * every bound socket takes a port of its own and one source address
         * runs out at ~28k connections in all. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (const struct sockaddr *)src, sizeof(*src)) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* POST /api/sessions {"user":"bench<pid>"}: the token every connection
 * uses.  A name of its own, as a name held by a live session (an earlier
 * run's) is refused. */
static void parley_session(void)
{
    char req_body[64], req[512], resp[8192], status[128];
    struct timeval tv = { 5, 0 };
    size_t have = 0, used, bodylen;
    const char *body, *t;
    int fd = dial_loopback(0, NULL), code, cl, n;

    if (fd < 0) {
        die("cannot connect to %s:%d: %s", opt.host, opt.port, strerror(errno));
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    snprintf(req_body, sizeof(req_body), "{\"user\":\"bench%d\"}", (int)getpid());
    n = snprintf(req, sizeof(req), "POST /api/sessions HTTP/1.1\r\nHost: %s:%d\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                 opt.host, opt.port, strlen(req_body), req_body);
    if (write_all(fd, req, (size_t)n) < 0) {
        die("POST /api/sessions: %s", strerror(errno));
    }
    for (;;) {
        ssize_t r = read(fd, resp + have, sizeof(resp) - 1 - have);
        if (r <= 0) {
            die("POST /api/sessions: %s", r == 0 ? "connection closed" : strerror(errno));
        }
        have += (size_t)r;
        resp[have] = '\0';
        n = http_response_parse(resp, have, &code, &used, &body, &bodylen, &cl);
        if (n < 0) {
            die("POST /api/sessions: malformed response");
        }
        if (n > 0) {
            break;
        }
    }
    close(fd);
    http_status_line(resp, have, status, sizeof(status));
    if (code != 201 || (t = strstr(body, "\"token\":\"")) == NULL) {
        die("POST /api/sessions: %s %.*s", status, (int)(bodylen > 200 ? 200 : bodylen), body);
    }
    t += 9;
    n = (int)strcspn(t, "\"");
    if (n <= 0 || n >= (int)sizeof(token)) {
        die("POST /api/sessions: unusable token");
    }
    memcpy(token, t, (size_t)n);
    token[n] = '\0';
}

/* Base64url without padding (RFC 7515 section 2), OUT holds 4 * (N + 2) / 3 + 1. */
static void base64url_encode(const unsigned char *in, size_t n, char *out)
{
    char *p;

    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    for (p = out; *p != '\0' && *p != '='; p++) {
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    }
    *p = '\0';
}

/* --jwt-secret: an HS256 JWT for user "u<I>", valid for a day, in a new string. */
static char *user_jwt(int i)
{
    char claims[64], head[64], body[128], *out;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int n = snprintf(claims, sizeof(claims), "{\"sub\":\"u%d\",\"exp\":%lld}", i, (long long)time(NULL) + 86400);

    base64url_encode((const unsigned char *)"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 27, head);
    base64url_encode((const unsigned char *)claims, (size_t)n, body);
    if ((out = malloc(strlen(head) + strlen(body) + 64)) == NULL) {
        die("out of memory");
    }
    n = sprintf(out, "%s.%s", head, body);
    HMAC(EVP_sha256(), opt.jwt_secret, (int)strlen(opt.jwt_secret), (const unsigned char *)out, (size_t)n, mac, &maclen);
    out[n++] = '.';
    base64url_encode(mac, maclen, out + n);
    return out;
}

/* ---- deliveries: "n=<seq> p=<pub> t=<ns>" ---- */

/* Reads "KEY=<digits>" at *P (bounded by END), then skips one space. */
static int parse_field(const char **p, const char *end, char key, int64_t *out)
{
    const char *q = *p;
    int64_t v = 0;

    if (end - q < 3 || q[0] != key || q[1] != '=' || q[2] < '0' || q[2] > '9') {
        return -1;
    }
    for (q += 2; q < end && *q >= '0' && *q <= '9'; q++) {
        v = v * 10 + (*q - '0');
    }
    if (q < end && *q == ' ') {
        q++;
    }
    *p = q;
    *out = v;
    return 0;
}

static int parse_content(const char *p, size_t len, long *seq, int *pub, int64_t *t)
{
    const char *end = p + len;
    int64_t n, pp;

    if (parse_field(&p, end, 'n', &n) < 0 || parse_field(&p, end, 'p', &pp) < 0
        || parse_field(&p, end, 't', t) < 0 || n > INT32_MAX || pp > (opt.chat ? opt.subs : MAX_PUBS)) {
        return -1;
    }
    *seq = (long)n;
    *pub = (int)pp;
    return 0;
}

/* --msg-size: chat-like English text after the fields, so that compression
 * sees what it would in a chat (words from a small vocabulary, punctuation,
 * no JSON escapes), different for every message. */
static const char *const chat_words[] = {
    "the", "a", "to", "and", "I", "you", "it", "is", "that", "we", "for", "on", "this", "in", "of", "be",
    "have", "with", "just", "so", "but", "not", "can", "will", "do", "at", "if", "my", "me", "what", "are",
    "was", "think", "know", "get", "about", "like", "all", "one", "there", "they", "out", "up", "now",
    "would", "should", "could", "when", "yes", "no", "maybe", "today", "tomorrow", "meeting", "deploy",
    "release", "build", "test", "tests", "server", "client", "room", "message", "question", "answer",
    "thanks", "sure", "great", "sounds", "good", "looks", "fine", "let's", "check", "again", "later",
    "morning", "afternoon", "review", "branch", "merge", "commit", "issue", "bug", "fix", "fixed", "works",
    "broken", "logs", "error", "timeout", "latency", "memory", "CPU", "users", "page", "history", "update",
    "version", "config", "file", "docs", "link", "please", "see", "need", "time", "before", "after",
    "lunch", "coffee", "team", "people", "call", "minutes", "hour", "week", "plan", "idea", "here",
};

static size_t chat_text(char *out, size_t size, uint64_t seed)
{
    size_t n = 0;
    int words = 0;

    while (n < size) {
        const char *w;
        size_t wl;

        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        w = chat_words[(seed >> 33) % (sizeof(chat_words) / sizeof(chat_words[0]))];
        wl = strlen(w);
        if (n > 0) {
            out[n++] = ++words % 11 == 0 ? '.' : (words % 7 == 0 ? ',' : ' ');
            if (out[n - 1] != ' ' && n < size) {
                out[n++] = ' ';
            }
        }
        for (size_t i = 0; i < wl && n < size; i++) {
            out[n++] = w[i];
        }
    }
    return n;
}

/* The content of message SEQ from publisher connection PUB, in OUT (of
 * CAP > --msg-size + 64 bytes): "n=<seq> p=<pub> t=<ns>", and with --msg-size
 * chat-like text up to that many bytes. */
static int make_content(char *out, size_t cap, long seq, int pub)
{
    int n = snprintf(out, cap, "n=%ld p=%d t=%" PRId64, seq, pub, now_ns());

    if (opt.msg_size > n + 1) {
        out[n++] = ' ';
        n += (int)chat_text(out + n, (size_t)opt.msg_size - (size_t)n, (uint64_t)seq * 2654435761u + 17);
        out[n] = '\0';
    }
    return n;
}

/* ==================== subscriber processes ==================== */

enum sub_state { SUB_IDLE, SUB_CONNECTING, SUB_HANDSHAKE, SUB_OPEN, SUB_CLOSED };
enum ck_state { CK_SIZE, CK_EXT, CK_DATA, CK_DATA_CR, CK_DATA_LF, CK_DONE };

struct sub {
    struct event ev;
    int fd;
    int index;                  /* over all processes: picks the source address */
    int room;                   /* index mod --rooms */
    uint8_t state;
    uint8_t ready;
    uint8_t chunked;            /* SSE body in chunked transfer coding */
    uint8_t ck_state;
    uint8_t frag_op;            /* WS: opcode of the fragmented message being read, 0 none */
    uint32_t ck_left;
    int64_t started_ns;
    char accept[29];            /* expected Sec-WebSocket-Accept */
    struct buf pend;            /* bytes not parsed yet (handshake, partial frame or line) */
    struct buf frag;            /* WS: fragments of a message */
    uint32_t nrecv;             /* unique deliveries */
    int32_t last[MAX_PUBS];     /* highest seq seen per publisher connection */
    uint8_t *seen;              /* bit per seq, when affordable */
    uint8_t kind;               /* enum kind: ws or sse */
    /* --chat */
    char *token;                /* the user's own (a JWT), NULL: the shared one */
    int32_t *user_last;         /* highest seq seen per user of the room (user_slot) */
    int32_t posts;              /* messages this user sent */
    uint32_t unacked;           /* sent over its WebSocket, not acknowledged yet */
    /* --deflate */
    uint8_t deflate;            /* permessage-deflate negotiated */
    uint8_t ctx_takeover;       /* ... without server_no_context_takeover: a stream of its own */
    uint8_t frag_rsv1;          /* the message being read is compressed */
    uint32_t msg_wire;          /* frame bytes (headers included) of the message being read */
    z_stream *zs;               /* with ctx_takeover, made at the first compressed message */
    /* --history-pages */
    int32_t pages_left;
    int64_t page_sent_ns;
};

static struct {
    struct event_base *base;
    struct sub *subs;
    int nsubs;
    int first_index;
    int *order;                 /* the order the subscribers start in */
    int next;                   /* next subscriber to start, in that order */
    int inflight;               /* connecting or handshaking */
    int nready, nfailed, nclosed;
    int ready_sent;
    int ctl;                    /* socketpair to the parent */
    struct event *ctl_ev;
    struct event *tick;
    struct buf ctl_in;
    struct hist *hist;
    int64_t max_ns;
    uint64_t deliveries, dups, ooo, foreign, app_errors;
    int64_t first_delivery_ns, last_delivery_ns;
    int track_seen;
    int draining;
    long *room_expect;          /* unique deliveries each subscriber of a room should get */
    uint64_t expected;          /* their sum over the subscribers that got ready */
    int64_t drain_deadline;
    int64_t cpu_ready_ns;
    int errors_shown;
    int proc;
    unsigned ticks;
    /* --chat: the users of this process post */
    struct poster *posters;
    struct plan {
        int *users;             /* indexes into subs, in a random order */
        int n;
        int64_t period_ns;
        long done;              /* posts due so far (user done % n is next) */
    } plan[2];                  /* the small rooms', the big room's */
    struct event *post_timer;
    int64_t chat_start_ns;
    int64_t stop_deadline;
    int stopping;               /* STOP came: waiting for the last answers */
    long *room_posted;          /* messages the server took, per room */
    uint64_t typing, post_errors, post_skipped;
    /* wire accounting: bytes of the frames that carried counted deliveries */
    uint64_t wire_bytes, payload_bytes, compressed, rx_bytes, inflate_errors, history_msgs;
    int negotiated, declined;   /* --deflate: subscribers that got the extension, that did not */
    uint32_t cur_wire;          /* the frame bytes of the payload being handled */
    uint32_t cur_payload;       /* its (inflated) size */
    uint8_t cur_compressed;
    z_stream zshared;           /* for every connection with server_no_context_takeover */
    int zshared_ready;
    unsigned char *ibuf;        /* inflated messages */
    size_t icap;
    struct seen_msg {           /* --inflate-once: the messages inflated last */
        uint64_t hash;
        struct buf in, out;     /* the compressed bytes, what they inflated to */
    } seen[SEEN_SLOTS];
    unsigned seen_next;         /* the slot to take next (the oldest) */
    uint64_t inflated;          /* messages actually inflated */
} S;

static char rbuf[RBUF_READ * 4];

static int64_t rusage_ns(int who)
{
    struct rusage ru;

    getrusage(who, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000
           + ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static void sub_error(struct sub *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sub_error(struct sub *s, const char *fmt, ...)
{
    va_list ap;

    if (S.errors_shown++ >= MAX_ERRORS_SHOWN) {
        if (S.errors_shown == MAX_ERRORS_SHOWN + 1) {
            fprintf(stderr, "loadgen[%d]: (further subscriber errors not shown)\n", S.proc);
        }
        return;
    }
    fprintf(stderr, "loadgen[%d]: subscriber %d: ", S.proc, s->index);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void subs_start_more(void);
static void child_check_ready(void);

/* Closes S's connection.  One that never got ready counts as failed, one
 * that did as closed. */
static void sub_close(struct sub *s)
{
    if (s->state == SUB_CLOSED || s->state == SUB_IDLE) {
        return;
    }
    if (s->fd >= 0) {
        event_del(&s->ev);
        close(s->fd);
        s->fd = -1;
    }
    buf_free(&s->pend);
    buf_free(&s->frag);
    if (s->zs != NULL) {
        inflateEnd(s->zs);
        free(s->zs);
        s->zs = NULL;
    }
    if (s->ready) {
        S.nclosed++;
    } else {
        S.nfailed++;
        S.inflight--;
    }
    s->state = SUB_CLOSED;
    if (!s->ready) {
        subs_start_more();
        child_check_ready();
    }
}

static void sub_set_ready(struct sub *s)
{
    if (s->ready) {
        return;
    }
    s->ready = 1;
    S.nready++;
    S.inflight--;
    subs_start_more();
    child_check_ready();
}

/* --chat: PUB is a user, SEQ its own count; order and duplicates are
 * checked per user of the subscriber's room.  Returns -1 to drop it. */
static int sub_check_chat(struct sub *s, long seq, int pub)
{
    int32_t *last;

    if (pub < 0 || pub >= opt.subs || user_room(pub) != s->room || s->user_last == NULL) {
        S.foreign++;
        return -1;
    }
    last = &s->user_last[user_slot(pub)];
    if (seq == *last) {
        S.dups++;
        return -1;
    }
    if (seq < *last) {
        S.ooo++;
    } else {
        *last = (int32_t)seq;
    }
    return 0;
}

/* One delivery (a message or a history page) LAT after it was sent: the
 * histogram, the window of deliveries and the bytes it took. */
static void delivery_count(struct sub *s, int64_t lat, int64_t now)
{
    if (lat < 0) {
        lat = 0;
    }
    hist_add(S.hist, (uint64_t)lat);
    if (lat > S.max_ns) {
        S.max_ns = lat;
    }
    if (S.first_delivery_ns == 0) {
        S.first_delivery_ns = now;
    }
    S.last_delivery_ns = now;
    s->nrecv++;
    S.deliveries++;
    S.wire_bytes += S.cur_wire;
    S.payload_bytes += S.cur_payload;
    S.compressed += S.cur_compressed;
}

static void sub_deliver(struct sub *s, long seq, int pub, int64_t t, int64_t now)
{
    int64_t lat = now - t;

    if (opt.chat) {
        if (sub_check_chat(s, seq, pub) < 0) {
            return;
        }
        goto count;
    }
    if (seq < 0 || seq >= opt.msgs || pub < 0 || pub >= MAX_PUBS || seq % opt.rooms != s->room) {
        S.foreign++;
        return;
    }
    if (s->seen != NULL) {
        uint8_t bit = (uint8_t)(1u << (seq & 7));
        if (s->seen[seq >> 3] & bit) {
            S.dups++;
            return;
        }
        s->seen[seq >> 3] |= bit;
    } else if (S.track_seen) {
        s->seen = calloc((size_t)(opt.msgs + 7) / 8, 1);
        if (s->seen != NULL) {
            s->seen[seq >> 3] |= (uint8_t)(1u << (seq & 7));
        }
    } else if (seq == s->last[pub]) {
        S.dups++;
        return;
    }
    if (seq < s->last[pub]) {
        S.ooo++;
    } else {
        s->last[pub] = (int32_t)seq;
    }
count:
    delivery_count(s, lat, now);
}

static void ws_send(struct sub *s, int op, const char *payload, size_t len);

/* --history-pages: asks for the next page. */
static void history_ask(struct sub *s)
{
    char req[96];
    int n = snprintf(req, sizeof(req), "{\"type\":\"history\",\"limit\":%d}", opt.history_limit);

    s->page_sent_ns = now_ns();
    ws_send(s, 0x1, req, (size_t)n);
}

/* A history page came: one delivery, timed from the request. */
static void history_page(struct sub *s, const char *p, size_t len, int64_t now)
{
    int64_t lat = now - s->page_sent_ns;
    const char *q = p, *end = p + len;

    if (s->pages_left <= 0) {
        S.foreign++;
        return;
    }
    while ((q = memmem(q, (size_t)(end - q), "\"content\":", 10)) != NULL) {
        S.history_msgs++;
        q += 10;
    }
    delivery_count(s, lat, now);
    if (--s->pages_left > 0) {
        history_ask(s);
    }
}

/* The text of a JSON event's "content" in P (LEN bytes, made the rest of
 * the payload from there), or NULL when it has none. */
static const char *content_start(const char *p, size_t *len)
{
    const char *c = memmem(p, *len, "\"content\":\"", 11);

    if (c == NULL) {
        return NULL;
    }
    c += 11;
    *len -= (size_t)(c - p);
    return c;
}

/* A complete event payload: parley's JSON event, or nchan's raw body. */
static void sub_on_payload(struct sub *s, const char *p, size_t len, int64_t now)
{
    long seq;
    int pub;
    int64_t t;

    if (opt.target == TARGET_PARLEY) {
        if (opt.history_pages > 0 && memmem(p, len < 40 ? len : 40, "\"type\":\"history\"", 16) != NULL) {
            history_page(s, p, len, now);
            return;
        }
        if (memmem(p, len, "\"type\":\"message\"", 16) == NULL) {
            if (!s->ready && s->kind == KIND_WS && memmem(p, len, "\"type\":\"welcome\"", 16) != NULL) {
                sub_set_ready(s);
            } else if (memmem(p, len, "\"type\":\"ack\"", 12) != NULL && s->unacked > 0) {
                s->unacked--;
                S.room_posted[s->room]++;
            } else if (memmem(p, len, "\"type\":\"typing\"", 15) != NULL) {
                S.typing++;
            } else if (memmem(p, len, "\"type\":\"error\"", 14) != NULL) {
                S.app_errors++;
                if (s->unacked > 0) {
                    s->unacked--;   /* the answer to a post */
                    S.post_errors++;
                }
                sub_error(s, "server error event: %.*s", (int)(len > 200 ? 200 : len), p);
            }
            return;
        }
        if ((p = content_start(p, &len)) == NULL) {
            S.foreign++;
            return;
        }
    } else if (opt.msg_size > 0 && len > 0 && p[0] == '{') {
        /* nchan with --msg-size: the body is shaped like parley's event */
        if ((p = content_start(p, &len)) == NULL) {
            S.foreign++;
            return;
        }
    }
    if (opt.chat && len >= 6 && memcmp(p, "typing", 6) == 0) {
        S.typing++;             /* nchan: a typing notice is a message like any other */
        return;
    }
    if (parse_content(p, len, &seq, &pub, &t) < 0) {
        S.foreign++;
        return;
    }
    sub_deliver(s, seq, pub, t, now);
}

static void ws_send(struct sub *s, int op, const char *payload, size_t len)
{
    unsigned char frame[2 + 4 + 125];
    uint32_t r = (uint32_t)random();
    unsigned char *mask = frame + 2;

    if (len > 125) {
        len = 125;
    }
    frame[0] = (unsigned char)(0x80 | op);
    frame[1] = (unsigned char)(0x80 | len);
    memcpy(mask, &r, 4);
    for (size_t i = 0; i < len; i++) {
        frame[6 + i] = (unsigned char)payload[i] ^ mask[i & 3];
    }
    /* Control frames are tiny; a socket buffer that cannot take one means
     * the peer stopped reading, and the close below will tell. */
    if (write(s->fd, frame, 6 + len) < 0 && errno != EAGAIN) {
        sub_error(s, "write: %s", strerror(errno));
    }
}

/* --deflate: inflates a compressed message (RFC 7692 section 7.2.2: the
 * payload plus 00 00 ff ff) into S.ibuf; returns its length, or -1.  A
 * connection whose server resets its compressor per message
 * (server_no_context_takeover) shares one stream, reset every message;
 * another keeps a stream of its own across messages, as the RFC says. */
static ssize_t ws_inflate(struct sub *s, const unsigned char *in, size_t len)
{
    static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };
    z_stream *z;
    size_t have = 0;
    int rc = Z_OK;

    if (s->ctx_takeover) {
        if (s->zs == NULL) {
            if ((s->zs = calloc(1, sizeof(*s->zs))) == NULL || inflateInit2(s->zs, -15) != Z_OK) {
                free(s->zs);
                s->zs = NULL;
                sub_error(s, "inflateInit2 failed");
                return -1;
            }
        }
        z = s->zs;
    } else {
        z = &S.zshared;
        if (!S.zshared_ready) {
            if (inflateInit2(z, -15) != Z_OK) {
                sub_error(s, "inflateInit2 failed");
                return -1;
            }
            S.zshared_ready = 1;
        } else {
            inflateReset(z);
        }
    }
    for (int pass = 0; pass < 2 && rc != Z_STREAM_END; pass++) {
        z->next_in = (unsigned char *)(pass == 0 ? in : tail);
        z->avail_in = (uInt)(pass == 0 ? len : sizeof(tail));
        do {
            if (have == S.icap) {
                size_t cap = S.icap ? S.icap * 2 : 64 * 1024;
                unsigned char *b;

                if (cap > MAX_FRAME || (b = realloc(S.ibuf, cap)) == NULL) {
                    sub_error(s, "a compressed message inflates to over %d bytes", MAX_FRAME);
                    return -1;
                }
                S.ibuf = b;
                S.icap = cap;
            }
            z->next_out = S.ibuf + have;
            z->avail_out = (uInt)(S.icap - have);
            rc = inflate(z, Z_SYNC_FLUSH);
            have = S.icap - z->avail_out;
            if (rc == Z_STREAM_END) {
                /* BFINAL: the message ends here; a stream kept across
                 * messages starts afresh with the next one */
                inflateReset(z);
                break;
            }
            if (rc == Z_BUF_ERROR && z->avail_in == 0 && z->avail_out > 0) {
                break;          /* all input taken */
            }
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                sub_error(s, "inflate failed (%d: %s) on a %zu-byte compressed message", rc,
                          z->msg ? z->msg : "?", len);
                inflateReset(z);
                return -1;
            }
        } while (z->avail_in > 0 || z->avail_out == 0);
    }
    return (ssize_t)have;
}

/* A complete message of the frame parser (PAYLOAD, LEN bytes; compressed
 * if S->frag_rsv1): inflated if need be and handed on.  Returns -1 if the
 * connection was closed. */
static int ws_message(struct sub *s, const char *payload, size_t len, int64_t now)
{
    S.cur_wire = s->msg_wire;
    S.cur_compressed = s->frag_rsv1;
    s->msg_wire = 0;
    if (s->frag_rsv1) {
        int once = opt.inflate_once && !s->ctx_takeover;
        struct seen_msg *m = NULL;
        uint64_t h = 1469598103934665603ULL;
        ssize_t n;

        s->frag_rsv1 = 0;
        if (once) {
            /* Every subscriber gets the same bytes for a message, a few
             * messages interleaved: the same bytes inflate to the same
             * message (no context), so remember the last few. */
            for (size_t i = 0; i < len; i++) {
                h = (h ^ (unsigned char)payload[i]) * 1099511628211ULL;
            }
            for (int i = 0; i < SEEN_SLOTS && m == NULL; i++) {
                struct seen_msg *e = &S.seen[i];

                if (e->hash == h && e->in.len == len && e->in.p != NULL && memcmp(e->in.p, payload, len) == 0) {
                    m = e;
                }
            }
        }
        if (m != NULL) {
            payload = m->out.p;
            len = m->out.len;
        } else {
            n = ws_inflate(s, (const unsigned char *)payload, len);
            if (n < 0) {
                S.inflate_errors++;
                sub_close(s);
                return -1;
            }
            S.inflated++;
            if (once) {
                m = &S.seen[S.seen_next++ % SEEN_SLOTS];
                m->in.len = m->out.len = 0;
                m->hash = h;
                if (buf_append(&m->in, payload, len) < 0 || buf_append(&m->out, (const char *)S.ibuf, (size_t)n) < 0) {
                    buf_free(&m->in);
                    buf_free(&m->out);
                }
            }
            payload = (const char *)S.ibuf;
            len = (size_t)n;
        }
    }
    S.cur_payload = (uint32_t)len;
    sub_on_payload(s, payload, len, now);
    S.cur_wire = 0;
    S.cur_compressed = 0;
    return s->state == SUB_CLOSED ? -1 : 0;
}

/* Parses the WebSocket frames in P; returns the bytes consumed, or -1 if
 * the connection was closed. */
static ssize_t ws_feed(struct sub *s, const char *p, size_t len, int64_t now)
{
    size_t off = 0;

    while (len - off >= 2) {
        const unsigned char *h = (const unsigned char *)p + off;
        int fin = h[0] & 0x80, op = h[0] & 0x0f;
        uint64_t plen = h[1] & 0x7f;
        size_t hl = 2;
        const char *payload;

        /* RSV1 marks a compressed message, on its first frame only */
        if ((h[0] & (s->deflate && (op == 0x1 || op == 0x2) ? 0x30 : 0x70)) != 0 || (h[1] & 0x80) != 0) {
            sub_error(s, "protocol error: %s (frame byte 0x%02x)", (h[1] & 0x80) ? "masked server frame"
                      : (h[0] & 0x40) && s->deflate ? "RSV1 on a control or continuation frame" : "RSV bits set", h[0]);
            sub_close(s);
            return -1;
        }
        if (plen == 126) {
            if (len - off < 4) {
                break;
            }
            plen = (uint64_t)h[2] << 8 | h[3];
            hl = 4;
        } else if (plen == 127) {
            if (len - off < 10) {
                break;
            }
            plen = 0;
            for (int i = 2; i < 10; i++) {
                plen = plen << 8 | h[i];
            }
            hl = 10;
        }
        if (plen > MAX_FRAME) {
            sub_error(s, "frame of %" PRIu64 " bytes", plen);
            sub_close(s);
            return -1;
        }
        if (len - off < hl + plen) {
            break;
        }
        payload = p + off + hl;
        off += hl + plen;
        switch (op) {
        case 0x1:
        case 0x2:
            if (s->frag_op != 0) {
                sub_error(s, "protocol error: new message inside a fragmented one");
                sub_close(s);
                return -1;
            }
            s->frag_rsv1 = (h[0] & 0x40) != 0;
            s->msg_wire = (uint32_t)(hl + plen);
            if (fin) {
                if (ws_message(s, payload, plen, now) < 0) {
                    return -1;
                }
            } else {
                s->frag_op = (uint8_t)op;
                if (buf_append(&s->frag, payload, plen) < 0) {
                    sub_close(s);
                    return -1;
                }
            }
            break;
        case 0x0:
            if (s->frag_op == 0 || buf_append(&s->frag, payload, plen) < 0) {
                sub_error(s, "protocol error: stray continuation frame");
                sub_close(s);
                return -1;
            }
            s->msg_wire += (uint32_t)(hl + plen);
            if (fin) {
                int r = ws_message(s, s->frag.p, s->frag.len, now);

                s->frag_op = 0;
                buf_free(&s->frag);
                if (r < 0) {
                    return -1;
                }
            }
            break;
        case 0x9:
            ws_send(s, 0xA, payload, plen);
            break;
        case 0xA:
            break;
        case 0x8: {
            int code = plen >= 2 ? ((unsigned char)payload[0] << 8 | (unsigned char)payload[1]) : 1005;
            char echo[2] = { (char)(code >> 8), (char)code };

            sub_error(s, "closed by the server: code %d%s%.*s", code, plen > 2 ? " " : "",
                      plen > 2 ? (int)(plen - 2) : 0, payload + 2);
            ws_send(s, 0x8, echo, code == 1005 ? 0 : 2);
            sub_close(s);
            return -1;
        }
        default:
            sub_error(s, "protocol error: opcode %d", op);
            sub_close(s);
            return -1;
        }
    }
    return (ssize_t)off;
}

/* Undoes the chunked transfer coding of P in place; returns the decoded
 * length, -1 on a malformed stream, -2 at its last chunk. */
static ssize_t sse_dechunk(struct sub *s, char *p, size_t len)
{
    size_t r = 0, w = 0;

    while (r < len) {
        char c;
        size_t n;

        switch (s->ck_state) {
        case CK_SIZE:
            c = p[r++];
            if (isxdigit((unsigned char)c)) {
                if (s->ck_left > MAX_FRAME) {
                    return -1;
                }
                s->ck_left = s->ck_left * 16 + (uint32_t)(isdigit((unsigned char)c) ? c - '0' : (tolower(c) - 'a' + 10));
                break;
            }
            if (c == ';' || c == '\r' || c == ' ') {
                s->ck_state = CK_EXT;
                break;
            }
            if (c != '\n') {
                return -1;
            }
            /* fall through */
        case CK_EXT:
            if (s->ck_state == CK_EXT && p[r++] != '\n') {
                break;
            }
            if (s->ck_left == 0) {
                s->ck_state = CK_DONE;
                return -2;
            }
            s->ck_state = CK_DATA;
            break;
        case CK_DATA:
            n = len - r < s->ck_left ? len - r : s->ck_left;
            memmove(p + w, p + r, n);
            w += n;
            r += n;
            s->ck_left -= (uint32_t)n;
            if (s->ck_left == 0) {
                s->ck_state = CK_DATA_CR;
            }
            break;
        case CK_DATA_CR:
            c = p[r++];
            if (c == '\r') {
                s->ck_state = CK_DATA_LF;
            } else if (c == '\n') {
                s->ck_state = CK_SIZE;
            } else {
                return -1;
            }
            break;
        case CK_DATA_LF:
            if (p[r++] != '\n') {
                return -1;
            }
            s->ck_state = CK_SIZE;
            break;
        default:
            return -2;
        }
    }
    return (ssize_t)w;
}

/* Parses the SSE lines in P; returns the bytes consumed (whole lines). */
static ssize_t sse_feed(struct sub *s, const char *p, size_t len, int64_t now)
{
    size_t off = 0;
    const char *nl;

    while ((nl = memchr(p + off, '\n', len - off)) != NULL) {
        const char *line = p + off;
        size_t n = (size_t)(nl - line);

        if (n > 0 && line[n - 1] == '\r') {
            n--;
        }
        if (n >= 5 && memcmp(line, "data:", 5) == 0) {
            size_t skip = n > 5 && line[5] == ' ' ? 6 : 5;
            sub_on_payload(s, line + skip, n - skip, now);
            if (s->state == SUB_CLOSED) {
                return -1;
            }
        }
        off = (size_t)(nl + 1 - p);
    }
    return (ssize_t)off;
}

/* Feeds body bytes (after the handshake) to the frame or line parser.
 * DATA may be modified (dechunked) in place. */
static void sub_feed_body(struct sub *s, char *data, size_t len, int64_t now)
{
    const char *work = data;
    size_t wlen = len;
    ssize_t used;

    if (s->kind == KIND_SSE && s->chunked) {
        ssize_t d = sse_dechunk(s, data, len);
        if (d == -1) {
            sub_error(s, "malformed chunked stream");
            sub_close(s);
            return;
        }
        if (d == -2) {
            sub_error(s, "event stream ended by the server");
            sub_close(s);
            return;
        }
        wlen = len = (size_t)d;
    }
    if (s->pend.len > 0) {
        if (buf_append(&s->pend, data, len) < 0) {
            sub_error(s, "more than %d bytes without a complete event", MAX_PENDING);
            sub_close(s);
            return;
        }
        work = s->pend.p;
        wlen = s->pend.len;
    }
    used = s->kind == KIND_WS ? ws_feed(s, work, wlen, now) : sse_feed(s, work, wlen, now);
    if (used < 0 || s->state == SUB_CLOSED) {
        return;
    }
    if (work == s->pend.p) {
        buf_keep_tail(&s->pend, wlen - (size_t)used);
    } else if ((size_t)used < wlen && buf_append(&s->pend, work + used, wlen - (size_t)used) < 0) {
        sub_close(s);
    }
}

/* --deflate: checks the server's Sec-WebSocket-Extensions answer V to our
 * offer "permessage-deflate; client_max_window_bits" (RFC 7692 section 7.1:
 * one extension, every parameter known, none twice, window bits in range;
 * client_max_window_bits may come back since it was offered).  Sets
 * S->deflate and S->ctx_takeover.  Returns -1 (with a message) if a
 * client must fail the connection. */
static int pmd_check_answer(struct sub *s, const char *v)
{
    char copy[512], *save = NULL, *tok;
    int seen = 0, first = 1;

    if (strchr(v, ',') != NULL) {
        sub_error(s, "Sec-WebSocket-Extensions: more than the one extension offered: \"%s\"", v);
        return -1;
    }
    snprintf(copy, sizeof(copy), "%s", v);
    for (tok = strtok_r(copy, ";", &save); tok != NULL; tok = strtok_r(NULL, ";", &save)) {
        char *e = tok + strlen(tok), *val;
        int bit, bits = -1;

        while (*tok == ' ' || *tok == '\t') {
            tok++;
        }
        while (e > tok && (e[-1] == ' ' || e[-1] == '\t')) {
            *--e = '\0';
        }
        if (first) {
            if (strcasecmp(tok, "permessage-deflate") != 0) {
                sub_error(s, "Sec-WebSocket-Extensions: \"%s\" was not offered", v);
                return -1;
            }
            first = 0;
            continue;
        }
        if ((val = strchr(tok, '=')) != NULL) {
            char *ve;

            *val++ = '\0';
            if (*val == '"' && strlen(val) >= 2 && val[strlen(val) - 1] == '"') {
                val++;
                val[strlen(val) - 1] = '\0';
            }
            bits = (int)strtol(val, &ve, 10);
            if (ve == val || *ve != '\0') {
                bits = -2;
            }
        }
        if (strcasecmp(tok, "server_no_context_takeover") == 0 && val == NULL) {
            bit = 1;
        } else if (strcasecmp(tok, "client_no_context_takeover") == 0 && val == NULL) {
            bit = 2;
        } else if (strcasecmp(tok, "server_max_window_bits") == 0 && bits >= 8 && bits <= 15) {
            bit = 4;
        } else if (strcasecmp(tok, "client_max_window_bits") == 0 && bits >= 8 && bits <= 15) {
            bit = 8;
        } else {
            sub_error(s, "Sec-WebSocket-Extensions: bad or unknown parameter \"%s\" in \"%s\"", tok, v);
            return -1;
        }
        if (seen & bit) {
            sub_error(s, "Sec-WebSocket-Extensions: parameter \"%s\" twice in \"%s\"", tok, v);
            return -1;
        }
        seen |= bit;
    }
    s->deflate = 1;
    s->ctx_takeover = !(seen & 1);
    return 0;
}

/* The response head is complete in S->pend (HLEN bytes): check it. */
static int sub_check_head(struct sub *s, size_t hlen)
{
    char status[160], val[128];
    const char *p = s->pend.p;
    int code = hlen > 12 && memcmp(p, "HTTP/1.", 7) == 0 ? atoi(p + 9) : 0;

    http_status_line(p, hlen, status, sizeof(status));
    if (s->kind == KIND_WS) {
        if (code != 101) {
            size_t blen = s->pend.len - hlen;
            sub_error(s, "upgrade failed: %s%s%.*s", status, blen ? " " : "",
                      (int)(blen > 160 ? 160 : blen), p + hlen);
            return -1;
        }
        if (!http_header(p, hlen, "Upgrade", val, sizeof(val)) || strcasecmp(val, "websocket") != 0) {
            sub_error(s, "upgrade failed: %s without Upgrade: websocket", status);
            return -1;
        }
        if (!http_header(p, hlen, "Sec-WebSocket-Accept", val, sizeof(val)) || strcmp(val, s->accept) != 0) {
            sub_error(s, "upgrade failed: Sec-WebSocket-Accept is \"%s\", expected \"%s\"", val, s->accept);
            return -1;
        }
        if (opt.deflate) {
            char ext[512];

            if (!http_header(p, hlen, "Sec-WebSocket-Extensions", ext, sizeof(ext))) {
                S.declined++;   /* the server may decline: then no compression */
            } else if (pmd_check_answer(s, ext) < 0) {
                return -1;
            } else {
                S.negotiated++;
            }
        }
        if (opt.target == TARGET_NCHAN) {
            sub_set_ready(s);   /* nchan says nothing first; parley says welcome */
        }
        return 0;
    }
    if (code != 200) {
        size_t blen = s->pend.len - hlen;
        sub_error(s, "event stream failed: %s%s%.*s", status, blen ? " " : "",
                  (int)(blen > 160 ? 160 : blen), p + hlen);
        return -1;
    }
    if (!http_header(p, hlen, "Content-Type", val, sizeof(val)) || strncasecmp(val, "text/event-stream", 17) != 0) {
        sub_error(s, "event stream failed: %s with Content-Type \"%s\"", status, val);
        return -1;
    }
    s->chunked = http_header(p, hlen, "Transfer-Encoding", val, sizeof(val)) && strcasestr(val, "chunked");
    sub_set_ready(s);
    return 0;
}

static void sub_on_event(evutil_socket_t fd, short what, void *arg);

static void sub_on_connected(struct sub *s)
{
    char req[1024];
    char room[80];
    int err = 0, n;
    socklen_t elen = sizeof(err);

    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0) {
        sub_error(s, "connect to %s:%d: %s", opt.host, opt.port, strerror(err ? err : errno));
        sub_close(s);
        return;
    }
    room_name(s->room, room, sizeof(room));
    if (s->kind == KIND_WS) {
        unsigned char raw[16];
        char key[32];

        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
            for (int i = 0; i < 16; i++) {
                raw[i] = (unsigned char)random();
            }
        }
        base64_encode(raw, 16, key);
        ws_accept_for(key, s->accept);
        if (opt.target == TARGET_PARLEY) {
            n = snprintf(req, sizeof(req), "GET /ws/chat/%s?token=%s HTTP/1.1\r\n", room, s->token ? s->token : token);
        } else {
            n = snprintf(req, sizeof(req), "GET /sub/%s HTTP/1.1\r\n", room);
        }
        n += snprintf(req + n, sizeof(req) - (size_t)n,
                      "Host: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n", opt.host, opt.port, key,
                      !opt.deflate ? "" : opt.inflate_once
                      ? "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits\r\n"
                      : "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    } else {
        if (opt.target == TARGET_PARLEY) {
            n = snprintf(req, sizeof(req), "GET /api/rooms/%s/events?token=%s HTTP/1.1\r\n", room,
                         s->token ? s->token : token);
        } else {
            n = snprintf(req, sizeof(req), "GET /sub/%s HTTP/1.1\r\n", room);
        }
        n += snprintf(req + n, sizeof(req) - (size_t)n,
                      "Host: %s:%d\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
                      opt.host, opt.port);
    }
    /* A fresh socket's send buffer always takes a request this small. */
    if (write(s->fd, req, (size_t)n) != n) {
        sub_error(s, "write: %s", strerror(errno));
        sub_close(s);
        return;
    }
    s->state = SUB_HANDSHAKE;
    event_del(&s->ev);
    event_assign(&s->ev, S.base, s->fd, EV_READ | EV_PERSIST, sub_on_event, s);
    event_add(&s->ev, NULL);
}

static void sub_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct sub *s = arg;
    int64_t now;
    ssize_t n;

    (void)what;
    if (s->state == SUB_CONNECTING) {
        sub_on_connected(s);
        return;
    }
    n = read(fd, rbuf, RBUF_READ);
    now = now_ns();
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        if (s->state == SUB_HANDSHAKE && s->pend.len > 0) {
            char status[160];
            http_status_line(s->pend.p, s->pend.len, status, sizeof(status));
            sub_error(s, "connection closed during the handshake after \"%s\"", status);
        } else {
            sub_error(s, "connection %s by the server%s", n == 0 ? "closed" : "reset",
                      s->ready ? "" : " before it was ready");
        }
        sub_close(s);
        return;
    }
    if (s->state == SUB_HANDSHAKE) {
        const char *end;
        size_t hlen, rest;

        if (buf_append(&s->pend, rbuf, (size_t)n) < 0) {
            sub_close(s);
            return;
        }
        end = memmem(s->pend.p, s->pend.len, "\r\n\r\n", 4);
        if (end == NULL) {
            if (s->pend.len > 16384) {
                sub_error(s, "response head over 16 KiB");
                sub_close(s);
            }
            return;
        }
        hlen = (size_t)(end + 4 - s->pend.p);
        if (sub_check_head(s, hlen) < 0) {
            sub_close(s);
            return;
        }
        s->state = SUB_OPEN;
        rest = s->pend.len - hlen;
        S.rx_bytes += rest;
        memcpy(rbuf, s->pend.p + hlen, rest);   /* pend holds < 16 KiB + one read */
        buf_free(&s->pend);
        if (rest > 0) {
            sub_feed_body(s, rbuf, rest, now);
        }
        return;
    }
    S.rx_bytes += (uint64_t)n;
    sub_feed_body(s, rbuf, (size_t)n, now);
}

static void sub_start(struct sub *s)
{
    struct sockaddr_in src = { .sin_family = AF_INET };

    src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + (uint32_t)(s->index % opt.src_addrs));
    s->started_ns = now_ns();
    s->state = SUB_CONNECTING;
    S.inflight++;
    for (int i = 0; i < MAX_PUBS; i++) {
        s->last[i] = -1;
    }
    s->fd = dial_loopback(1, &src);
    if (s->fd < 0) {
        sub_error(s, "connect from 127.0.0.%d: %s", 1 + s->index % opt.src_addrs, strerror(errno));
        sub_close(s);
        return;
    }
    event_assign(&s->ev, S.base, s->fd, EV_WRITE, sub_on_event, s);
    event_add(&s->ev, NULL);
}

static void subs_start_more(void)
{
    static int running;

    /* sub_start can fail at once and call back in here: no recursion. */
    if (running) {
        return;
    }
    running = 1;
    while (S.inflight < opt.concurrency && S.next < S.nsubs) {
        sub_start(&S.subs[S.order[S.next++]]);
    }
    running = 0;
}

static void ctl_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- --chat: the users post ---- */

#define POSTER_WINDOW 4096      /* posts unanswered on one connection */

/* A keep-alive HTTP connection a process posts over, pipelined: for
 * parley's SSE users, and for every nchan user (nchan's usual way). */
struct poster {
    struct event ev;
    int fd;
    int want_write;
    struct buf in;
    struct buf out;
    int32_t room[POSTER_WINDOW];    /* per unanswered request: its room, -1: a typing notice */
    int head, outstanding;
};

static void poster_on_event(evutil_socket_t fd, short what, void *arg);

static void poster_listen(struct poster *po, int want_write)
{
    if (event_initialized(&po->ev)) {
        event_del(&po->ev);
    }
    po->want_write = want_write;
    event_assign(&po->ev, S.base, po->fd, EV_READ | EV_PERSIST | (want_write ? EV_WRITE : 0), poster_on_event, po);
    event_add(&po->ev, NULL);
}

static void poster_open(struct poster *po)
{
    po->head = po->outstanding = 0;
    po->fd = dial_loopback(0, NULL);        /* loopback: at once */
    if (po->fd < 0) {
        fprintf(stderr, "loadgen[%d]: post connection: %s\n", S.proc, strerror(errno));
        return;
    }
    evutil_make_socket_nonblocking(po->fd);
    poster_listen(po, 0);
}

/* Closes PO (its unanswered posts count as errors) and, while the users
 * still post, opens it again. */
static void poster_reset(struct poster *po, const char *why)
{
    if (why != NULL) {
        fprintf(stderr, "loadgen[%d]: post connection: %s, %d posts unanswered\n", S.proc, why, po->outstanding);
    }
    S.post_errors += (uint64_t)po->outstanding;
    event_del(&po->ev);
    close(po->fd);
    po->fd = -1;
    buf_free(&po->in);
    buf_free(&po->out);
    if (!S.stopping) {
        poster_open(po);
    }
}

static void poster_flush(struct poster *po)
{
    while (po->out.len > 0) {
        ssize_t w = write(po->fd, po->out.p, po->out.len);

        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            break;
        }
        if (w <= 0) {
            poster_reset(po, strerror(errno));
            return;
        }
        buf_keep_tail(&po->out, po->out.len - (size_t)w);
    }
    if (po->want_write != (po->out.len > 0)) {
        poster_listen(po, po->out.len > 0);
    }
}

/* Reads the answers: 2xx counts the post in its room. */
static void poster_read(struct poster *po)
{
    ssize_t n = read(po->fd, rbuf, RBUF_READ);
    size_t off = 0;

    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        /* A keep-alive timeout once the users are quiet is no news. */
        poster_reset(po, S.stopping && po->outstanding == 0 ? NULL : n == 0 ? "closed by the server" : strerror(errno));
        return;
    }
    if (buf_append(&po->in, rbuf, (size_t)n) < 0) {
        poster_reset(po, "answers over 1 MiB");
        return;
    }
    for (;;) {
        int status, close_after, room, r;
        size_t used, bodylen;
        const char *body;

        r = http_response_parse(po->in.p + off, po->in.len - off, &status, &used, &body, &bodylen, &close_after);
        if (r == 0) {
            break;
        }
        if (r < 0 || po->outstanding == 0) {
            poster_reset(po, r < 0 ? "malformed response" : "an answer to no request");
            return;
        }
        room = po->room[po->head];
        po->head = (po->head + 1) % POSTER_WINDOW;
        po->outstanding--;
        if (status / 100 != 2) {
            if (S.post_errors++ < MAX_ERRORS_SHOWN) {
                fprintf(stderr, "loadgen[%d]: post answered %d %.*s\n", S.proc, status,
                        (int)(bodylen > 200 ? 200 : bodylen), body);
            }
        } else if (room >= 0) {
            S.room_posted[room]++;
        }
        off += used;
        if (close_after) {
            buf_keep_tail(&po->in, po->in.len - off);
            poster_reset(po, po->outstanding > 0 ? "\"Connection: close\"" : NULL);
            return;
        }
    }
    buf_keep_tail(&po->in, po->in.len - off);
}

static void poster_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct poster *po = arg;

    (void)fd;
    if (what & EV_WRITE) {
        poster_flush(po);
    }
    if (po->fd >= 0 && (what & EV_READ)) {
        poster_read(po);
    }
}

static void poster_send(struct poster *po, int room, const char *req, size_t n)
{
    if (po->fd < 0 || po->outstanding == POSTER_WINDOW || buf_append(&po->out, req, n) < 0) {
        S.post_skipped++;
        return;
    }
    po->room[(po->head + po->outstanding) % POSTER_WINDOW] = room;
    po->outstanding++;
    poster_flush(po);
}

/* User S says something in its room: parley's WebSocket users over their
 * own connection (a typing notice first), everyone else over HTTP. */
static void user_post(struct sub *s)
{
    char body[256], cmid[48] = "", req[1024], room[80];
    int64_t t = now_ns();
    int n;

    if (!s->ready || s->state != SUB_OPEN) {
        S.post_skipped++;
        return;
    }
    room_name(s->room, room, sizeof(room));
    if (opt.cmid) {
        snprintf(cmid, sizeof(cmid), ",\"client_msg_id\":\"u%d-%d\"", s->index, s->posts);
    }
    if (opt.target == TARGET_PARLEY && s->kind == KIND_WS) {
        n = snprintf(body, sizeof(body), "{\"type\":\"message\",\"content\":\"n=%d p=%d t=%" PRId64 "\"%s}",
                     s->posts, s->index, t, cmid);
        ws_send(s, 0x1, "{\"type\":\"typing\"}", 17);
        ws_send(s, 0x1, body, (size_t)n);
        s->unacked++;
    } else if (opt.target == TARGET_PARLEY) {
        int blen = snprintf(body, sizeof(body), "{\"content\":\"n=%d p=%d t=%" PRId64 "\"%s}", s->posts, s->index, t,
                            cmid);
        n = snprintf(req, sizeof(req), "POST /api/rooms/%s/messages HTTP/1.1\r\nHost: %s:%d\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     room, opt.host, opt.port, s->token ? s->token : token, blen, body);
        poster_send(&S.posters[s->index % opt.posters], s->room, req, (size_t)n);
    } else {
        struct poster *po = &S.posters[s->index % opt.posters];
        int blen;

        if (s->kind == KIND_WS) {
            blen = snprintf(body, sizeof(body), "typing p=%d", s->index);
            n = snprintf(req, sizeof(req), "POST /pub/%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/plain\r\n"
                         "Content-Length: %d\r\n\r\n%s", room, opt.host, opt.port, blen, body);
            poster_send(po, -1, req, (size_t)n);
        }
        blen = snprintf(body, sizeof(body), "n=%d p=%d t=%" PRId64, s->posts, s->index, t);
        n = snprintf(req, sizeof(req), "POST /pub/%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %d\r\n\r\n%s", room, opt.host, opt.port, blen, body);
        poster_send(po, s->room, req, (size_t)n);
    }
    s->posts++;
}

/* Each user posts once per period, the users of a plan evenly spread. */
static void child_on_post(evutil_socket_t fd, short what, void *arg)
{
    int64_t elapsed = now_ns() - S.chat_start_ns;

    (void)fd;
    (void)what;
    (void)arg;
    for (int k = 0; k < 2; k++) {
        struct plan *pl = &S.plan[k];
        long due;

        if (pl->n == 0) {
            continue;
        }
        due = (long)((double)elapsed / (double)pl->period_ns * pl->n);
        while (pl->done < due) {
            user_post(&S.subs[pl->users[pl->done % pl->n]]);
            pl->done++;
        }
    }
}

static void chat_start(void)
{
    struct timeval tv = { 0, 2000 };

    for (int i = 0; i < opt.posters; i++) {
        poster_open(&S.posters[i]);
    }
    S.chat_start_ns = now_ns();
    S.post_timer = event_new(S.base, -1, EV_PERSIST, child_on_post, NULL);
    event_add(S.post_timer, &tv);
}

static int chat_all_answered(void)
{
    for (int i = 0; i < opt.posters; i++) {
        if (S.posters[i].fd >= 0 && S.posters[i].outstanding > 0) {
            return 0;
        }
    }
    for (int i = 0; i < S.nsubs; i++) {
        if (S.subs[i].unacked > 0 && S.subs[i].state == SUB_OPEN) {
            return 0;
        }
    }
    return 1;
}

/* After STOP, once the posts are answered (or 5 s): what the server took, per room. */
static void chat_report_posted(void)
{
    long sent = 0;

    for (int r = 0; r < opt.rooms; r++) {
        if (S.room_posted[r] > 0) {
            ctl_send("POSTED room=%d n=%ld\n", r, S.room_posted[r]);
        }
    }
    for (int i = 0; i < S.nsubs; i++) {
        sent += S.subs[i].posts;
    }
    ctl_send("POSTEND sent=%ld errors=%" PRIu64 " skipped=%" PRIu64 "\n", sent, S.post_errors, S.post_skipped);
    S.stopping = 2;
}

static void ctl_send(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(line)) {
        die("control line over %zu bytes", sizeof(line));
    }
    if (write_all(S.ctl, line, (size_t)n) < 0) {
        exit(1);                /* the parent is gone */
    }
}

static void child_check_ready(void)
{
    if (!S.ready_sent && S.nready + S.nfailed == S.nsubs) {
        S.ready_sent = 1;
        S.cpu_ready_ns = rusage_ns(RUSAGE_SELF);
        ctl_send("READY ready=%d failed=%d\n", S.nready, S.nfailed);
    }
}

static void child_report(void)
{
    int alive = 0;
    char line[128];
    struct buf out = { 0 };

    for (int i = 0; i < S.nsubs; i++) {
        alive += S.subs[i].state == SUB_OPEN && S.subs[i].ready;
    }
    ctl_send("REPORT ready=%d failed=%d closed=%d alive=%d expected=%" PRIu64 " deliveries=%" PRIu64 " dup=%" PRIu64
             " ooo=%" PRIu64 " foreign=%" PRIu64 " app_errors=%" PRIu64 " max_ns=%" PRId64
             " first_ns=%" PRId64 " last_ns=%" PRId64 " cpu_window_ns=%" PRId64 " cpu_total_ns=%" PRId64
             " typing=%" PRIu64 " wire=%" PRIu64 " payload=%" PRIu64 " compressed=%" PRIu64 " rx=%" PRIu64
             " inflate_errors=%" PRIu64 " negotiated=%d declined=%d history_msgs=%" PRIu64 " inflated=%" PRIu64 "\n",
             S.nready, S.nfailed, S.nclosed, alive, S.expected, S.deliveries, S.dups, S.ooo, S.foreign, S.app_errors,
             S.max_ns, S.first_delivery_ns, S.last_delivery_ns,
             rusage_ns(RUSAGE_SELF) - S.cpu_ready_ns, rusage_ns(RUSAGE_SELF), S.typing, S.wire_bytes,
             S.payload_bytes, S.compressed, S.rx_bytes, S.inflate_errors, S.negotiated, S.declined, S.history_msgs,
             S.inflated);
    for (int i = 0; i < HIST_BUCKETS; i++) {
        if (S.hist->count[i] != 0) {
            int n = snprintf(line, sizeof(line), "H %d %" PRIu64 "\n", i, S.hist->count[i]);
            buf_append(&out, line, (size_t)n);
        }
    }
    buf_append(&out, "END\n", 4);
    if (write_all(S.ctl, out.p, out.len) < 0) {
        exit(1);
    }
    buf_free(&out);
    if (!opt.chat) {
        event_base_loopbreak(S.base);   /* --chat: the connections stay until EXIT */
    }
}

static int child_drained(void)
{
    if (S.deliveries >= S.expected) {
        return 1;
    }
    for (int i = 0; i < S.nsubs; i++) {
        const struct sub *s = &S.subs[i];
        if (s->state == SUB_OPEN && s->ready && s->nrecv < S.room_expect[s->room]) {
            return 0;
        }
    }
    return 1;
}

static void child_on_tick(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = now_ns();

    (void)fd;
    (void)what;
    (void)arg;
    if (S.stopping == 1 && (now >= S.stop_deadline || chat_all_answered())) {
        chat_report_posted();
    }
    if (S.draining) {
        if (now >= S.drain_deadline || child_drained()) {
            S.draining = 0;
            child_report();
        }
        return;
    }
    if (S.inflight > 0 && ++S.ticks % 25 == 0) {
        int64_t limit = now - (int64_t)opt.connect_timeout_ms * 1000000;
        for (int i = 0; i < S.next; i++) {
            struct sub *s = &S.subs[S.order[i]];
            if ((s->state == SUB_CONNECTING || s->state == SUB_HANDSHAKE || (s->state == SUB_OPEN && !s->ready))
                && s->started_ns < limit) {
                sub_error(s, "no %s within %d ms", s->state == SUB_CONNECTING ? "connection" : "handshake",
                          opt.connect_timeout_ms);
                sub_close(s);
            }
        }
    }
}

static void child_on_ctl(evutil_socket_t fd, short what, void *arg)
{
    char tmp[512], *nl;
    ssize_t n = read(fd, tmp, sizeof(tmp));

    (void)what;
    (void)arg;
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        exit(1);                /* the parent is gone */
    }
    buf_append(&S.ctl_in, tmp, (size_t)n);
    while (S.ctl_in.len > 0 && (nl = memchr(S.ctl_in.p, '\n', S.ctl_in.len)) != NULL) {
        long expect;
        int room, timeout;

        *nl = '\0';
        if (sscanf(S.ctl_in.p, "EXPECT room=%d n=%ld", &room, &expect) == 2 && room >= 0 && room < opt.rooms) {
            S.room_expect[room] = expect;
        } else if (sscanf(S.ctl_in.p, "DRAIN timeout_ms=%d", &timeout) == 1) {
            S.expected = 0;
            for (int i = 0; i < S.nsubs; i++) {
                S.expected += S.subs[i].ready ? (uint64_t)S.room_expect[S.subs[i].room] : 0;
            }
            S.drain_deadline = now_ns() + (int64_t)timeout * 1000000;
            S.draining = 1;
        } else if (strcmp(S.ctl_in.p, "HISTORY") == 0) {
            for (int i = 0; i < S.nsubs; i++) {
                struct sub *s = &S.subs[i];

                if (s->state == SUB_OPEN && s->ready) {
                    s->pages_left = opt.history_pages;
                    history_ask(s);
                }
            }
        } else if (strcmp(S.ctl_in.p, "START") == 0) {
            chat_start();
        } else if (strcmp(S.ctl_in.p, "STOP") == 0) {
            event_del(S.post_timer);
            S.stopping = 1;
            S.stop_deadline = now_ns() + 5000000000LL;
        } else if (strcmp(S.ctl_in.p, "EXIT") == 0) {
            event_base_loopbreak(S.base);
        }
        buf_keep_tail(&S.ctl_in, S.ctl_in.len - (size_t)(nl + 1 - S.ctl_in.p));
    }
    if (S.draining && child_drained()) {
        S.draining = 0;
        child_report();
    }
}

static int child_main(int proc, int ctl, int first, int count)
{
    struct timeval tick = { 0, 20000 };
    struct rlimit rl;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) {
        exit(1);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    srandom((unsigned)(getpid() ^ now_ns()));
    S.proc = proc;
    S.ctl = ctl;
    S.nsubs = count;
    S.first_index = first;
    S.subs = calloc((size_t)count > 0 ? (size_t)count : 1, sizeof(*S.subs));
    S.hist = calloc(1, sizeof(*S.hist));
    S.room_expect = calloc((size_t)opt.rooms, sizeof(*S.room_expect));
    S.order = calloc((size_t)count > 0 ? (size_t)count : 1, sizeof(*S.order));
    S.room_posted = calloc((size_t)opt.rooms, sizeof(*S.room_posted));
    S.posters = calloc((size_t)opt.posters, sizeof(*S.posters));
    for (int i = 0; S.posters != NULL && i < opt.posters; i++) {
        S.posters[i].fd = -1;
    }
    if (S.subs == NULL || S.hist == NULL || S.room_expect == NULL || S.order == NULL || S.room_posted == NULL
        || S.posters == NULL) {
        die("out of memory");
    }
    /* A bit per message per subscriber, up to 64 MiB per process. */
    S.track_seen = !opt.chat && (double)opt.msgs * count / 8 <= 64.0 * 1024 * 1024;
    for (int i = 0; i < count; i++) {
        struct sub *s = &S.subs[i];

        s->index = first + i;
        s->room = user_room(first + i);
        s->kind = opt.kind != KIND_MIXED ? opt.kind : s->index % 2 ? KIND_SSE : KIND_WS;
        s->fd = -1;
        S.order[i] = i;
        if (opt.chat) {
            int users = room_users(s->room);
            struct plan *pl = &S.plan[opt.big_room > 0 && s->room == 0];

            if ((s->user_last = malloc((size_t)users * sizeof(*s->user_last))) == NULL
                || (pl->users == NULL && (pl->users = calloc((size_t)count, sizeof(*pl->users))) == NULL)) {
                die("out of memory");
            }
            for (int u = 0; u < users; u++) {
                s->user_last[u] = -1;
            }
            pl->users[pl->n++] = i;
            s->token = opt.jwt_secret != NULL ? user_jwt(s->index) : NULL;
        }
    }
    S.plan[0].period_ns = (int64_t)opt.post_every_ms * 1000000;
    S.plan[1].period_ns = (int64_t)opt.big_post_every_ms * 1000000;
    for (int k = 0; k < 2; k++) {
        for (int i = S.plan[k].n - 1; i > 0; i--) {      /* a random order of speaking */
            int j = (int)(random() % (i + 1)), t = S.plan[k].users[i];

            S.plan[k].users[i] = S.plan[k].users[j];
            S.plan[k].users[j] = t;
        }
    }
    /* With several rooms, connect in a random order: a balancer taking
     * turns (leastconn, roundrobin) would otherwise see the rooms in step
     * with its turns and put every subscriber of a room on one server. */
    for (int i = count - 1; i > 0 && opt.rooms > 1; i--) {
        int j = (int)(random() % (i + 1)), t = S.order[i];

        S.order[i] = S.order[j];
        S.order[j] = t;
    }
    S.base = event_base_new();
    if (S.base == NULL) {
        die("event_base_new failed");
    }
    evutil_make_socket_nonblocking(ctl);
    S.ctl_ev = event_new(S.base, ctl, EV_READ | EV_PERSIST, child_on_ctl, NULL);
    S.tick = event_new(S.base, -1, EV_PERSIST, child_on_tick, NULL);
    event_add(S.ctl_ev, NULL);
    event_add(S.tick, &tick);
    subs_start_more();
    child_check_ready();
    event_base_dispatch(S.base);

    for (int i = 0; i < count; i++) {
        struct sub *s = &S.subs[i];
        if (s->fd >= 0) {
            event_del(&s->ev);
            close(s->fd);
        }
        buf_free(&s->pend);
        buf_free(&s->frag);
        if (s->zs != NULL) {
            inflateEnd(s->zs);
            free(s->zs);
        }
        free(s->seen);
        free(s->token);
        free(s->user_last);
    }
    for (int i = 0; i < opt.posters; i++) {
        if (S.posters[i].fd >= 0 && event_initialized(&S.posters[i].ev)) {
            event_del(&S.posters[i].ev);
            close(S.posters[i].fd);
        }
        buf_free(&S.posters[i].in);
        buf_free(&S.posters[i].out);
    }
    for (int k = 0; k < 2; k++) {
        free(S.plan[k].users);
    }
    if (S.post_timer != NULL) {
        event_free(S.post_timer);
    }
    free(S.posters);
    free(S.room_posted);
    event_free(S.ctl_ev);
    event_free(S.tick);
    event_base_free(S.base);
    if (S.zshared_ready) {
        inflateEnd(&S.zshared);
    }
    free(S.ibuf);
    for (int i = 0; i < SEEN_SLOTS; i++) {
        buf_free(&S.seen[i].in);
        buf_free(&S.seen[i].out);
    }
    buf_free(&S.ctl_in);
    free(S.subs);
    free(S.hist);
    free(S.room_expect);
    free(S.order);
    close(ctl);
    return 0;
}

/* ==================== the servers, seen through /proc ==================== */

struct pidset {
    pid_t *v;
    int n;
};

static int proc_stat(pid_t pid, pid_t *ppid, int64_t *ticks)
{
    char path[64], line[1024], *p;
    FILE *f;
    unsigned long long ut, st;
    long long cut, cst;
    int pp;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL) {
        return -1;
    }
    p = fgets(line, sizeof(line), f);
    fclose(f);
    if (p == NULL || (p = strrchr(line, ')')) == NULL) {
        return -1;
    }
    /* Fields 3.. after the name: state ppid pgrp session tty tpgid flags
     * minflt cminflt majflt cmajflt utime stime cutime cstime. */
    if (sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld",
               &pp, &ut, &st, &cut, &cst) != 5) {
        return -1;
    }
    if (ppid != NULL) {
        *ppid = pp;
    }
    if (ticks != NULL) {
        /* Children's times count once they are reaped, so a worker that
         * exits during the window is not lost. */
        *ticks = (int64_t)(ut + st) + cut + cst;
    }
    return 0;
}

/* The PIDs in the comma list ROOTS and all their descendants, now. */
static void pidset_collect(const char *roots, struct pidset *set)
{
    pid_t *all = NULL, *parent = NULL;
    int nall = 0, cap = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    char *copy = strdup(roots), *tok, *save = NULL;

    set->v = NULL;
    set->n = 0;
    while (d != NULL && (de = readdir(d)) != NULL) {
        pid_t pid = (pid_t)atoi(de->d_name), pp;
        if (pid <= 0 || proc_stat(pid, &pp, NULL) < 0) {
            continue;
        }
        if (nall == cap) {
            cap = cap ? cap * 2 : 1024;
            all = realloc(all, (size_t)cap * sizeof(*all));
            parent = realloc(parent, (size_t)cap * sizeof(*parent));
        }
        all[nall] = pid;
        parent[nall++] = pp;
    }
    if (d != NULL) {
        closedir(d);
    }
    set->v = calloc((size_t)nall + 64, sizeof(*set->v));
    for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        pid_t pid = (pid_t)atoi(tok);
        int dup = 0;
        for (int i = 0; i < set->n; i++) {
            dup |= set->v[i] == pid;
        }
        if (pid > 0 && !dup && set->n < nall + 64) {
            set->v[set->n++] = pid;
        }
    }
    /* Breadth first: every process whose parent is in the set joins it. */
    for (int i = 0; i < set->n; i++) {
        for (int j = 0; j < nall; j++) {
            if (parent[j] == set->v[i]) {
                int dup = 0;
                for (int k = 0; k < set->n; k++) {
                    dup |= set->v[k] == all[j];
                }
                if (!dup) {
                    set->v[set->n++] = all[j];
                }
            }
        }
    }
    free(all);
    free(parent);
    free(copy);
}

/* CPU time (ns) of the comma list PIDS and all their children; -1 without PIDs. */
static int64_t pids_cpu_ns(const char *pids, int *nprocs)
{
    struct pidset set;
    int64_t sum = 0, t;
    long hz = sysconf(_SC_CLK_TCK);

    if (pids == NULL) {
        return -1;
    }
    pidset_collect(pids, &set);
    for (int i = 0; i < set.n; i++) {
        if (proc_stat(set.v[i], NULL, &t) == 0) {
            sum += t;
        }
    }
    if (nprocs != NULL) {
        *nprocs = set.n;
    }
    free(set.v);
    return sum * (1000000000 / hz);
}

/* Sum of Pss (kB) of the comma list PIDS and all their children; -1 without PIDs. */
static long pids_pss_kb(const char *pids)
{
    struct pidset set;
    long sum = 0;

    if (pids == NULL) {
        return -1;
    }
    pidset_collect(pids, &set);
    for (int i = 0; i < set.n; i++) {
        char path[64], line[256];
        FILE *f;
        long kb;

        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)set.v[i]);
        if ((f = fopen(path, "r")) == NULL) {
            continue;
        }
        while (fgets(line, sizeof(line), f) != NULL) {
            if (sscanf(line, "Pss: %ld kB", &kb) == 1) {
                sum += kb;
                break;
            }
        }
        fclose(f);
    }
    free(set.v);
    return sum;
}

/* ==================== the parent: coordination and publishing ==================== */

struct child {
    pid_t pid;
    int fd;
    int count;
    struct bufferevent *bev;
    int ready_seen;
    int report_seen;
    int ready, failed, closed, alive;
    uint64_t expected, deliveries, dup, ooo, foreign, app_errors, typing;
    uint64_t wire, payload, compressed, rx, inflate_errors, history_msgs, inflated;
    int negotiated, declined;
    int64_t max_ns, first_ns, last_ns, cpu_window_ns, cpu_total_ns;
    int posted_seen;            /* --chat: POSTEND came */
};

struct pub {
    struct bufferevent *bev;
    int index;
    int connected;
    int ws_open;                /* --pub-ws: the upgrade is done (then frames follow) */
    long outstanding;
    int32_t *rooms;             /* the room of each unanswered request, oldest first: */
    long head, cap;             /* a ring of CAP, OUTSTANDING of them from HEAD */
};

/* When the CPU times are sampled: before the subscribers connect, once they
 * have settled, when the measured window (publishing or idling) starts, and
 * when every subscriber process has reported. */
enum cpu_mark { CPU_START, CPU_SETTLED, CPU_WINDOW, CPU_END, CPU_MARKS };

/* When memory is sampled: before the subscribers, once they are connected,
 * after the traffic, after the idle time (--chat). */
enum pss_mark { PSS_BEFORE, PSS_CONNECTED, PSS_TRAFFIC, PSS_IDLE, PSS_MARKS };

static struct {
    struct event_base *base;
    struct child child[MAX_PROCS];
    int nchildren;
    int nready_children, nreport_children;
    struct pub pub[MAX_PUBS];
    int npubs_connected;
    struct event *settle_timer, *pace_timer, *resp_timer, *hold_timer, *progress_timer;
    struct hist *hist;
    long sent, ok, errors, unanswered;
    long max_outstanding;
    int pub_errors_shown;
    int64_t pub_start_ns, pub_end_ns;
    int64_t start_ns, connected_ns, hold_start_ns;
    int64_t last_progress_ns;   /* last publish sent or answered */
    long status_count[600];     /* publish responses by status code */
    long *room_ok;              /* messages accepted (2xx) per room */
    int64_t cpu[CPU_MARKS][1 + MAX_CPU_GROUPS];     /* [mark][0: --server-pids, 1..: --cpu groups] */
    int64_t cpu_at_ns[CPU_MARKS];                   /* when each mark was taken */
    int64_t client_cpu_before_ns;
    long pss_before_kb, pss_after_kb;
    int server_procs;
    int publishing_done;
    int failed;
    /* --chat */
    struct event *chat_timer;
    int nposted_children;
    long post_skipped;
    long pss_traffic_kb, pss_idle_kb;
    long pss_group[PSS_MARKS][MAX_CPU_GROUPS];      /* the --cpu groups' Pss at each mark */
} P;

/* --chat: the servers' Pss (and each --cpu group's) at MARK. */
static void pss_mark(enum pss_mark mark)
{
    if (mark == PSS_TRAFFIC) {
        P.pss_traffic_kb = pids_pss_kb(opt.server_pids);
    } else if (mark == PSS_IDLE) {
        P.pss_idle_kb = pids_pss_kb(opt.server_pids);
    }
    for (int g = 0; g < opt.ncpu_groups; g++) {
        P.pss_group[mark][g] = pids_pss_kb(opt.cpu_groups[g].pids);
    }
}

/* Samples, at MARK, the CPU of the servers (slot 0) and of each --cpu group. */
static void cpu_mark(enum cpu_mark mark)
{
    P.cpu_at_ns[mark] = now_ns();
    P.cpu[mark][0] = pids_cpu_ns(opt.server_pids, mark == CPU_WINDOW ? &P.server_procs : NULL);
    for (int g = 0; g < opt.ncpu_groups; g++) {
        P.cpu[mark][1 + g] = pids_cpu_ns(opt.cpu_groups[g].pids, NULL);
    }
}

/* CPU seconds of SLOT between marks FROM and TO; -1 if not measured. */
static double cpu_s(enum cpu_mark from, enum cpu_mark to, int slot)
{
    if (P.cpu[from][slot] < 0 || P.cpu[to][slot] < 0) {
        return -1;
    }
    return (double)(P.cpu[to][slot] - P.cpu[from][slot]) / 1e9;
}

static void parent_drain(void);
static void pub_connect(struct pub *pb);
static void pub_check_done(void);

static void pub_fail_msg(int always, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Error responses are shown up to MAX_ERRORS_SHOWN; connection trouble
 * (ALWAYS) every time, as it explains the unanswered count. */
static void pub_fail_msg(int always, const char *fmt, ...)
{
    va_list ap;

    if (!always && P.pub_errors_shown++ >= MAX_ERRORS_SHOWN) {
        return;
    }
    fputs("loadgen: publish: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Drops PB's connection (its unanswered requests count as such) and
 * opens a new one if there is more to send. */
static void pub_reset(struct pub *pb)
{
    P.unanswered += pb->outstanding;
    pb->outstanding = 0;
    pb->head = 0;
    pb->ws_open = 0;
    if (pb->connected) {
        pb->connected = 0;
        P.npubs_connected--;
    }
    bufferevent_free(pb->bev);
    pb->bev = NULL;
    pub_connect(pb);
    pub_check_done();
}

/* Remembers that the request sent last on PB went to ROOM. */
static void pub_rooms_push(struct pub *pb, int room)
{
    if (pb->outstanding == pb->cap) {
        long cap = pb->cap ? pb->cap * 2 : 64;
        int32_t *r = malloc((size_t)cap * sizeof(*r));

        if (r == NULL) {
            die("out of memory");
        }
        for (long i = 0; i < pb->outstanding; i++) {
            r[i] = pb->rooms[(pb->head + i) % pb->cap];
        }
        free(pb->rooms);
        pb->rooms = r;
        pb->cap = cap;
        pb->head = 0;
    }
    pb->rooms[(pb->head + pb->outstanding) % pb->cap] = room;
    pb->outstanding++;
}

/* The room of the oldest unanswered request on PB, which is now answered. */
static int pub_rooms_pop(struct pub *pb)
{
    int room = pb->rooms[pb->head];

    pb->head = (pb->head + 1) % pb->cap;
    pb->outstanding--;
    return room;
}

/* --pub-ws: a masked text frame with PAYLOAD (RFC 6455 5.2; a client masks). */
static void pub_ws_frame(struct evbuffer *out, const char *payload, size_t len)
{
    unsigned char head[8] = { 0x81 }, mask[4];
    size_t hlen = 2;

    if (len < 126) {
        head[1] = (unsigned char)(0x80 | len);
    } else {
        head[1] = 0x80 | 126;
        head[2] = (unsigned char)(len >> 8);
        head[3] = (unsigned char)len;
        hlen = 4;
    }
    struct evbuffer_iovec v;

    for (int i = 0; i < 4; i++) {
        mask[i] = (unsigned char)random();
    }
    evbuffer_add(out, head, hlen);
    evbuffer_add(out, mask, 4);
    if (evbuffer_reserve_space(out, (ev_ssize_t)len, &v, 1) < 1) {
        return;
    }
    for (size_t i = 0; i < len; i++) {
        ((unsigned char *)v.iov_base)[i] = (unsigned char)payload[i] ^ mask[i % 4];
    }
    v.iov_len = len;
    evbuffer_commit_space(out, &v, 1);
}

static void parent_start_publishing(void);
static void pub_closed_loop_next(struct pub *pb);

/* The oldest unanswered message on PB has its answer: OK, or not (WHY:
 * what the server said).  Returns -1 when that makes no sense (then the
 * connection is reset). */
static int pub_answered(struct pub *pb, int ok, const char *why, size_t whylen)
{
    int room;

    if (pb->outstanding == 0) {
        pub_fail_msg(1, "connection %d: an answer to no request", pb->index);
        pub_reset(pb);
        return -1;
    }
    room = pub_rooms_pop(pb);
    P.last_progress_ns = now_ns();
    if (ok) {
        P.ok++;
        P.room_ok[room]++;
    } else {
        pub_fail_msg(0, "%.*s", (int)(whylen > 300 ? 300 : whylen), why);
        P.errors++;
    }
    return 0;
}

/* --pub-ws: reads the upgrade's answer, then the server's frames: the
 * "welcome" opens the connection for messages, every "ack" answers the
 * oldest message sent, every "error" too (as a failure); the room's own
 * events (the publisher is in the room) are skipped.  Returns
 * -1 when the connection was reset. */
static int pub_ws_read(struct pub *pb, struct evbuffer *in)
{
    for (;;) {
        size_t len = evbuffer_get_length(in), hlen = 2, plen;
        const unsigned char *p;

        if (!pb->ws_open) {
            struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
            if (end.pos < 0) {
                return 0;
            }
            p = evbuffer_pullup(in, end.pos + 4);
            if (strncmp((const char *)p, "HTTP/1.1 101", 12) != 0) {
                pub_fail_msg(1, "connection %d: the upgrade was refused: %.60s", pb->index, (const char *)p);
                pub_reset(pb);
                return -1;
            }
            evbuffer_drain(in, (size_t)end.pos + 4);
            pb->ws_open = 1;
            continue;
        }
        if (len < 2) {
            return 0;
        }
        p = evbuffer_pullup(in, len < 4 ? (ev_ssize_t)len : 4);
        plen = p[1] & 0x7f;
        if (plen == 126) {
            if (len < 4) {
                return 0;
            }
            plen = (size_t)p[2] << 8 | p[3];
            hlen = 4;
        } else if (plen == 127) {
            pub_fail_msg(1, "connection %d: a frame over 64 KiB", pb->index);
            pub_reset(pb);
            return -1;
        }
        if (len < hlen + plen) {
            return 0;
        }
        p = evbuffer_pullup(in, (ev_ssize_t)(hlen + plen)) + hlen;
        if (!pb->connected && memmem(p, plen < 40 ? plen : 40, "\"type\":\"welcome\"", 16) != NULL) {
            pb->connected = 1;      /* the server takes messages from now on */
            if (++P.npubs_connected == opt.pubs && P.pub_start_ns == 0) {
                parent_start_publishing();
            } else {
                pub_closed_loop_next(pb);
            }
        } else if (memmem(p, plen < 40 ? plen : 40, "\"type\":\"ack\"", 12) != NULL) {
            if (pub_answered(pb, 1, NULL, 0) < 0) {
                return -1;
            }
        } else if (memmem(p, plen < 40 ? plen : 40, "\"type\":\"error\"", 14) != NULL) {
            if (pub_answered(pb, 0, (const char *)p, plen) < 0) {
                return -1;
            }
        }
        evbuffer_drain(in, hlen + plen);
    }
}

static void pub_send(struct pub *pb)
{
    struct evbuffer *out = bufferevent_get_output(pb->bev);
    long seq = P.sent++;
    static char *body, *content;
    size_t cap = (size_t)opt.msg_size + 512;
    char room[80], cmid[48] = "";
    int blen;

    if (body == NULL && ((body = malloc(cap)) == NULL || (content = malloc(cap)) == NULL)) {
        die("out of memory");
    }
    room_name((int)(seq % opt.rooms), room, sizeof(room));
    if (opt.cmid) {
        snprintf(cmid, sizeof(cmid), ",\"client_msg_id\":\"%d-%ld\"", (int)getpid(), seq);
    }
    make_content(content, cap - 256, seq, pb->index);
    if (opt.pub_ws) {
        blen = snprintf(body, cap, "{\"type\":\"message\",\"content\":\"%s\"%s}", content, cmid);
        pub_ws_frame(out, body, (size_t)blen);
    } else if (opt.target == TARGET_PARLEY) {
        blen = snprintf(body, cap, "{\"content\":\"%s\"%s}", content, cmid);
        evbuffer_add_printf(out, "POST /api/rooms/%s/messages HTTP/1.1\r\nHost: %s:%d\r\n"
                            "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                            "Content-Length: %d\r\n\r\n", room, opt.host, opt.port, token, blen);
        evbuffer_add(out, body, (size_t)blen);
    } else {
        if (opt.msg_size > 0) {
            /* shaped like parley's event, so that both carry the same bytes */
            struct timespec ts;
            int64_t ms;

            clock_gettime(CLOCK_REALTIME, &ts);
            ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
            blen = snprintf(body, cap, "{\"type\":\"message\",\"id\":\"%" PRId64 "-0\",\"room\":\"%s\","
                            "\"from\":\"bench%d\",\"content\":\"%s\",\"ts\":%" PRId64 "}", ms, room,
                            (int)getpid(), content, ms);
        } else {
            blen = snprintf(body, cap, "%s", content);
        }
        evbuffer_add_printf(out, "POST /pub/%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/plain\r\n"
                            "Content-Length: %d\r\n\r\n", room, opt.host, opt.port, blen);
        evbuffer_add(out, body, (size_t)blen);
    }
    P.last_progress_ns = now_ns();
    pub_rooms_push(pb, (int)(seq % opt.rooms));
    if (pb->outstanding > P.max_outstanding) {
        P.max_outstanding = pb->outstanding;
    }
}

static void pub_check_done(void)
{
    if (!P.publishing_done && P.sent == opt.msgs && P.ok + P.errors + P.unanswered == opt.msgs) {
        P.publishing_done = 1;
        P.pub_end_ns = now_ns();
        parent_drain();
    }
}

/* Sends what the closed loop or the pace allows on PB. */
static void pub_closed_loop_next(struct pub *pb)
{
    if (opt.rate == 0 && pb->connected && pb->outstanding == 0 && P.sent < opt.msgs) {
        pub_send(pb);
    }
}

static void pub_on_read(struct bufferevent *bev, void *arg)
{
    struct pub *pb = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    (void)bev;
    if (opt.pub_ws) {
        if (pub_ws_read(pb, in) == 0) {
            pub_closed_loop_next(pb);
            pub_check_done();
        }
        return;
    }
    while (evbuffer_get_length(in) > 0) {
        size_t len = evbuffer_get_length(in), used, bodylen;
        const char *p = (const char *)evbuffer_pullup(in, -1), *body;
        int status, close_after, answered, r = http_response_parse(p, len, &status, &used, &body, &bodylen, &close_after);

        if (r == 0) {
            return;
        }
        if (r < 0) {
            char line[160];
            http_status_line(p, len, line, sizeof(line));
            pub_fail_msg(1, "connection %d: malformed response \"%s\" (%zu bytes buffered)", pb->index, line, len);
            pub_reset(pb);
            return;
        }
        if (status >= 100 && status < 600) {
            P.status_count[status]++;
        }
        if (status / 100 == 2) {
            answered = pub_answered(pb, 1, NULL, 0);
        } else {
            char why[400];
            http_status_line(p, len, why, 160);
            snprintf(why + strlen(why), sizeof(why) - strlen(why), " %.*s", (int)(bodylen > 200 ? 200 : bodylen), body);
            answered = pub_answered(pb, 0, why, strlen(why));
        }
        if (answered < 0) {
            return;
        }
        evbuffer_drain(in, used);
        if (close_after) {
            if (pb->outstanding > 0) {
                pub_fail_msg(1, "connection %d: \"Connection: close\" with %ld requests unanswered",
                             pb->index, pb->outstanding);
            }
            pub_reset(pb);
            return;
        }
        pub_closed_loop_next(pb);
    }
    pub_check_done();
}

static void parent_start_publishing(void);

static void pub_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct pub *pb = arg;

    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;

        setsockopt(bufferevent_getfd(pb->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (opt.pub_ws) {
            char room[80];

            /* Counted as connected once upgraded (pub_ws_read). */
            room_name(0, room, sizeof(room));
            evbuffer_add_printf(bufferevent_get_output(pb->bev),
                                "GET /ws/chat/%s?token=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                "Sec-WebSocket-Version: 13\r\n\r\n", room, token, opt.host, opt.port);
            return;
        }
        pb->connected = 1;
        if (++P.npubs_connected == opt.pubs && P.pub_start_ns == 0) {
            parent_start_publishing();
        } else {
            pub_closed_loop_next(pb);
        }
        return;
    }
    pub_fail_msg(1, "connection %d %s%s%s", pb->index, (what & BEV_EVENT_EOF) ? "closed by the server" : "failed",
                 (what & BEV_EVENT_ERROR) ? ": " : "",
                 (what & BEV_EVENT_ERROR) ? strerror(EVUTIL_SOCKET_ERROR()) : "");
    if (!pb->connected) {
        P.failed = 1;
        event_base_loopbreak(P.base);
        return;
    }
    pub_reset(pb);
}

static void pub_connect(struct pub *pb)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port) };

    if (P.sent >= opt.msgs) {
        return;                 /* nothing more to say */
    }
    inet_pton(AF_INET, opt.host, &sa.sin_addr);
    pb->bev = bufferevent_socket_new(P.base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(pb->bev, pub_on_read, NULL, pub_on_event, pb);
    bufferevent_enable(pb->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(pb->bev, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        pub_fail_msg(1, "cannot connect: %s", strerror(errno));
        bufferevent_free(pb->bev);
        pb->bev = NULL;
        P.failed = 1;
        event_base_loopbreak(P.base);
    }
}

/* Open loop: every message due by now goes out, round robin over the
 * connections, whatever is still unanswered on them. */
static void parent_on_pace(evutil_socket_t fd, short what, void *arg)
{
    int64_t elapsed = now_ns() - P.pub_start_ns;
    long due = (long)((double)elapsed * opt.rate / 1e9) + 1;

    (void)fd;
    (void)what;
    (void)arg;
    if (due > opt.msgs) {
        due = opt.msgs;
    }
    while (P.sent < due) {
        struct pub *pb = &P.pub[P.sent % opt.pubs];
        int tries = 0;

        while (!pb->connected && tries++ < opt.pubs) {
            pb = &P.pub[(pb->index + 1) % opt.pubs];
        }
        if (!pb->connected) {
            P.sent++;
            P.errors++;         /* no connection to send it on */
            continue;
        }
        pub_send(pb);
    }
    if (P.sent == opt.msgs) {
        struct timeval tv = { opt.drain_ms / 1000, (opt.drain_ms % 1000) * 1000 };

        event_del(P.pace_timer);
        event_add(P.resp_timer, &tv);
        pub_check_done();
    }
}

/* Responses still missing this long after the last send: give up on them. */
static void parent_on_resp_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!P.publishing_done) {
        long missing = opt.msgs - P.ok - P.errors - P.unanswered;
        fprintf(stderr, "loadgen: %ld publish responses missing %d ms after the last send\n", missing, opt.drain_ms);
        P.unanswered += missing;
        pub_check_done();
    }
}

static void parent_start_publishing(void)
{
    cpu_mark(CPU_WINDOW);
    P.client_cpu_before_ns = rusage_ns(RUSAGE_SELF);
    P.pub_start_ns = now_ns();
    if (opt.rate > 0) {
        double period_us = 1e6 / opt.rate;
        struct timeval tv = { 0, period_us < 1000 ? 1000 : (period_us > 100000 ? 100000 : (long)period_us) };

        P.pace_timer = event_new(P.base, -1, EV_PERSIST, parent_on_pace, NULL);
        event_add(P.pace_timer, &tv);
        parent_on_pace(-1, 0, NULL);
    } else {
        for (int i = 0; i < opt.pubs; i++) {
            pub_closed_loop_next(&P.pub[i]);
        }
    }
}

/* Tells the subscriber processes how many messages each room's subscribers
 * should get, and to report once they have them (or the drain time is up). */
static void parent_drain(void)
{
    struct buf out = { 0 };
    char line[64];
    int n;

    for (int r = 0; r < opt.rooms; r++) {
        if (P.room_ok[r] > 0) {
            n = snprintf(line, sizeof(line), "EXPECT room=%d n=%ld\n", r, P.room_ok[r]);
            buf_append(&out, line, (size_t)n);
        }
    }
    n = snprintf(line, sizeof(line), "DRAIN timeout_ms=%d\n", opt.msgs > 0 ? opt.drain_ms : 0);
    if (buf_append(&out, line, (size_t)n) < 0) {
        die("out of memory");
    }
    for (int i = 0; i < P.nchildren; i++) {
        if (write_all(P.child[i].fd, out.p, out.len) < 0) {
            fprintf(stderr, "loadgen: subscriber process %d is gone\n", i);
        }
    }
    buf_free(&out);
}

static void parent_on_hold(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    P.pub_end_ns = now_ns();    /* the end of the idle window */
    parent_drain();
}

/* Sends LINE to every subscriber process. */
static void children_send(const char *line)
{
    for (int i = 0; i < P.nchildren; i++) {
        if (write_all(P.child[i].fd, line, strlen(line)) < 0) {
            fprintf(stderr, "loadgen: subscriber process %d is gone\n", i);
        }
    }
}

static void parent_on_chat_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    P.pub_end_ns = now_ns();
    children_send("STOP\n");
}

/* --chat: the users post for --secs; the processes then say what the
 * server took per room, and the drain expects exactly that. */
static void parent_chat_start(void)
{
    struct timeval tv = { opt.secs, 0 };

    cpu_mark(CPU_WINDOW);
    P.client_cpu_before_ns = rusage_ns(RUSAGE_SELF);
    P.pub_start_ns = now_ns();
    children_send("START\n");
    P.chat_timer = evtimer_new(P.base, parent_on_chat_stop, NULL);
    event_add(P.chat_timer, &tv);
}

static void parent_on_chat_idle(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    pss_mark(PSS_IDLE);
    event_base_loopbreak(P.base);
}

/* Everyone is connected and settled: measure memory, then publish. */
static void parent_on_settled(evutil_socket_t fd, short what, void *arg)
{
    int ready = 0, failed = 0;

    (void)fd;
    (void)what;
    (void)arg;
    P.pss_after_kb = pids_pss_kb(opt.server_pids);
    pss_mark(PSS_CONNECTED);
    cpu_mark(CPU_SETTLED);
    for (int i = 0; i < P.nchildren; i++) {
        ready += P.child[i].ready;
        failed += P.child[i].failed;
    }
    if (!opt.quiet && P.pss_after_kb >= 0) {
        fprintf(stderr, "loadgen: %d subscribers ready, %d failed; server Pss %ld kB -> %ld kB\n",
                ready, failed, P.pss_before_kb, P.pss_after_kb);
    } else if (!opt.quiet) {
        fprintf(stderr, "loadgen: %d subscribers ready, %d failed\n", ready, failed);
    }
    if (ready == 0) {
        fprintf(stderr, "loadgen: no subscriber could connect\n");
        P.failed = 1;
        event_base_loopbreak(P.base);
        return;
    }
    if (opt.chat) {
        parent_chat_start();
        return;
    }
    if (opt.history_pages > 0) {
        char line[64];

        /* every subscriber asks, page after page; then they report */
        cpu_mark(CPU_WINDOW);
        P.client_cpu_before_ns = rusage_ns(RUSAGE_SELF);
        P.pub_start_ns = now_ns();
        P.publishing_done = 1;
        for (int r = 0; r < opt.rooms; r++) {
            snprintf(line, sizeof(line), "EXPECT room=%d n=%d\n", r, opt.history_pages);
            children_send(line);
        }
        children_send("HISTORY\n");
        snprintf(line, sizeof(line), "DRAIN timeout_ms=%d\n", opt.drain_ms + 60000);
        children_send(line);
        return;
    }
    if (opt.msgs == 0) {
        struct timeval tv = { opt.hold_ms / 1000, (opt.hold_ms % 1000) * 1000 };
        cpu_mark(CPU_WINDOW);
        P.hold_start_ns = now_ns();
        P.hold_timer = evtimer_new(P.base, parent_on_hold, NULL);
        event_add(P.hold_timer, &tv);
        return;
    }
    for (int i = 0; i < opt.pubs; i++) {
        P.pub[i].index = i;
        pub_connect(&P.pub[i]);
    }
}

static void parent_on_progress(evutil_socket_t fd, short what, void *arg)
{
    long outstanding = 0;

    (void)fd;
    (void)what;
    (void)arg;
    /* A server that stops answering must not hang the closed loop. */
    for (int i = 0; i < opt.pubs; i++) {
        outstanding += P.pub[i].outstanding;
    }
    if (P.pub_start_ns != 0 && !P.publishing_done && outstanding > 0
        && now_ns() - P.last_progress_ns > (int64_t)(opt.drain_ms > 2000 ? opt.drain_ms : 2000) * 1000000) {
        fprintf(stderr, "loadgen: publishing stalled: %ld sent, %ld answered; giving up on the rest\n",
                P.sent, P.ok + P.errors);
        P.errors += opt.msgs - P.sent;
        P.sent = opt.msgs;
        if (P.pace_timer != NULL) {
            event_del(P.pace_timer);
        }
        P.unanswered = opt.msgs - P.ok - P.errors;
        pub_check_done();
    }
    if (P.nready_children < P.nchildren && !opt.quiet) {
        fprintf(stderr, "loadgen: %d of %d subscriber processes ready\n", P.nready_children, P.nchildren);
    }
}

static void child_parse_report(struct child *c, const char *line)
{
    sscanf(line, "REPORT ready=%d failed=%d closed=%d alive=%d expected=%" SCNu64 " deliveries=%" SCNu64 " dup=%" SCNu64
           " ooo=%" SCNu64 " foreign=%" SCNu64 " app_errors=%" SCNu64 " max_ns=%" SCNd64 " first_ns=%" SCNd64
           " last_ns=%" SCNd64 " cpu_window_ns=%" SCNd64 " cpu_total_ns=%" SCNd64 " typing=%" SCNu64 " wire=%" SCNu64
           " payload=%" SCNu64 " compressed=%" SCNu64 " rx=%" SCNu64 " inflate_errors=%" SCNu64 " negotiated=%d"
           " declined=%d history_msgs=%" SCNu64 " inflated=%" SCNu64,
           &c->ready, &c->failed, &c->closed, &c->alive, &c->expected, &c->deliveries, &c->dup, &c->ooo, &c->foreign,
           &c->app_errors, &c->max_ns, &c->first_ns, &c->last_ns, &c->cpu_window_ns, &c->cpu_total_ns, &c->typing,
           &c->wire, &c->payload, &c->compressed, &c->rx, &c->inflate_errors, &c->negotiated, &c->declined,
           &c->history_msgs, &c->inflated);
}

static void parent_on_ctl(struct bufferevent *bev, void *arg)
{
    struct child *c = arg;
    char *line;

    while ((line = evbuffer_readln(bufferevent_get_input(bev), NULL, EVBUFFER_EOL_LF)) != NULL) {
        int idx;
        uint64_t cnt;
        long n, sent, skipped, errors;

        if (sscanf(line, "POSTED room=%d n=%ld", &idx, &n) == 2 && idx >= 0 && idx < opt.rooms) {
            P.room_ok[idx] += n;
            P.ok += n;
        } else if (sscanf(line, "POSTEND sent=%ld errors=%ld skipped=%ld", &sent, &errors, &skipped) == 3) {
            P.sent += sent;
            P.errors += errors;
            P.post_skipped += skipped;
            if (++P.nposted_children == P.nchildren) {
                opt.msgs = P.sent;
                P.publishing_done = 1;
                parent_drain();
            }
        } else if (strncmp(line, "READY ", 6) == 0) {
            sscanf(line, "READY ready=%d failed=%d", &c->ready, &c->failed);
            c->ready_seen = 1;
            if (++P.nready_children == P.nchildren) {
                P.connected_ns = now_ns();
                struct timeval tv = { opt.settle_ms / 1000, (opt.settle_ms % 1000) * 1000 };
                P.settle_timer = evtimer_new(P.base, parent_on_settled, NULL);
                event_add(P.settle_timer, &tv);
            }
        } else if (strncmp(line, "REPORT ", 7) == 0) {
            child_parse_report(c, line);
        } else if (sscanf(line, "H %d %" SCNu64, &idx, &cnt) == 2 && idx >= 0 && idx < HIST_BUCKETS) {
            P.hist->count[idx] += cnt;
            P.hist->total += cnt;
        } else if (strcmp(line, "END") == 0) {
            c->report_seen = 1;
            if (++P.nreport_children == P.nchildren) {
                cpu_mark(CPU_END);
                if (opt.history_pages > 0) {
                    P.pub_end_ns = now_ns();
                }
                if (opt.chat) {
                    struct timeval tv = { opt.idle_ms / 1000, (opt.idle_ms % 1000) * 1000 };

                    pss_mark(PSS_TRAFFIC);
                    event_free(P.chat_timer);
                    P.chat_timer = evtimer_new(P.base, parent_on_chat_idle, NULL);
                    event_add(P.chat_timer, &tv);
                } else {
                    event_base_loopbreak(P.base);
                }
            }
        }
        free(line);
    }
}

static void parent_on_ctl_event(struct bufferevent *bev, short what, void *arg)
{
    struct child *c = arg;

    (void)bev;
    (void)what;
    if (!c->report_seen) {
        fprintf(stderr, "loadgen: subscriber process %d (pid %d) died\n", (int)(c - P.child), (int)c->pid);
        P.failed = 1;
        event_base_loopbreak(P.base);
    }
}

static void fmt_us(char *out, size_t cap, double ns)
{
    if (ns >= 1e7) {
        snprintf(out, cap, "%.0f ms", ns / 1e6);
    } else if (ns >= 1e6) {
        snprintf(out, cap, "%.1f ms", ns / 1e6);
    } else {
        snprintf(out, cap, "%.0f us", ns / 1e3);
    }
}

/* The --cpu groups: a line each for people, then fields for the RESULT line. */
static void parent_report_cpu_groups(int result)
{
    for (int g = 0; g < opt.ncpu_groups; g++) {
        const char *name = opt.cpu_groups[g].name;
        double conn = cpu_s(CPU_START, CPU_SETTLED, 1 + g), win = cpu_s(CPU_WINDOW, CPU_END, 1 + g);

        if (result) {
            printf(" cpu_%s_connect_s=%.3f cpu_%s_s=%.3f", name, conn, name, win);
        } else {
            printf("  CPU of %s: %.3f s while the subscribers connected, %.3f s in the %s window\n", name, conn, win,
                   opt.msgs > 0 ? "publishing" : "idle");
        }
    }
}

static void parent_report(void)
{
    int ready = 0, failed = 0, closed = 0, alive = 0;
    uint64_t expected = 0, deliveries = 0, dup = 0, ooo = 0, foreign = 0, app_errors = 0;
    int64_t max_ns = 0, last_ns = 0, client_win = 0, client_total = 0;
    double lost, window_s, dps, p50, p99, srv_cpu_s = cpu_s(CPU_WINDOW, CPU_END, 0), cpu_per = -1, pss_per = -1;
    double connect_s = (double)(P.connected_ns - P.start_ns) / 1e9;
    char rate[32], a[32], b[32], c[32], rooms[160];
    const char *tname = opt.target == TARGET_PARLEY ? "parley" : "nchan";
    const char *kname = opt.kind == KIND_WS ? "ws" : opt.kind == KIND_SSE ? "sse" : "mixed";
    uint64_t typing = 0, wire = 0, payload = 0, compressed = 0, rx = 0, inflate_errors = 0, history_msgs = 0, inflated = 0;
    int negotiated = 0, declined = 0;

    for (int i = 0; i < P.nchildren; i++) {
        struct child *ch = &P.child[i];
        wire += ch->wire;
        payload += ch->payload;
        compressed += ch->compressed;
        rx += ch->rx;
        inflate_errors += ch->inflate_errors;
        history_msgs += ch->history_msgs;
        inflated += ch->inflated;
        negotiated += ch->negotiated;
        declined += ch->declined;
        ready += ch->ready;
        failed += ch->failed;
        closed += ch->closed;
        alive += ch->alive;
        expected += ch->expected;
        deliveries += ch->deliveries;
        dup += ch->dup;
        ooo += ch->ooo;
        foreign += ch->foreign;
        app_errors += ch->app_errors;
        max_ns = ch->max_ns > max_ns ? ch->max_ns : max_ns;
        last_ns = ch->last_ns > last_ns ? ch->last_ns : last_ns;
        client_win += ch->cpu_window_ns;
        client_total += ch->cpu_total_ns;
        typing += ch->typing;
    }
    client_win += rusage_ns(RUSAGE_SELF) - P.client_cpu_before_ns;
    client_total += rusage_ns(RUSAGE_SELF);
    lost = deliveries < expected ? (double)(expected - deliveries) : 0;
    window_s = last_ns > P.pub_start_ns && P.pub_start_ns > 0 ? (double)(last_ns - P.pub_start_ns) / 1e9 : 0;
    dps = window_s > 0 ? (double)deliveries / window_s : 0;
    p50 = hist_percentile(P.hist, 0.50);
    p99 = hist_percentile(P.hist, 0.99);
    if (srv_cpu_s >= 0 && deliveries > 0) {
        cpu_per = srv_cpu_s * 1e6 / (double)deliveries;
    }
    if (P.pss_before_kb >= 0 && ready > 0) {
        pss_per = (double)(P.pss_after_kb - P.pss_before_kb) * 1024.0 / ready;
    }
    if (opt.chat) {
        snprintf(rate, sizeof(rate), "chat");
    } else if (opt.history_pages > 0) {
        snprintf(rate, sizeof(rate), "history");
    } else if (opt.msgs == 0) {
        snprintf(rate, sizeof(rate), "idle");
    } else if (opt.rate > 0) {
        snprintf(rate, sizeof(rate), "%g", opt.rate);
    } else {
        snprintf(rate, sizeof(rate), "closed");
    }

    if (opt.rooms == 1) {
        snprintf(rooms, sizeof(rooms), "room %s", opt.room);
    } else {
        snprintf(rooms, sizeof(rooms), "%d rooms %s-0..%s-%d", opt.rooms, opt.room, opt.room, opt.rooms - 1);
    }
    printf("loadgen: %s %s on %s:%d %s: %d subscribers requested, %d connected, %d failed, "
           "%d closed later, %d still open at the end (%d processes, %d source addresses)\n",
           tname, kname, opt.host, opt.port, rooms, opt.subs, ready, failed, closed, alive,
           P.nchildren, opt.src_addrs);
    printf("  handshakes done in %.2f s (%.0f/s)\n", connect_s, connect_s > 0 ? (ready + failed) / connect_s : 0);
    if (opt.msgs == 0 && srv_cpu_s >= 0) {
        double hold_s = (double)(P.pub_end_ns - P.hold_start_ns) / 1e9;
        printf("  server CPU %.3f s over %d processes while the connections idled for %.1f s (%.1f%% of a core)\n",
               srv_cpu_s, P.server_procs, hold_s, hold_s > 0 ? 100 * srv_cpu_s / hold_s : 0);
    }
    if (opt.chat) {
        printf("  users posted %ld messages over %.1f s (every %d s; %d in the big room every %d s): %ld taken, "
               "%ld errors, %ld not sent (user not connected or connection full); %" PRIu64 " typing notices heard\n",
               P.sent, (double)(P.pub_end_ns - P.pub_start_ns) / 1e9, opt.post_every_ms / 1000, opt.big_room,
               opt.big_post_every_ms / 1000, P.ok, P.errors, P.post_skipped, typing);
    }
    if (opt.msgs > 0) {
        fmt_us(a, sizeof(a), p50);
        fmt_us(b, sizeof(b), p99);
        fmt_us(c, sizeof(c), (double)max_ns);
        if (opt.history_pages > 0) {
            printf("  every subscriber asked for %d history pages of %d messages, one after the other "
                   "(%.1f messages a page)\n", opt.history_pages, opt.history_limit,
                   deliveries > 0 ? (double)history_msgs / (double)deliveries : 0);
        } else if (!opt.chat) {
            printf("  published %ld messages (%s%s, %d connections): %ld ok, %ld errors, %ld unanswered, "
                   "at most %ld pipelined on a connection, in %.2f s\n",
                   opt.msgs, rate, opt.rate > 0 ? "/s" : " loop", opt.pubs, P.ok, P.errors, P.unanswered,
                   P.max_outstanding, (double)(P.pub_end_ns - P.pub_start_ns) / 1e9);
        }
        if (P.errors > 0) {
            printf("  publish responses by status:");
            for (int i = 100; i < 600; i++) {
                if (P.status_count[i] > 0) {
                    printf(" %d x%ld", i, P.status_count[i]);
                }
            }
            printf("\n");
        }
        printf("  deliveries %" PRIu64 " of %" PRIu64 " expected in %.2f s = %.0f/s; lost %.0f, duplicates %" PRIu64
               ", out of order %" PRIu64 ", unrecognised %" PRIu64 ", error events %" PRIu64 "\n",
               deliveries, expected, window_s, dps, lost, dup, ooo, foreign, app_errors);
        printf("  latency p50 %s, p99 %s, max %s\n", a, b, c);
        if (srv_cpu_s >= 0) {
            printf("  server CPU %.3f s over %d processes = %.2f us per delivery\n", srv_cpu_s,
                   P.server_procs, cpu_per);
        }
    }
    if (opt.deflate) {
        printf("  permessage-deflate: %d subscribers negotiated it, %d were declined; %" PRIu64 " of %" PRIu64
               " deliveries compressed, %" PRIu64 " inflated (others byte for byte the same as the one before),"
               " %" PRIu64 " messages that did not inflate\n", negotiated, declined, compressed, deliveries,
               inflated, inflate_errors);
    }
    if (deliveries > 0 && wire > 0) {
        printf("  on the wire %.1f bytes per delivery (frames, headers included) for %.1f bytes of payload (x%.3f)\n",
               (double)wire / (double)deliveries, (double)payload / (double)deliveries, (double)wire / (double)payload);
    }
    parent_report_cpu_groups(0);
    printf("  loadgen CPU %.3f s in the window, %.3f s in all\n", (double)client_win / 1e9, (double)client_total / 1e9);
    if (P.pss_before_kb >= 0) {
        printf("  server Pss %ld kB before the subscribers, %ld kB with them = %.0f bytes per subscriber\n",
               P.pss_before_kb, P.pss_after_kb, pss_per);
    }
    if (opt.chat && P.pss_before_kb >= 0 && ready > 0) {
        printf("  server Pss after the traffic %ld kB = %.0f bytes per subscriber; after %.1f s idle %ld kB = %.0f\n",
               P.pss_traffic_kb, (double)(P.pss_traffic_kb - P.pss_before_kb) * 1024.0 / ready, opt.idle_ms / 1e3,
               P.pss_idle_kb, (double)(P.pss_idle_kb - P.pss_before_kb) * 1024.0 / ready);
    }
    printf("RESULT target=%s kind=%s pub=%s subs=%d rooms=%d ready=%d failed=%d alive=%d msgs=%ld rate=%s pub_ok=%ld "
           "pub_err=%ld deliveries=%" PRIu64 " expected=%" PRIu64 " deliveries_per_s=%.0f p50_us=%.0f p99_us=%.0f "
           "max_us=%.0f lost=%.0f dup=%" PRIu64 " ooo=%" PRIu64 " server_cpu_s=%.3f server_cpu_us_per_delivery=%.3f "
           "server_cpu_connect_s=%.3f client_cpu_s=%.3f server_pss_before_kb=%ld server_pss_kb=%ld "
           "pss_per_sub_bytes=%.0f connect_s=%.2f publish_s=%.3f cpu_window_s=%.3f",
           tname, kname, opt.chat ? "own" : opt.pub_ws ? "ws" : "http", opt.subs, opt.rooms, ready, failed, alive, opt.msgs, rate, P.ok, P.errors + P.unanswered,
           deliveries, expected, dps, p50 / 1e3, p99 / 1e3, (double)max_ns / 1e3, lost, dup, ooo,
           srv_cpu_s, cpu_per, cpu_s(CPU_START, CPU_SETTLED, 0), (double)client_win / 1e9, P.pss_before_kb,
           P.pss_after_kb, pss_per, connect_s, opt.msgs > 0 ? (double)(P.pub_end_ns - P.pub_start_ns) / 1e9 : 0,
           (double)(P.cpu_at_ns[CPU_END] - P.cpu_at_ns[CPU_WINDOW]) / 1e9);
    if (opt.chat) {
        printf(" typing=%" PRIu64 " post_skipped=%ld pss_traffic_kb=%ld pss_idle_kb=%ld pss_traffic_per_sub_bytes=%.0f"
               " pss_idle_per_sub_bytes=%.0f", typing, P.post_skipped, P.pss_traffic_kb, P.pss_idle_kb,
               ready > 0 ? (double)(P.pss_traffic_kb - P.pss_before_kb) * 1024.0 / ready : -1,
               ready > 0 ? (double)(P.pss_idle_kb - P.pss_before_kb) * 1024.0 / ready : -1);
        for (int g = 0; g < opt.ncpu_groups; g++) {
            printf(" pss_%s_before_kb=%ld pss_%s_kb=%ld pss_%s_traffic_kb=%ld pss_%s_idle_kb=%ld",
                   opt.cpu_groups[g].name, P.pss_group[PSS_BEFORE][g], opt.cpu_groups[g].name,
                   P.pss_group[PSS_CONNECTED][g], opt.cpu_groups[g].name, P.pss_group[PSS_TRAFFIC][g],
                   opt.cpu_groups[g].name, P.pss_group[PSS_IDLE][g]);
        }
    }
    printf(" wire_bytes_per_delivery=%.1f payload_bytes_per_delivery=%.1f compressed=%" PRIu64 " rx_bytes=%" PRIu64
           " deflate=%s negotiated=%d declined=%d inflate_errors=%" PRIu64 " inflated=%" PRIu64,
           deliveries > 0 ? (double)wire / (double)deliveries : 0, deliveries > 0 ? (double)payload / (double)deliveries : 0,
           compressed, rx, !opt.deflate ? "no" : opt.inflate_once ? "offered-once" : "offered", negotiated, declined,
           inflate_errors, inflated);
    if (opt.msg_size > 0) {
        printf(" msg_size=%d", opt.msg_size);
    }
    if (opt.history_pages > 0) {
        printf(" history_pages=%d history_limit=%d history_msgs_per_page=%.1f", opt.history_pages, opt.history_limit,
               deliveries > 0 ? (double)history_msgs / (double)deliveries : 0);
    }
    parent_report_cpu_groups(1);
    printf("\n");
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loadgen --target parley|nchan --kind ws|sse --port PORT [options]\n"
            "  --host ADDR          server address, in 127.0.0.0/8 (127.0.0.1)\n"
            "  --subs N             subscribers (1000)\n"
            "  --procs P            subscriber processes, N/P each (1); each may open %s\n"
            "  --src-addrs K        source addresses 127.0.0.1..127.0.0.K (1 + N/20000)\n"
            "  --msgs M             messages to publish; 0: idle connections only (1000)\n"
            "  --rate R             open loop at R messages/s, pipelined; 0: closed loop (100)\n"
            "  --pubs C             publisher connections (2, at most %d)\n"
            "  --room NAME          room / channel (bench<pid>)\n"
            "  --rooms K            K rooms NAME-0..NAME-<K-1>: subscriber i in room i mod K,\n"
            "                       message n to room n mod K (1: the room NAME itself)\n"
            "  --server-pids a,b,c  servers to measure (CPU, Pss), children included\n"
            "  --cpu NAME=a,b,c     also the CPU of these processes (and children) on their own\n"
            "                       (at most %d groups, NAME of a-z 0-9 _)\n"
            "  --settle-ms MS       pause after the subscribers connect (1000)\n"
            "  --drain-ms MS        wait for late deliveries and responses (5000)\n"
            "  --hold-ms MS         with --msgs 0: keep the idle connections this long (0)\n"
            "  --connect-timeout-ms MS  per subscriber handshake (15000)\n"
            "  --concurrency C      handshakes in flight per process (100)\n"
            "  --quiet              no progress lines on stderr\n"
            "  --pub-ws             parley: publish over WebSocket ({\"type\":\"message\"}, answered by\n"
            "                       \"ack\"), as the web client does, instead of HTTP POST\n"
            "  --cmid               parley: every message carries a client_msg_id\n"
            "  --chat               every subscriber is a user who posts in its room for --secs (60),\n"
            "                       once every --post-every-ms (10000), evenly spread: parley's\n"
            "                       WebSocket users over their connection after a typing notice, its\n"
            "                       SSE users by POST; nchan's users all by POST (WebSocket users' typing\n"
            "                       notice too), over --posters (4) keep-alive connections per process\n"
            "  --kind mixed         --chat: even subscribers WebSocket, odd ones SSE\n"
            "  --big-room N         --chat: users 0..N-1 in room 0, posting every --big-post-every-ms\n"
            "                       (100000); the rest in rooms 1..K-1\n"
            "  --idle-ms MS         --chat: after the run, idle MS and measure the servers' Pss again (0)\n"
            "  --jwt-secret S       --chat with parley: user i is \"u<i>\" with an HS256 JWT signed with S\n"
            "  --deflate            WebSocket subscribers offer permessage-deflate (RFC 7692) as browsers do\n"
            "                       (\"permessage-deflate; client_max_window_bits\"), check the answer and\n"
            "                       inflate compressed messages; the server may decline\n"
            "  --inflate-once       with --deflate: also offer server_no_context_takeover, and when it is\n"
            "                       agreed inflate a message only if its compressed bytes differ from\n"
            "                       those of the last %d inflated (every subscriber gets the same bytes:\n"
            "                       the load generator's CPU then hardly depends on compression)\n"
            "  --msg-size N         message content of N bytes: the fields, then chat-like English text\n"
            "                       (nchan gets a body shaped like parley's message event)\n"
            "  --history-pages K    parley, WebSocket: instead of publishing, every subscriber asks for K\n"
            "                       history pages one after the other ({\"type\":\"history\"}); a delivery\n"
            "                       is a page, timed from its request\n"
            "  --history-limit L    messages per page (50)\n",
            "up to its RLIMIT_NOFILE hard limit", MAX_PUBS, MAX_CPU_GROUPS, SEEN_SLOTS);
}

/* --cpu NAME=PIDS */
static void parse_cpu_group(const char *arg)
{
    const char *eq = strchr(arg, '=');
    struct cpu_group *g = &opt.cpu_groups[opt.ncpu_groups];
    size_t n = eq != NULL ? (size_t)(eq - arg) : 0;

    if (opt.ncpu_groups == MAX_CPU_GROUPS) {
        die("--cpu: at most %d groups", MAX_CPU_GROUPS);
    }
    if (n == 0 || n >= sizeof(g->name) || strspn(arg, "abcdefghijklmnopqrstuvwxyz0123456789_") != n || eq[1] == '\0') {
        die("--cpu: \"%s\" is not NAME=PID,PID... (NAME of a-z 0-9 _, up to %zu)", arg, sizeof(g->name) - 1);
    }
    memcpy(g->name, arg, n);
    g->name[n] = '\0';
    g->pids = eq + 1;
    opt.ncpu_groups++;
}

static void parse_args(int argc, char **argv)
{
    static const struct option longs[] = {
        { "target", required_argument, NULL, 't' }, { "kind", required_argument, NULL, 'k' },
        { "host", required_argument, NULL, 'H' }, { "port", required_argument, NULL, 'p' },
        { "subs", required_argument, NULL, 'n' }, { "procs", required_argument, NULL, 'P' },
        { "src-addrs", required_argument, NULL, 'K' }, { "msgs", required_argument, NULL, 'm' },
        { "rate", required_argument, NULL, 'r' }, { "pubs", required_argument, NULL, 'c' },
        { "room", required_argument, NULL, 'R' }, { "server-pids", required_argument, NULL, 's' },
        { "rooms", required_argument, NULL, 6 }, { "cpu", required_argument, NULL, 7 },
        { "settle-ms", required_argument, NULL, 1 }, { "drain-ms", required_argument, NULL, 2 },
        { "hold-ms", required_argument, NULL, 3 }, { "connect-timeout-ms", required_argument, NULL, 4 },
        { "concurrency", required_argument, NULL, 5 }, { "quiet", no_argument, NULL, 'q' },
        { "pub-ws", no_argument, NULL, 8 }, { "cmid", no_argument, NULL, 9 },
        { "chat", no_argument, NULL, 10 }, { "secs", required_argument, NULL, 11 },
        { "post-every-ms", required_argument, NULL, 12 }, { "big-room", required_argument, NULL, 13 },
        { "big-post-every-ms", required_argument, NULL, 14 }, { "posters", required_argument, NULL, 15 },
        { "idle-ms", required_argument, NULL, 16 }, { "jwt-secret", required_argument, NULL, 17 },
        { "deflate", no_argument, NULL, 18 }, { "msg-size", required_argument, NULL, 19 },
        { "inflate-once", no_argument, NULL, 22 },
        { "history-pages", required_argument, NULL, 20 }, { "history-limit", required_argument, NULL, 21 },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    struct in_addr a;
    struct rlimit rl;
    int c;

    snprintf(opt.room, sizeof(opt.room), "bench%d", (int)getpid());
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 't':
            if (strcmp(optarg, "parley") == 0) {
                opt.target = TARGET_PARLEY;
            } else if (strcmp(optarg, "nchan") == 0) {
                opt.target = TARGET_NCHAN;
            } else {
                die("--target: \"%s\" is not parley or nchan", optarg);
            }
            break;
        case 'k':
            if (strcmp(optarg, "ws") == 0) {
                opt.kind = KIND_WS;
            } else if (strcmp(optarg, "sse") == 0) {
                opt.kind = KIND_SSE;
            } else if (strcmp(optarg, "mixed") == 0) {
                opt.kind = KIND_MIXED;
            } else {
                die("--kind: \"%s\" is not ws, sse or mixed", optarg);
            }
            break;
        case 'H':
            snprintf(opt.host, sizeof(opt.host), "%s", optarg);
            break;
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 'n':
            opt.subs = atoi(optarg);
            break;
        case 'P':
            opt.procs = atoi(optarg);
            break;
        case 'K':
            opt.src_addrs = atoi(optarg);
            break;
        case 'm':
            opt.msgs = atol(optarg);
            break;
        case 'r':
            opt.rate = atof(optarg);
            break;
        case 'c':
            opt.pubs = atoi(optarg);
            break;
        case 'R':
            snprintf(opt.room, sizeof(opt.room), "%s", optarg);
            break;
        case 's':
            opt.server_pids = optarg;
            break;
        case 1:
            opt.settle_ms = atoi(optarg);
            break;
        case 2:
            opt.drain_ms = atoi(optarg);
            break;
        case 3:
            opt.hold_ms = atoi(optarg);
            break;
        case 4:
            opt.connect_timeout_ms = atoi(optarg);
            break;
        case 5:
            opt.concurrency = atoi(optarg);
            break;
        case 6:
            opt.rooms = atoi(optarg);
            break;
        case 7:
            parse_cpu_group(optarg);
            break;
        case 'q':
            opt.quiet = 1;
            break;
        case 8:
            opt.pub_ws = 1;
            break;
        case 9:
            opt.cmid = 1;
            break;
        case 10:
            opt.chat = 1;
            break;
        case 11:
            opt.secs = atoi(optarg);
            break;
        case 12:
            opt.post_every_ms = atoi(optarg);
            break;
        case 13:
            opt.big_room = atoi(optarg);
            break;
        case 14:
            opt.big_post_every_ms = atoi(optarg);
            break;
        case 15:
            opt.posters = atoi(optarg);
            break;
        case 16:
            opt.idle_ms = atoi(optarg);
            break;
        case 17:
            opt.jwt_secret = optarg;
            break;
        case 18:
            opt.deflate = 1;
            break;
        case 19:
            opt.msg_size = atoi(optarg);
            break;
        case 20:
            opt.history_pages = atoi(optarg);
            break;
        case 21:
            opt.history_limit = atoi(optarg);
            break;
        case 22:
            opt.inflate_once = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        exit(2);
    }
    if (inet_pton(AF_INET, opt.host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        die("--host: \"%s\" is not an IPv4 address in 127.0.0.0/8 (loopback only)", opt.host);
    }
    if (opt.port <= 0 || opt.port > 65535) {
        die("--port: give the server's port (1..65535)");
    }
    if (opt.pub_ws && (opt.target != TARGET_PARLEY || opt.rooms != 1)) {
        die("--pub-ws: parley only, one room (a WebSocket is in one room)");
    }
    if (opt.subs < 1 || opt.procs < 1 || opt.procs > MAX_PROCS || opt.procs > opt.subs) {
        die("--subs/--procs: need 1 <= procs <= %d and procs <= subs", MAX_PROCS);
    }
    if (opt.src_addrs == 0) {
        opt.src_addrs = 1 + opt.subs / 20000;
    }
    if (opt.src_addrs < 1 || opt.src_addrs > MAX_SRC_ADDRS) {
        die("--src-addrs: 1..%d", MAX_SRC_ADDRS);
    }
    if (opt.msgs < 0 || opt.msgs > INT32_MAX || opt.rate < 0 || opt.pubs < 1 || opt.pubs > MAX_PUBS) {
        die("--msgs/--rate/--pubs out of range");
    }
    if (opt.concurrency < 1) {
        opt.concurrency = 1;
    }
    if (opt.kind == KIND_MIXED && !opt.chat) {
        die("--kind mixed: with --chat only");
    }
    if (opt.chat && (opt.secs < 1 || opt.post_every_ms < 1 || opt.big_post_every_ms < 1 || opt.posters < 1
                     || opt.idle_ms < 0 || opt.big_room < 0 || opt.big_room >= opt.subs
                     || (opt.big_room > 0 && opt.rooms < 2) || opt.pub_ws)) {
        die("--chat: needs --secs, --post-every-ms, --posters >= 1, --big-room N below --subs with --rooms >= 2, "
            "and no --pub-ws");
    }
    if (opt.inflate_once && !opt.deflate) {
        die("--inflate-once: with --deflate only");
    }
    if (opt.msg_size < 0 || opt.msg_size > 1024 * 1024) {
        die("--msg-size: 0..1048576");
    }
    if (opt.history_pages < 0 || opt.history_limit < 1
        || (opt.history_pages > 0 && (opt.target != TARGET_PARLEY || opt.kind != KIND_WS || opt.chat))) {
        die("--history-pages: parley, --kind ws, not with --chat; --history-limit >= 1");
    }
    if (opt.history_pages > 0) {
        opt.msgs = opt.history_pages;   /* nothing is published: pages are the deliveries */
    }
    if (opt.chat && opt.target == TARGET_PARLEY && opt.jwt_secret == NULL) {
        die("--chat: parley's users need --jwt-secret (the server's jwt_secret), a name each");
    }
    for (const char *r = opt.room; *r; r++) {
        if (!isalnum((unsigned char)*r) && *r != '_' && *r != '-' && *r != '.') {
            die("--room: \"%s\" is not 1..64 of A-Z a-z 0-9 _ . -", opt.room);
        }
    }
    if (opt.rooms < 1 || opt.rooms > MAX_ROOMS) {
        die("--rooms: 1..%d", MAX_ROOMS);
    }
    if (opt.rooms > 1 && strlen(opt.room) + 1 + (size_t)snprintf(NULL, 0, "%d", opt.rooms - 1) > 64) {
        die("--room: \"%s-%d\" would be over 64 characters", opt.room, opt.rooms - 1);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)(opt.subs / opt.procs + 1 + 32) > rl.rlim_max) {
        die("--subs %d over --procs %d is %d connections per process, more than its open file limit (%lu): "
            "use --procs %d or more", opt.subs, opt.procs, (opt.subs + opt.procs - 1) / opt.procs,
            (unsigned long)rl.rlim_max, (int)((opt.subs + rl.rlim_max - 64) / (rl.rlim_max - 64)));
    }
}

int main(int argc, char **argv)
{
    struct timeval progress = { 2, 0 };
    int first = 0, rc;

    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (opt.target == TARGET_PARLEY && !opt.chat) {
        parley_session();       /* --chat: each user has a JWT of its own */
    }
    for (int m = 0; m < CPU_MARKS; m++) {
        for (int g = 0; g <= MAX_CPU_GROUPS; g++) {
            P.cpu[m][g] = -1;
        }
    }
    P.pss_before_kb = pids_pss_kb(opt.server_pids);
    pss_mark(PSS_BEFORE);
    P.pss_after_kb = -1;
    cpu_mark(CPU_START);
    P.hist = calloc(1, sizeof(*P.hist));
    P.room_ok = calloc((size_t)opt.rooms, sizeof(*P.room_ok));
    if (P.hist == NULL || P.room_ok == NULL) {
        die("out of memory");
    }
    fflush(NULL);
    P.start_ns = now_ns();
    for (int i = 0; i < opt.procs; i++) {
        int sv[2], count = opt.subs / opt.procs + (i < opt.subs % opt.procs);
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            die("socketpair: %s", strerror(errno));
        }
        pid = fork();
        if (pid < 0) {
            die("fork: %s", strerror(errno));
        }
        if (pid == 0) {
            for (int j = 0; j < i; j++) {
                close(P.child[j].fd);
            }
            close(sv[0]);
            free(P.hist);
            rc = child_main(i, sv[1], first, count);
            _exit(rc);
        }
        close(sv[1]);
        P.child[i].pid = pid;
        P.child[i].fd = sv[0];
        P.child[i].count = count;
        first += count;
        P.nchildren++;
    }

    P.base = event_base_new();
    if (P.base == NULL) {
        die("event_base_new failed");
    }
    for (int i = 0; i < P.nchildren; i++) {
        struct child *c = &P.child[i];
        c->bev = bufferevent_socket_new(P.base, c->fd, 0);
        bufferevent_setcb(c->bev, parent_on_ctl, NULL, parent_on_ctl_event, c);
        bufferevent_enable(c->bev, EV_READ);
    }
    P.resp_timer = evtimer_new(P.base, parent_on_resp_timeout, NULL);
    P.progress_timer = event_new(P.base, -1, EV_PERSIST, parent_on_progress, NULL);
    event_add(P.progress_timer, &progress);
    event_base_dispatch(P.base);

    if (!P.failed) {
        parent_report();
    }
    if (opt.chat && !P.failed) {
        children_send("EXIT\n");
    }
    for (int i = 0; i < P.nchildren; i++) {
        int st;

        if (P.failed) {
            kill(P.child[i].pid, SIGTERM);
        }
        waitpid(P.child[i].pid, &st, 0);
        bufferevent_free(P.child[i].bev);
        close(P.child[i].fd);
    }
    for (int i = 0; i < MAX_PUBS; i++) {
        if (P.pub[i].bev != NULL) {
            bufferevent_free(P.pub[i].bev);
        }
        free(P.pub[i].rooms);
    }
    if (P.pace_timer != NULL) {
        event_free(P.pace_timer);
    }
    if (P.settle_timer != NULL) {
        event_free(P.settle_timer);
    }
    if (P.hold_timer != NULL) {
        event_free(P.hold_timer);
    }
    if (P.chat_timer != NULL) {
        event_free(P.chat_timer);
    }
    event_free(P.resp_timer);
    event_free(P.progress_timer);
    event_base_free(P.base);
    free(P.hist);
    free(P.room_ok);
    return P.failed ? 1 : 0;
}
