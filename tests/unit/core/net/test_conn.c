/* core/net/conn.c, request.c, action.c: an engine on a real loop (each backend) accepting on a
 * unix listener, driving a fake protocol through the protocol interface, a fake transport in
 * the transport slot (the protocol unchanged), and HTTP through ops.dispatch and
 * srv__engine_action. Completions are awaited by polling with a deadline. */
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

#include "check.h"
#include "core/net/conn_internal.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define RUN_UNTIL(loop, cond)                                                                      \
    do {                                                                                           \
        int64_t dl_ = now_ms() + 10000;                                                            \
        while (!(cond)) {                                                                          \
            int r_ = srv__loop_run((loop), 20);                                                    \
            CHECK(r_ >= 0 || r_ == -EINTR);                                                        \
            if (now_ms() > dl_) {                                                                  \
                fprintf(stderr, "%s:%d: timed out waiting for %s\n", __FILE__, __LINE__, #cond);   \
                exit(1);                                                                           \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* What the fake protocol and the ops saw. */
static struct {
    char in[256];
    size_t in_len;
    int opens, ticks, eofs, closes, writables;
    uint64_t session;
    int requests;
    bool xor_transport; /* give new connections the fake transport */
} T;

/* ---- a fake transport: every byte xor 0x20 both ways (a stand-in for TLS) ---- */

static char g_xout[256];

static void xor_input(srv__conn_t *c, const char *data, size_t len)
{
    char buf[256];
    CHECK(len <= sizeof(buf));
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)(data[i] ^ 0x20);
    c->proto->input(c, buf, len);
}

static int xor_send(srv__conn_t *c, const struct iovec *iov, int iovcnt)
{
    /* Like TLS, the transport owns the bytes on the wire until the send completes. */
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++) {
        CHECK(n + iov[i].iov_len <= sizeof(g_xout));
        for (size_t k = 0; k < iov[i].iov_len; k++)
            g_xout[n++] = (char)(((const char *)iov[i].iov_base)[k] ^ 0x20);
    }
    struct iovec v = {.iov_base = g_xout, .iov_len = n};
    return srv__loop_send(c->eng->loop, &c->send_op, c->fd, &v, 1);
}

static const srv__transport_t xor_transport = {
    .name = "xor", .input = xor_input, .send = xor_send, .sendfile = false};

/* ---- a fake protocol: echo, upper-cased ---- */

static int fake_open(srv__conn_t *c)
{
    T.opens++;
    T.session = c->session;
    if (T.xor_transport)
        c->transport = &xor_transport;
    return 0;
}

static void fake_input(srv__conn_t *c, const char *data, size_t len)
{
    CHECK(T.in_len + len <= sizeof(T.in));
    memcpy(T.in + T.in_len, data, len);
    T.in_len += len;
    char up[256];
    for (size_t i = 0; i < len; i++)
        up[i] = (char)(data[i] >= 'a' && data[i] <= 'z' ? data[i] - 32 : data[i]);
    struct iovec v = {.iov_base = up, .iov_len = len};
    CHECK_INT(srv__out_write(c, &v, 1), ==, 0);
    srv__conn_flush(c);
}

static void fake_writable(srv__conn_t *c)
{
    (void)c;
    T.writables++;
}

static void fake_tick(srv__conn_t *c, int64_t now)
{
    (void)c;
    (void)now;
    T.ticks++;
}

static void fake_eof(srv__conn_t *c)
{
    T.eofs++;
    c->flags |= F_CLOSE_AFTER;
    srv__conn_flush(c);
}

static void fake_close(srv__conn_t *c)
{
    (void)c;
    T.closes++;
}

static const srv__proto_t fake_proto = {.name = "fake",
                                        .open = fake_open,
                                        .input = fake_input,
                                        .writable = fake_writable,
                                        .tick = fake_tick,
                                        .eof = fake_eof,
                                        .close = fake_close};

/* ---- the engine's owner: answers HTTP requests through srv__engine_action ---- */

static int on_dispatch(srv__engine_t *e, srv__conn_t *c, srv__engine_event_t ev,
                       const srv_request_t *req)
{
    CHECK_INT(ev, ==, SRV_ENGINE_EV_REQUEST);
    CHECK_INT(req->session, ==, srv__conn_session(c));
    T.requests++;
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    CHECK_INT(srv__engine_action(e, req->session, SRV_ENGINE_RESPOND, 0, head, sizeof(head) - 1),
              ==, 0);
    CHECK_INT(srv__engine_action(e, req->session, SRV_ENGINE_RESPOND, SRV_ENGINE_F_FINAL, "ok", 2),
              ==, 0);
    /* Answered: another piece has no request to belong to. */
    CHECK_INT(srv__engine_action(e, req->session, SRV_ENGINE_RESPOND, 0, "x", 1), ==, -EPROTO);
    return 0;
}

static int listen_unix(struct sockaddr_un *sa, socklen_t *sl)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    /* Abstract: nothing to clean up. */
    static int seq;
    int n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "srv-test-conn-%d-%d", getpid(),
                     seq++);
    *sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    CHECK_INT(bind(fd, (struct sockaddr *)sa, *sl), ==, 0);
    CHECK_INT(listen(fd, 16), ==, 0);
    return fd;
}

