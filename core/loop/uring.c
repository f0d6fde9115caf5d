/* io_uring backend: every operation is an SQE whose user_data is the caller's op pointer; SQEs
 * are only queued by the submit calls and go to the kernel in one io_uring_enter per
 * srv__loop_run, which also waits. Receives are multishot into one provided-buffer ring per loop;
 * each buffer goes back to the ring as soon as its callback returns. Listeners are polled, not
 * accepted from with IORING_OP_ACCEPT (see uring_accept_due). */
#include "core/loop/backend.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* user_data values that are not op pointers (ops are at least 8-byte aligned). */
#define TAG_CANCEL 1u /* completion of an ASYNC_CANCEL SQE: swallowed */
#define TAG_WAKE 2u   /* the eventfd read behind srv__loop_wake */
#define TAG_PROBE 3u  /* the multishot recv issued by the probe */
#define TAG_MASK 7u
#define BGID 0

/* op->bflags of an accept op: its poll completed and it waits for the end of the run (or its
 * callback runs); it is not in the kernel, so a cancel needs no SQE. */
#define BF_HELD 0x1u

typedef struct uloop {
    srv__loop_t base;
    struct io_uring ring;
    bool ring_ok;
    bool wake_armed;
    bool reg_ring; /* ring fd registered: io_uring_enter skips the fd-table lookup */
    struct io_uring_buf_ring *br;
    char *bufs;
    unsigned nbufs;
    unsigned bufsz;
    unsigned bmask;
    struct msghdr *msgs; /* one per SQE slot: sendmsg reads it while the SQE is submitted */
    unsigned inflight;   /* SQEs whose final completion (no MORE) has not been reaped */
    uint64_t wake_val;
    srv__loop_op_t *held, *held_tail; /* accept ops whose listener is ready, by op->next */
} uloop_t;

_Static_assert(sizeof(((srv__loop_op_t *)0)->priv) >= sizeof(struct __kernel_timespec),
               "timer timespec lives in op->priv");

static inline uloop_t *U(srv__loop_t *loop)
{
    return (uloop_t *)loop;
}

static inline void put_buf(uloop_t *u, unsigned bid)
{
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * u->bufsz, u->bufsz, (unsigned short)bid,
                          (int)u->bmask, 0);
    io_uring_buf_ring_advance(u->br, 1);
}

/* A free SQE; when the SQ is full, submit what is queued to make room (order is kept). */
static struct io_uring_sqe *get_sqe(uloop_t *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    int r;

    if (__builtin_expect(sqe != NULL, 1))
        return sqe;
    do
        r = io_uring_submit(&u->ring);
    while (r == -EINTR);
    return io_uring_get_sqe(&u->ring);
}

static int arm_wake(uloop_t *u)
{
    struct io_uring_sqe *sqe = get_sqe(u);

    if (sqe == NULL)
        return -EBUSY;
    io_uring_prep_read(sqe, u->base.wake_fd, &u->wake_val, sizeof(u->wake_val), 0);
    sqe->user_data = TAG_WAKE;
    u->inflight++;
    u->wake_armed = true;
    return 0;
}

