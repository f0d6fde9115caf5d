/* Backend-independent part of the event loop: picking and probing a backend (io_uring first,
 * epoll as the fallback), argument checks, the cached clock and the eventfd wake-up that both
 * backends share. Everything ring- or epoll-specific lives in loop_uring.c / loop_epoll.c. */
#include "core/loop/loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/loop/backend.h"

int srv__loop_base_init(srv__loop_t *loop, const srv__loop_backend_t *be,
                        const srv__loop_opts_t *opts)
{
    loop->be = be;
    loop->opts = *opts;
    loop->wake_cb = NULL;
    loop->wake_arg = NULL;
    loop->fallback[0] = '\0';
    atomic_init(&loop->wake_pending, 0);
    loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake_fd < 0)
        return -errno;
    srv__loop_update_now(loop);
    return 0;
}

void srv__loop_base_fini(srv__loop_t *loop)
{
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
    loop->wake_fd = -1;
}

/* SRV_REACTOR_BACKEND lets the test suite (and an operator chasing a kernel bug) force a
 * backend without touching the config. */
static int backend_from_env(srv__backend_t *want)
{
    const char *v = getenv("SRV_REACTOR_BACKEND");

    if (v == NULL || *v == '\0')
        return 0;
    if (strcasecmp(v, "io_uring") == 0 || strcasecmp(v, "uring") == 0)
        *want = SRV_BACKEND_URING;
    else if (strcasecmp(v, "epoll") == 0)
        *want = SRV_BACKEND_EPOLL;
    else if (strcasecmp(v, "auto") == 0)
        *want = SRV_BACKEND_AUTO;
    else
        return -EINVAL;
    return 0;
}

int srv__loop_create(srv__loop_t **out, srv__backend_t want, const srv__loop_opts_t *opts)
{
    srv__loop_opts_t o = {.entries = 1024, .recv_bufs = 512, .recv_size = 16384};
    char why[sizeof(((srv__loop_t *)0)->fallback)] = "";
    int rc;

    *out = NULL;
    if (opts != NULL) {
        if (opts->entries)
            o.entries = opts->entries;
        if (opts->recv_bufs)
            o.recv_bufs = opts->recv_bufs;
        if (opts->recv_size)
            o.recv_size = opts->recv_size;
    }
    /* Buffer ids are 16 bits and a provided-buffer ring holds at most 32768 entries. */
    if (o.entries > 32768 || o.recv_bufs > 32768 || (o.recv_bufs & (o.recv_bufs - 1)) != 0 ||
        o.recv_size > (1u << 30))
        return -EINVAL;
    rc = backend_from_env(&want);
    if (rc < 0)
        return rc;

    if (want == SRV_BACKEND_URING)
        return srv__loop_uring.create(out, &o, why, sizeof(why));
    if (want == SRV_BACKEND_AUTO) {
        rc = srv__loop_uring.create(out, &o, why, sizeof(why));
        if (rc == 0)
            return 0;
    }
    rc = srv__loop_epoll.create(out, &o, NULL, 0);
    if (rc == 0 && want == SRV_BACKEND_AUTO)
        snprintf((*out)->fallback, sizeof((*out)->fallback), "%s", why);
    return rc;
}

void srv__loop_destroy(srv__loop_t *loop)
{
    if (loop != NULL)
        loop->be->destroy(loop);
}

const char *srv__loop_backend_name(const srv__loop_t *loop)
{
    return loop->be->name;
}

const char *srv__loop_fallback_reason(const srv__loop_t *loop)
{
    return loop->fallback;
}

static int check_op(const srv__loop_op_t *op, int fd)
{
    if (op == NULL || op->cb == NULL)
        return -EINVAL;
    if (op->armed)
        return -EBUSY;
    if (fd < 0)
        return -EBADF;
    return 0;
}

int srv__loop_accept(srv__loop_t *loop, srv__loop_op_t *op, int listen_fd)
{
    int rc = check_op(op, listen_fd);

    if (rc < 0)
        return rc;
    op->fd = listen_fd;
    op->kind = SRV__OP_ACCEPT;
    op->cancelled = 0;
    return loop->be->accept(loop, op);
}

int srv__loop_recv(srv__loop_t *loop, srv__loop_op_t *op, int fd)
{
    int rc = check_op(op, fd);

    if (rc < 0)
        return rc;
    op->fd = fd;
    op->kind = SRV__OP_RECV;
    op->cancelled = 0;
    return loop->be->recv(loop, op);
}

int srv__loop_send(srv__loop_t *loop, srv__loop_op_t *op, int fd, const struct iovec *iov,
                   int iovcnt)
{
    int rc = check_op(op, fd);

    if (rc < 0)
        return rc;
    if (iovcnt < 0 || (iovcnt > 0 && iov == NULL))
        return -EINVAL;
    op->fd = fd;
    op->kind = SRV__OP_SEND;
    op->cancelled = 0;
    op->iov = iov;
    op->iovcnt = iovcnt;
    return loop->be->send(loop, op);
}

int srv__loop_poll(srv__loop_t *loop, srv__loop_op_t *op, int fd, uint32_t events)
{
    int rc = check_op(op, fd);

    if (rc < 0)
        return rc;
    op->fd = fd;
    op->kind = SRV__OP_POLL;
    op->cancelled = 0;
    op->events = events;
    return loop->be->poll(loop, op);
}

int srv__loop_timer(srv__loop_t *loop, srv__loop_op_t *op, uint64_t ms)
{
    int rc = check_op(op, 0);

    if (rc < 0)
        return rc;
    if (ms > (uint64_t)INT64_MAX / 2000000)
        ms = (uint64_t)INT64_MAX / 2000000;
    op->fd = -1;
    op->kind = SRV__OP_TIMER;
    op->cancelled = 0;
    /* From now, not from the cached iteration time: a timer set after a long callback must not
     * fire early. */
    op->deadline_ns = srv__loop_clock() + (int64_t)ms * 1000000;
    return loop->be->timer(loop, op);
}

int srv__loop_cancel(srv__loop_t *loop, srv__loop_op_t *op)
{
    if (op == NULL)
        return -EINVAL;
    if (!op->armed || op->cancelled)
        return 0;
    return loop->be->cancel(loop, op);
}

void srv__loop_set_wake(srv__loop_t *loop, void (*cb)(srv__loop_t *loop, void *arg), void *arg)
{
    loop->wake_cb = cb;
    loop->wake_arg = arg;
}

void srv__loop_wake(srv__loop_t *loop)
{
    uint64_t one = 1;
    int saved = errno; /* callable from signal handlers */

    /* Only the first waker since the loop last drained the eventfd pays for the syscall. */
    if (atomic_exchange(&loop->wake_pending, 1) == 0) {
        while (write(loop->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
    }
    errno = saved;
}

int srv__loop_run(srv__loop_t *loop, int timeout_ms)
{
    return loop->be->run(loop, timeout_ms);
}

int64_t srv__loop_now(const srv__loop_t *loop)
{
    return loop->now_ns;
}

/* accept(2) errors that concern one connection (it went away, or a firewall refused it) or are
 * momentary: the listener is fine and accepting goes on. Shared by both backends. */
bool srv__loop_accept_transient(int err)
{
    switch (err) {
    case ECONNABORTED:
    case EINTR:
    case EAGAIN:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
        return true;
    default:
        return false;
    }
}