static int connect_unix(const struct sockaddr_un *sa, socklen_t sl)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK_INT(connect(fd, (const struct sockaddr *)sa, sl), ==, 0);
    return fd;
}

/* Read what the engine sent, running its loop meanwhile; n bytes, or up to EOF (n 0). */
static size_t read_some(srv__loop_t *loop, int fd, char *buf, size_t cap, size_t n, bool *eof)
{
    size_t got = 0;
    int64_t dl = now_ms() + 10000;
    *eof = false;
    while (n == 0 || got < n) {
        srv__loop_run(loop, 10);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) == 1) {
            ssize_t r = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
            if (r == 0) {
                *eof = true;
                break;
            }
            if (r > 0)
                got += (size_t)r;
        }
        CHECK(now_ms() < dl);
    }
    return got;
}

static srv__engine_t *mk_engine(srv__loop_t *loop, srv__config_t *cfg, int lfd, bool fake)
{
    srv__engine_t *e = NULL;
    srv__engine_opts_t o = {.id = 3,
                            .loop = loop,
                            .cfg = cfg,
                            .listen_fds = &lfd,
                            .accept = true,
                            .ops = {.dispatch = on_dispatch}};
    CHECK_INT(srv__engine_create(&e, &o), ==, 0);
    if (fake)
        e->listen_proto[0] = &fake_proto;
    return e;
}

static void teardown(srv__loop_t *loop, srv__engine_t *e)
{
    srv__engine_close_all(e);
    /* The loop is reused: every operation of the engine must have completed first. */
    RUN_UNTIL(loop, srv__engine_conns(e) == 0 && !e->tick_armed && !e->accept_armed[0]);
    srv__engine_destroy(e);
}

/* The fake protocol sees the bytes, answers through the output queue, hears EOF and close. */
static void test_proto(srv__loop_t *loop, srv__config_t *cfg, bool xor)
{
    memset(&T, 0, sizeof(T));
    T.xor_transport = xor;
    struct sockaddr_un sa;
    socklen_t sl;
    int lfd = listen_unix(&sa, &sl);
    srv__engine_t *e = mk_engine(loop, cfg, lfd, true);
    int fd = connect_unix(&sa, sl);
    RUN_UNTIL(loop, T.opens == 1);
    CHECK_INT(SRV_SESSION_ENGINE(T.session), ==, 3);
    const char *msg = xor? "HELLO" : "hello"; /* xor 0x20 flips the case */
    CHECK_INT(send(fd, msg, 5, 0), ==, 5);
    char buf[64];
    bool eof;
    CHECK_INT(read_some(loop, fd, buf, sizeof(buf), 5, &eof), ==, 5);
    CHECK_MEM(T.in, T.in_len, "hello", 5);
    /* Plain: the fake upper-cases. xor: it sees "hello", answers "HELLO", the wire "hello". */
    CHECK_MEM(buf, 5, xor? "hello" : "HELLO", 5);
    RUN_UNTIL(loop, T.writables >= 1);
    /* Actions the protocol does not take; a session that never was. */
    CHECK_INT(srv__engine_action(e, T.session, SRV_ENGINE_SEND, 0, "x", 1), ==, -EINVAL);
    CHECK_INT(srv__engine_action(e, T.session + (1u << SRV_SESSION_SLOT_BITS), SRV_ENGINE_SEND, 0,
                                 "x", 1),
              ==, -ENOENT);
    CHECK_INT(srv__engine_action(e, T.session, SRV_ENGINE_RESPOND, SRV_ENGINE_F_FINAL, "x", 1), ==,
              -EPROTO);
    RUN_UNTIL(loop, T.ticks > 0);
    shutdown(fd, SHUT_WR);
    CHECK_INT(read_some(loop, fd, buf, sizeof(buf), 0, &eof), ==, 0);
    CHECK(eof);
    RUN_UNTIL(loop, T.closes == 1);
    CHECK_INT(T.eofs, ==, 1);
    CHECK_INT(srv__engine_conns(e), ==, 0);
    close(fd);
    teardown(loop, e);
    close(lfd);
}