static int arm(uloop_t *u, srv__loop_op_t *op)
{
    struct io_uring_sqe *sqe = get_sqe(u);
    struct __kernel_timespec ts;

    if (sqe == NULL)
        return -EBUSY;
    switch (op->kind) {
    case SRV__OP_ACCEPT:
        /* Not IORING_OP_ACCEPT: its poll is EPOLLEXCLUSIVE (io_issue_defs .poll_exclusive) and
         * io_uring counts a wake-up as taken even when the ring's task is busy in a handler
         * (with DEFER_TASKRUN the accept itself then waits for that task's next enter), so
         * every new connection went to the one ring first in the listener's wait queue,
         * blocked or not; and when that ring cancelled (a worker retiring), the connection it
         * had been woken for stayed queued with no ring woken for it. A plain poll wakes every
         * ring waiting on the listener; each takes one connection (uring_accept_due). */
        io_uring_prep_poll_add(sqe, op->fd, POLLIN);
        op->bflags = 0;
        break;
    case SRV__OP_RECV:
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BGID;
        break;
    case SRV__OP_SEND:
        if (op->iovcnt <= 1) {
            /* IORING_OP_SEND skips the msghdr import: cheaper for the common single buffer. */
            io_uring_prep_send(sqe, op->fd, op->iovcnt ? op->iov[0].iov_base : NULL,
                               op->iovcnt ? op->iov[0].iov_len : 0, MSG_NOSIGNAL);
        } else {
            struct msghdr *m = &u->msgs[sqe - u->ring.sq.sqes];

            memset(m, 0, sizeof(*m));
            m->msg_iov = (struct iovec *)op->iov;
            m->msg_iovlen = (size_t)op->iovcnt;
            io_uring_prep_sendmsg(sqe, op->fd, m, MSG_NOSIGNAL);
        }
        break;
    case SRV__OP_POLL:
        io_uring_prep_poll_add(sqe, op->fd, op->events);
        break;
    case SRV__OP_TIMER:
        /* Absolute CLOCK_MONOTONIC deadline: the SQE may be submitted later than queued. The
         * kernel copies the timespec at submission; op memory is stable until then. */
        ts.tv_sec = op->deadline_ns / 1000000000;
        ts.tv_nsec = op->deadline_ns % 1000000000;
        memcpy(op->priv, &ts, sizeof(ts));
        io_uring_prep_timeout(sqe, (struct __kernel_timespec *)(void *)op->priv, 0,
                              IORING_TIMEOUT_ABS);
        break;
    default:
        /* The SQE is taken: make it a harmless NOP whose completion is swallowed. */
        io_uring_prep_nop(sqe);
        sqe->user_data = TAG_CANCEL;
        u->inflight++;
        return -EINVAL;
    }
    sqe->user_data = (uint64_t)(uintptr_t)op;
    u->inflight++;
    op->armed = 1;
    return 0;
}

static int uring_submit_op(srv__loop_t *loop, srv__loop_op_t *op)
{
    return arm(U(loop), op);
}

static int uring_cancel(srv__loop_t *loop, srv__loop_op_t *op)
{
    uloop_t *u = U(loop);
    struct io_uring_sqe *sqe;

    if (op->bflags & BF_HELD) {
        op->cancelled = 1; /* uring_accept_due finishes it */
        return 0;
    }
    sqe = get_sqe(u);
    if (sqe == NULL)
        return -EBUSY;
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
    sqe->user_data = TAG_CANCEL;
    u->inflight++;
    op->cancelled = 1;
    return 0;
}

static inline void finish(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data)
{
    op->armed = 0;
    op->cancelled = 0;
    op->cb(loop, op, res, data, 0);
}

/* The kernel ended a multishot op that its owner still wants: report res with MORE, then queue
 * it again. Returns completions handled. */
static int continue_multishot(uloop_t *u, srv__loop_op_t *op, int res, const char *data, int bid)
{
    srv__loop_t *loop = &u->base;
    int rc;

    op->cb(loop, op, res, data, SRV_LOOP_MORE);
    if (bid >= 0)
        put_buf(u, (unsigned)bid);
    if (op->cancelled) {
        finish(loop, op, -ECANCELED, NULL);
        return 2;
    }
    op->armed = 0;
    rc = arm(u, op);
    if (rc < 0) {
        finish(loop, op, rc, NULL);
        return 2;
    }
    return 1;
}

