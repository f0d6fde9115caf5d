/* Task delivery, results and the shared task state; see task.h. */
#include "tasks/task.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/log.h"
#include "core/server/msg.h"
#include "core/server/server.h"
#include "core/shm/shm.h"

typedef struct task_state {
    _Atomic uint64_t next_id;
    _Atomic uint64_t done, failed, retried;
    _Atomic uint64_t delivered; /* accepted by srv_task_deliver */
    int32_t nworkers; /* task worker slots, two running records each */
    srv__task_run_t run[];
} task_state_t;

static task_state_t *g_tasks;

size_t srv__tasks_region_size(int task_workers)
{
    size_t n = task_workers > 0 ? (size_t)task_workers : 0;
    return sizeof(task_state_t) + 2 * n * sizeof(srv__task_run_t) + 64; /* + alignment */
}

int srv__tasks_create(int task_workers)
{
    if (task_workers < 0)
        return -EINVAL;
    g_tasks = srv__shm_alloc(srv__tasks_region_size(task_workers) - 64, 64);
    if (g_tasks == NULL)
        return -ENOMEM;
    g_tasks->nworkers = task_workers;
    return 0;
}

srv__task_run_t *srv__task_record(int slot, uint32_t gen)
{
    int k = slot - srv__server.tbase;
    if (g_tasks == NULL || k < 0 || k >= g_tasks->nworkers)
        return NULL;
    return &g_tasks->run[2 * k + (gen & 1)];
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
    int self = srv__msg_self();
    if (self < 0)
        return -ENOTSUP;
    if (len > SRV_TASK_MAX)
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
        *d = (delayed_t){.id = id, .from = self, .tries = tries, .len = len};
        memcpy(d->data, data, len);
        if (srv_timer_after(opts->delay_ms, delayed_fire, d) < 0) {
            free(d);
            return -ENOTSUP; /* no event loop here to keep the delay (a cron thread) */
        }
        atomic_fetch_add(&g_tasks->delivered, 1);
        return (int64_t)id;
    }
    int rc = push_task(id, self, tries, 1, data, len);
    if (rc < 0)
        return rc;
    atomic_fetch_add(&g_tasks->delivered, 1);
    return (int64_t)id;
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
    if (len > SRV_TASK_MAX)
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
                    .from = srv__msg_self(),
                    .id = id,
                    .flags = ok ? 0 : 1,
                    .len = ok ? (uint32_t)rlen : 0};
    int rc = srv__mbox_put(from, &m, result);
    if (rc < 0)
        srv__log(SRV_LOG_WARN, "task", rc, "task %llu: cannot hand the result to #%d",
                 (unsigned long long)id, from);
}

void srv__task_run(srv__task_run_t *run, const srv__msg_t *m, const srv_app_t *app)
{
    run->from = m->from;
    run->tries = (int32_t)(m->flags >> 16);
    run->attempt = (int32_t)(m->flags & 0xffff);
    run->len = m->len;
    atomic_store(&run->id, m->id); /* from here a crash makes the manager retry it */
    task_priv_t tp = {0};
    srv_task_t task = {.id = m->id,
                       .from_worker = m->from,
                       .attempt = run->attempt,
                       .data = run->data,
                       .len = m->len};
    g_task_running = &task;
    g_task_priv = &tp;
    int ok = app && app->on_task ? app->on_task(&task) == 0 : 0;
    g_task_running = NULL;
    g_task_priv = NULL;
    task_settle(m->id, m->from, run->tries, run->attempt, run->data, run->len, ok, tp.result,
                tp.len);
    free(tp.result);
    atomic_store(&run->id, 0);
}

void srv__task_orphaned(int slot, uint32_t gen)
{
    srv__task_run_t *run = srv__task_record(slot, gen);
    if (run == NULL)
        return;
    uint64_t id = atomic_load(&run->id);
    if (id == 0)
        return;
    srv__log(SRV_LOG_WARN, "task", 0, "task worker #%d died running task %llu (attempt %d of %d)",
             slot - srv__server.tbase, (unsigned long long)id, run->attempt, run->tries);
    task_settle(id, run->from, run->tries, run->attempt, run->data, run->len, false, NULL, 0);
    atomic_store(&run->id, 0);
}

void srv__tasks_counts(srv__tasks_counts_t *out)
{
    *out = (srv__tasks_counts_t){0};
    if (g_tasks == NULL)
        return;
    out->queued = srv__mbox_pending(srv__server.taskq);
    out->delivered = atomic_load(&g_tasks->delivered);
    out->done = atomic_load(&g_tasks->done);
    out->failed = atomic_load(&g_tasks->failed);
    out->retried = atomic_load(&g_tasks->retried);
}

int srv__tasks_info_json(char *buf, size_t cap)
{
    if (g_tasks == NULL)
        return snprintf(buf, cap,
                        "{\"queued\":0,\"delivered\":0,\"done\":0,\"failed\":0,\"retried\":0}");
    return snprintf(buf, cap,
                    "{\"queued\":%u,\"delivered\":%llu,\"done\":%llu,\"failed\":%llu,"
                    "\"retried\":%llu}",
                    srv__mbox_pending(srv__server.taskq),
                    (unsigned long long)atomic_load(&g_tasks->delivered),
                    (unsigned long long)atomic_load(&g_tasks->done),
                    (unsigned long long)atomic_load(&g_tasks->failed),
                    (unsigned long long)atomic_load(&g_tasks->retried));
}
