/* Messages and tasks on this process's side; see msg.h. */
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

#define TASK_MAX (256u << 10) /* largest task payload (it is kept for retries) */
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

typedef struct task_run {
    _Atomic uint64_t id; /* 0: idle */
    int32_t from;
    int32_t tries;
    int32_t attempt;
    uint32_t len;
    char data[TASK_MAX];
} task_run_t;

typedef struct task_state {
    _Atomic uint64_t next_id;
    _Atomic uint64_t done, failed, retried;
    task_run_t run[];
} task_state_t;

static task_state_t *g_tasks;

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

int srv_broadcast_message(const void *data, size_t len)
{
    int n = 0;
    for (int i = 0; i < srv__server.cfg.worker_num; i++) {
        if (i == P.slot)
            continue;
        if (srv_send_message(i, data, len) == 0)
            n++;
    }
    return n;
}

/* ---- tasks ---- */

int srv__tasks_create(int nslots)
{
    int t = srv__server.cfg.task_worker_num;
    g_tasks = srv__shm_alloc(sizeof(task_state_t) + sizeof(task_run_t) * 2 * (size_t)t, 64);
    return g_tasks ? 0 : -ENOMEM;
}

static int push_task(uint64_t id, int from, int tries, int attempt, const void *data, size_t len)
{
    srv__msg_t m = {.type = SRV_MSG_TASK,
                   .from = from,
                   .id = id,
                   .flags = (uint32_t)tries << 16 | (uint32_t)attempt,
                   .len = (uint32_t)len};
    int rc = srv__mbox_put(srv__server.taskq, &m, data);
    return rc == -ENOBUFS ? -EAGAIN : rc;
}

typedef struct delayed {
    uint64_t id;
    int from, tries;
    size_t len;
    char data[];
} delayed_t;

static void delayed_fire(uint64_t timer_id, void *arg)
{
    delayed_t *d = arg;
    int rc = push_task(d->id, d->from, d->tries, 1, d->data, d->len);
    if (rc < 0) {
        srv__log(SRV_LOG_WARN, "task", rc, "delayed task %llu could not be queued",
                (unsigned long long)d->id);
        srv__msg_t m = {.type = SRV_MSG_FINISH, .from = d->from, .id = d->id, .flags = 1};
        srv__mbox_put(d->from, &m, NULL);
    }
    free(d);
}

int64_t srv_task_deliver(const void *data, size_t len, const srv_task_opts_t *opts)
{
    if (srv__server.cfg.task_worker_num == 0 || g_tasks == NULL)
        return -ENOTSUP;
    if (P.self < 0)
        return -ENOTSUP;
    if (len > TASK_MAX)
        return -EMSGSIZE;
    int tries = opts && opts->tries > 1 ? opts->tries : 1;
    if (tries > 1000)
        tries = 1000;
    uint64_t id = atomic_fetch_add(&g_tasks->next_id, 1) + 1;
    if (opts && opts->delay_ms > 0) {
        if (srv__mbox_pending(srv__server.taskq) >= (uint32_t)srv__server.cfg.task_max_queue)
            return -EAGAIN;
        delayed_t *d = malloc(sizeof(*d) + len);
        if (d == NULL)
            return -ENOMEM;
        *d = (delayed_t){.id = id, .from = P.self, .tries = tries, .len = len};
        memcpy(d->data, data, len);
        if (srv_timer_after(opts->delay_ms, delayed_fire, d) < 0) {
            free(d);
            return -ENOTSUP; /* no event loop here to keep the delay (a cron thread) */
        }
        return (int64_t)id;
    }
    int rc = push_task(id, P.self, tries, 1, data, len);
    return rc < 0 ? rc : (int64_t)id;
}

int srv_task_wait(uint64_t id, void *buf, size_t cap, int timeout_ms)
{
    uint32_t flags = 0;
    int rc = srv__msg_wait(SRV_MSG_FINISH, id, buf, cap, &flags, timeout_ms);
    if (rc >= 0 && flags)
        return -EIO;
    return rc;
}

int srv_task_wait_many(const uint64_t *ids, int n, void **bufs, const size_t *caps, int *results,
                       size_t *lens, int timeout_ms)
{
    int64_t deadline = srv__mono_ms() + timeout_ms;
    int done = 0;
    for (int i = 0; i < n; i++) {
        int64_t left = deadline - srv__mono_ms();
        int rc = srv_task_wait(ids[i], bufs ? bufs[i] : NULL, caps ? caps[i] : 0,
                               left > 0 ? (int)left : 0);
        if (rc >= 0) {
            results[i] = 0;
            if (lens)
                lens[i] = (size_t)rc;
            done++;
        } else {
            results[i] = rc;
            if (lens)
                lens[i] = 0;
            if (rc == -EIO)
                done++;
        }
    }
    return done;
}

typedef struct task_priv {
    char *result;
    size_t len;
} task_priv_t;