static int dispatch_recv(uloop_t *u, srv__loop_op_t *op, int res, uint32_t fl)
{
    srv__loop_t *loop = &u->base;
    bool more = (fl & IORING_CQE_F_MORE) != 0;
    const char *data = NULL;
    int bid = -1, rc;

    if (fl & IORING_CQE_F_BUFFER) {
        bid = (int)(fl >> IORING_CQE_BUFFER_SHIFT);
        data = u->bufs + (size_t)bid * u->bufsz;
    }
    if (res > 0) {
        if (more) {
            int n = 0;

            /* Data the kernel already received is delivered even after srv__loop_cancel:
             * dropping it would lose bytes of a stream whose reading is only paused. */
            op->cb(loop, op, res, data, SRV_LOOP_MORE);
            n = 1;
            if (bid >= 0)
                put_buf(u, (unsigned)bid);
            return n;
        }
        if (op->cancelled) {
            finish(loop, op, res, data);
            if (bid >= 0)
                put_buf(u, (unsigned)bid);
            return 1;
        }
        return continue_multishot(u, op, res, data, bid);
    }
    if (bid >= 0)
        put_buf(u, (unsigned)bid);
    if (more)
        return 0;
    if (res == -ENOBUFS && !op->cancelled) {
        /* The buffer ring ran dry: by now the buffers of earlier completions are back. */
        op->armed = 0;
        rc = arm(u, op);
        if (rc == 0)
            return 0;
        res = rc;
    }
    if (res < 0 && op->cancelled)
        res = -ECANCELED;
    finish(loop, op, res, NULL);
    return 1;
}

/* The listener's poll completed: hold the op until the end of the run (uring_accept_due). A
 * cancelled one owes nobody a connection (the poll woke every ring) and just ends. */
static int dispatch_accept(uloop_t *u, srv__loop_op_t *op, int res)
{
    if (op->cancelled || res < 0) {
        finish(&u->base, op, op->cancelled ? -ECANCELED : res, NULL);
        return 1;
    }
    op->bflags |= BF_HELD;
    op->next = NULL;
    if (u->held_tail)
        u->held_tail->next = op;
    else
        u->held = op;
    u->held_tail = op;
    return 0;
}

/* One connection per ready listener, after every other completion of the run: those callbacks
 * may run the app for long, and a connection taken before them would wait behind them although
 * another loop was free. The rest of a burst is left to the other rings the poll woke, or to us
 * on the next run. */
