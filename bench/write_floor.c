/* write_floor - what the kernel alone charges a server for one delivery.
 *
 *   write_floor SUBS RATE SECS LEN [PER_WRITE]
 *
 * Opens SUBS loopback TCP connections; a child process reads them all with
 * epoll (the subscribers), while this process, RATE times a second for SECS
 * seconds, write()s LEN * PER_WRITE bytes to every connection: PER_WRITE
 * messages of LEN bytes sharing one write.  Nothing else happens, so the
 * CPU this process uses per message is the floor under any server that
 * writes its deliveries the same way.  Prints one line:
 *
 *   RESULT floor subs=.. rate=.. len=.. per_write=.. writes=.. us_per_write=.. us_per_message=..
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
           + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* The subscribers: read every connection until the writer goes away. */
static void read_all(const int *fds, int n)
{
    static char buf[65536];
    struct epoll_event evs[256];
    int ep = epoll_create1(0);

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = fds[i] };
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    for (;;) {
        int k = epoll_wait(ep, evs, 256, -1);
        for (int j = 0; j < k; j++) {
            if (read(evs[j].data.fd, buf, sizeof(buf)) <= 0) {
                _exit(0);
            }
        }
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(addr);
    int subs, rate, secs, len, per_write, lfd;
    int *client, *server;
    long writes = 0;
    char *msg;
    pid_t reader;
    double t0, c0, cpu;

    if (argc < 5 || (subs = atoi(argv[1])) < 1 || (rate = atoi(argv[2])) < 1
        || (secs = atoi(argv[3])) < 1 || (len = atoi(argv[4])) < 1
        || (per_write = argc > 5 ? atoi(argv[5]) : 1) < 1) {
        fprintf(stderr, "usage: write_floor SUBS RATE SECS LEN [PER_WRITE]\n");
        return 2;
    }
    client = calloc((size_t)subs, sizeof(int));
    server = calloc((size_t)subs, sizeof(int));
    msg = malloc((size_t)len * (size_t)per_write);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (client == NULL || server == NULL || msg == NULL || lfd < 0
        || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 4096) < 0
        || getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
        perror("write_floor: listen");
        return 1;
    }
    memset(msg, 'x', (size_t)len * (size_t)per_write);
    for (int i = 0; i < subs; i++) {
        client[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (client[i] < 0 || connect(client[i], (struct sockaddr *)&addr, sizeof(addr)) < 0
            || (server[i] = accept(lfd, NULL, NULL)) < 0) {
            perror("write_floor: connection");
            return 1;
        }
    }
    reader = fork();
    if (reader < 0) {
        perror("write_floor: fork");
        return 1;
    }
    if (reader == 0) {
        read_all(client, subs);
    }
    for (int i = 0; i < subs; i++) {
        close(client[i]);
    }

    /* A round of writes every 1/RATE s, like a paced publisher's fan-out. */
    t0 = now_s();
    c0 = cpu_s();
    for (long m = 0; m < (long)rate * secs; m++) {
        double wait = t0 + (double)m / rate - now_s();
        if (wait > 0) {
            usleep((useconds_t)(wait * 1e6));
        }
        for (int i = 0; i < subs; i++) {
            if (write(server[i], msg, (size_t)len * (size_t)per_write) > 0) {
                writes++;
            }
        }
    }
    cpu = cpu_s() - c0;
    kill(reader, SIGKILL);
    waitpid(reader, NULL, 0);
    printf("RESULT floor subs=%d rate=%d len=%d per_write=%d writes=%ld us_per_write=%.3f "
           "us_per_message=%.3f\n", subs, rate, len, per_write, writes, cpu * 1e6 / (double)writes,
           cpu * 1e6 / (double)writes / per_write);
    return writes == (long)subs * rate * secs ? 0 : 1;
}
