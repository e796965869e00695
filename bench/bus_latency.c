/* bus_latency.c - publish -> delivery latency through parleyd and Redis.
 *
 * Publishes COUNT messages at RATE per second over one keep-alive HTTP
 * connection (POST /api/rooms/bench/messages) and receives them on an SSE
 * stream held by a different worker than the publisher's, so every message
 * crosses Redis, the bus process and the shared ring.  Each message carries
 * its send time (CLOCK_MONOTONIC ns); the report gives p50/p99/max latency,
 * and lost, duplicate and out-of-order counts.
 *
 *   bus_latency PORT [RATE] [COUNT]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;
static int count;
static int64_t *latency_ns;     /* by message number; 0 = not received */
static int received, duplicates, out_of_order;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int dial(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n <= 0) {
            perror("write");
            exit(1);
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Reads one whole HTTP response (Content-Length framed) into BUF. */
static size_t read_response(int fd, char *buf, size_t cap)
{
    size_t have = 0;

    for (;;) {
        char *end = memmem(buf, have, "\r\n\r\n", 4);
        if (end != NULL) {
            const char *cl = strcasestr(buf, "Content-Length:");
            size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0;
            size_t total = (size_t)(end + 4 - buf) + body;
            if (have >= total) {
                buf[total] = '\0';
                return total;
            }
        }
        ssize_t n = read(fd, buf + have, cap - have - 1);
        if (n <= 0) {
            fprintf(stderr, "connection closed while reading a response\n");
            exit(1);
        }
        have += (size_t)n;
        buf[have] = '\0';
    }
}

static long worker_pid(int fd)
{
    char buf[4096];
    const char *req = "GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n";
    const char *p;

    send_all(fd, req, strlen(req));
    read_response(fd, buf, sizeof(buf));
    p = strstr(buf, "\"pid\":");
    return p ? strtol(p + 6, NULL, 10) : -1;
}

static void make_session(char *token, size_t len)
{
    char buf[4096];
    const char *req = "POST /api/sessions HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                      "Content-Length: 16\r\n\r\n{\"user\":\"bench\"}";
    int fd = dial();
    const char *p;

    send_all(fd, req, strlen(req));
    read_response(fd, buf, sizeof(buf));
    close(fd);
    p = strstr(buf, "\"token\":\"");
    if (p == NULL) {
        fprintf(stderr, "no session: %s\n", buf);
        exit(1);
    }
    snprintf(token, len, "%.43s", p + 9);
}

struct sub {
    int fd;
    long pid;
    volatile int ready;
};

static void *subscriber(void *arg)
{
    struct sub *s = arg;
    static char buf[1 << 20];
    size_t have = 0;
    int last = -1;

    for (;;) {
        ssize_t n = read(s->fd, buf + have, sizeof(buf) - have - 1);
        char *line, *nl;
        if (n <= 0) {
            return NULL;
        }
        have += (size_t)n;
        buf[have] = '\0';
        line = buf;
        while ((nl = memchr(line, '\n', have - (size_t)(line - buf))) != NULL) {
            *nl = '\0';
            if (strncmp(line, "retry:", 6) == 0) {
                s->ready = 1;
            }
            char *t = strstr(line, "\"content\":\"n=");
            if (t != NULL) {
                int64_t arrived = now_ns();
                int i = atoi(t + 13);
                char *ts = strstr(t, " t=");
                if (i >= 0 && i < count && ts != NULL) {
                    if (latency_ns[i] != 0) {
                        duplicates++;
                    } else {
                        latency_ns[i] = arrived - strtoll(ts + 3, NULL, 10);
                        received++;
                    }
                    out_of_order += i < last;
                    last = i;
                }
            }
            line = nl + 1;
        }
        have -= (size_t)(line - buf);
        memmove(buf, line, have);
    }
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    char token[64], req[1024], resp[4096];
    struct sub s;
    pthread_t th;
    int rate, pub = -1;
    long pub_pid = -1;
    int64_t start, *sorted;
    int n = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: bus_latency PORT [RATE] [COUNT]\n");
        return 2;
    }
    port = atoi(argv[1]);
    rate = argc > 2 ? atoi(argv[2]) : 1000;
    count = argc > 3 ? atoi(argv[3]) : 5000;
    latency_ns = calloc((size_t)count, sizeof(*latency_ns));
    make_session(token, sizeof(token));

    s.fd = dial();
    s.pid = worker_pid(s.fd);
    s.ready = 0;
    snprintf(req, sizeof(req), "GET /api/rooms/bench/events?token=%s HTTP/1.1\r\nHost: b\r\n\r\n", token);
    send_all(s.fd, req, strlen(req));
    pthread_create(&th, NULL, subscriber, &s);
    while (!s.ready) {
        usleep(1000);
    }
    usleep(200000);             /* the subscription is confirmed by now */

    /* The publisher must sit on another worker, so messages cross the ring. */
    for (int tries = 0; tries < 100 && (pub < 0 || pub_pid == s.pid); tries++) {
        if (pub >= 0) {
            close(pub);
        }
        pub = dial();
        pub_pid = worker_pid(pub);
    }
    start = now_ns();
    for (int i = 0; i < count; i++) {
        int64_t due = start + (int64_t)i * 1000000000 / rate;
        char body[128];
        int blen;

        while (now_ns() < due) {
            struct timespec ts = { 0, 50000 };
            nanosleep(&ts, NULL);
        }
        blen = snprintf(body, sizeof(body), "{\"content\":\"n=%d t=%lld\"}", i, (long long)now_ns());
        n = snprintf(req, sizeof(req), "POST /api/rooms/bench/messages HTTP/1.1\r\nHost: b\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s", token, blen, body);
        send_all(pub, req, (size_t)n);
        read_response(pub, resp, sizeof(resp));
        if (strncmp(resp, "HTTP/1.1 201", 12) != 0) {
            fprintf(stderr, "publish failed: %.200s\n", resp);
            return 1;
        }
    }
    for (int waited = 0; received < count && waited < 5000; waited++) {
        usleep(1000);
    }
    sorted = malloc((size_t)count * sizeof(*sorted));
    n = 0;
    for (int i = 0; i < count; i++) {
        if (latency_ns[i] != 0) {
            sorted[n++] = latency_ns[i];
        }
    }
    qsort(sorted, (size_t)n, sizeof(*sorted), cmp64);
    printf("bus latency: %d msgs at %d/s, publisher worker %ld -> subscriber worker %ld: "
           "p50 %.0f us, p99 %.0f us, max %.0f us; lost %d, duplicate %d, out of order %d\n",
           count, rate, pub_pid, s.pid,
           n ? sorted[n / 2] / 1e3 : 0.0, n ? sorted[(n * 99) / 100] / 1e3 : 0.0,
           n ? sorted[n - 1] / 1e3 : 0.0, count - received, duplicates, out_of_order);
    return received == count && duplicates == 0 && out_of_order == 0 ? 0 : 1;
}
