/* epoll backend: waits for readiness (level-triggered), then does the operation itself and posts
 * the same completion io_uring would. One epoll registration per fd, whose record lists the ops
 * waiting on it; timers live in a binary min-heap; results produced inside a submit call (an
 * immediate send, a cancel) are queued and delivered by the next srv__loop_run. Listeners are
 * registered EPOLLEXCLUSIVE and accepted from last in a run, one connection at a time. */
#include "core/loop/backend.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define RECV_BATCH 16 /* full-buffer reads per readiness event */
#define SNAP_MAX 16   /* ops per fd handled per event (more stay armed, LT re-reports) */
#define WAKE_TAG UINT64_MAX

/* op->armed values */
#define ST_WAIT 1   /* on an fd record or in the timer heap */
#define ST_POSTED 2 /* final result stored in priv[1], queued for the next run */

/* op->bflags of an accept op: epoll_wait reported its listener ready in this run and the accept
 * is still to come (at the end of the run). */
#define BF_ACCEPT_DUE 0x1u

typedef struct fdrec {
    srv__loop_op_t *head; /* waiting ops, linked by op->next, oldest first */
    uint32_t mask;       /* registered interest */
    uint32_t gen;        /* bumped on EPOLL_CTL_DEL: events fetched before are stale */
    bool reg;
    bool excl; /* registered EPOLLEXCLUSIVE (a listener): no EPOLL_CTL_MOD on it */
} fdrec_t;

typedef struct taken {
    srv__loop_op_t *op;
    int fd;
} taken_t;

typedef struct eloop {
    srv__loop_t base;
    int epfd;
    fdrec_t *fds;
    int nfds;
    srv__loop_op_t **heap; /* timers; op->priv[0] is the index */
    size_t heap_len, heap_cap;
    srv__loop_op_t *post_head, *post_tail;
    char *buf; /* recv_size bytes: the one buffer every recv callback sees */
    struct epoll_event events[MAX_EVENTS];
    int due[MAX_EVENTS]; /* listeners reported ready in this run, accepted from last */
    /* Connections taken while their accept op was being cancelled, delivered before its final
     * completion. Loop-owned: the owner may free a cancelled op before destroying the loop. */
    taken_t *taken;
    size_t ntaken, taken_cap;
} eloop_t;

static inline eloop_t *E(srv__loop_t *loop)
{
    return (eloop_t *)loop;
}

/* ---- timer heap ---- */

static inline void heap_set(eloop_t *e, size_t i, srv__loop_op_t *op)
{
    e->heap[i] = op;
    op->priv[0] = i;
}

static void heap_up(eloop_t *e, size_t i)
{
    srv__loop_op_t *op = e->heap[i];

    while (i > 0) {
        size_t p = (i - 1) / 2;

        if (e->heap[p]->deadline_ns <= op->deadline_ns)
            break;
        heap_set(e, i, e->heap[p]);
        i = p;
    }
    heap_set(e, i, op);
}

static void heap_down(eloop_t *e, size_t i)
{
    srv__loop_op_t *op = e->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= e->heap_len)
            break;
        if (c + 1 < e->heap_len && e->heap[c + 1]->deadline_ns < e->heap[c]->deadline_ns)
            c++;
        if (op->deadline_ns <= e->heap[c]->deadline_ns)
            break;
        heap_set(e, i, e->heap[c]);
        i = c;
    }
    heap_set(e, i, op);
}

static int heap_push(eloop_t *e, srv__loop_op_t *op)
{
    if (e->heap_len == e->heap_cap) {
        size_t cap = e->heap_cap ? e->heap_cap * 2 : 64;
        srv__loop_op_t **h = realloc(e->heap, cap * sizeof(*h));

        if (h == NULL)
            return -ENOMEM;
        e->heap = h;
        e->heap_cap = cap;
    }
    e->heap[e->heap_len] = op;
    op->priv[0] = e->heap_len;
    heap_up(e, e->heap_len++);
    return 0;
}

static void heap_remove(eloop_t *e, srv__loop_op_t *op)
{
    size_t i = (size_t)op->priv[0];
    srv__loop_op_t *last = e->heap[--e->heap_len];

    if (i == e->heap_len)
        return;
    heap_set(e, i, last);
    if (i > 0 && e->heap[(i - 1) / 2]->deadline_ns > last->deadline_ns)
        heap_up(e, i);
    else
        heap_down(e, i);
}

