/* TLS load tool for bench/https.sh: one thread, epoll, N connections, OpenSSL non-blocking on
 * the sockets. Modes:
 *   hs   each connection does one TLS handshake, GET / with "Connection: close", reads the whole
 *        response (checked: 200 and the body "Hello, World!") and starts over; -r offers each
 *        connection's latest session again (resumption: tickets or ids), else every handshake
 *        is a full one. Counts handshakes and how many the server resumed.
 *   wss  WebSocket over TLS: upgrade on PATH (Sec-WebSocket-Accept checked), then ping-pong of
 *        masked SIZE-byte text frames, every echo checked byte for byte.
 * The warm-up runs until SIGUSR1 (or WARMUP seconds when -W is not given), so the caller can
 * sample the server's CPU exactly at the start of the measured window of SECS seconds; then one
 * "RESULT key=value ..." line on stdout.
 *   build: cc -O2 -o tlsload bench/tlsload.c -lssl -lcrypto
 *   usage: tlsload -m hs|wss -p PORT [-H 127.0.0.1] [-c CONNS] [-d SECS] [-w WARMUP] [-W]
 *          [-r] [-s SIZE] [-u PATH]
 *   -W: print "READY" after the warm-up's first WARMUP seconds and wait for SIGUSR1 to start
 *       the measured window (the load goes on meanwhile). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { M_HS, M_WSS };
enum { S_CONNECTING, S_TLS, S_UPGRADE, S_OPEN, S_RESPONSE, S_DEAD };
#define RBUF 8192
#define MAXMSG 1024

struct conn {
    int fd, state;
    uint32_t id;
    SSL *ssl;
    SSL_SESSION *sess;
    uint64_t seq;
    size_t rlen, plen, explen;
    char key[32];
    unsigned char pend[MAXMSG + 16];
    unsigned char expect[MAXMSG];
    unsigned char rbuf[RBUF];
};

static int mode = M_HS, nconns = 64, msgsize = 64, ep;
static bool reuse, wait_go;
static double duration = 10, warmup = 1;
static const char *host = "127.0.0.1", *path = "/ws";
static int port;
static struct sockaddr_in addr;
static SSL_CTX *ctx;
static volatile sig_atomic_t go;
static uint64_t rng = 0x2545f4914f6cdd1dull;

/* Counters of the current window. */
static uint64_t done, handshakes, resumed, msgs, errors;
static char first_error[256];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void on_sigusr1(int sig)
{
    (void)sig;
    go = 1;
}

static void interest(struct conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) != 0 && errno == ENOENT)
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
}

static void conn_end(struct conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static void conn_fail(struct conn *c, const char *why)
{
    if (c->state == S_DEAD)
        return;
    errors++;
    if (first_error[0] == 0) {
        unsigned long e = ERR_peek_error();
        snprintf(first_error, sizeof(first_error), "%s (conn %u%s%s)", why, c->id, e ? ": " : "",
                 e ? ERR_reason_error_string(e) : "");
    }
    ERR_clear_error();
    conn_end(c);
    c->state = S_DEAD;
}

static void conn_start(struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        perror("socket");
        exit(1);
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->rlen = c->plen = 0;
    c->state = S_CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 && errno != EINPROGRESS) {
        conn_fail(c, "connect failed");
        return;
    }
    interest(c, EPOLLOUT);
}

/* After an SSL call returned r <= 0: wait for the socket (true), or the connection failed. */
static bool ssl_wait(struct conn *c, int r, const char *what)
{
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        interest(c, e == SSL_ERROR_WANT_READ && c->plen == 0 ? EPOLLIN : EPOLLIN | EPOLLOUT);
        return true;
    }
    conn_fail(c, what);
    return false;
}

/* One message in flight per connection: a write the socket could not take waits in pend and is
 * retried with the same bytes (as OpenSSL requires). */
static void ssl_send(struct conn *c, const void *data, size_t len)
{
    if (c->plen) {
        conn_fail(c, "write while one is pending");
        return;
    }
    memcpy(c->pend, data, len);
    c->plen = len;
    int r = SSL_write(c->ssl, c->pend, (int)len);
    if (r > 0) {
        c->plen = 0;
        return;
    }
    ssl_wait(c, r, "SSL_write failed");
}

