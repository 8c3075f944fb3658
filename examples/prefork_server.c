/* SPDX-License-Identifier: MIT */
/*
 * prefork_server.c - a prefork TCP server whose workers count requests
 * and bytes in per-CPU memory shared between processes (a region).
 *
 *   prefork_server [-w WORKERS] [-r NAME] [-t REQUESTS]
 *
 * The master listens on 127.0.0.1 (an ephemeral port, printed), creates
 * the region NAME (default /prefork-stats) and forks the workers, which
 * accept connections on the shared listening socket, as nginx or Apache
 * workers do.  The protocol is one line per request: "PING <text>"
 * answered by "PONG <length of text>", and "STOP", which stops the
 * server.  Each worker counts with this-CPU operations on the region's
 * objects, so no request touches a cache line another CPU writes; the
 * master shows the totals every second, and so does
 *
 *   percpu-stat -w 1 /prefork-stats
 *
 * from another shell.  -t REQUESTS runs a self-test instead: two client
 * processes send REQUESTS requests in all over several connections, then
 * STOP, and the server checks that its counts equal what the clients
 * sent and received, exactly (exit status 0).  The region's name is
 * removed when the server stops.
 */
#define _GNU_SOURCE
#include <percpu.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 64

/* The counters every worker updates: cookies into the region, valid in
 * every process forked after it was opened. */
static long *requests, *bytes_in, *bytes_out, *connections;

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "prefork_server: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Read one line (without its newline) from fd through a small buffer. */
struct reader {
    int fd;
    char buf[4096];
    size_t len, pos;
};

static ssize_t read_line(struct reader *rd, char *line, size_t max)
{
    size_t n = 0;
    for (;;) {
        if (rd->pos == rd->len) {
            ssize_t got = read(rd->fd, rd->buf, sizeof(rd->buf));
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                return n ? (ssize_t)n : -1;
            rd->len = (size_t)got;
            rd->pos = 0;
        }
        char c = rd->buf[rd->pos++];
        if (c == '\n') {
            line[n] = 0;
            return (ssize_t)n;
        }
        if (n + 1 < max)
            line[n++] = c;
    }
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* ---- a worker ---------------------------------------------------------------- */

static void serve(int conn)
{
    struct reader rd = {.fd = conn};
    char line[2048], reply[64];
    ssize_t n;
    pcpu_this_inc(connections);
    while ((n = read_line(&rd, line, sizeof(line))) >= 0) {
        if (strcmp(line, "STOP") == 0) {
            (void)write_all(conn, "BYE\n", 4);
            kill(getppid(), SIGUSR1);
            break;
        }
        int len = strncmp(line, "PING ", 5) == 0
                      ? snprintf(reply, sizeof(reply), "PONG %zd\n", n - 5)
                      : snprintf(reply, sizeof(reply), "ERR\n");
        /* Counted before the reply goes out: a client that has its reply
         * knows the request is in the totals. */
        pcpu_this_inc(requests);
        pcpu_this_add(bytes_in, n + 1);
        pcpu_this_add(bytes_out, len);
        if (write_all(conn, reply, (size_t)len) != 0)
            break;
    }
    close(conn);
}

static void worker(int lfd)
{
    signal(SIGTERM, SIG_DFL);
    signal(SIGUSR1, SIG_IGN);
    for (;;) {
        int conn = accept(lfd, NULL, NULL);
        if (conn < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            _exit(1);
        }
        serve(conn);
    }
}

/* ---- the self-test's clients ---------------------------------------------- */

struct sent {
    long requests, bytes_in, bytes_out, connections;
};

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("connect");
    return fd;
}

/* Send @count requests over connections of up to 50 requests; what was
 * sent and received goes to @out. */