/* The task on_task is running in this task worker (one at a time) and where its result goes;
 * NULL outside on_task. Kept here so srv_task_t carries nothing private. */
static const srv_task_t *g_task_running;
static task_priv_t *g_task_priv;

int srv_task_result(srv_task_t *task, const void *data, size_t len)
{
    task_priv_t *tp = g_task_priv;
    if (task == NULL || task != g_task_running || tp == NULL)
        return -EINVAL;
    if (len > TASK_MAX)
        return -EMSGSIZE;
    char *p = realloc(tp->result, len ? len : 1);
    if (p == NULL)
        return -ENOMEM;
    memcpy(p, data, len);
    tp->result = p;
    tp->len = len;
    return 0;
}

/* One attempt ended (ok, or failed): finish it, or queue the next attempt. */
static void task_settle(uint64_t id, int from, int tries, int attempt, const void *data, size_t len,
                        bool ok, const void *result, size_t rlen)
{
    if (!ok && attempt < tries) {
        atomic_fetch_add(&g_tasks->retried, 1);
        if (push_task(id, from, tries, attempt + 1, data, len) == 0)
            return;
        srv__log(SRV_LOG_WARN, "task", 0, "task %llu: queue full, cannot retry",
                (unsigned long long)id);
    }
    atomic_fetch_add(ok ? &g_tasks->done : &g_tasks->failed, 1);
    srv__msg_t m = {.type = SRV_MSG_FINISH,
                   .from = P.self,
                   .id = id,
                   .flags = ok ? 0 : 1,
                   .len = ok ? (uint32_t)rlen : 0};
    int rc = srv__mbox_put(from, &m, result);
    if (rc < 0)
        srv__log(SRV_LOG_WARN, "task", rc, "task %llu: cannot hand the result to #%d",
                (unsigned long long)id, from);
}

void srv__task_drain(void)
{
    const srv_app_t *app = srv__app();
    int k = P.slot - srv__server.cfg.worker_num;
    task_run_t *run = &g_tasks->run[2 * k + (P.gen & 1)];
    srv__mbox_ack(srv__server.taskq);
    for (;;) {
        if (P.stop && *P.stop)
            return;
        srv__msg_t m;
        int rc = srv__mbox_get(srv__server.taskq, &m, run->data, TASK_MAX);
        if (rc == 0)
            return;
        if (rc < 0)
            continue;
        /* Several task workers share the queue's eventfd and one of them reset it: if tasks
         * are still waiting, wake another idle task worker before we get busy with this one. */
        if (srv__mbox_pending(srv__server.taskq) > 0)
            srv__mbox_kick(srv__server.taskq);
        run->from = m.from;
        run->tries = (int32_t)(m.flags >> 16);
        run->attempt = (int32_t)(m.flags & 0xffff);
        run->len = m.len;
        atomic_store(&run->id, m.id); /* from here a crash makes the manager retry it */
        task_priv_t tp = {0};
        srv_task_t task = {.id = m.id,
                           .from_worker = m.from,
                           .attempt = run->attempt,
                           .data = run->data,
                           .len = m.len};
        g_task_running = &task;
        g_task_priv = &tp;
        int ok = app && app->on_task ? app->on_task(&task) == 0 : 0;
        g_task_running = NULL;
        g_task_priv = NULL;
        task_settle(m.id, m.from, run->tries, run->attempt, run->data, run->len, ok, tp.result,
                    tp.len);
        free(tp.result);
        atomic_store(&run->id, 0);
        atomic_fetch_add(&srv__server.stats->workers[P.slot].requests, 1);
        atomic_fetch_add(&srv__server.stats->workers[P.slot].total_requests, 1);
    }
}

void srv__task_orphaned(int slot, uint32_t gen)
{
    int k = slot - srv__server.cfg.worker_num;
    if (g_tasks == NULL || k < 0 || k >= srv__server.cfg.task_worker_num)
        return;
    task_run_t *run = &g_tasks->run[2 * k + (gen & 1)];
    uint64_t id = atomic_load(&run->id);
    if (id == 0)
        return;
    srv__log(SRV_LOG_WARN, "task", 0, "task worker #%d died running task %llu (attempt %d of %d)",
             k, (unsigned long long)id, run->attempt, run->tries);
    task_settle(id, run->from, run->tries, run->attempt, run->data, run->len, false, NULL, 0);
    atomic_store(&run->id, 0);
}

int srv__tasks_info_json(char *buf, size_t cap)
{
    if (g_tasks == NULL)
        return snprintf(buf, cap, "{\"queued\":0,\"done\":0,\"failed\":0,\"retried\":0}");
    return snprintf(buf, cap, "{\"queued\":%u,\"done\":%llu,\"failed\":%llu,\"retried\":%llu}",
                    srv__mbox_pending(srv__server.taskq),
                    (unsigned long long)atomic_load(&g_tasks->done),
                    (unsigned long long)atomic_load(&g_tasks->failed),
                    (unsigned long long)atomic_load(&g_tasks->retried));
}