static void send_echo(struct conn *c)
{
    unsigned char frame[MAXMSG + 16];
    size_t n = (size_t)msgsize, h = 0;
    c->seq++;
    int t = snprintf((char *)c->expect, sizeof(c->expect), "%u/%llu:", c->id,
                     (unsigned long long)c->seq);
    for (size_t i = (size_t)t; i < n; i++)
        c->expect[i] = (unsigned char)('A' + (i + c->seq) % 26);
    c->explen = n;
    frame[h++] = 0x81; /* FIN, text */
    if (n < 126) {
        frame[h++] = (unsigned char)(0x80 | n);
    } else {
        frame[h++] = 0x80 | 126;
        frame[h++] = (unsigned char)(n >> 8);
        frame[h++] = (unsigned char)n;
    }
    uint32_t m = rnd();
    memcpy(frame + h, &m, 4);
    for (size_t i = 0; i < n; i++)
        frame[h + 4 + i] = c->expect[i] ^ frame[h + (i & 3)];
    ssl_send(c, frame, h + 4 + n);
}

static void on_established(struct conn *c)
{
    char req[512];
    int n;
    handshakes++;
    if (SSL_session_reused(c->ssl))
        resumed++;
    if (mode == M_HS) {
        n = snprintf(req, sizeof(req),
                     "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        c->state = S_RESPONSE;
    } else {
        unsigned char k[16];
        for (int i = 0; i < 16; i++)
            k[i] = (unsigned char)rnd();
        EVP_EncodeBlock((unsigned char *)c->key, k, 16);
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, c->key);
        c->state = S_UPGRADE;
    }
    ssl_send(c, req, (size_t)n);
}

/* hs: the server closed after its response; check it, keep the session, start over. */
static void on_response_end(struct conn *c)
{
    c->rbuf[c->rlen < RBUF ? c->rlen : RBUF - 1] = 0;
    if (strncmp((char *)c->rbuf, "HTTP/1.1 200", 12) != 0 ||
        memmem(c->rbuf, c->rlen, "\r\n\r\nHello, World!", 17) == NULL) {
        conn_fail(c, "bad response");
        return;
    }
    done++;
    if (reuse) {
        SSL_SESSION *s = SSL_get1_session(c->ssl);
        if (s && SSL_SESSION_is_resumable(s)) {
            SSL_SESSION_free(c->sess);
            c->sess = s;
        } else {
            SSL_SESSION_free(s);
        }
    }
    /* A connection freed without a shutdown marks its session not resumable. */
    SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    conn_end(c);
    conn_start(c);
}

static bool check_upgrade(struct conn *c, size_t *used)
{
    unsigned char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (end == NULL)
        return c->rlen < RBUF || (conn_fail(c, "upgrade response too big"), false);
    *end = 0;
    char in[64], want[64];
    unsigned char md[20];
    int n = snprintf(in, sizeof(in), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->key);
    EVP_Digest(in, (size_t)n, md, NULL, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)want, md, 20);
    const char *acc = strcasestr((char *)c->rbuf, "\r\nSec-WebSocket-Accept:");
    if (strncmp((char *)c->rbuf, "HTTP/1.1 101", 12) != 0 || acc == NULL) {
        conn_fail(c, "upgrade refused");
        return false;
    }
    for (acc += 23; *acc == ' '; acc++)
        ;
    if (strncmp(acc, want, strlen(want)) != 0) {
        conn_fail(c, "bad Sec-WebSocket-Accept");
        return false;
    }
    *used = (size_t)(end - c->rbuf) + 4;
    c->state = S_OPEN;
    done++;
    send_echo(c);
    return c->state == S_OPEN;
}