/* ---- fd records ---- */

static fdrec_t *rec_get(eloop_t *e, int fd)
{
    if (fd >= e->nfds) {
        int n = e->nfds ? e->nfds : 256;
        fdrec_t *r;

        while (n <= fd)
            n *= 2;
        r = realloc(e->fds, (size_t)n * sizeof(*r));
        if (r == NULL)
            return NULL;
        memset(r + e->nfds, 0, (size_t)(n - e->nfds) * sizeof(*r));
        e->fds = r;
        e->nfds = n;
    }
    return &e->fds[fd];
}

static uint32_t interest(const srv__loop_op_t *op)
{
    switch (op->kind) {
    case SRV__OP_ACCEPT:
    case SRV__OP_RECV:
        return EPOLLIN;
    case SRV__OP_SEND:
        return EPOLLOUT;
    default:
        return op->events & (EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP);
    }
}

/* Bring the kernel's registration in line with the ops on the record. The registration goes
 * away with the last op: the owner may close the fd right after, and epoll would keep
 * reporting a closed fd that another process still holds open.
 * A listener (only accept ops) is registered EPOLLEXCLUSIVE: a new connection then wakes one
 * loop sleeping in epoll_wait, skipping loops whose owners are busy (ep_poll_callback counts a
 * wake-up as taken only when someone waits on that epoll), and still queues the event on every
 * loop, so one that comes back later finds whatever is left. Without it every loop wakes for
 * every connection. EPOLL_CTL_MOD is refused on such a registration: it is re-added instead. */