static void client(int port, long count, unsigned int seed, struct sent *out)
{
    char line[256], got[64];
    memset(out, 0, sizeof(*out));
    while (count > 0) {
        int fd = connect_to(port);
        struct reader rd = {.fd = fd};
        out->connections++;
        for (int k = 0; k < 50 && count > 0; k++, count--) {
            seed = seed * 1103515245u + 12345u;
            int plen = (int)(seed >> 16) % 200;
            int len = snprintf(line, sizeof(line), "PING %.*s\n", plen,
                               "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                               "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                               "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                               "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
            if (write_all(fd, line, (size_t)len) != 0)
                die("send");
            ssize_t n = read_line(&rd, got, sizeof(got));
            if (n < 0 || atoi(got + 5) != plen)
                die("reply");
            out->requests++;
            out->bytes_in += len;
            out->bytes_out += n + 1;
        }
        close(fd);
    }
}

/* ---- the master -------------------------------------------------------------- */

static void show(const char *when)
{
    printf("%s: %ld requests, %ld bytes in, %ld bytes out, %ld connections\n", when,
           pcpu_sum(requests), pcpu_sum(bytes_in), pcpu_sum(bytes_out), pcpu_sum(connections));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int nworkers = 4;
    long selftest = 0;
    const char *name = "/prefork-stats";
    char own_name[64];
    int c;
    while ((c = getopt(argc, argv, "w:r:t:")) != -1) {
        switch (c) {
        case 'w': nworkers = atoi(optarg); break;
        case 'r': name = optarg; break;
        case 't': selftest = atol(optarg); break;
        default:
            fprintf(stderr, "usage: prefork_server [-w WORKERS] [-r REGION] [-t REQUESTS]\n");
            return 2;
        }
    }
    if (nworkers < 1 || nworkers > MAX_WORKERS || selftest < 0)
        return 2;
    if (selftest) {
        /* A name of its own, so that tests can run side by side. */
        snprintf(own_name, sizeof(own_name), "/prefork-stats-test-%ld", (long)getpid());
        name = own_name;
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 128) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        die("listen");
    int port = ntohs(a.sin_port);

    /* The region, then its objects; the workers inherit both. */
    struct pcpu_region *r = pcpu_region_open(name, 4096, PCPU_REGION_CREATE | PCPU_REGION_EXCL, 0644);
    if (!r && errno == EEXIST) {
        /* Left by a server that did not stop cleanly. */
        pcpu_region_unlink(name);
        r = pcpu_region_open(name, 4096, PCPU_REGION_CREATE | PCPU_REGION_EXCL, 0644);
    }
    if (!r)
        die(name);
    requests = pcpu_region_alloc(r, "requests", sizeof(long), 0);
    bytes_in = pcpu_region_alloc(r, "bytes_in", sizeof(long), 0);
    bytes_out = pcpu_region_alloc(r, "bytes_out", sizeof(long), 0);
    connections = pcpu_region_alloc(r, "connections", sizeof(long), 0);
    if (!requests || !bytes_in || !bytes_out || !connections)
        die("pcpu_region_alloc");
    printf("listening on 127.0.0.1:%d with %d workers; statistics in region %s "
           "(percpu-stat -w 1 %s)\n", port, nworkers, name, name);
    fflush(stdout);

    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    pid_t workers[MAX_WORKERS];
    for (int i = 0; i < nworkers; i++) {
        workers[i] = fork();
        if (workers[i] < 0)
            die("fork");
        if (workers[i] == 0)
            worker(lfd);
    }

    /* The self-test's clients: two processes, then STOP. */
    int pfd[2] = {-1, -1};
    pid_t clients[2] = {0, 0};
    if (selftest) {
        if (pipe(pfd) != 0)
            die("pipe");
        for (int k = 0; k < 2; k++) {
            clients[k] = fork();
            if (clients[k] < 0)
                die("fork");
            if (clients[k] == 0) {
                struct sent s;
                client(port, selftest / 2 + (k ? selftest % 2 : 0), 7u + (unsigned int)k, &s);
                if (write(pfd[1], &s, sizeof(s)) != (ssize_t)sizeof(s))
                    _exit(1);
                _exit(0);
            }
        }
    }
    time_t last = time(NULL);
    int clients_done = 0;
    struct sent expect = {0};
    while (!stop_requested) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (time(NULL) != last) {
            last = time(NULL);
            show("live");
        }
        for (int k = 0; selftest && k < 2; k++) {
            int st;
            if (clients[k] && waitpid(clients[k], &st, WNOHANG) == clients[k]) {
                struct sent s;
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
                    read(pfd[0], &s, sizeof(s)) != (ssize_t)sizeof(s)) {
                    fprintf(stderr, "prefork_server: a client failed\n");
                    return 1;
                }
                expect.requests += s.requests;
                expect.bytes_in += s.bytes_in;
                expect.bytes_out += s.bytes_out;
                expect.connections += s.connections;
                clients[k] = 0;
                if (++clients_done == 2) {
                    /* Everything answered: ask the server to stop. */
                    int fd = connect_to(port);
                    char bye[8];
                    struct reader rd = {.fd = fd};
                    if (write_all(fd, "STOP\n", 5) != 0 || read_line(&rd, bye, sizeof(bye)) < 0)
                        die("stop");
                    close(fd);
                    expect.connections++; /* the STOP connection */
                }
            }
        }
    }
    for (int i = 0; i < nworkers; i++)
        kill(workers[i], SIGTERM);
    for (int i = 0; i < nworkers; i++)
        waitpid(workers[i], NULL, 0);
    show("total");

    int ret = 0;
    if (selftest) {
        long got[4] = {pcpu_sum(requests), pcpu_sum(bytes_in), pcpu_sum(bytes_out),
                       pcpu_sum(connections)};
        long want[4] = {expect.requests, expect.bytes_in, expect.bytes_out, expect.connections};
        const char *what[4] = {"requests", "bytes in", "bytes out", "connections"};
        for (int k = 0; k < 4; k++) {
            if (got[k] != want[k]) {
                fprintf(stderr, "prefork_server: %s: counted %ld, the clients say %ld\n",
                        what[k], got[k], want[k]);
                ret = 1;
            }
        }
        if (expect.requests != selftest) {
            fprintf(stderr, "prefork_server: the clients sent %ld requests, not %ld\n",
                    expect.requests, selftest);
            ret = 1;
        }
        if (pcpu_region_check(r) != 0)
            ret = 1;
        printf("self-test: %s\n", ret ? "COUNTS WRONG" : "every count exact");
    }
    /* The statistics go with the server (a monitor that has the region
     * open keeps reading it until it closes it). */
    pcpu_region_unlink(name);
    pcpu_region_close(r);
    return ret;
}
