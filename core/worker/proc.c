/* Custom processes: a long-running entry function of the app with a mailbox for messages from
 * workers, forked by the manager like workers (srv__child_start), restarted when they exit. */
#include "core/worker/proc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/server/app.h"
#include "core/server/child.h"
#include "core/ipc/ipc.h"
#include "core/base/log.h"
#include "core/server/msg.h"
#include "core/server/server.h"
#include "timer/timer.h"
#include "core/shm/shm.h"

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_reload; /* replaced by a reload (the manager's SIGUSR1) */

struct srv_process {
    int slot;
    int box;   /* our mailbox */
    int index; /* [[process]] entry */
    int instance;
    void (*on_reload)(srv_process_t *p);
    void (*on_stop)(srv_process_t *p);
    bool hooked; /* a hook ran */
};

void srv_process_hooks(srv_process_t *p, void (*on_reload)(srv_process_t *p),
                       void (*on_stop)(srv_process_t *p))
{
    p->on_reload = on_reload;
    p->on_stop = on_stop;
}

/* Run the reload or stop hook once, outside signal context. */
static void run_hooks(srv_process_t *p)
{
    if (!g_stop || p->hooked)
        return;
    p->hooked = true;
    if (g_reload && p->on_reload)
        p->on_reload(p);
    else if (!g_reload && p->on_stop)
        p->on_stop(p);
}

const char *srv_process_name(const srv_process_t *p)
{
    return srv__server.cfg.process[p->index].name;
}

int srv_process_instance(const srv_process_t *p)
{
    return p->instance;
}

bool srv_process_stopping(srv_process_t *p)
{
    run_hooks(p);
    return g_stop != 0;
}

/* A process leaving (reload or stop) passes what is still in its mailbox to its slot's newest
 * process, so callers are answered by the replacement instead of timing out. */
static void hand_over(srv_process_t *p, char *tmp, size_t cap)
{
    int next = srv__slot_box(p->slot);
    if (next == p->box)
        return; /* no replacement (stop): the messages end with the server */
    srv__msg_t m;
    int rc;
    while ((rc = srv__mbox_get(p->box, &m, tmp, cap)) != 0)
        if (rc > 0)
            srv__mbox_put(next, &m, tmp);
}

int srv_process_recv(srv_process_t *p, void *buf, size_t cap, uint64_t *call, int timeout_ms)
{
    int64_t deadline = srv__mono_ms() + timeout_ms;
    static char tmp[1 << 20];
    for (;;) {
        if (g_stop) {
            run_hooks(p);
            hand_over(p, tmp, sizeof(tmp));
            return -ECANCELED;
        }
        srv__mbox_ack(p->box);
        srv__msg_t m;
        int rc = srv__mbox_get(p->box, &m, tmp, sizeof(tmp));
        /* Calls sent while the slot had no live process (after a crash) wait in the other
         * mailbox of the slot: the successor answers them. */
        if (rc == 0 && srv__mbox_orphaned(p->box ^ 1))
            rc = srv__mbox_get(p->box ^ 1, &m, tmp, sizeof(tmp));
        if (rc > 0 && m.type == SRV_MSG_PROC) {
            size_t n = m.len < cap ? m.len : cap;
            memcpy(buf, tmp, n);
            /* The caller's mailbox and its call id, packed so a reply finds its way back. */
            if (call)
                *call = m.id ? ((uint64_t)(uint32_t)m.from << 40) | m.id : 0;
            return (int)m.len;
        }
        if (rc != 0)
            continue;
        int64_t left = deadline - srv__mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = srv__mbox_fd(p->box), .events = POLLIN};
        poll(&pfd, 1, left > 100 ? 100 : (int)left);
    }
}

int srv_process_reply(srv_process_t *p, uint64_t call, const void *data, size_t len)
{
    if (call == 0)
        return -EINVAL;
    srv__msg_t m = {.type = SRV_MSG_PROC_REPLY,
                   .from = p->box,
                   .id = call & ((1ull << 40) - 1),
                   .len = (uint32_t)len};
    return srv__mbox_put((int)(call >> 40), &m, data);
}

static int find_process(const char *name)
{
    const srv__server_t *S = &srv__server;
    int slot = S->proc_base;
    for (int i = 0; i < S->cfg.nprocess; i++) {
        if (strcmp(S->cfg.process[i].name, name) == 0) {
            if (!S->cfg.process[i].pipe)
                return -ENOTSUP; /* declared with pipe = false: nobody may write to it */
            static _Atomic unsigned rr;
            return slot + (int)(atomic_fetch_add(&rr, 1) % (unsigned)S->cfg.process[i].num);
        }
        slot += S->cfg.process[i].num;
    }
    return -ENOENT;
}

static uint64_t g_call_seq;

int srv_process_send(const char *name, const void *data, size_t len)
{
    int slot = find_process(name);
    if (slot < 0)
        return slot;
    srv__msg_t m = {.type = SRV_MSG_PROC, .from = srv__msg_self(), .len = (uint32_t)len};
    return srv__mbox_put(srv__slot_box(slot), &m, data);
}

int srv_process_call(const char *name, const void *data, size_t len, void *reply, size_t cap,
                     int timeout_ms)
{
    int slot = find_process(name);
    if (slot < 0)
        return slot;
    if (srv__msg_self() < 0)
        return -ENOTSUP;
    uint64_t id = ++g_call_seq & ((1ull << 40) - 1);
    srv__msg_t m = {.type = SRV_MSG_PROC, .from = srv__msg_self(), .id = id, .len = (uint32_t)len};
    int rc = srv__mbox_put(srv__slot_box(slot), &m, data);
    if (rc < 0)
        return rc;
    return srv__msg_wait(SRV_MSG_PROC_REPLY, id, reply, cap, NULL, timeout_ms);
}

void srv__process_main(int slot, int ctl_fd, const int *chans, int nchans)
{
    const srv__config_t *cfg = &srv__server.cfg;
    srv_process_t p = {.slot = slot};
    p.index = srv__slot_process(slot, &p.instance);
    const srv__process_config_t *pc = &cfg->process[p.index];
    srv__child_opts_t o = {.role = pc->name,
                           .id = p.instance,
                           .log_id = p.instance,
                           .title = pc->name,
                           .stop = &g_stop,
                           .reload = &g_reload};
    srv__child_start(slot, ctl_fd, &o);
    srv__timer_set_gauge(&srv__server.stats->workers[slot].timers);
    p.box = srv__msg_self();
    char err[1024];
    srv_process_entry_t entry = (srv_process_entry_t)srv__app_symbol(pc->handler);
    if (entry == NULL) {
        snprintf(err, sizeof(err), "process %s: the app exports no function %s", pc->name,
                 pc->handler);
        srv__child_fail(err);
    }
    srv__child_tell(SRV_WMSG_READY, NULL);
    entry(&p);
    _exit(0);
}