/* HTTP through ops.dispatch, answered with srv__engine_action; keep-alive, then pipelined. */
static void test_http(srv__loop_t *loop, srv__config_t *cfg)
{
    memset(&T, 0, sizeof(T));
    struct sockaddr_un sa;
    socklen_t sl;
    int lfd = listen_unix(&sa, &sl);
    srv__engine_t *e = mk_engine(loop, cfg, lfd, false);
    int fd = connect_unix(&sa, sl);
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    size_t rl = sizeof(resp) - 1;
    char buf[512];
    bool eof;
    CHECK_INT(send(fd, req, sizeof(req) - 1, 0), ==, (long long)sizeof(req) - 1);
    CHECK_INT(read_some(loop, fd, buf, sizeof(buf), rl, &eof), ==, (long long)rl);
    CHECK_MEM(buf, rl, resp, rl);
    char two[2 * sizeof(req)];
    memcpy(two, req, sizeof(req) - 1);
    memcpy(two + sizeof(req) - 1, req, sizeof(req) - 1);
    CHECK_INT(send(fd, two, 2 * (sizeof(req) - 1), 0), ==, 2 * ((long long)sizeof(req) - 1));
    CHECK_INT(read_some(loop, fd, buf, sizeof(buf), 2 * rl, &eof), ==, 2 * (long long)rl);
    CHECK_MEM(buf + rl, rl, resp, rl);
    CHECK_INT(T.requests, ==, 3);
    CHECK_INT(srv__engine_inflight(e), ==, 0);
    close(fd);
    RUN_UNTIL(loop, srv__engine_conns(e) == 0);
    teardown(loop, e);
    close(lfd);
}

static void run_suite(srv__backend_t be)
{
    srv__loop_t *loop = NULL;
    CHECK_INT(srv__loop_create(&loop, be, NULL), ==, 0);
    static srv__config_t cfg;
    srv__config_defaults(&cfg);
    cfg.nlisten = 1;
    memset(&cfg.listen[0], 0, sizeof(cfg.listen[0]));
    cfg.listen[0].type = SRV_LISTEN_HTTP;
    cfg.listen[0].package_max_length = -1;
    cfg.listen[0].heartbeat_idle_time = -1;
    cfg.listen[0].heartbeat_check_interval = -1;
    test_proto(loop, &cfg, false);
    test_proto(loop, &cfg, true);
    test_http(loop, &cfg);
    srv__loop_destroy(loop);
}

int main(void)
{
    (void)check_failures_;
    unsetenv("SRV_REACTOR_BACKEND");
    run_suite(SRV_BACKEND_EPOLL);
    srv__loop_t *l = NULL;
    if (srv__loop_create(&l, SRV_BACKEND_URING, NULL) != 0)
        SKIP("io_uring not available on this kernel: only epoll was tested");
    srv__loop_destroy(l);
    run_suite(SRV_BACKEND_URING);
    return 0;
}
