/* Load tool for srv's TCP, UDP and WebSocket benchmarks: one thread, epoll, N connections.
 * Modes: tcp (ping-pong of 4-byte big-endian length frames), udp (ping-pong datagrams), ws
 * (ping-pong of masked text frames after a real HTTP/1.1 upgrade) and wsbcast (N WebSocket clients;
 * one sends, time until every client received the broadcast). Every echo is checked byte for byte.
 * Prints one machine-readable "RESULT key=value ..." line (the bench scripts parse it).
 *   build: cc -O2 -o loadgen bench/loadgen.c -lcrypto
 *   usage: loadgen -m tcp|udp|ws|wsbcast -p PORT [-H 127.0.0.1] [-c CONNS] [-d SECS] [-w WARMUP]
 *          [-s SIZE] [-u PATH] [-C CPU] [-P PID] [-r ROUNDS] [-i INFLIGHT] [-R] [-q PORT2]
 *   -C CPU: also sample the busy jiffies of CPU (/proc/stat) over the measured window;
 *   -P PID: also sample utime+stime of the process tree rooted at PID over the window;
 *   -R (wsbcast): after connecting print "READY" and wait for SIGUSR1 before broadcasting;
 *   -q PORT2 (wsbcast): every odd-numbered connection goes to PORT2 (a second srv instance of a
 *      cluster); ROUND lines then also give p50/p99 on the sender's instance ("local") and on
 *      the other ("remote"). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { M_TCP, M_UDP, M_WS, M_BCAST };
enum { S_IDLE, S_CONNECTING, S_HANDSHAKE, S_OPEN, S_DEAD };
#define RBUF 4096
#define MAXMSG 1024

struct conn {
    int fd, state;
    uint32_t id;
    size_t rlen, wlen, woff;
    uint64_t sent_ns, seq, got_round;
    size_t explen;
    char key[32];
    unsigned char expect[MAXMSG + 16];
    unsigned char wbuf[MAXMSG + 16];
    unsigned char rbuf[RBUF];
};

static int mode = M_TCP, nconns = 64, msgsize = 64, inflight_max = 200, rounds = 5, stat_cpu = -1;
static int tree_root = -1, wait_go;
static double duration = 10, warmup = 1;
static const char *host = "127.0.0.1", *path = "/ws";
static int port, port2, ep;
static struct sockaddr_in addr, addr2;
static struct conn *conns;
static volatile sig_atomic_t go;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* Counters of the current window. */
static uint64_t msgs, mismatches, closed, connect_errs, handshake_errs, lost, other_frames;
static char first_error[256];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void note_error(const char *fmt, const char *what, long a)
{
    if (first_error[0] == 0)
        snprintf(first_error, sizeof(first_error), fmt, what, a);
}

/* ---- latency histogram: log-linear, 32 sub-buckets per power of two of nanoseconds (~3 %) ---- */

#define HSUB 32
#define HBUCKETS (HSUB * 48)
static uint64_t hist[HBUCKETS], hcount;

static int hindex(uint64_t v)
{
    if (v < HSUB)
        return (int)v;
    int e =
        63 - __builtin_clzll(v) - 4; /* v >> e lands in [16, 32) ... keep 5 bits: [HSUB/2, HSUB) */
    int i = e * (HSUB / 2) + (int)(v >> e);
    return i < HBUCKETS ? i : HBUCKETS - 1;
}

static uint64_t hvalue(int i) /* lower bound of bucket i */
{
    if (i < HSUB)
        return (uint64_t)i;
    int e = i / (HSUB / 2) - 1;
    uint64_t m = (uint64_t)(i - e * (HSUB / 2));
    return m << e;
}

static void hrecord(uint64_t ns)
{
    hist[hindex(ns)]++;
    hcount++;
}

static double hpercentile(double p)
{
    if (hcount == 0)
        return 0;
    uint64_t want = (uint64_t)(p / 100.0 * (double)hcount), seen = 0;
    if (want >= hcount)
        want = hcount - 1;
    for (int i = 0; i < HBUCKETS; i++) {
        seen += hist[i];
        if (seen > want)
            return (double)(hvalue(i) + hvalue(i + 1)) / 2.0 / 1000.0; /* us, bucket middle */
    }
    return 0;
}

