/* The server's layout: which process kind owns each slot, and each slot's mailbox. */
#include "core/server/server.h"


srv__server_t srv__server;

const srv__loop_opts_t srv__loop_opts = {.entries = 1024, .recv_bufs = 256, .recv_size = 4096};

void srv__server_layout(srv__server_t *S)
{
    const srv__config_t *cfg = &S->cfg;
    int n = cfg->worker_num + cfg->task_worker_num;
    S->timer_slot = cfg->ncron > 0 ? n++ : -1;
    S->proc_base = n;
    for (int i = 0; i < cfg->nprocess; i++)
        n += cfg->process[i].num;
    S->nslots = n;
    S->taskq = 2 * n; /* two mailboxes per slot (old and new process overlap in a reload) */
}

srv__slot_kind_t srv__slot_kind(int slot)
{
    const srv__server_t *S = &srv__server;
    if (slot < S->cfg.worker_num)
        return SRV_SLOT_WORKER;
    if (slot < S->cfg.worker_num + S->cfg.task_worker_num)
        return SRV_SLOT_TASK;
    if (slot == S->timer_slot)
        return SRV_SLOT_TIMER;
    return SRV_SLOT_PROCESS;
}

int srv__slot_process(int slot, int *instance)
{
    const srv__server_t *S = &srv__server;
    int k = slot - S->proc_base;
    if (k < 0)
        return -1;
    for (int i = 0; i < S->cfg.nprocess; i++) {
        if (k < S->cfg.process[i].num) {
            if (instance)
                *instance = k;
            return i;
        }
        k -= S->cfg.process[i].num;
    }
    return -1;
}

const char *srv__slot_kind_name(int slot)
{
    static const char *const names[] = {"worker", "task", "timer", "process"};
    return names[srv__slot_kind(slot)];
}

int srv__slot_box(int slot)
{
    const srv__stats_t *st = srv__server.stats;
    uint32_t gen = st ? atomic_load(&st->workers[slot].generation) : 0;
    return 2 * slot + (int)(gen & 1);
}

uint64_t srv__stats_connections(void)
{
    const srv__stats_t *st = srv__server.stats;
    if (st == NULL)
        return 0;
    uint64_t n = 0;
    for (int i = 0; i < SRV_MAX_REACTORS; i++)
        n += atomic_load_explicit(&st->reactors[i].connections, memory_order_relaxed);
    return n;
}