static int uring_accept_due(uloop_t *u)
{
    srv__loop_t *loop = &u->base;
    int n = 0;

    while (u->held != NULL) {
        srv__loop_op_t *op = u->held;
        int c = -1, rc;

        u->held = op->next;
        if (u->held == NULL)
            u->held_tail = NULL;
        op->next = NULL;
        if (!op->cancelled) {
            for (;;) {
                c = accept4(op->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (c >= 0 || errno == EAGAIN || errno == EWOULDBLOCK ||
                    !srv__loop_accept_transient(errno))
                    break;
            }
            if (c < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                op->bflags = 0;
                finish(loop, op, -errno, NULL);
                n++;
                continue;
            }
            if (c >= 0) {
                op->cb(loop, op, c, NULL, SRV_LOOP_MORE);
                n++;
            }
        }
        op->bflags = 0;
        if (op->cancelled) {
            finish(loop, op, -ECANCELED, NULL);
            n++;
            continue;
        }
        op->armed = 0;
        rc = arm(u, op);
        if (rc < 0) {
            finish(loop, op, rc, NULL);
            n++;
        }
    }
    return n;
}

static int dispatch(uloop_t *u, uint64_t ud, int res, uint32_t fl)
{
    srv__loop_op_t *op;

    if (!(fl & IORING_CQE_F_MORE))
        u->inflight--;
    if (__builtin_expect((ud & TAG_MASK) != 0, 0)) {
        if (ud == TAG_WAKE) {
            u->wake_armed = false;
            arm_wake(u);
            srv__loop_woken(&u->base);
            return 1;
        }
        if (ud == TAG_PROBE && (fl & IORING_CQE_F_BUFFER))
            put_buf(u, fl >> IORING_CQE_BUFFER_SHIFT);
        return 0;
    }
    op = (srv__loop_op_t *)(uintptr_t)ud;
    switch (op->kind) {
    case SRV__OP_RECV:
        return dispatch_recv(u, op, res, fl);
    case SRV__OP_ACCEPT:
        return dispatch_accept(u, op, res);
    default:
        if (fl & IORING_CQE_F_MORE)
            return 0;
        finish(&u->base, op, res, NULL);
        return 1;
    }
}

/* Reap every CQE, consuming each before its callback so a callback that submits (and so may
 * enter the kernel) never finds the CQ full of entries we already read. */
static int reap(uloop_t *u)
{
    struct io_uring_cq *cq = &u->ring.cq;
    unsigned head = *cq->khead, tail;
    int n = 0;

    for (;;) {
        tail = io_uring_smp_load_acquire(cq->ktail);
        if (head == tail)
            break;
        do {
            const struct io_uring_cqe *cqe = &cq->cqes[head & cq->ring_mask];
            uint64_t ud = cqe->user_data;
            int res = cqe->res;
            uint32_t fl = cqe->flags;

            head++;
            io_uring_smp_store_release(cq->khead, head);
            n += dispatch(u, ud, res, fl);
        } while (head != tail);
    }
    return n;
}

/* Publish queued SQEs to the kernel's SQ tail (what liburing's flush does, but we need the
 * count for our own io_uring_enter). */
static unsigned flush_sq(struct io_uring *r)
{
    struct io_uring_sq *sq = &r->sq;
    unsigned tail = sq->sqe_tail;

    if (sq->sqe_head != tail) {
        sq->sqe_head = tail;
        io_uring_smp_store_release(sq->ktail, tail);
    }
    return tail - *sq->khead;
}

/* One io_uring_enter: submit everything and wait. We call it ourselves rather than through
 * liburing's submit_and_wait_timeout because that one re-enters after a signal interrupted a
 * wait that also submitted, hiding the signal from the caller until the next event. */
static int enter(uloop_t *u, int timeout_ms)
{
    struct io_uring_getevents_arg arg;
    struct __kernel_timespec ts;
    unsigned to_submit = flush_sq(&u->ring);
    unsigned ready = io_uring_cq_ready(&u->ring);
    unsigned kflags = IO_URING_READ_ONCE(*u->ring.sq.kflags);
    unsigned wait_nr = (ready == 0 && timeout_ms != 0) ? 1 : 0;
    long r;

    if (to_submit == 0 && ready > 0 && !(kflags & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)))
        return 0;
    memset(&arg, 0, sizeof(arg));
    if (wait_nr && timeout_ms > 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
        arg.ts = (uint64_t)(uintptr_t)&ts;
    }
    r = syscall(__NR_io_uring_enter, u->reg_ring ? u->ring.enter_ring_fd : u->ring.ring_fd,
                to_submit, wait_nr,
                IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG |
                    (u->reg_ring ? IORING_ENTER_REGISTERED_RING : 0),
                &arg, sizeof(arg));
    if (r >= 0)
        return 0;
    switch (errno) {
    case ETIME:
    case EBUSY:  /* CQ overflow back-pressure: reap, then submit next time */
    case EAGAIN: /* out of request memory: same */
        return 0;
    default:
        return -errno;
    }
}

static int uring_run(srv__loop_t *loop, int timeout_ms)
{
    uloop_t *u = U(loop);
    int rc;

    if (!u->wake_armed)
        arm_wake(u);
    rc = enter(u, timeout_ms);
    if (rc < 0)
        return rc;
    srv__loop_update_now(loop);
    rc = reap(u);
    return rc + uring_accept_due(u);
}

static void uring_destroy(srv__loop_t *loop)
{
    uloop_t *u = U(loop);

    if (u->ring_ok) {
        /* Cancel and reap what is still in flight so nothing the kernel holds outlives the
         * buffers freed below. Bounded: a wedged request must not hang shutdown. */
        struct io_uring_sqe *sqe = u->inflight ? get_sqe(u) : NULL;
        int64_t deadline = srv__loop_clock() + 1000000000;

        if (sqe != NULL) {
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
            sqe->user_data = TAG_CANCEL;
            u->inflight++;
        }
        while (u->inflight > 0 && srv__loop_clock() < deadline) {
            struct io_uring_cq *cq = &u->ring.cq;
            unsigned head, tail;

            if (enter(u, 100) < 0)
                break;
            head = *cq->khead;
            tail = io_uring_smp_load_acquire(cq->ktail);
            for (; head != tail; head++) {
                const struct io_uring_cqe *cqe = &cq->cqes[head & cq->ring_mask];

                if (!(cqe->flags & IORING_CQE_F_MORE))
                    u->inflight--;
            }
            io_uring_smp_store_release(cq->khead, head);
        }
        io_uring_queue_exit(&u->ring);
    }
    free(u->br);
    free(u->bufs);
    free(u->msgs);
    srv__loop_base_fini(loop);
    free(u);
}