/* ---- /proc sampling ---- */

static long long cpu_busy(int cpu)
{
    if (cpu < 0)
        return 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return 0;
    char line[512], name[16];
    snprintf(name, sizeof(name), "cpu%d ", cpu);
    long long v = 0;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, name, strlen(name)) == 0) {
            long long u, n, s, idle, iow, irq, sirq;
            if (sscanf(line + strlen(name), "%lld %lld %lld %lld %lld %lld %lld", &u, &n, &s, &idle,
                       &iow, &irq, &sirq) == 7)
                v = u + n + s + irq + sirq;
            break;
        }
    }
    fclose(f);
    return v;
}

/* utime+stime (ticks) over every live process whose ancestry reaches root. */
static long long tree_ticks(int root)
{
    if (root <= 0)
        return 0;
    enum { MAXP = 65536 };
    static int pid[MAXP], ppid[MAXP];
    static long long ticks[MAXP];
    int n = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAXP) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        char p[300], buf[1024];
        snprintf(p, sizeof(p), "/proc/%s/stat", e->d_name);
        int fd = open(p, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t k = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (k <= 0)
            continue;
        buf[k] = 0;
        char *s = strrchr(buf, ')');
        if (s == NULL)
            continue;
        /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
         * stime */
        char st;
        int pp;
        unsigned long long ut, stm;
        if (sscanf(s + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &st, &pp, &ut,
                   &stm) != 4)
            continue;
        pid[n] = atoi(e->d_name), ppid[n] = pp, ticks[n] = (long long)(ut + stm);
        n++;
    }
    closedir(d);
    long long sum = 0;
    for (int i = 0; i < n; i++) {
        int p = pid[i];
        for (int depth = 0; depth < 16 && p > 1; depth++) {
            if (p == root) {
                sum += ticks[i];
                break;
            }
            int j;
            for (j = 0; j < n && pid[j] != p; j++)
                ;
            if (j == n)
                break;
            p = ppid[j];
        }
    }
    return sum;
}

/* ---- WebSocket handshake helpers ---- */

static void b64(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = 0;
}

static void ws_accept_for(const char *key, char *out)
{
    char buf[128];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int n = snprintf(buf, sizeof(buf), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha1(), NULL);
    b64(md, mdlen, out);
}

/* ---- connections ---- */

static void ep_set(struct conn *c, uint32_t ev, int op)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(ep, op, c->fd, &e) != 0) {
        perror("epoll_ctl");
        exit(1);
    }
}

static void conn_kill(struct conn *c, const char *why)
{
    if (c->state == S_DEAD)
        return;
    note_error("%s (conn %ld)", why, (long)c->id);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = S_DEAD;
    closed++;
}

static void conn_write(struct conn *c, const void *data, size_t len)
{
    if (c->woff < c->wlen) { /* still flushing: append */
        if (c->wlen + len > sizeof(c->wbuf)) {
            conn_kill(c, "write buffer full");
            return;
        }
        memcpy(c->wbuf + c->wlen, data, len);
        c->wlen += len;
        return;
    }
    ssize_t k = send(c->fd, data, len, MSG_NOSIGNAL);
    if (k < 0 && errno != EAGAIN) {
        conn_kill(c, "send failed");
        return;
    }
    if (k < 0)
        k = 0;
    if ((size_t)k < len) {
        memcpy(c->wbuf, (const char *)data + k, len - (size_t)k);
        c->woff = 0, c->wlen = len - (size_t)k;
        ep_set(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
    }
}

static void conn_flush(struct conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t k = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno != EAGAIN)
                conn_kill(c, "send failed");
            return;
        }
        c->woff += (size_t)k;
    }
    c->woff = c->wlen = 0;
    ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
}

