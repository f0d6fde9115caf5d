/* Messages on this process's side; see msg.h. */
#include "core/server/msg.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/server/app.h"
#include "core/base/log.h"
#include "core/server/server.h"
#include "core/shm/shm.h"
#include "srv/srv.h"

#define KEEP_MAX (4u << 20)   /* bytes of messages kept while waiting for one */
#define MSG_BUF (1u << 20)

typedef struct kept {
    struct kept *next;
    srv__msg_t m;
    char data[];
} kept_t;

static struct {
    int self;
    kept_t *head, *tail;
    size_t kept_bytes;
    char *buf;
    volatile sig_atomic_t *stop;
    uint32_t gen; /* this process's generation in its slot */
    srv__msg_action_fn on_action;
    int slot;     /* P.self is our mailbox */
    srv__loop_op_t op; /* srv__msg_arm's watch */
    bool armed;
} P = {.self = -1};

void srv__msg_init(int slot)
{
    P.slot = slot;
    if (srv__server.stats)
        P.gen = atomic_load(&srv__server.stats->workers[slot].generation);
    P.self = 2 * slot + (int)(P.gen & 1);
    srv__mbox_set_owner(P.self, getpid());
    if (P.buf == NULL)
        P.buf = malloc(MSG_BUF);
}

int srv__msg_self(void)
{
    return P.self;
}

void srv__msg_on_action(srv__msg_action_fn fn)
{
    P.on_action = fn;
}

void srv__msg_set_stop(volatile sig_atomic_t *flag)
{
    P.stop = flag;
}

static void dispatch_one(const srv__msg_t *m, const char *data)
{
    const srv_app_t *app = srv__app();
    if (app == NULL)
        return;
    switch (m->type) {
    case SRV_MSG_PIPE:
        if (app->on_pipe_message)
            app->on_pipe_message(m->from, data, m->len);
        break;
    case SRV_MSG_FINISH:
        if (app->on_finish)
            app->on_finish(m->id, m->flags ? -EIO : 0, data, m->len);
        break;
    case SRV_MSG_ACTION:
        if (P.on_action)
            P.on_action(m, data);
        break;
    default:
        break; /* a late reply nobody waits for any more */
    }
}

void srv__msg_dispatch(void)
{
    if (P.self < 0 || P.buf == NULL)
        return;
    while (P.head) {
        kept_t *k = P.head;
        P.head = k->next;
        if (P.head == NULL)
            P.tail = NULL;
        P.kept_bytes -= k->m.len;
        dispatch_one(&k->m, k->data);
        free(k);
    }
    srv__mbox_ack(P.self);
    srv__msg_t m;
    int rc;
    while ((rc = srv__mbox_get(P.self, &m, P.buf, MSG_BUF)) != 0) {
        if (rc > 0)
            dispatch_one(&m, P.buf);
    }
    /* Messages sent to our slot while it had no live process wait in its other mailbox. */
    if (srv__mbox_pending(P.self ^ 1) > 0 && srv__mbox_orphaned(P.self ^ 1)) {
        while ((rc = srv__mbox_get(P.self ^ 1, &m, P.buf, MSG_BUF)) != 0) {
            if (rc > 0)
                dispatch_one(&m, P.buf);
        }
    }
}

static void on_mbox(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                    uint32_t flags)
{
    P.armed = false;
    if (res >= 0)
        srv__msg_dispatch();
}

void srv__msg_arm(srv__loop_t *loop)
{
    if (P.armed || P.self < 0 || (P.stop && *P.stop))
        return;
    P.op.cb = on_mbox;
    P.armed = srv__loop_poll(loop, &P.op, srv__mbox_fd(P.self), POLLIN) == 0;
}

static int keep(const srv__msg_t *m, const char *data)
{
    if (P.kept_bytes + m->len > KEEP_MAX)
        return -ENOBUFS;
    kept_t *k = malloc(sizeof(*k) + m->len);
    if (k == NULL)
        return -ENOMEM;
    k->m = *m;
    k->next = NULL;
    memcpy(k->data, data, m->len);
    if (P.tail)
        P.tail->next = k;
    else
        P.head = k;
    P.tail = k;
    P.kept_bytes += m->len;
    return 0;
}

int srv__msg_wait(uint32_t type, uint64_t id, void *buf, size_t cap, uint32_t *flags,
                  int timeout_ms)
{
    if (P.self < 0 || P.buf == NULL)
        return -ENOTSUP;
    int64_t deadline = srv__mono_ms() + timeout_ms;
    /* It may have arrived while we waited for another one (srv_task_wait_many). */
    for (kept_t **pp = &P.head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
        kept_t *k = *pp;
        if (k->m.type != type || k->m.id != id)
            continue;
        *pp = k->next;
        if (P.tail == k)
            P.tail = prev;
        P.kept_bytes -= k->m.len;
        size_t n = k->m.len < cap ? k->m.len : cap;
        if (n)
            memcpy(buf, k->data, n);
        if (flags)
            *flags = k->m.flags;
        int len = (int)k->m.len;
        free(k);
        return len;
    }
    for (;;) {
        srv__mbox_ack(P.self);
        srv__msg_t m;
        int rc;
        while ((rc = srv__mbox_get(P.self, &m, P.buf, MSG_BUF)) != 0) {
            if (rc < 0)
                continue;
            if (m.type == type && m.id == id) {
                size_t n = m.len < cap ? m.len : cap;
                if (n)
                    memcpy(buf, P.buf, n);
                if (flags)
                    *flags = m.flags;
                return (int)m.len;
            }
            rc = keep(&m, P.buf);
            if (rc < 0)
                return rc;
        }
        int64_t left = deadline - srv__mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        if (P.stop && *P.stop)
            return -ECANCELED;
        struct pollfd pfd = {.fd = srv__mbox_fd(P.self), .events = POLLIN};
        poll(&pfd, 1, left > 100 ? 100 : (int)left);
    }
}

/* ---- messages between workers ---- */

int srv_send_message(int worker_id, const void *data, size_t len)
{
    if (worker_id < 0 || worker_id >= srv__server.cfg.worker_num || worker_id == P.slot)
        return -EINVAL;
    srv__msg_t m = {.type = SRV_MSG_PIPE, .from = P.slot, .len = (uint32_t)len};
    return srv__mbox_put(srv__slot_box(worker_id), &m, data);
}

static int (*g_remote_broadcast)(const void *data, size_t len);

void srv__msg_on_broadcast(int (*fn)(const void *data, size_t len))
{
    g_remote_broadcast = fn;
}

int srv_broadcast_message(const void *data, size_t len)
{
    int n = 0;
    for (int i = 0; i < srv__server.cfg.worker_num; i++) {
        if (i == P.slot)
            continue;
        if (srv_send_message(i, data, len) == 0)
            n++;
    }
    if (g_remote_broadcast)
        g_remote_broadcast(data, len); /* the workers of the cluster's other instances */
    return n;
}