static int setup_ring(uloop_t *u, unsigned entries, char *why, size_t whylen)
{
    /* Newest flags first; each step drops what an older kernel rejects with EINVAL.
     * SINGLE_ISSUER|DEFER_TASKRUN (6.1) run completions only when we enter, on our thread;
     * SUBMIT_ALL (5.18) keeps one bad SQE from stalling the rest; COOP_TASKRUN (5.19). */
    static const unsigned tries[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int ret = -EINVAL;

    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        struct io_uring_params p;

        memset(&p, 0, sizeof(p));
        /* Multishot ops post many CQEs per SQE: a CQ four times the SQ makes overflow rare. */
        p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = entries * 4;
        ret = io_uring_queue_init_params(entries, &u->ring, &p);
        if (ret != -EINVAL)
            break;
    }
    if (ret < 0) {
        snprintf(why, whylen, "io_uring_queue_init: %s%s", strerror(-ret),
                 ret == -EPERM || ret == -ENOSYS ? " (seccomp or kernel.io_uring_disabled?)" : "");
        return ret == -ENOMEM ? -ENOMEM : (ret == -EPERM ? -EPERM : -ENOSYS);
    }
    u->ring_ok = true;
    if (!(u->ring.features & IORING_FEAT_EXT_ARG)) {
        snprintf(why, whylen, "io_uring: no IORING_FEAT_EXT_ARG (kernel < 5.11)");
        return -ENOSYS;
    }
    /* Optional (5.18): saves an fget/fput per enter, which is an atomic pair once the
     * process has threads. */
    u->reg_ring = io_uring_register_ring_fd(&u->ring) == 1;
    return 0;
}

static int check_opcodes(uloop_t *u, char *why, size_t whylen)
{
    static const struct {
        int op;
        const char *name;
    } need[] = {
        {IORING_OP_RECV, "RECV"},
        {IORING_OP_SEND, "SEND"},
        {IORING_OP_SENDMSG, "SENDMSG"},
        {IORING_OP_POLL_ADD, "POLL_ADD"},
        {IORING_OP_TIMEOUT, "TIMEOUT"},
        {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
        {IORING_OP_PROVIDE_BUFFERS, "PROVIDE_BUFFERS"},
        {IORING_OP_READ, "READ"},
    };
    struct io_uring_probe *p = io_uring_get_probe_ring(&u->ring);

    if (p == NULL) {
        snprintf(why, whylen, "io_uring_get_probe: failed");
        return -ENOSYS;
    }
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        if (!io_uring_opcode_supported(p, need[i].op)) {
            snprintf(why, whylen, "io_uring: opcode %s not supported", need[i].name);
            io_uring_free_probe(p);
            return -ENOSYS;
        }
    }
    io_uring_free_probe(p);
    return 0;
}

static int setup_bufs(uloop_t *u, char *why, size_t whylen)
{
    struct io_uring_buf_reg reg;
    long pg = sysconf(_SC_PAGESIZE);
    size_t rsz = (size_t)u->nbufs * sizeof(struct io_uring_buf);
    void *mem = NULL;
    int ret;

    rsz = (rsz + (size_t)pg - 1) & ~((size_t)pg - 1);
    if (posix_memalign(&mem, (size_t)pg, rsz) != 0)
        return -ENOMEM;
    memset(mem, 0, rsz);
    u->br = mem;
    u->bufs = malloc((size_t)u->nbufs * u->bufsz);
    if (u->bufs == NULL)
        return -ENOMEM;
    io_uring_buf_ring_init(u->br);
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)u->br;
    reg.ring_entries = u->nbufs;
    reg.bgid = BGID;
    ret = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (ret < 0) {
        snprintf(why, whylen, "io_uring_register_buf_ring: %s (kernel < 5.19?)", strerror(-ret));
        return ret == -ENOMEM ? -ENOMEM : -ENOSYS;
    }
    for (unsigned i = 0; i < u->nbufs; i++)
        io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * u->bufsz, u->bufsz, (unsigned short)i,
                              (int)u->bmask, (int)i);
    io_uring_buf_ring_advance(u->br, (int)u->nbufs);
    return 0;
}