/* Fills buf with a payload of len bytes naming the connection and sequence (printable). */
static void fill_payload(struct conn *c, unsigned char *buf, size_t len)
{
    char tag[48];
    int n = snprintf(tag, sizeof(tag), "c%u s%llu ", c->id, (unsigned long long)c->seq);
    for (size_t i = 0; i < len; i++)
        buf[i] = i < (size_t)n ? (unsigned char)tag[i] : (unsigned char)('a' + i % 26);
}

/* Builds a masked client text frame of payload p[len] into out; returns its size. */
static size_t ws_frame(const unsigned char *p, size_t len, unsigned char *out)
{
    size_t h = 0;
    out[h++] = 0x81;
    if (len < 126)
        out[h++] = (unsigned char)(0x80 | len);
    else {
        out[h++] = 0x80 | 126;
        out[h++] = (unsigned char)(len >> 8);
        out[h++] = (unsigned char)len;
    }
    uint32_t m = (uint32_t)rnd();
    unsigned char mask[4] = {(unsigned char)(m >> 24), (unsigned char)(m >> 16),
                             (unsigned char)(m >> 8), (unsigned char)m};
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        out[h + i] = p[i] ^ mask[i & 3];
    return h + len;
}

/* Sends the next echo request and remembers what must come back. */
static void send_next(struct conn *c)
{
    unsigned char p[MAXMSG], out[MAXMSG + 16];
    size_t n = (size_t)msgsize;
    c->seq++;
    fill_payload(c, p, n);
    if (mode == M_TCP) {
        out[0] = (unsigned char)(n >> 24), out[1] = (unsigned char)(n >> 16);
        out[2] = (unsigned char)(n >> 8), out[3] = (unsigned char)n;
        memcpy(out + 4, p, n);
        memcpy(c->expect, out, n + 4);
        c->explen = n + 4;
        c->sent_ns = now_ns();
        conn_write(c, out, n + 4);
    } else if (mode == M_UDP) {
        memcpy(c->expect, p, n);
        c->explen = n;
        c->sent_ns = now_ns();
        if (send(c->fd, p, n, 0) < 0 && errno != EAGAIN)
            conn_kill(c, "udp send failed");
    } else {
        memcpy(c->expect, p, n);
        c->explen = n;
        size_t k = ws_frame(p, n, out);
        c->sent_ns = now_ns();
        conn_write(c, out, k);
    }
}

static void got_reply(struct conn *c, const unsigned char *data, size_t len)
{
    uint64_t t = now_ns();
    if (len != c->explen || memcmp(data, c->expect, len) != 0) {
        mismatches++;
        note_error("%s: reply differs from the request (conn %ld)", "echo", (long)c->id);
    } else {
        hrecord(t - c->sent_ns);
        msgs++;
    }
    send_next(c);
}

static void on_open(struct conn *c)
{
    c->state = S_OPEN;
    if (mode != M_BCAST)
        send_next(c);
}

static int conn_start(struct conn *c)
{
    int fd = socket(AF_INET, (mode == M_UDP ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        perror("socket");
        return -1;
    }
    if (mode != M_UDP) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    c->fd = fd;
    c->rlen = c->wlen = c->woff = 0;
    const struct sockaddr_in *to = port2 && (c->id & 1) ? &addr2 : &addr;
    if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) != 0 && errno != EINPROGRESS) {
        close(fd);
        connect_errs++;
        note_error("%s: connect failed errno %ld", "connect", errno);
        c->state = S_DEAD;
        return -1;
    }
    if (mode == M_UDP) {
        ep_set(c, EPOLLIN, EPOLL_CTL_ADD);
        on_open(c);
        return 0;
    }
    c->state = S_CONNECTING;
    ep_set(c, EPOLLOUT, EPOLL_CTL_ADD);
    return 0;
}