/* wss: the upgrade response, then whole echo frames; false when the connection failed. */
static bool parse_ws(struct conn *c)
{
    size_t off = 0;
    if (c->state == S_UPGRADE && !check_upgrade(c, &off))
        return c->state != S_DEAD;
    while (c->state == S_OPEN && c->rlen - off >= 2) {
        unsigned char *p = c->rbuf + off;
        size_t len = p[1] & 0x7f, h = 2;
        if (len == 126) {
            if (c->rlen - off < 4)
                break;
            len = ((size_t)p[2] << 8) | p[3], h = 4;
        } else if (len == 127) {
            conn_fail(c, "frame too big");
            return false;
        }
        if (c->rlen - off < h + len)
            break;
        if ((p[0] & 0x0f) == 1) {
            if (len != c->explen || memcmp(p + h, c->expect, len) != 0) {
                conn_fail(c, "echo differs from the message");
                return false;
            }
            msgs++;
            send_echo(c);
        }
        off += h + len;
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    return c->state != S_DEAD;
}

static void on_readable(struct conn *c)
{
    for (;;) {
        if (c->rlen == RBUF) {
            conn_fail(c, "receive buffer full");
            return;
        }
        int r = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(RBUF - c->rlen));
        if (r > 0) {
            c->rlen += (size_t)r;
            if (mode == M_WSS && !parse_ws(c))
                return;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (mode == M_HS && (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL)) {
            on_response_end(c); /* close_notify, or just the FIN after "Connection: close" */
            return;
        }
        ssl_wait(c, r, "SSL_read failed");
        return;
    }
}

static void on_event(struct conn *c, uint32_t ev)
{
    if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t sl = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
        if (err != 0 || (c->ssl = SSL_new(ctx)) == NULL) {
            conn_fail(c, "connect failed");
            return;
        }
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_connect_state(c->ssl);
        SSL_set_tlsext_host_name(c->ssl, "localhost");
        if (reuse && c->sess)
            SSL_set_session(c->ssl, c->sess);
        c->state = S_TLS;
    }
    if (c->state == S_TLS) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            ssl_wait(c, r, "handshake failed");
            return;
        }
        interest(c, EPOLLIN);
        on_established(c);
    }
    if ((ev & EPOLLOUT) && c->plen && c->state != S_DEAD) {
        int r = SSL_write(c->ssl, c->pend, (int)c->plen);
        if (r <= 0) {
            ssl_wait(c, r, "SSL_write failed");
            return;
        }
        c->plen = 0;
        interest(c, EPOLLIN);
    }
    if (c->state != S_DEAD && c->state != S_TLS)
        on_readable(c);
}

static void usage(void)
{
    fprintf(stderr, "usage: tlsload -m hs|wss -p PORT [-H HOST] [-c CONNS] [-d SECS] [-w WARMUP] "
                    "[-W] [-r] [-s SIZE] [-u PATH]\n");
    exit(2);
}

static void options(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "m:p:H:c:d:w:Wrs:u:")) != -1) {
        switch (o) {
        case 'm':
            mode = !strcmp(optarg, "hs") ? M_HS : !strcmp(optarg, "wss") ? M_WSS : -1;
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
        case 'W':
            wait_go = true;
            break;
        case 'r':
            reuse = true;
            break;
        case 's':
            msgsize = atoi(optarg);
            break;
        case 'u':
            path = optarg;
            break;
        default:
            usage();
        }
    }
    if (port <= 0 || nconns <= 0 || msgsize < 24 || msgsize > MAXMSG)
        usage();
}

/* Drive the load until the clock reaches end_ns (or, when until_go, SIGUSR1 arrived). */
static void run_until(uint64_t end_ns, bool until_go)
{
    struct epoll_event evs[256];
    while (until_go ? !go : now_ns() < end_ns) {
        int n = epoll_wait(ep, evs, 256, 10);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }
}

int main(int argc, char **argv)
{
    options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, on_sigusr1);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &addr.sin_addr);
    ctx = SSL_CTX_new(TLS_client_method());
    ep = epoll_create1(0);
    struct conn *conns = calloc((size_t)nconns, sizeof(*conns));
    if (ctx == NULL || ep < 0 || conns == NULL)
        return 1;
    /* A benchmark of the server: the certificate is the script's own, not verified. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* "Connection: close" ends with the server's FIN, with or without its close_notify. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    for (int i = 0; i < nconns; i++) {
        conns[i].id = (uint32_t)i;
        conn_start(&conns[i]);
    }
    run_until(now_ns() + (uint64_t)(warmup * 1e9), false);
    if (wait_go) {
        printf("READY\n");
        fflush(stdout);
        run_until(0, true);
    }
    done = handshakes = resumed = msgs = errors = 0;
    uint64_t t0 = now_ns();
    run_until(t0 + (uint64_t)(duration * 1e9), false);
    double secs = (double)(now_ns() - t0) / 1e9;
    int alive = 0;
    for (int i = 0; i < nconns; i++)
        alive += conns[i].state != S_DEAD;
    uint64_t n = mode == M_HS ? done : msgs;
    printf("RESULT mode=%s conns=%d alive=%d count=%llu secs=%.3f rate=%.0f handshakes=%llu "
           "resumed=%llu errors=%llu error=\"%s\"\n",
           mode == M_HS ? "hs" : "wss", nconns, alive, (unsigned long long)n, secs,
           (double)n / secs, (unsigned long long)handshakes, (unsigned long long)resumed,
           (unsigned long long)errors, first_error);
    return 0;
}