static int rec_sync(eloop_t *e, int fd)
{
    fdrec_t *r = &e->fds[fd];
    struct epoll_event ev;
    uint32_t want = 0;
    bool excl = true;

    if (r->head == NULL) {
        if (r->reg) {
            epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
            r->reg = false;
            r->gen++;
        }
        return 0;
    }
    for (const srv__loop_op_t *op = r->head; op; op = op->next) {
        want |= interest(op);
        excl = excl && op->kind == SRV__OP_ACCEPT;
    }
    if (r->reg && want == r->mask && excl == r->excl)
        return 0;
    if (r->reg && (r->excl || excl)) {
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
        r->reg = false;
    }
    ev.events = want | (excl ? EPOLLEXCLUSIVE : 0);
    ev.data.u64 = (uint64_t)r->gen << 32 | (uint32_t)fd;
    if (epoll_ctl(e->epfd, r->reg ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    r->reg = true;
    r->mask = want;
    r->excl = excl;
    return 0;
}

/* Move our exclusive registration to the back of the listener's wait queue (a wake-up goes to
 * the first idle waiter in queue order), so idle loops take new connections in turn rather than
 * the one that registered first taking them all; nginx re-adds its listeners for the same
 * reason (ngx_reorder_accept_events). Level-triggered: a connection still queued is reported
 * again at once. */
static int rec_requeue(eloop_t *e, int fd)
{
    fdrec_t *r = &e->fds[fd];

    if (!r->reg || !r->excl)
        return 0;
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
    r->reg = false;
    return rec_sync(e, fd);
}

static void rec_unlink(eloop_t *e, srv__loop_op_t *op)
{
    srv__loop_op_t **pp = &e->fds[op->fd].head;

    while (*pp && *pp != op)
        pp = &(*pp)->next;
    if (*pp)
        *pp = op->next;
    op->next = NULL;
}

static int wait_on_fd(eloop_t *e, srv__loop_op_t *op)
{
    fdrec_t *r = rec_get(e, op->fd);
    srv__loop_op_t **pp;
    int rc;

    if (r == NULL)
        return -ENOMEM;
    for (pp = &r->head; *pp; pp = &(*pp)->next)
        ;
    op->next = NULL;
    *pp = op;
    rc = rec_sync(e, op->fd);
    if (rc < 0) {
        rec_unlink(e, op);
        rec_sync(e, op->fd);
        return rc;
    }
    op->armed = ST_WAIT;
    return 0;
}

/* ---- completions ---- */

static void post(eloop_t *e, srv__loop_op_t *op, int res)
{
    op->armed = ST_POSTED;
    op->priv[1] = (uint64_t)(int64_t)res;
    op->next = NULL;
    if (e->post_tail)
        e->post_tail->next = op;
    else
        e->post_head = op;
    e->post_tail = op;
}

static inline void deliver(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data)
{
    op->armed = 0;
    op->cancelled = 0;
    op->cb(loop, op, res, data, 0);
}

/* Take op off its fd (so its callback may submit on the fd again) and complete it. */
static void finish_fd_op(eloop_t *e, srv__loop_op_t *op, int res, const char *data)
{
    int fd = op->fd;

    rec_unlink(e, op);
    rec_sync(e, fd);
    deliver(&e->base, op, res, data);
}

static ssize_t do_sendmsg(const srv__loop_op_t *op)
{
    struct msghdr m;

    memset(&m, 0, sizeof(m));
    m.msg_iov = (struct iovec *)op->iov;
    m.msg_iovlen = (size_t)op->iovcnt;
    return sendmsg(op->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* ---- submit calls ---- */

static int epoll_wait_op(srv__loop_t *loop, srv__loop_op_t *op)
{
    return wait_on_fd(E(loop), op);
}

static int epoll_accept(srv__loop_t *loop, srv__loop_op_t *op)
{
    op->bflags = 0;
    return wait_on_fd(E(loop), op);
}

static int epoll_send(srv__loop_t *loop, srv__loop_op_t *op)
{
    eloop_t *e = E(loop);
    ssize_t n;

    /* Try now unless another send already waits on this fd (bytes must stay in order). The
     * result is posted: callbacks only run inside srv__loop_run. */
    if (op->fd < e->nfds) {
        for (const srv__loop_op_t *o = e->fds[op->fd].head; o; o = o->next)
            if (o->kind == SRV__OP_SEND)
                return wait_on_fd(e, op);
    }
    n = do_sendmsg(op);
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        post(e, op, n >= 0 ? (int)n : -errno);
        return 0;
    }
    return wait_on_fd(e, op);
}

static int epoll_timer(srv__loop_t *loop, srv__loop_op_t *op)
{
    int rc = heap_push(E(loop), op);

    if (rc == 0)
        op->armed = ST_WAIT;
    return rc;
}

/* This run's epoll_wait reported op's listener and the op is cancelled before its accept: that
 * exclusive wake-up may have been the only one for a connection, so no other loop is coming for
 * it. Take it now, while the fd is surely the listener, and deliver it before the final
 * completion, as the contract promises for connections an accept already took. */
static void take_due(eloop_t *e, srv__loop_op_t *op)
{
    int c = accept4(op->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    op->bflags &= (uint8_t)~BF_ACCEPT_DUE;
    if (c < 0)
        return;
    if (e->ntaken == e->taken_cap) {
        size_t cap = e->taken_cap ? e->taken_cap * 2 : 4;
        taken_t *t = realloc(e->taken, cap * sizeof(*t));

        if (t == NULL) {
            close(c); /* the client sees a reset: nothing else can be done without memory */
            return;
        }
        e->taken = t;
        e->taken_cap = cap;
    }
    e->taken[e->ntaken++] = (taken_t){op, c};
}

static int epoll_cancel(srv__loop_t *loop, srv__loop_op_t *op)
{
    eloop_t *e = E(loop);

    if (op->armed != ST_WAIT)
        return 0; /* result already posted: it is delivered as the final completion */
    if (op->kind == SRV__OP_TIMER) {
        heap_remove(e, op);
    } else {
        if (op->kind == SRV__OP_ACCEPT && (op->bflags & BF_ACCEPT_DUE))
            take_due(e, op);
        rec_unlink(e, op);
        rec_sync(e, op->fd);
    }
    op->cancelled = 1;
    post(e, op, -ECANCELED);
    return 0;
}

/* ---- dispatch ---- */

/* One connection per report: the rest of a burst goes to the other loops the kernel woke, or to
 * us on the next run (level-triggered), after what that run brings for the connections we have. */
static int do_accept(eloop_t *e, srv__loop_op_t *op)
{
    int fd = op->fd, c, rc;

    for (;;) {
        c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0 || errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        if (!srv__loop_accept_transient(errno)) {
            finish_fd_op(e, op, -errno, NULL);
            return 1;
        }
    }
    if (c < 0)
        return 0; /* another loop was quicker */
    op->cb(&e->base, op, c, NULL, SRV_LOOP_MORE);
    if (op->armed == ST_WAIT && op->fd == fd) {
        rc = rec_requeue(e, fd);
        if (rc < 0)
            finish_fd_op(e, op, rc, NULL);
    }
    return 1;
}

static int do_recv(eloop_t *e, srv__loop_op_t *op, uint32_t rev)
{
    size_t size = e->base.opts.recv_size;
    int n = 0;

    if (!(rev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)))
        return 0;
    for (int i = 0; i < RECV_BATCH; i++) {
        ssize_t r = read(op->fd, e->buf, size);

        if (r > 0) {
            op->cb(&e->base, op, (int)r, e->buf, SRV_LOOP_MORE);
            n++;
            /* A short read almost always drained the socket: level-triggered epoll reports
             * anything that arrives later, so skip the read that would only say EAGAIN. */
            if (op->armed != ST_WAIT || (size_t)r < size)
                break;
            continue;
        }
        if (r == 0) {
            finish_fd_op(e, op, 0, NULL);
            return n + 1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        finish_fd_op(e, op, -errno, NULL);
        return n + 1;
    }
    return n;
}

static int do_send(eloop_t *e, srv__loop_op_t *op, uint32_t rev)
{
    ssize_t r;

    if (!(rev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        return 0;
    r = do_sendmsg(op);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    finish_fd_op(e, op, r >= 0 ? (int)r : -errno, NULL);
    return 1;
}

static int dispatch_fd(eloop_t *e, int fd, uint32_t rev)
{
    srv__loop_op_t *snap[SNAP_MAX];
    int k = 0, n = 0;

    /* Callbacks may cancel, add or finish ops on this fd while we walk it, so walk a copy. An
     * op in the copy cannot have been freed: its final completion is delivered either here,
     * when its own turn comes, or later from the posted queue. */
    for (srv__loop_op_t *op = e->fds[fd].head; op && k < SNAP_MAX; op = op->next)
        snap[k++] = op;
    for (int i = 0; i < k; i++) {
        srv__loop_op_t *op = snap[i];
        uint32_t r;

        if (op->armed != ST_WAIT || op->fd != fd)
            continue;
        switch (op->kind) {
        case SRV__OP_ACCEPT:
            break; /* accept_due() */
        case SRV__OP_RECV:
            n += do_recv(e, op, rev);
            break;
        case SRV__OP_SEND:
            n += do_send(e, op, rev);
            break;
        default:
            r = rev & (op->events | EPOLLERR | EPOLLHUP);
            if (r) {
                finish_fd_op(e, op, (int)r, NULL);
                n++;
            }
            break;
        }
    }
    return n;
}

/* A record holding accept ops is a listener: its report is kept for the end of the run. */
static bool defer_accepts(eloop_t *e, int fd, uint32_t rev)
{
    bool any = false;

    if (!(rev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return false;
    for (srv__loop_op_t *op = e->fds[fd].head; op; op = op->next) {
        if (op->kind == SRV__OP_ACCEPT) {
            op->bflags |= BF_ACCEPT_DUE;
            any = true;
        }
    }
    return any;
}

/* Accept for the listeners reported in this run, after every other completion of the run: the
 * callbacks before may have run the app for a long time, and a connection accepted before them
 * would have waited behind them although another loop was free to serve it. */
static int accept_due(eloop_t *e, const int *fds, int nfds)
{
    int n = 0;

    for (int i = 0; i < nfds; i++) {
        srv__loop_op_t *snap[SNAP_MAX];
        int k = 0, fd = fds[i];

        if (fd >= e->nfds)
            continue;
        for (srv__loop_op_t *op = e->fds[fd].head; op && k < SNAP_MAX; op = op->next)
            if (op->bflags & BF_ACCEPT_DUE)
                snap[k++] = op;
        for (int j = 0; j < k; j++) {
            srv__loop_op_t *op = snap[j];

            if (!(op->bflags & BF_ACCEPT_DUE) || op->armed != ST_WAIT || op->fd != fd)
                continue;
            op->bflags &= (uint8_t)~BF_ACCEPT_DUE;
            n += do_accept(e, op);
        }
    }
    return n;
}

/* The final completion of a posted op; an accept op first hands over the connection it took
 * while being cancelled. */
static int deliver_posted(eloop_t *e, srv__loop_op_t *p)
{
    int n = 0;

    for (size_t i = 0; p->kind == SRV__OP_ACCEPT && i < e->ntaken; i++) {
        if (e->taken[i].op == p) {
            int c = e->taken[i].fd;

            e->taken[i] = e->taken[--e->ntaken];
            p->cb(&e->base, p, c, NULL, SRV_LOOP_MORE);
            n++;
            break;
        }
    }
    deliver(&e->base, p, (int)(int64_t)p->priv[1], NULL);
    return n + 1;
}

static int epoll_run(srv__loop_t *loop, int timeout_ms)
{
    eloop_t *e = E(loop);
    srv__loop_op_t *p;
    int nev, n = 0, t = timeout_ms, ndue = 0;

    if (e->post_head) {
        t = 0;
    } else if (e->heap_len) {
        int64_t d = e->heap[0]->deadline_ns - srv__loop_clock();
        /* Round up: waking a little early would spin on zero timeouts until the deadline. */
        int64_t ms = d <= 0 ? 0 : (d + 999999) / 1000000;

        if (ms > INT32_MAX)
            ms = INT32_MAX;
        if (t < 0 || ms < t)
            t = (int)ms;
    }
    nev = epoll_wait(e->epfd, e->events, MAX_EVENTS, t);
    if (nev < 0)
        return -errno; /* -EINTR included: the caller checks its signal flags */
    srv__loop_update_now(loop);

    p = e->post_head;
    e->post_head = e->post_tail = NULL;
    while (p) {
        srv__loop_op_t *next = p->next;

        n += deliver_posted(e, p);
        p = next;
    }

    for (int i = 0; i < nev; i++) {
        uint64_t tag = e->events[i].data.u64;
        int fd = (int)(uint32_t)tag;

        if (tag == WAKE_TAG) {
            uint64_t v;

            while (read(loop->wake_fd, &v, sizeof(v)) < 0 && errno == EINTR)
                ;
            srv__loop_woken(loop);
            n++;
            continue;
        }
        if (fd >= e->nfds || e->fds[fd].gen != (uint32_t)(tag >> 32) || e->fds[fd].head == NULL)
            continue;
        if (defer_accepts(e, fd, e->events[i].events))
            e->due[ndue++] = fd;
        n += dispatch_fd(e, fd, e->events[i].events);
    }
    n += accept_due(e, e->due, ndue);

    while (e->heap_len && e->heap[0]->deadline_ns <= loop->now_ns) {
        srv__loop_op_t *op = e->heap[0];

        heap_remove(e, op);
        deliver(loop, op, -ETIME, NULL);
        n++;
    }
    return n;
}

static void epoll_destroy(srv__loop_t *loop)
{
    eloop_t *e = E(loop);

    /* Connections taken during a cancel whose final completion nobody will see. */
    for (size_t i = 0; i < e->ntaken; i++)
        close(e->taken[i].fd);
    free(e->taken);
    if (e->epfd >= 0)
        close(e->epfd);
    free(e->fds);
    free(e->heap);
    free(e->buf);
    srv__loop_base_fini(loop);
    free(e);
}

static int epoll_create_loop(srv__loop_t **out, const srv__loop_opts_t *opts, char *why,
                             size_t whylen)
{
    eloop_t *e = calloc(1, sizeof(*e));
    struct epoll_event ev;
    int rc;

    (void)why;
    (void)whylen;
    if (e == NULL)
        return -ENOMEM;
    e->epfd = -1;
    e->base.wake_fd = -1;
    rc = srv__loop_base_init(&e->base, &srv__loop_epoll, opts);
    if (rc < 0)
        goto fail;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->epfd < 0) {
        rc = -errno;
        goto fail;
    }
    e->buf = malloc(opts->recv_size);
    if (e->buf == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    ev.events = EPOLLIN;
    ev.data.u64 = WAKE_TAG;
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->base.wake_fd, &ev) < 0) {
        rc = -errno;
        goto fail;
    }
    *out = &e->base;
    return 0;
fail:
    epoll_destroy(&e->base);
    return rc;
}

const srv__loop_backend_t srv__loop_epoll = {
    .name = "epoll",
    .create = epoll_create_loop,
    .destroy = epoll_destroy,
    .accept = epoll_accept,
    .recv = epoll_wait_op,
    .send = epoll_send,
    .poll = epoll_wait_op,
    .timer = epoll_timer,
    .cancel = epoll_cancel,
    .run = epoll_run,
};