static void on_connected(struct conn *c)
{
    int err = 0;
    socklen_t sl = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
    if (err != 0) {
        connect_errs++;
        note_error("%s: connect failed errno %ld", "connect", err);
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->state = S_DEAD;
        return;
    }
    ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
    if (mode == M_TCP) {
        on_open(c);
        return;
    }
    unsigned char k[16];
    for (int i = 0; i < 16; i++)
        k[i] = (unsigned char)rnd();
    b64(k, 16, c->key);
    char req[512];
    int n =
        snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 path, host, port2 && (c->id & 1) ? port2 : port, c->key);
    c->state = S_HANDSHAKE;
    conn_write(c, req, (size_t)n);
}

/* Broadcast state (wsbcast). */
static uint64_t bc_round, bc_t0, bc_got, *bc_arrival;
/* With -q: arrivals on the sender's instance (even connections) and on the other one (odd). */
static uint64_t bc_got2[2], *bc_arrival2[2];
static char bc_token[64];

static void on_ws_message(struct conn *c, int opcode, const unsigned char *p, size_t len)
{
    if (mode == M_WS) {
        if (opcode != 1) {
            other_frames++;
            return;
        }
        got_reply(c, p, len);
        return;
    }
    size_t tl = strlen(bc_token);
    if (bc_round && opcode == 1 && len >= tl && memcmp(p + len - tl, bc_token, tl) == 0 &&
        c->got_round != bc_round) {
        c->got_round = bc_round;
        uint64_t dt = now_ns() - bc_t0;
        bc_arrival[bc_got++] = dt;
        if (port2)
            bc_arrival2[c->id & 1][bc_got2[c->id & 1]++] = dt;
    } else
        other_frames++;
}

