/* core/net/transport_tls.c (with protocols/tls.c and core/net/tls_listen.c): an engine on a
 * real loop (each backend) serving HTTP over TLS on a unix listener to an OpenSSL client in the
 * same thread (non-blocking, pumped with the loop): handshake and what it negotiated, keep-alive,
 * a response far larger than one send, a file body read through the transport, plain HTTP on
 * the TLS port (a 400 in plain text), close_notify before the FIN, garbage, a handshake that never comes (timeout).
 * Certificates are made at test time with the openssl command. */
#include "core/net/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "check.h"
#include "core/net/conn_internal.h"
#include "core/net/tls_listen.h"

#define BIG (3u * 1024 * 1024 + 17)

static char g_dir[64];
static char *g_big;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define RUN_LOOP_UNTIL(loop, cond)                                                                 \
    do {                                                                                           \
        int64_t dl_ = now_ms() + 10000;                                                            \
        while (!(cond)) {                                                                          \
            srv__loop_run((loop), 20);                                                             \
            CHECK(now_ms() < dl_);                                                                 \
        }                                                                                          \
    } while (0)

static struct {
    int requests;
    char version[16];
    bool tls_on;
} T;

/* GET /small: "ok"; GET /big: BIG bytes from memory; GET /file: the same bytes from a file. */
static int on_dispatch(srv__engine_t *e, srv__conn_t *c, srv__engine_event_t ev,
                       const srv_request_t *req)
{
    (void)c;
    CHECK_INT(ev, ==, SRV_ENGINE_EV_REQUEST);
    T.requests++;
    T.tls_on = req->tls && req->tls->on;
    if (req->tls)
        snprintf(T.version, sizeof(T.version), "%s", req->tls->version);
    char head[128];
    bool small = req->path.len == 6 && memcmp(req->path.ptr, "/small", 6) == 0;
    bool file = req->path.len == 5 && memcmp(req->path.ptr, "/file", 5) == 0;
    size_t len = small ? 2 : BIG;
    int n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", len);
    CHECK_INT(srv__engine_action(e, req->session, SRV_ENGINE_RESPOND, 0, head, (size_t)n), ==, 0);
    unsigned close = (req->flags & SRV_REQ_KEEP_ALIVE) ? 0 : SRV_ENGINE_F_CLOSE;
    if (small)
        return srv__engine_action(e, req->session, SRV_ENGINE_RESPOND,
                                  SRV_ENGINE_F_FINAL | close, "ok", 2);
    if (!file)
        return srv__engine_action(e, req->session, SRV_ENGINE_RESPOND, SRV_ENGINE_F_FINAL, g_big,
                                  BIG);
    char path[128];
    snprintf(path, sizeof(path), "%s/big", g_dir);
    srv__engine_file_t f = {.fd = open(path, O_RDONLY | O_CLOEXEC), .off = 0, .len = BIG};
    CHECK(f.fd >= 0);
    return srv__engine_action(e, req->session, SRV_ENGINE_RESPOND_FD, SRV_ENGINE_F_FINAL, &f,
                              sizeof(f));
}

static int listen_unix(struct sockaddr_un *sa, socklen_t *sl)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    static int seq;
    int n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "srv-test-tls-%d-%d", getpid(),
                     seq++);
    *sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    CHECK_INT(bind(fd, (struct sockaddr *)sa, *sl), ==, 0);
    CHECK_INT(listen(fd, 16), ==, 0);
    return fd;
}

static int connect_unix(const struct sockaddr_un *sa, socklen_t sl)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK_INT(connect(fd, (const struct sockaddr *)sa, sl), ==, 0);
    return fd;
}

/* ---- the client: OpenSSL on a non-blocking socket, pumped with the engine's loop ---- */

typedef struct client {
    srv__loop_t *loop;
    int fd;
    SSL *ssl;
} client_t;

static bool retry(SSL *ssl, int r)
{
    int err = SSL_get_error(ssl, r);
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
}

static void client_open(client_t *cl, srv__loop_t *loop, SSL_CTX *cctx, const struct sockaddr_un *sa,
                        socklen_t sl)
{
    cl->loop = loop;
    cl->fd = connect_unix(sa, sl);
    cl->ssl = SSL_new(cctx);
    SSL_set_fd(cl->ssl, cl->fd);
    SSL_set_tlsext_host_name(cl->ssl, "localhost");
    int64_t dl = now_ms() + 10000;
    int r;
    while ((r = SSL_connect(cl->ssl)) != 1) {
        CHECK(retry(cl->ssl, r));
        srv__loop_run(loop, 5);
        CHECK(now_ms() < dl);
    }
}

