/* Task workers: start, wait on the task queue and the own mailbox, run tasks; see
 * task_worker.h. */
#include "tasks/task_worker.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/server/child.h"
#include "core/server/msg.h"
#include "core/server/server.h"
#include "tasks/task.h"
#include "timer/timer.h"

static struct {
    int slot;
    const srv_app_t *app;
    srv__loop_t *loop;
    srv__task_run_t *run; /* this process's running record */
    srv__loop_op_t taskq_op;
    bool taskq_armed;
    volatile sig_atomic_t stop;
    volatile sig_atomic_t reopen;
} TW;

/* Run tasks from the queue until it is empty (or we are asked to stop). */
static void drain(void)
{
    int q = srv__server.taskq;
    srv__worker_stat_t *st = &srv__server.stats->workers[TW.slot];
    srv__mbox_ack(q);
    while (!TW.stop) {
        srv__msg_t m;
        int rc = srv__mbox_get(q, &m, TW.run->data, SRV_TASK_MAX);
        if (rc == 0)
            return;
        if (rc < 0)
            continue;
        /* Several task workers share the queue's eventfd and one of them reset it: if tasks
         * are still waiting, wake another idle task worker before we get busy with this one. */
        if (srv__mbox_pending(q) > 0)
            srv__mbox_kick(q);
        int limit = srv__server.cfg.task_timeout; /* the manager's watchdog enforces it */
        atomic_store(&st->busy_limit, limit);
        if (limit > 0) {
            snprintf(st->busy_what, sizeof(st->busy_what), "task %llu", (unsigned long long)m.id);
            atomic_store(&st->busy_ms, srv__mono_ms());
        }
        srv__task_run(TW.run, &m, TW.app);
        atomic_store(&st->busy_ms, 0);
        atomic_fetch_add(&st->requests, 1);
        atomic_fetch_add(&st->total_requests, 1);
    }
}

static void on_taskq(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                     uint32_t flags)
{
    TW.taskq_armed = false;
    if (res >= 0 && !TW.stop)
        drain();
}

/* Watch our mailbox (messages, results of tasks we delivered) and the task queue. */
static void arm(void)
{
    srv__msg_arm(TW.loop);
    if (!TW.taskq_armed && !TW.stop) {
        TW.taskq_op.cb = on_taskq;
        TW.taskq_armed =
            srv__loop_poll(TW.loop, &TW.taskq_op, srv__mbox_fd(srv__server.taskq), POLLIN) == 0;
    }
}

/* The app is loaded: let it start, check it takes tasks, find our running record. */
static void start(void)
{
    const srv__config_t *cfg = &srv__server.cfg;
    char err[1024];
    if (TW.app->on_worker_start && TW.app->on_worker_start(srv_worker_self()) != 0) {
        snprintf(err, sizeof(err), "on_worker_start of %s refused to start", cfg->app);
        srv__child_fail(err);
    }
    TW.loop = srv__child_loop();
    if (TW.app->on_task == NULL) {
        snprintf(err, sizeof(err), "task_worker_num is %d but the app %s has no on_task",
                 cfg->task_worker_num, cfg->app);
        srv__child_fail(err);
    }
    uint32_t gen = atomic_load(&srv__server.stats->workers[TW.slot].generation);
    TW.run = srv__task_record(TW.slot, gen);
    if (TW.run == NULL)
        srv__child_fail("no shared task state");
}

void srv__task_worker_main(int slot, int ctl_fd, const int *chans, int nchans)
{
    int id = slot - srv__server.tbase;
    char title[16];
    snprintf(title, sizeof(title), "task %d", id);
    srv__child_opts_t o = {.role = "task",
                           .id = id,
                           .log_id = id,
                           .title = title,
                           .stop = &TW.stop,
                           .reopen = &TW.reopen};
    TW.slot = slot;
    /* A predecessor that crashed mid-task left its busy mark: not ours to be timed by. */
    atomic_store(&srv__server.stats->workers[slot].busy_ms, 0);
    TW.app = srv__child_start(slot, ctl_fd, &o);
    srv__timer_set_gauge(&srv__server.stats->workers[slot].timers);
    start();
    arm();
    srv__child_tell(SRV_WMSG_READY, NULL);
    srv__log_debug("worker", "ready");
    while (!TW.stop) {
        int rc = srv__loop_run(TW.loop, srv__timer_timeout());
        srv__timer_run();
        arm();
        if (rc < 0 && rc != -EINTR) {
            srv__log(SRV_LOG_ERROR, "loop", rc, "task worker loop");
            break;
        }
        if (TW.reopen) {
            TW.reopen = 0;
            srv__log_reopen();
        }
    }
    srv__child_retire(TW.app);
    srv__loop_destroy(TW.loop);
    _exit(0);
}