/* Parses what is in c->rbuf; returns false if the connection died. */
static bool parse(struct conn *c)
{
    size_t off = 0;
    if (c->state == S_HANDSHAKE) {
        unsigned char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (end == NULL) {
            if (c->rlen == RBUF) {
                handshake_errs++;
                conn_kill(c, "handshake response too big");
                return false;
            }
            return true;
        }
        *end = 0;
        char want[64];
        ws_accept_for(c->key, want);
        const char *acc = strcasestr((char *)c->rbuf, "\r\nSec-WebSocket-Accept:");
        if (strncmp((char *)c->rbuf, "HTTP/1.1 101", 12) != 0 || acc == NULL) {
            handshake_errs++;
            if (first_error[0] == 0)
                snprintf(first_error, sizeof(first_error), "handshake refused: %.200s",
                         (char *)c->rbuf);
            conn_kill(c, "handshake refused");
            return false;
        }
        acc += 23;
        while (*acc == ' ')
            acc++;
        if (strncmp(acc, want, strlen(want)) != 0) {
            handshake_errs++;
            conn_kill(c, "bad Sec-WebSocket-Accept");
            return false;
        }
        off = (size_t)(end - c->rbuf) + 4;
        on_open(c);
    }
    for (;;) {
        unsigned char *p = c->rbuf + off;
        size_t avail = c->rlen - off;
        if (mode == M_TCP) {
            if (avail < 4)
                break;
            size_t l = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
            if (l > RBUF - 4) {
                conn_kill(c, "frame too big");
                return false;
            }
            if (avail < 4 + l)
                break;
            off += 4 + l;
            got_reply(c, p, 4 + l);
        } else { /* WebSocket frames from the server: never masked */
            if (avail < 2)
                break;
            int opcode = p[0] & 15;
            size_t l = p[1] & 127, h = 2;
            if (p[1] & 0x80) {
                conn_kill(c, "masked frame from the server");
                return false;
            }
            if (l == 126) {
                if (avail < 4)
                    break;
                l = ((size_t)p[2] << 8) | p[3], h = 4;
            } else if (l == 127) {
                if (avail < 10)
                    break;
                l = 0;
                for (int i = 0; i < 8; i++)
                    l = (l << 8) | p[2 + i];
                h = 10;
            }
            if (h + l > RBUF) {
                conn_kill(c, "frame too big");
                return false;
            }
            if (avail < h + l)
                break;
            off += h + l;
            if (opcode == 8) {
                conn_kill(c, "server sent close");
                return false;
            }
            on_ws_message(c, opcode, p + h, l);
        }
        if (c->state == S_DEAD)
            return false;
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    return true;
}

static void on_event(struct conn *c, uint32_t ev)
{
    if (c->state == S_CONNECTING) {
        on_connected(c);
        return;
    }
    if (ev & EPOLLOUT)
        conn_flush(c);
    if (c->state == S_DEAD || !(ev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return;
    if (mode == M_UDP) {
        unsigned char buf[MAXMSG + 16];
        for (;;) {
            ssize_t k = recv(c->fd, buf, sizeof(buf), 0);
            if (k < 0)
                break;
            got_reply(c, buf, (size_t)k);
        }
        return;
    }
    ssize_t k = recv(c->fd, c->rbuf + c->rlen, RBUF - c->rlen, 0);
    if (k == 0) {
        conn_kill(c, "server closed the connection");
        return;
    }
    if (k < 0) {
        if (errno != EAGAIN)
            conn_kill(c, "recv failed");
        return;
    }
    c->rlen += (size_t)k;
    parse(c);
}

static void on_usr1(int sig)
{
    (void)sig;
    go = 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen -m tcp|udp|ws|wsbcast -p PORT [-H HOST] [-c CONNS] [-d SECS] "
            "[-w WARMUP] [-s SIZE] [-u PATH] [-C CPU] [-P PID] [-r ROUNDS] [-i INFLIGHT] [-R] "
            "[-q PORT2]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "m:p:H:c:d:w:s:u:C:P:r:i:Rq:")) != -1) {
        switch (o) {
        case 'm':
            mode = !strcmp(optarg, "tcp")       ? M_TCP
                   : !strcmp(optarg, "udp")     ? M_UDP
                   : !strcmp(optarg, "ws")      ? M_WS
                   : !strcmp(optarg, "wsbcast") ? M_BCAST
                                                : -1;
            if (mode < 0)
                usage();
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'H':
            host = optarg;
            break;
        case 'c':
            nconns = atoi(optarg);
            break;
        case 'd':
            duration = atof(optarg);
            break;
        case 'w':
            warmup = atof(optarg);
            break;
        case 's':
            msgsize = atoi(optarg);
            break;
        case 'u':
            path = optarg;
            break;
        case 'C':
            stat_cpu = atoi(optarg);
            break;
        case 'P':
            tree_root = atoi(optarg);
            break;
        case 'r':
            rounds = atoi(optarg);
            break;
        case 'i':
            inflight_max = atoi(optarg);
            break;
        case 'R':
            wait_go = 1;
            break;
        case 'q':
            port2 = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (port <= 0 || nconns <= 0 || msgsize < 24 || msgsize > MAXMSG)
        usage();
    if (mode == M_BCAST && strcmp(path, "/ws") == 0)
        path = "/chat";
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)nconns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)nconns + 64) {
            fprintf(stderr, "loadgen: RLIMIT_NOFILE %llu too low for %d connections\n",
                    (unsigned long long)rl.rlim_cur, nconns);
            return 1;
        }
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        usage();
    addr2 = addr;
    addr2.sin_port = htons((uint16_t)port2);
    rng ^= now_ns() ^ ((uint64_t)getpid() << 32);
    signal(SIGUSR1, on_usr1);
    signal(SIGPIPE, SIG_IGN);
    ep = epoll_create1(0);
    conns = calloc((size_t)nconns, sizeof(*conns));
    bc_arrival = calloc((size_t)nconns, sizeof(*bc_arrival));
    bc_arrival2[0] = calloc((size_t)nconns, sizeof(uint64_t));
    bc_arrival2[1] = calloc((size_t)nconns, sizeof(uint64_t));
    if (conns == NULL || bc_arrival == NULL || bc_arrival2[0] == NULL || bc_arrival2[1] == NULL)
        return 1;
    for (int i = 0; i < nconns; i++)
        conns[i].id = (uint32_t)i, conns[i].fd = -1;

    /* Phase 1: connect (and upgrade) everything, at most inflight_max at a time. */
    struct epoll_event evs[1024];
    uint64_t t_start = now_ns();
    int next = 0;
    for (;;) {
        int opening = 0, open = 0, dead = 0;
        for (int i = 0; i < next; i++) {
            int s = conns[i].state;
            opening += s == S_CONNECTING || s == S_HANDSHAKE;
            open += s == S_OPEN;
            dead += s == S_DEAD;
        }
        if (next == nconns && opening == 0)
            break;
        while (next < nconns && opening < inflight_max) {
            conn_start(&conns[next++]);
            opening++;
        }
        if (now_ns() - t_start > 60000000000ull) {
            fprintf(stderr, "loadgen: connecting timed out: %d open, %d opening, %d failed\n", open,
                    opening, dead);
            break;
        }
        int n = epoll_wait(ep, evs, 1024, 100);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }
    int nopen = 0;
    for (int i = 0; i < nconns; i++)
        nopen += conns[i].state == S_OPEN;
    double connect_secs = (double)(now_ns() - t_start) / 1e9;
    fprintf(stderr, "loadgen: %d/%d connections open in %.2f s\n", nopen, nconns, connect_secs);
    if (nopen == 0) {
        printf("RESULT conns=0 open=0 error=\"%s\"\n", first_error);
        return 1;
    }

    if (mode == M_BCAST) {
        if (wait_go) {
            printf("READY open=%d connect_secs=%.2f\n", nopen, connect_secs);
            fflush(stdout);
            while (!go) {
                int n = epoll_wait(ep, evs, 1024, 100);
                for (int i = 0; i < n; i++)
                    on_event(evs[i].data.ptr, evs[i].events);
            }
        }
        struct conn *sender = NULL;
        for (int i = 0; i < nconns && sender == NULL; i++)
            if (conns[i].state == S_OPEN)
                sender = &conns[i];
        double worst = 0;
        for (int r = 1; r <= rounds; r++) {
            int alive = 0;
            for (int i = 0; i < nconns; i++)
                alive += conns[i].state == S_OPEN;
            bc_round = (uint64_t)r, bc_got = 0, bc_got2[0] = bc_got2[1] = 0;
            snprintf(bc_token, sizeof(bc_token), "bcast-%d-%08llx", r,
                     (unsigned long long)(rnd() & 0xffffffff));
            unsigned char p[MAXMSG], out[MAXMSG + 16];
            size_t tl = strlen(bc_token), n = (size_t)msgsize;
            memset(p, '.', n);
            memcpy(p + n - tl, bc_token, tl);
            size_t k = ws_frame(p, n, out);
            bc_t0 = now_ns();
            conn_write(sender, out, k);
            while (bc_got < (uint64_t)alive && now_ns() - bc_t0 < 30000000000ull) {
                int m = epoll_wait(ep, evs, 1024, 100);
                for (int i = 0; i < m; i++)
                    on_event(evs[i].data.ptr, evs[i].events);
            }
            qsort(bc_arrival, bc_got, sizeof(uint64_t), cmp_u64);
            double last = bc_got ? (double)bc_arrival[bc_got - 1] / 1e6 : 0;
            double p50 = bc_got ? (double)bc_arrival[bc_got / 2] / 1e6 : 0;
            double p99 = bc_got ? (double)bc_arrival[(bc_got * 99) / 100] / 1e6 : 0;
            if (last > worst)
                worst = last;
            printf("ROUND n=%d clients=%d received=%llu all_ms=%.2f p50_ms=%.2f p99_ms=%.2f "
                   "first_ms=%.2f",
                   r, alive, (unsigned long long)bc_got, last, p50, p99,
                   bc_got ? (double)bc_arrival[0] / 1e6 : 0);
            for (int g = 0; port2 && g < 2; g++) {
                uint64_t k = bc_got2[g], *a = bc_arrival2[g];
                qsort(a, k, sizeof(uint64_t), cmp_u64);
                printf(" %s_received=%llu %s_p50_ms=%.2f %s_p99_ms=%.2f", g ? "remote" : "local",
                       (unsigned long long)k, g ? "remote" : "local",
                       k ? (double)a[k / 2] / 1e6 : 0, g ? "remote" : "local",
                       k ? (double)a[(k * 99) / 100] / 1e6 : 0);
            }
            printf("\n");
            fflush(stdout);
            /* Let stragglers and the previous round settle before the next one. */
            uint64_t settle = now_ns();
            while (now_ns() - settle < 300000000ull) {
                int m = epoll_wait(ep, evs, 1024, 50);
                for (int i = 0; i < m; i++)
                    on_event(evs[i].data.ptr, evs[i].events);
            }
        }
        printf(
            "RESULT mode=wsbcast conns=%d open=%d connect_secs=%.2f worst_all_ms=%.2f closed=%llu "
            "connect_errs=%llu handshake_errs=%llu other_frames=%llu error=\"%s\"\n",
            nconns, nopen, connect_secs, worst, (unsigned long long)closed,
            (unsigned long long)connect_errs, (unsigned long long)handshake_errs,
            (unsigned long long)other_frames, first_error);
        return 0;
    }

    /* Phase 2: echo ping-pong, warm-up then the measured window. */
    uint64_t t0 = now_ns(), tw = t0 + (uint64_t)(warmup * 1e9), tend = 0, tm = 0;
    long long cpu0 = 0, proc0 = 0;
    bool measuring = false;
    uint64_t last_scan = t0;
    for (;;) {
        int n = epoll_wait(ep, evs, 1024, 10);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        uint64_t t = now_ns();
        if (!measuring && t >= tw) {
            msgs = mismatches = lost = other_frames = 0;
            memset(hist, 0, sizeof(hist));
            hcount = 0;
            cpu0 = cpu_busy(stat_cpu), proc0 = tree_ticks(tree_root);
            tm = now_ns();
            tend = tm + (uint64_t)(duration * 1e9);
            measuring = true;
        }
        if (measuring && t >= tend)
            break;
        if (mode == M_UDP && t - last_scan > 100000000ull) { /* resend lost datagrams */
            last_scan = t;
            for (int i = 0; i < nconns; i++)
                if (conns[i].state == S_OPEN && t - conns[i].sent_ns > 500000000ull) {
                    lost++;
                    send_next(&conns[i]);
                }
        }
    }
    long long cpu1 = cpu_busy(stat_cpu), proc1 = tree_ticks(tree_root);
    uint64_t m = msgs;
    double secs = (double)(now_ns() - tm) / 1e9, hz = (double)sysconf(_SC_CLK_TCK);
    int alive = 0;
    for (int i = 0; i < nconns; i++)
        alive += conns[i].state == S_OPEN;
    static const char *names[] = {"tcp", "udp", "ws", "wsbcast"};
    printf("RESULT mode=%s conns=%d alive=%d size=%d msgs=%llu secs=%.3f rate=%.0f p50_us=%.1f "
           "p99_us=%.1f p999_us=%.1f cpu_ticks=%lld proc_ticks=%lld cpu_us_per_msg=%.3f "
           "proc_us_per_msg=%.3f cpu_busy_pct=%.1f mismatches=%llu closed=%llu connect_errs=%llu "
           "handshake_errs=%llu lost=%llu other_frames=%llu error=\"%s\"\n",
           names[mode], nconns, alive, msgsize, (unsigned long long)m, secs, (double)m / secs,
           hpercentile(50), hpercentile(99), hpercentile(99.9), cpu1 - cpu0, proc1 - proc0,
           m ? (double)(cpu1 - cpu0) * 1e6 / hz / (double)m : 0,
           m ? (double)(proc1 - proc0) * 1e6 / hz / (double)m : 0,
           100.0 * (double)(cpu1 - cpu0) / hz / secs, (unsigned long long)mismatches,
           (unsigned long long)closed, (unsigned long long)connect_errs,
           (unsigned long long)handshake_errs, (unsigned long long)lost,
           (unsigned long long)other_frames, first_error);
    return 0;
}