static void client_close(client_t *cl)
{
    SSL_free(cl->ssl);
    close(cl->fd);
}

static void client_write(client_t *cl, const char *s)
{
    size_t len = strlen(s), done = 0;
    int64_t dl = now_ms() + 10000;
    while (done < len) {
        size_t n = 0;
        if (SSL_write_ex(cl->ssl, s + done, len - done, &n) == 1)
            done += n;
        else
            CHECK(retry(cl->ssl, 0));
        srv__loop_run(cl->loop, 1);
        CHECK(now_ms() < dl);
    }
}

/* Read exactly n plaintext bytes. */
static void client_read(client_t *cl, char *buf, size_t n)
{
    size_t got = 0;
    int64_t dl = now_ms() + 20000;
    while (got < n) {
        size_t k = 0;
        int r = SSL_read_ex(cl->ssl, buf + got, n - got, &k);
        if (r == 1) {
            got += k;
            continue;
        }
        CHECK(retry(cl->ssl, r));
        srv__loop_run(cl->loop, 1);
        CHECK(now_ms() < dl);
    }
}

/* Read a response head and its Content-Length body; returns the body length. */
static size_t client_response(client_t *cl, char *body, size_t cap)
{
    char head[512];
    size_t h = 0;
    while (h < 4 || memcmp(head + h - 4, "\r\n\r\n", 4) != 0) {
        CHECK(h < sizeof(head) - 1);
        client_read(cl, head + h, 1);
        h++;
    }
    head[h] = '\0';
    CHECK(strncmp(head, "HTTP/1.1 200", 12) == 0);
    const char *cl_h = strstr(head, "Content-Length: ");
    CHECK(cl_h != NULL);
    size_t len = strtoull(cl_h + 16, NULL, 10);
    CHECK(len <= cap);
    client_read(cl, body, len);
    return len;
}

/* Bytes on a raw socket until EOF (the engine's loop pumped); returns how many. */
static size_t raw_until_eof(srv__loop_t *loop, int fd, char *buf, size_t cap, int64_t within_ms)
{
    size_t got = 0;
    int64_t dl = now_ms() + within_ms;
    for (;;) {
        srv__loop_run(loop, 5);
        ssize_t r = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return got;
        if (r > 0)
            got += (size_t)r;
        CHECK(now_ms() < dl);
    }
}

/* ---- the cases ---- */