/* Multishot recv needs 6.0; older kernels reject it with EINVAL. Try one on a socketpair. */
static int probe_multishot_recv(uloop_t *u, char *why, size_t whylen)
{
    struct io_uring_sqe *sqe;
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = 1};
    int sv[2], ret, res = -EINVAL, done = 0, got = 0;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    if (write(sv[1], "x", 1) != 1) {
        ret = -errno;
        goto out;
    }
    sqe = io_uring_get_sqe(&u->ring);
    io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    sqe->user_data = TAG_PROBE;
    ret = io_uring_submit(&u->ring);
    if (ret < 0)
        goto out;
    ret = 0;
    while (!done) {
        ret = io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
        if (ret < 0)
            goto out;
        if (cqe->flags & IORING_CQE_F_BUFFER)
            put_buf(u, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (!got) {
            res = cqe->res;
            got = 1;
            /* Ending the stream ends the multishot op; wait for that final CQE. */
            close(sv[1]);
            sv[1] = -1;
        }
        done = !(cqe->flags & IORING_CQE_F_MORE);
        io_uring_cqe_seen(&u->ring, cqe);
    }
    ret = res == 1 ? 0 : -ENOSYS;
    if (ret < 0)
        snprintf(why, whylen, "io_uring: multishot recv unsupported (%s; kernel < 6.0?)",
                 res < 0 ? strerror(-res) : "unexpected result");
out:
    if (ret < 0 && why[0] == '\0')
        snprintf(why, whylen, "io_uring: multishot recv probe: %s", strerror(-ret));
    close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    return ret;
}

static int uring_create(srv__loop_t **out, const srv__loop_opts_t *opts, char *why, size_t whylen)
{
    uloop_t *u = calloc(1, sizeof(*u));
    int rc;

    if (u == NULL)
        return -ENOMEM;
    u->base.wake_fd = -1;
    rc = srv__loop_base_init(&u->base, &srv__loop_uring, opts);
    if (rc < 0) {
        snprintf(why, whylen, "eventfd: %s", strerror(-rc));
        goto fail;
    }
    u->nbufs = opts->recv_bufs;
    u->bufsz = opts->recv_size;
    u->bmask = (unsigned)io_uring_buf_ring_mask(u->nbufs);
    rc = setup_ring(u, opts->entries, why, whylen);
    if (rc < 0)
        goto fail;
    rc = check_opcodes(u, why, whylen);
    if (rc < 0)
        goto fail;
    u->msgs = calloc(u->ring.sq.ring_entries, sizeof(*u->msgs));
    if (u->msgs == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = setup_bufs(u, why, whylen);
    if (rc < 0)
        goto fail;
    rc = probe_multishot_recv(u, why, whylen);
    if (rc < 0)
        goto fail;
    rc = arm_wake(u);
    if (rc < 0)
        goto fail;
    *out = &u->base;
    return 0;
fail:
    if (why[0] == '\0')
        snprintf(why, whylen, "io_uring set-up: %s", strerror(-rc));
    u->inflight = 0;
    uring_destroy(&u->base);
    return rc;
}

const srv__loop_backend_t srv__loop_uring = {
    .name = "io_uring",
    .create = uring_create,
    .destroy = uring_destroy,
    .accept = uring_submit_op,
    .recv = uring_submit_op,
    .send = uring_submit_op,
    .poll = uring_submit_op,
    .timer = uring_submit_op,
    .cancel = uring_cancel,
    .run = uring_run,
};
