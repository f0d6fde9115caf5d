/* core/loop.c, loop_uring.c, loop_epoll.c: every test runs once per backend (io_uring and
 * epoll) against real sockets; completions are awaited by polling a condition with a deadline.
 * io_uring is skipped (exit 77 after the epoll pass) only when the kernel cannot run it. */
#include "core/loop/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static srv__backend_t g_be;
static const char *g_name;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static srv__loop_t *mk(const srv__loop_opts_t *o)
{
    srv__loop_t *l = NULL;

    CHECK_INT(srv__loop_create(&l, g_be, o), ==, 0);
    CHECK_STR(srv__loop_backend_name(l), g_name);
    CHECK_STR(srv__loop_fallback_reason(l), "");
    return l;
}

/* Run the loop until *flag (an int) becomes true; fail after 10 s. */
#define RUN_UNTIL(loop, cond)                                                                      \
    do {                                                                                           \
        int64_t dl_ = now_ms() + 10000;                                                            \
        while (!(cond)) {                                                                          \
            int r_ = srv__loop_run((loop), 50);                                                    \
            CHECK(r_ >= 0 || r_ == -EINTR);                                                        \
            if (now_ms() > dl_) {                                                                  \
                fprintf(stderr, "%s:%d: timed out waiting for %s\n", __FILE__, __LINE__, #cond);   \
                exit(1);                                                                           \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* One run, again when a stop and continue of the process (a debugger, a loaded host) ended the
 * wait with -EINTR: these tests install no handler, so no other signal can. */
static int run_ok(srv__loop_t *l, int timeout_ms)
{
    int rc;
    while ((rc = srv__loop_run(l, timeout_ms)) == -EINTR)
        ;
    return rc;
}

static void spair(int sv[2])
{
    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), ==, 0);
}

/* A generic recorder for one op's completions. */
typedef struct rec {
    int calls;
    int finals;
    int last_res;
    uint32_t last_flags;
    int more_after_final;
} rec_t;

static void rec_cb(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data, uint32_t fl)
{
    rec_t *r = op->data;

    (void)loop;
    (void)data;
    if (r->finals)
        r->more_after_final++;
    r->calls++;
    r->last_res = res;
    r->last_flags = fl;
    if (!(fl & SRV_LOOP_MORE))
        r->finals++;
}

/* ---- accept ---- */

typedef struct acc {
    int fds[16];
    int n;
    int final_res;
    int finals;
} acc_t;

static void acc_cb(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data, uint32_t fl)
{
    acc_t *a = op->data;

    (void)loop;
    (void)data;
    if (!(fl & SRV_LOOP_MORE)) {
        a->finals++;
        a->final_res = res;
        if (res >= 0)
            close(res);
        return;
    }
    CHECK(res >= 0);
    CHECK(a->n < 16);
    a->fds[a->n++] = res;
}

static int listener(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    CHECK(fd >= 0);
    CHECK_INT(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    CHECK_INT(listen(fd, 64), ==, 0);
    CHECK_INT(getsockname(fd, (struct sockaddr *)&sa, &len), ==, 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static int connect_to(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    CHECK(fd >= 0);
    CHECK_INT(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    return fd;
}

static void test_accept(void)
{
    srv__loop_t *l = mk(NULL);
    acc_t a = {0};
    srv__loop_op_t op = {.cb = acc_cb, .data = &a};
    int port, lfd = listener(&port), cl[5];

    CHECK_INT(srv__loop_accept(l, &op, lfd), ==, 0);
    CHECK_INT(srv__loop_accept(l, &op, lfd), ==, -EBUSY);
    for (int i = 0; i < 5; i++)
        cl[i] = connect_to(port);
    RUN_UNTIL(l, a.n == 5);
    for (int i = 0; i < 5; i++) {
        int fl = fcntl(a.fds[i], F_GETFL), fdfl = fcntl(a.fds[i], F_GETFD);

        CHECK(fl & O_NONBLOCK);
        CHECK(fdfl & FD_CLOEXEC);
        close(a.fds[i]);
        close(cl[i]);
    }
    /* Two more after the first batch: the op stayed armed. */
    cl[0] = connect_to(port);
    cl[1] = connect_to(port);
    RUN_UNTIL(l, a.n == 7);
    close(a.fds[5]);
    close(a.fds[6]);
    close(cl[0]);
    close(cl[1]);
    CHECK_INT(a.finals, ==, 0);
    CHECK_INT(srv__loop_cancel(l, &op), ==, 0);
    CHECK_INT(srv__loop_cancel(l, &op), ==, 0);
    RUN_UNTIL(l, a.finals == 1);
    CHECK_INT(a.final_res, ==, -ECANCELED);
    CHECK_INT(op.armed, ==, 0);
    /* Re-usable after its final completion. */
    CHECK_INT(srv__loop_accept(l, &op, lfd), ==, 0);
    CHECK_INT(srv__loop_cancel(l, &op), ==, 0);
    RUN_UNTIL(l, a.finals == 2);
    CHECK_INT(a.n, ==, 7);
    close(lfd);
    srv__loop_destroy(l);
}

/* ---- a listener shared by several loops (issue 11: base-mode workers) ---- */

/* Completion order across ops of one loop. */
static int g_seq;

typedef struct ord {
    acc_t acc;
    int accept_seq;        /* g_seq of the first accepted connection */
    int recv_seq;          /* g_seq of the first received bytes */
    srv__loop_op_t *cancel; /* the recv callback cancels this op */
} ord_t;

static void ord_acc_cb(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                       uint32_t fl)
{
    ord_t *o = op->data;

    if ((fl & SRV_LOOP_MORE) && o->accept_seq == 0)
        o->accept_seq = ++g_seq;
    op->data = &o->acc;
    acc_cb(loop, op, res, data, fl);
    op->data = o;
}

static void ord_recv_cb(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                        uint32_t fl)
{
    ord_t *o = op->data;

    (void)data;
    (void)fl;
    if (res > 0 && o->recv_seq == 0) {
        o->recv_seq = ++g_seq;
        if (o->cancel)
            CHECK_INT(srv__loop_cancel(loop, o->cancel), ==, 0);
    }
}

/* Connections queued before a run are taken one per run, not all by the first loop to run. */
static void test_accept_one_per_run(void)
{
    srv__loop_t *l = mk(NULL);
    acc_t a = {0};
    srv__loop_op_t op = {.cb = acc_cb, .data = &a};
    int port, lfd = listener(&port), cl[4];

    for (int i = 0; i < 4; i++)
        cl[i] = connect_to(port);
    CHECK_INT(srv__loop_accept(l, &op, lfd), ==, 0);
    for (int k = 1; k <= 4; k++) {
        RUN_UNTIL(l, a.n >= k);
        CHECK_INT(a.n, ==, k);
    }
    for (int i = 0; i < 4; i++) {
        close(a.fds[i]);
        close(cl[i]);
    }
    CHECK_INT(srv__loop_cancel(l, &op), ==, 0);
    RUN_UNTIL(l, a.finals == 1);
    CHECK_INT(a.final_res, ==, -ECANCELED);
    close(lfd);
    srv__loop_destroy(l);
}

/* In one run, the accept comes after the run's other completions: those may run the app for
 * long, and a connection taken before them would wait behind them. */
static void test_accept_after_other_completions(void)
{
    srv__loop_t *l = mk(NULL);
    ord_t o = {0};
    srv__loop_op_t acc = {.cb = ord_acc_cb, .data = &o}, rv = {.cb = ord_recv_cb, .data = &o};
    int port, lfd = listener(&port), sv[2], c;

    spair(sv);
    c = connect_to(port);
    CHECK_INT(write(sv[1], "x", 1), ==, 1);
    g_seq = 0;
    /* The listener first: ready first, reported first. */
    CHECK_INT(srv__loop_accept(l, &acc, lfd), ==, 0);
    CHECK_INT(srv__loop_recv(l, &rv, sv[0]), ==, 0);
    CHECK(run_ok(l, 1000) >= 2);
    CHECK_INT(o.acc.n, ==, 1);
    CHECK_INT(o.recv_seq, ==, 1);
    CHECK_INT(o.accept_seq, ==, 2);
    close(o.acc.fds[0]);
    CHECK_INT(srv__loop_cancel(l, &acc), ==, 0);
    CHECK_INT(srv__loop_cancel(l, &rv), ==, 0);
    RUN_UNTIL(l, o.acc.finals == 1 && !rv.armed);
    close(c);
    close(lfd);
    close(sv[0]);
    close(sv[1]);
    srv__loop_destroy(l);
}

/* True while the client end c has neither data, EOF nor an error: its server side is queued on
 * the listener (or open) and nobody reset it. */
static bool client_untouched(int c)
{
    char b;

    return recv(c, &b, 1, MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* A loop whose owner does not run (busy in a handler) holds no connection back: another loop
 * sharing the listener takes them all. io_uring's own accept used to leave them to the busy
 * ring, first in the listener's wait queue. */
static void test_accept_busy_loop_holds_nothing(void)
{
    srv__loop_t *busy = mk(NULL), *idle = mk(NULL);
    acc_t ab = {0}, ai = {0};
    srv__loop_op_t ob = {.cb = acc_cb, .data = &ab}, oi = {.cb = acc_cb, .data = &ai};
    int port, lfd = listener(&port), cl[4];

    CHECK_INT(srv__loop_accept(busy, &ob, lfd), ==, 0);
    CHECK(run_ok(busy, 0) >= 0); /* armed in the kernel first */
    CHECK_INT(srv__loop_accept(idle, &oi, lfd), ==, 0);
    CHECK(run_ok(idle, 0) >= 0);
    for (int i = 0; i < 3; i++)
        cl[i] = connect_to(port);
    RUN_UNTIL(idle, ai.n == 3);
    /* The busy one comes back: nothing left for it, and it stays armed. */
    CHECK(run_ok(busy, 0) >= 0);
    CHECK_INT(ab.n, ==, 0);
    CHECK_INT(ab.finals, ==, 0);
    cl[3] = connect_to(port);
    RUN_UNTIL(busy, ab.n == 1);
    for (int i = 0; i < 3; i++)
        close(ai.fds[i]);
    close(ab.fds[0]);
    for (int i = 0; i < 4; i++)
        close(cl[i]);
    CHECK_INT(srv__loop_cancel(busy, &ob), ==, 0);
    CHECK_INT(srv__loop_cancel(idle, &oi), ==, 0);
    RUN_UNTIL(busy, ab.finals == 1);
    RUN_UNTIL(idle, ai.finals == 1);
    close(lfd);
    srv__loop_destroy(busy);
    srv__loop_destroy(idle);
}

/* A loop that goes away (a worker exiting, with or without cancelling its accept first) takes no
 * queued connection with it: the one that stays gets it, and the client sees no reset. */
static void test_accept_loop_gone_leaves_connections(void)
{
    for (int pass = 0; pass < 2; pass++) {
        srv__loop_t *gone = mk(NULL), *stay = mk(NULL);
        acc_t ag = {0}, as = {0};
        srv__loop_op_t og = {.cb = acc_cb, .data = &ag}, os = {.cb = acc_cb, .data = &as};
        int port, lfd = listener(&port), c;

        CHECK_INT(srv__loop_accept(gone, &og, lfd), ==, 0);
        CHECK(run_ok(gone, 0) >= 0);
        CHECK_INT(srv__loop_accept(stay, &os, lfd), ==, 0);
        CHECK(run_ok(stay, 0) >= 0);
        c = connect_to(port);
        if (pass == 1) {
            CHECK_INT(srv__loop_cancel(gone, &og), ==, 0);
            RUN_UNTIL(gone, ag.finals == 1);
            CHECK_INT(ag.final_res, ==, -ECANCELED);
        }
        /* What the cancel delivered is the owner's to serve; nothing else may go with it. */
        for (int i = 0; i < ag.n; i++)
            close(ag.fds[i]);
        srv__loop_destroy(gone);
        if (ag.n == 0) {
            CHECK(client_untouched(c));
            RUN_UNTIL(stay, as.n == 1);
            CHECK(client_untouched(c));
            close(as.fds[0]);
        }
        close(c);
        CHECK_INT(srv__loop_cancel(stay, &os), ==, 0);
        RUN_UNTIL(stay, as.finals == 1);
        close(lfd);
        srv__loop_destroy(stay);
    }
}

/* A cancel from a callback of the run that found the listener ready: the connection that
 * readiness announced is either delivered before the final completion or left for another
 * loop, never lost. epoll delivers it: its wake-ups are exclusive, so no other loop may have
 * been told (here every loop was, none was sleeping in epoll_wait: that state needs a race to
 * set up). io_uring's poll woke every ring: it leaves the connection queued. */
static void test_accept_cancelled_in_same_run(void)
{
    srv__loop_t *l = mk(NULL), *other = mk(NULL);
    ord_t o = {0};
    acc_t ao = {0};
    srv__loop_op_t acc = {.cb = ord_acc_cb, .data = &o}, rv = {.cb = ord_recv_cb, .data = &o};
    srv__loop_op_t oo = {.cb = acc_cb, .data = &ao};
    int port, lfd = listener(&port), sv[2], c;

    spair(sv);
    o.cancel = &acc;
    CHECK_INT(srv__loop_accept(other, &oo, lfd), ==, 0);
    CHECK(run_ok(other, 0) >= 0);
    c = connect_to(port);
    CHECK_INT(write(sv[1], "x", 1), ==, 1);
    CHECK_INT(srv__loop_accept(l, &acc, lfd), ==, 0);
    CHECK_INT(srv__loop_recv(l, &rv, sv[0]), ==, 0);
    RUN_UNTIL(l, o.acc.finals == 1);
    CHECK_INT(o.acc.final_res, ==, -ECANCELED);
    CHECK_INT(o.acc.n, ==, g_be == SRV_BACKEND_EPOLL ? 1 : 0);
    if (o.acc.n == 0) {
        CHECK(client_untouched(c));
        RUN_UNTIL(other, ao.n == 1);
    }
    CHECK(client_untouched(c));
    close(o.acc.n ? o.acc.fds[0] : ao.fds[0]);
    close(c);
    CHECK_INT(srv__loop_cancel(l, &rv), ==, 0);
    RUN_UNTIL(l, !rv.armed);
    CHECK_INT(srv__loop_cancel(other, &oo), ==, 0);
    RUN_UNTIL(other, ao.finals == 1);
    close(lfd);
    close(sv[0]);
    close(sv[1]);
    srv__loop_destroy(l);
    srv__loop_destroy(other);
}

/* ---- recv: a big stream through a tiny buffer pool ---- */

#define BIG (8u << 20)

static inline uint8_t pat(size_t i)
{
    return (uint8_t)(i % 251 + (i >> 16));
}

typedef struct stream {
    size_t got;
    int chunks;
    int finals;
    int final_res;
    int bad;
    unsigned max_chunk;
} stream_t;

static void stream_cb(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data, uint32_t fl)
{
    stream_t *s = op->data;

    (void)loop;
    if (!(fl & SRV_LOOP_MORE)) {
        s->finals++;
        s->final_res = res;
        return;
    }
    CHECK(res > 0);
    CHECK(data != NULL);
    if ((unsigned)res > s->max_chunk)
        s->max_chunk = (unsigned)res;
    for (int i = 0; i < res; i++)
        if ((uint8_t)data[i] != pat(s->got + (size_t)i))
            s->bad++;
    s->got += (size_t)res;
    s->chunks++;
}

static void *writer_main(void *arg)
{
    int fd = *(int *)arg;
    static uint8_t buf[65536];
    size_t off = 0;

    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    while (off < BIG) {
        size_t n = BIG - off < sizeof(buf) ? BIG - off : sizeof(buf);
        ssize_t w;

        for (size_t i = 0; i < n; i++)
            buf[i] = pat(off + i);
        w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fd);
    return NULL;
}

static void test_recv_stream(void)
{
    srv__loop_opts_t o = {.recv_bufs = 4, .recv_size = 1024};
    srv__loop_t *l = mk(&o);
    stream_t s = {0};
    srv__loop_op_t op = {.cb = stream_cb, .data = &s};
    pthread_t th;
    int sv[2];

    spair(sv);
    CHECK_INT(srv__loop_recv(l, &op, sv[0]), ==, 0);
    CHECK_INT(pthread_create(&th, NULL, writer_main, &sv[1]), ==, 0);
    RUN_UNTIL(l, s.finals == 1);
    pthread_join(th, NULL);
    CHECK_INT(s.final_res, ==, 0);
    CHECK_INT(s.got, ==, BIG);
    CHECK_INT(s.bad, ==, 0);
    CHECK_INT(s.max_chunk, <=, 1024);
    CHECK_INT(s.chunks, >=, BIG / 1024);
    close(sv[0]);
    srv__loop_destroy(l);
}

static void test_eof_and_cancel_recv(void)
{
    srv__loop_t *l = mk(NULL);
    rec_t r = {0};
    srv__loop_op_t op = {.cb = rec_cb, .data = &r};
    int sv[2];

    /* EOF: res 0, final. */
    spair(sv);
    CHECK_INT(srv__loop_recv(l, &op, sv[0]), ==, 0);
    CHECK_INT(write(sv[1], "hello", 5), ==, 5);
    RUN_UNTIL(l, r.calls == 1);
    CHECK_INT(r.last_res, ==, 5);
    CHECK_INT(r.last_flags, ==, SRV_LOOP_MORE);
    close(sv[1]);
    RUN_UNTIL(l, r.finals == 1);
    CHECK_INT(r.last_res, ==, 0);
    CHECK_INT(r.last_flags, ==, 0);
    close(sv[0]);

    /* Cancel a multishot recv that already delivered data: one more completion, -ECANCELED. */
    memset(&r, 0, sizeof(r));
    spair(sv);
    CHECK_INT(srv__loop_recv(l, &op, sv[0]), ==, 0);
    CHECK_INT(write(sv[1], "abc", 3), ==, 3);
    RUN_UNTIL(l, r.calls == 1);
    CHECK_INT(srv__loop_cancel(l, &op), ==, 0);
    RUN_UNTIL(l, r.finals == 1);
    CHECK_INT(r.last_res, ==, -ECANCELED);
    CHECK_INT(r.last_flags, ==, 0);
    /* Nothing more arrives for it, even with data pending. */
    CHECK_INT(write(sv[1], "zz", 2), ==, 2);
    for (int i = 0; i < 3; i++)
        CHECK(run_ok(l, 10) >= 0);
    CHECK_INT(r.more_after_final, ==, 0);
    CHECK_INT(r.calls, ==, 2);

    /* Cancel before anything was submitted to the kernel. */
    memset(&r, 0, sizeof(r));
    CHECK_INT(srv__loop_recv(l, &op, sv[0]), ==, 0);
    CHECK_INT(srv__loop_cancel(l, &op), ==, 0);
    RUN_UNTIL(l, r.finals == 1);
    CHECK(r.last_res == -ECANCELED || r.last_res == 2);
    close(sv[0]);
    close(sv[1]);
    srv__loop_destroy(l);
}

static void self_cancel_cb(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                           uint32_t fl)
{
    rec_cb(loop, op, res, data, fl);
    if (fl & SRV_LOOP_MORE)
        CHECK_INT(srv__loop_cancel(loop, op), ==, 0);
}

/* Cancelling from inside the op's own callback, with more data queued behind. */
static void test_cancel_in_cb(void)
{
    srv__loop_opts_t o = {.recv_bufs = 4, .recv_size = 16};
    srv__loop_t *l = mk(&o);
    rec_t r = {0};
    srv__loop_op_t op = {.cb = self_cancel_cb, .data = &r};
    char big[200];
    int sv[2];

    memset(big, 'q', sizeof(big));
    spair(sv);
    CHECK_INT(write(sv[1], big, sizeof(big)), ==, (int)sizeof(big));
    CHECK_INT(srv__loop_recv(l, &op, sv[0]), ==, 0);
    RUN_UNTIL(l, r.finals == 1);
    /* Chunks the kernel had already received may still arrive (never dropped: a paused stream
     * must not lose bytes), then exactly one final -ECANCELED. */
    CHECK_INT(r.calls, >=, 2);
    CHECK_INT(r.last_res, ==, -ECANCELED);
    for (int i = 0; i < 3; i++)
        CHECK(run_ok(l, 5) >= 0);
    CHECK_INT(r.more_after_final, ==, 0);
    close(sv[0]);
    close(sv[1]);
    srv__loop_destroy(l);
}

/* ---- send ---- */

static void test_send_partial(void)
{
    srv__loop_t *l = mk(NULL);
    rec_t r = {0};
    srv__loop_op_t op = {.cb = rec_cb, .data = &r};
    size_t total = 4u << 20, sent = 0, got = 0;
    uint8_t *src = malloc(total), *dst = malloc(total);
    int sv[2], partial = 0, sndbuf = 4096;

    CHECK(src && dst);
    for (size_t i = 0; i < total; i++)
        src[i] = pat(i);
    spair(sv);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    while (sent < total) {
        /* Three pieces of what is left, so the vectored path is used. */
        size_t left = total - sent, a = left / 3, b = left / 3;
        struct iovec iov[3] = {
            {src + sent, a}, {src + sent + a, b}, {src + sent + a + b, left - a - b}};
        int before = r.finals;

        CHECK_INT(srv__loop_send(l, &op, sv[0], iov, 3), ==, 0);
        /* Never called back from inside the submit call. */
        CHECK_INT(r.finals, ==, before);
        while (r.finals == before) {
            ssize_t n;

            CHECK(run_ok(l, 20) >= 0);
            while ((n = read(sv[1], dst + got, total - got)) > 0)
                got += (size_t)n;
        }
        CHECK_INT(r.last_flags, ==, 0);
        CHECK_INT(r.last_res, >, 0);
        if ((size_t)r.last_res < left)
            partial++;
        sent += (size_t)r.last_res;
    }
    while (got < total) {
        ssize_t n = read(sv[1], dst + got, total - got);

        if (n > 0)
            got += (size_t)n;
        else
            CHECK(n < 0 && errno == EAGAIN);
    }
    CHECK_INT(partial, >, 0);
    CHECK(memcmp(src, dst, total) == 0);

    /* Single-buffer path and an error result (peer gone: EPIPE, never SIGPIPE). */
    {
        struct iovec one = {(void *)"x", 1};

        int want = r.finals + 1;

        CHECK_INT(srv__loop_send(l, &op, sv[0], &one, 1), ==, 0);
        RUN_UNTIL(l, r.finals == want);
        CHECK_INT(r.last_res, ==, 1);
        close(sv[1]);
        CHECK_INT(srv__loop_send(l, &op, sv[0], &one, 1), ==, 0);
        want = r.finals + 1;
        RUN_UNTIL(l, r.finals == want);
        CHECK_INT(r.last_res, ==, -EPIPE);
    }
    close(sv[0]);
    free(src);
    free(dst);
    srv__loop_destroy(l);
}

/* ---- poll, and several ops on one fd ---- */

static void test_poll_same_fd(void)
{
    srv__loop_t *l = mk(NULL);
    rec_t rp = {0}, rr = {0}, rs = {0}, rp2 = {0};
    srv__loop_op_t pop = {.cb = rec_cb, .data = &rp}, rop = {.cb = rec_cb, .data = &rr};
    srv__loop_op_t sop = {.cb = rec_cb, .data = &rs}, pop2 = {.cb = rec_cb, .data = &rp2};
    struct iovec iov = {(void *)"ping", 4};
    char buf[16];
    int sv[2];

    spair(sv);
    CHECK_INT(srv__loop_poll(l, &pop, sv[0], POLLOUT), ==, 0);
    RUN_UNTIL(l, rp.finals == 1);
    CHECK(rp.last_res & POLLOUT);
    CHECK_INT(rp.last_flags, ==, 0);

    /* POLLIN does not fire without data. */
    memset(&rp, 0, sizeof(rp));
    CHECK_INT(srv__loop_poll(l, &pop, sv[0], POLLIN), ==, 0);
    for (int i = 0; i < 3; i++)
        CHECK(run_ok(l, 10) >= 0);
    CHECK_INT(rp.calls, ==, 0);
    CHECK_INT(write(sv[1], "a", 1), ==, 1);
    RUN_UNTIL(l, rp.finals == 1);
    CHECK(rp.last_res & POLLIN);
    CHECK_INT(read(sv[0], buf, sizeof(buf)), ==, 1);

    /* recv + poll(OUT) + send + poll(IN) armed together on one fd. */
    memset(&rp, 0, sizeof(rp));
    CHECK_INT(srv__loop_recv(l, &rop, sv[0]), ==, 0);
    CHECK_INT(srv__loop_poll(l, &pop2, sv[0], POLLIN), ==, 0);
    CHECK_INT(srv__loop_poll(l, &pop, sv[0], POLLOUT), ==, 0);
    CHECK_INT(srv__loop_send(l, &sop, sv[0], &iov, 1), ==, 0);
    RUN_UNTIL(l, rp.finals == 1 && rs.finals == 1);
    CHECK_INT(rs.last_res, ==, 4);
    CHECK(rp.last_res & POLLOUT);
    CHECK_INT(read(sv[1], buf, sizeof(buf)), ==, 4);
    CHECK_INT(rr.calls, ==, 0);
    CHECK_INT(write(sv[1], "pong", 4), ==, 4);
    RUN_UNTIL(l, rr.calls == 1 && rp2.finals == 1);
    CHECK_INT(rr.last_res, ==, 4);
    CHECK_INT(rr.last_flags, ==, SRV_LOOP_MORE);
    CHECK(rp2.last_res & POLLIN);
    /* The recv stays armed after the polls are gone. */
    CHECK_INT(write(sv[1], "again", 5), ==, 5);
    RUN_UNTIL(l, rr.calls == 2);
    CHECK_INT(rr.last_res, ==, 5);
    CHECK_INT(srv__loop_cancel(l, &rop), ==, 0);
    RUN_UNTIL(l, rr.finals == 1);
    close(sv[0]);
    close(sv[1]);
    srv__loop_destroy(l);
}

/* ---- timers ---- */

typedef struct tmr {
    int order[8];
    int n;
} tmr_t;

typedef struct tctx {
    tmr_t *t;
    int id;
    int res;
    int64_t fired_ms;
} tctx_t;

static void tmr_cb(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data, uint32_t fl)
{
    tctx_t *c = op->data;

    (void)loop;
    (void)data;
    CHECK_INT(fl, ==, 0);
    c->res = res;
    c->fired_ms = now_ms();
    c->t->order[c->t->n++] = c->id;
}

static int64_t g_many_late;
static int g_many_fired;

static void many_cb(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data, uint32_t fl)
{
    struct timespec ts;
    int64_t now;

    (void)loop;
    (void)data;
    (void)fl;
    CHECK_INT(res, ==, -ETIME);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (now < op->deadline_ns)
        g_many_late++; /* fired early */
    g_many_fired++;
}

static void test_timers(void)
{
    srv__loop_t *l = mk(NULL);
    tmr_t t = {0};
    tctx_t c[4] = {{&t, 0, 0, 0}, {&t, 1, 0, 0}, {&t, 2, 0, 0}, {&t, 3, 0, 0}};
    srv__loop_op_t op[4];
    const int ms[4] = {60, 20, 40, 5000};
    int64_t start;

    for (int i = 0; i < 4; i++)
        op[i] = (srv__loop_op_t){.cb = tmr_cb, .data = &c[i]};
    start = now_ms();
    for (int i = 0; i < 4; i++)
        CHECK_INT(srv__loop_timer(l, &op[i], (uint64_t)ms[i]), ==, 0);
    RUN_UNTIL(l, t.n == 3);
    CHECK_INT(t.order[0], ==, 1);
    CHECK_INT(t.order[1], ==, 2);
    CHECK_INT(t.order[2], ==, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_INT(c[i].res, ==, -ETIME);
        CHECK_INT(c[i].fired_ms - start, >=, ms[i] - 1);
        CHECK_INT(c[i].fired_ms - start, <, ms[i] + 1000);
    }
    /* Cancel the long one. */
    CHECK_INT(srv__loop_cancel(l, &op[3]), ==, 0);
    RUN_UNTIL(l, t.n == 4);
    CHECK_INT(c[3].res, ==, -ECANCELED);
    CHECK_INT(now_ms() - start, <, 3000);
    CHECK(srv__loop_now(l) > 0);

    /* Many concurrent timers, some cancelled; none fires before its deadline. */
    {
        enum { N = 2000 };
        srv__loop_op_t *m = calloc(N, sizeof(*m));
        int cancelled = 0;

        CHECK(m);
        g_many_late = 0;
        g_many_fired = 0;
        for (int i = 0; i < N; i++) {
            bool victim = i % 7 == 0;

            m[i].cb = victim ? rec_cb : many_cb;
            m[i].data = victim ? calloc(1, sizeof(rec_t)) : NULL;
            CHECK_INT(srv__loop_timer(l, &m[i], victim ? 60000 : (uint64_t)((i * 37) % 50)), ==, 0);
        }
        for (int i = 0; i < N; i += 7) {
            CHECK_INT(srv__loop_cancel(l, &m[i]), ==, 0);
            cancelled++;
        }
        RUN_UNTIL(l, g_many_fired == N - cancelled);
        for (int i = 0; i < N; i += 7) {
            rec_t *r = m[i].data;

            CHECK_INT(r->finals, ==, 1);
            CHECK_INT(r->last_res, ==, -ECANCELED);
            free(r);
        }
        CHECK_INT(g_many_late, ==, 0);
        free(m);
    }
    srv__loop_destroy(l);
}

/* ---- wake ---- */

typedef struct wk {
    atomic_int wakes;
    atomic_int posted;
    int seen_posted;
} wk_t;

static void wake_cb(srv__loop_t *loop, void *arg)
{
    wk_t *w = arg;

    (void)loop;
    atomic_fetch_add(&w->wakes, 1);
    w->seen_posted = atomic_load(&w->posted);
}

typedef struct wthread {
    srv__loop_t *l;
    wk_t *w;
} wthread_t;

static void *waker_main(void *arg)
{
    wthread_t *t = arg;

    for (int i = 0; i < 1000; i++) {
        atomic_fetch_add(&t->w->posted, 1);
        srv__loop_wake(t->l);
    }
    return NULL;
}

static void test_wake(void)
{
    srv__loop_t *l = mk(NULL);
    wk_t w = {0};
    wthread_t wt = {l, &w};
    pthread_t th;
    int64_t t0;

    srv__loop_set_wake(l, wake_cb, &w);
    /* Coalescing: ten wakes, one callback. */
    for (int i = 0; i < 10; i++)
        srv__loop_wake(l);
    RUN_UNTIL(l, atomic_load(&w.wakes) == 1);
    for (int i = 0; i < 3; i++)
        CHECK(run_ok(l, 0) >= 0);
    CHECK_INT(atomic_load(&w.wakes), ==, 1);

    /* From another thread: every post is seen by some wake callback, and far fewer callbacks
     * than wakes... at most one per wake. */
    atomic_store(&w.wakes, 0);
    CHECK_INT(pthread_create(&th, NULL, waker_main, &wt), ==, 0);
    pthread_join(th, NULL);
    RUN_UNTIL(l, w.seen_posted == 1000);
    CHECK_INT(atomic_load(&w.wakes), >=, 1);
    CHECK_INT(atomic_load(&w.wakes), <=, 1000);

    /* A blocked run(-1) returns when another thread wakes it. */
    atomic_store(&w.wakes, 0);
    CHECK_INT(pthread_create(&th, NULL, waker_main, &wt), ==, 0);
    t0 = now_ms();
    while (atomic_load(&w.wakes) == 0) {
        CHECK(run_ok(l, -1) >= 0);
        CHECK_INT(now_ms() - t0, <, 10000);
    }
    pthread_join(th, NULL);
    RUN_UNTIL(l, w.seen_posted == 2000);
    srv__loop_destroy(l);
}

/* ---- destroy with armed ops, argument errors ---- */

static void test_destroy_armed(void)
{
    for (int pass = 0; pass < 2; pass++) {
        srv__loop_t *l = mk(NULL);
        rec_t r = {0};
        srv__loop_op_t a = {.cb = rec_cb, .data = &r}, rv = {.cb = rec_cb, .data = &r};
        srv__loop_op_t p = {.cb = rec_cb, .data = &r}, t = {.cb = rec_cb, .data = &r};
        srv__loop_op_t s = {.cb = rec_cb, .data = &r};
        struct iovec iov = {(void *)"x", 1};
        int port, lfd = listener(&port), sv[2], c;

        spair(sv);
        CHECK_INT(srv__loop_accept(l, &a, lfd), ==, 0);
        CHECK_INT(srv__loop_recv(l, &rv, sv[0]), ==, 0);
        CHECK_INT(srv__loop_poll(l, &p, sv[0], POLLIN), ==, 0);
        CHECK_INT(srv__loop_timer(l, &t, 100000), ==, 0);
        CHECK_INT(srv__loop_send(l, &s, sv[1], &iov, 1), ==, 0);
        c = connect_to(port);
        if (pass == 1)
            CHECK(run_ok(l, 10) >= 0);
        srv__loop_destroy(l);
        close(c);
        close(lfd);
        close(sv[0]);
        close(sv[1]);
    }
}

static void test_errors(void)
{
    srv__loop_t *l = mk(NULL);
    rec_t r = {0};
    srv__loop_op_t op = {.cb = rec_cb, .data = &r}, nocb = {0};
    srv__loop_opts_t bad = {.recv_bufs = 3};

    CHECK_INT(srv__loop_cancel(l, &op), ==, 0);
    CHECK_INT(srv__loop_recv(l, &op, -1), ==, -EBADF);
    CHECK_INT(srv__loop_timer(l, &nocb, 1), ==, -EINVAL);
    CHECK_INT(run_ok(l, 0), >=, 0);
    CHECK_INT(r.calls, ==, 0);
    srv__loop_destroy(l);
    l = NULL;
    CHECK_INT(srv__loop_create(&l, g_be, &bad), ==, -EINVAL);
    CHECK(l == NULL);
    /* The largest accepted sizes still give a working loop (the CQ is clamped). */
    bad = (srv__loop_opts_t){.entries = 32768, .recv_bufs = 32768, .recv_size = 64};
    l = mk(&bad);
    srv__loop_destroy(l);
}

/* ---- a signal interrupts a blocked run: -EINTR, not a retry ---- */

static volatile sig_atomic_t g_alarms;

static void on_alarm(int sig)
{
    (void)sig;
    g_alarms++;
}

static void test_eintr(void)
{
    srv__loop_t *l = mk(NULL);
    struct sigaction sa, old;
    /* Repeating, so a signal that lands just before we block is followed by another. */
    struct itimerval it = {.it_interval = {0, 20000}, .it_value = {0, 20000}}, off = {0};
    int64_t t0 = now_ms();
    int rc;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    CHECK_INT(sigaction(SIGALRM, &sa, &old), ==, 0);
    CHECK(run_ok(l, 0) >= 0); /* nothing left queued */
    g_alarms = 0;
    CHECK_INT(setitimer(ITIMER_REAL, &it, NULL), ==, 0);
    do {
        rc = srv__loop_run(l, -1);
        CHECK(rc >= 0 || rc == -EINTR);
        CHECK_INT(now_ms() - t0, <, 10000);
    } while (rc != -EINTR);
    CHECK_INT(setitimer(ITIMER_REAL, &off, NULL), ==, 0);
    CHECK(g_alarms > 0);
    CHECK_INT(sigaction(SIGALRM, &old, NULL), ==, 0);
    srv__loop_destroy(l);
}

static void run_suite(srv__backend_t be, const char *name)
{
    g_be = be;
    g_name = name;
    fprintf(stderr, "== %s\n", name);
    test_errors();
    test_accept();
    test_accept_one_per_run();
    test_accept_after_other_completions();
    test_accept_busy_loop_holds_nothing();
    test_accept_loop_gone_leaves_connections();
    test_accept_cancelled_in_same_run();
    test_recv_stream();
    test_eof_and_cancel_recv();
    test_cancel_in_cb();
    test_send_partial();
    test_poll_same_fd();
    test_timers();
    test_wake();
    test_destroy_armed();
    test_eintr();
}

/* SRV_REACTOR_BACKEND overrides what the caller asked for. */
static void test_env(bool have_uring)
{
    srv__loop_t *l = NULL;

    setenv("SRV_REACTOR_BACKEND", "epoll", 1);
    CHECK_INT(srv__loop_create(&l, SRV_BACKEND_URING, NULL), ==, 0);
    CHECK_STR(srv__loop_backend_name(l), "epoll");
    CHECK_STR(srv__loop_fallback_reason(l), "");
    srv__loop_destroy(l);
    setenv("SRV_REACTOR_BACKEND", "bogus", 1);
    CHECK_INT(srv__loop_create(&l, SRV_BACKEND_AUTO, NULL), ==, -EINVAL);
    if (have_uring) {
        setenv("SRV_REACTOR_BACKEND", "io_uring", 1);
        CHECK_INT(srv__loop_create(&l, SRV_BACKEND_EPOLL, NULL), ==, 0);
        CHECK_STR(srv__loop_backend_name(l), "io_uring");
        srv__loop_destroy(l);
        setenv("SRV_REACTOR_BACKEND", "auto", 1);
        CHECK_INT(srv__loop_create(&l, SRV_BACKEND_EPOLL, NULL), ==, 0);
        CHECK_STR(srv__loop_backend_name(l), "io_uring");
        CHECK_STR(srv__loop_fallback_reason(l), "");
        srv__loop_destroy(l);
    }
    unsetenv("SRV_REACTOR_BACKEND");
}

/* AUTO falls back to epoll with a readable reason when io_uring is blocked (here by a seccomp
 * filter, as container runtimes do), and URING reports the error. In a child process. */
static void test_fallback_seccomp(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
    int status;
    pid_t pid = fork();

    CHECK(pid >= 0);
    if (pid == 0) {
        srv__loop_t *l = NULL;
        rec_t r = {0};
        srv__loop_op_t t = {.cb = rec_cb, .data = &r};

        CHECK_INT(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), ==, 0);
        CHECK_INT(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), ==, 0);
        CHECK_INT(srv__loop_create(&l, SRV_BACKEND_URING, NULL), ==, -EPERM);
        CHECK_INT(srv__loop_create(&l, SRV_BACKEND_AUTO, NULL), ==, 0);
        CHECK_STR(srv__loop_backend_name(l), "epoll");
        fprintf(stderr, "fallback reason: %s\n", srv__loop_fallback_reason(l));
        CHECK(strstr(srv__loop_fallback_reason(l), "io_uring_queue_init: ") != NULL);
        CHECK(strstr(srv__loop_fallback_reason(l), strerror(EPERM)) != NULL);
        CHECK_INT(srv__loop_timer(l, &t, 1), ==, 0);
        RUN_UNTIL(l, r.finals == 1);
        srv__loop_destroy(l);
        exit(0);
    }
    CHECK_INT(waitpid(pid, &status, 0), ==, pid);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), ==, 0);
}

int main(void)
{
    srv__loop_t *l = NULL;
    bool have_uring;
    int rc;

    (void)check_failures_;
    unsetenv("SRV_REACTOR_BACKEND");
    rc = srv__loop_create(&l, SRV_BACKEND_URING, NULL);
    have_uring = rc == 0;
    if (have_uring) {
        srv__loop_destroy(l);
    } else {
        CHECK(rc == -ENOSYS || rc == -EPERM);
        rc = srv__loop_create(&l, SRV_BACKEND_AUTO, NULL);
        CHECK_INT(rc, ==, 0);
        fprintf(stderr, "io_uring unavailable: %s\n", srv__loop_fallback_reason(l));
        CHECK(srv__loop_fallback_reason(l)[0] != '\0');
        srv__loop_destroy(l);
    }
    run_suite(SRV_BACKEND_EPOLL, "epoll");
    if (have_uring)
        run_suite(SRV_BACKEND_URING, "io_uring");
    test_env(have_uring);
    test_fallback_seccomp();
    if (!have_uring)
        SKIP("io_uring not available on this kernel: only epoll was tested");
    return 0;
}