static void test_requests(srv__loop_t *loop, srv__engine_t *e, SSL_CTX *cctx,
                          const struct sockaddr_un *sa, socklen_t sl)
{
    client_t cl;
    client_open(&cl, loop, cctx, sa, sl);
    static char body[BIG];
    for (int i = 0; i < 3; i++) { /* keep-alive */
        client_write(&cl, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK_INT(client_response(&cl, body, sizeof(body)), ==, 2);
        CHECK_MEM(body, 2, "ok", 2);
    }
    CHECK(T.tls_on);
    CHECK(strcmp(T.version, "TLSv1.3") == 0);
    client_write(&cl, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_INT(client_response(&cl, body, sizeof(body)), ==, BIG);
    CHECK(memcmp(body, g_big, BIG) == 0);
    client_write(&cl, "GET /file HTTP/1.1\r\nHost: x\r\n\r\n");
    memset(body, 0, BIG);
    CHECK_INT(client_response(&cl, body, sizeof(body)), ==, BIG);
    CHECK(memcmp(body, g_big, BIG) == 0);
    /* Connection: close: the response, then close_notify before the FIN (a clean end). */
    client_write(&cl, "GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK_INT(client_response(&cl, body, sizeof(body)), ==, 2);
    int64_t dl = now_ms() + 10000;
    for (;;) {
        size_t k = 0;
        int r = SSL_read_ex(cl.ssl, body, 16, &k);
        CHECK_INT(r, ==, 0);
        int err = SSL_get_error(cl.ssl, r);
        if (err == SSL_ERROR_ZERO_RETURN)
            break;
        CHECK(err == SSL_ERROR_WANT_READ); /* not an EOF without close_notify */
        srv__loop_run(loop, 1);
        CHECK(now_ms() < dl);
    }
    CHECK_INT(T.requests, ==, 6);
    client_close(&cl);
    RUN_LOOP_UNTIL(loop, srv__engine_conns(e) == 0);
}

static void test_bad_input(srv__loop_t *loop, srv__engine_t *e, const struct sockaddr_un *sa,
                           socklen_t sl)
{
    char buf[1024];
    /* Plain HTTP: a 400 in plain text, then the end. */
    int fd = connect_unix(sa, sl);
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_INT(send(fd, req, sizeof(req) - 1, 0), ==, (long long)sizeof(req) - 1);
    size_t n = raw_until_eof(loop, fd, buf, sizeof(buf) - 1, 5000);
    buf[n] = '\0';
    CHECK(strncmp(buf, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    CHECK(strstr(buf, "HTTPS") != NULL);
    close(fd);
    /* Garbage that is not a request either: closed. */
    fd = connect_unix(sa, sl);
    static const char junk[] = "\x01\x02\x03\x04garbage garbage garbage\n";
    CHECK_INT(send(fd, junk, sizeof(junk) - 1, 0), ==, (long long)sizeof(junk) - 1);
    raw_until_eof(loop, fd, buf, sizeof(buf), 5000);
    close(fd);
    /* Nothing at all: closed after ssl_handshake_timeout (1 s), not before. */
    int64_t t0 = now_ms();
    fd = connect_unix(sa, sl);
    raw_until_eof(loop, fd, buf, sizeof(buf), 5000);
    int64_t took = now_ms() - t0;
    CHECK(took >= 900);
    close(fd);
    RUN_LOOP_UNTIL(loop, srv__engine_conns(e) == 0);
    CHECK_INT(T.requests, ==, 6); /* none of them reached the app */
}

static void run_suite(srv__backend_t be, srv__config_t *cfg, SSL_CTX *cctx)
{
    memset(&T, 0, sizeof(T));
    srv__loop_t *loop = NULL;
    CHECK_INT(srv__loop_create(&loop, be, NULL), ==, 0);
    struct sockaddr_un sa;
    socklen_t sl;
    int lfd = listen_unix(&sa, &sl);
    srv__engine_t *e = NULL;
    srv__engine_opts_t o = {.id = 1,
                            .loop = loop,
                            .cfg = cfg,
                            .listen_fds = &lfd,
                            .accept = true,
                            .ops = {.dispatch = on_dispatch}};
    CHECK_INT(srv__engine_create(&e, &o), ==, 0);
    test_requests(loop, e, cctx, &sa, sl);
    test_bad_input(loop, e, &sa, sl);
    srv__engine_close_all(e);
    RUN_LOOP_UNTIL(loop, srv__engine_conns(e) == 0 && !e->tick_armed && !e->accept_armed[0]);
    srv__engine_destroy(e);
    close(lfd);
    srv__loop_destroy(loop);
}

static void make_files(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/srv-tls-test-XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=localhost -keyout %s/key.pem -out %s/cert.pem 2>/dev/null",
             g_dir, g_dir);
    CHECK_INT(system(cmd), ==, 0);
    g_big = malloc(BIG);
    CHECK(g_big != NULL);
    for (size_t i = 0; i < BIG; i++)
        g_big[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    char path[128];
    snprintf(path, sizeof(path), "%s/big", g_dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL && fwrite(g_big, 1, BIG, f) == BIG);
    fclose(f);
}

int main(void)
{
    (void)check_failures_;
    unsetenv("SRV_REACTOR_BACKEND");
    make_files();
    static srv__config_t cfg;
    srv__config_defaults(&cfg);
    snprintf(cfg.file, sizeof(cfg.file), "test.toml");
    cfg.nlisten = 1;
    srv__listen_config_t *l = &cfg.listen[0];
    memset(l, 0, sizeof(*l));
    l->type = SRV_LISTEN_HTTP;
    l->package_max_length = l->heartbeat_idle_time = l->heartbeat_check_interval = -1;
    l->ssl_protocols = SRV__TLS_DEFAULT_PROTOCOLS;
    l->ssl_session_tickets = true;
    l->ssl = true;
    l->ssl_handshake_timeout = 1;
    snprintf(l->ssl_cert_file, sizeof(l->ssl_cert_file), "%s/cert.pem", g_dir);
    snprintf(l->ssl_key_file, sizeof(l->ssl_key_file), "%s/key.pem", g_dir);
    char err[512];
    if (srv__tls_listen_load(&cfg, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        CHECK(0);
    }
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    char ca[128];
    snprintf(ca, sizeof(ca), "%s/cert.pem", g_dir);
    CHECK_INT(SSL_CTX_load_verify_locations(cctx, ca, NULL), ==, 1);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
    run_suite(SRV_BACKEND_EPOLL, &cfg, cctx);
    srv__loop_t *lp = NULL;
    if (srv__loop_create(&lp, SRV_BACKEND_URING, NULL) == 0) {
        srv__loop_destroy(lp);
        run_suite(SRV_BACKEND_URING, &cfg, cctx);
    }
    SSL_CTX_free(cctx);
    srv__tls_listen_unload();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    CHECK_INT(system(cmd), ==, 0);
    free(g_big);
    return 0;
}
