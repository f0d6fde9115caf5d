/* The server's layout: which process kind owns each slot, and each slot's mailbox. */
#include "core/server/server.h"

#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/alog.h"
#include "core/base/log.h"

srv__server_t srv__server;

const srv__loop_opts_t srv__loop_opts = {.entries = 1024, .recv_bufs = 256, .recv_size = 4096};

void srv__server_config_stamp(srv__server_t *S)
{
    S->cfg_applied_ms = srv__now_ms();
    S->cfg_mtime_ms = 0;
    S->cfg_digest[0] = '\0';
    int fd = open(S->cfg.file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0)
        S->cfg_mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    uint64_t h = 0xcbf29ce484222325ULL;
    char buf[8192];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)buf[i]) * 0x100000001b3ULL;
    close(fd);
    if (n == 0)
        snprintf(S->cfg_digest, sizeof(S->cfg_digest), "%016llx", (unsigned long long)h);
}

/* Room a reload can grow into without a restart: the slots, their mailboxes and stats, base
 * mode's engines and the task records are sized at start. Two per CPU: every slot costs each
 * process two descriptors (its mailboxes' eventfds) and 2 MiB of address space. */
static int capacity(int configured, int floor, int max)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int room = (int)(cpus > 0 && cpus < 512 ? cpus : 1) * 2;
    if (room < floor)
        room = floor;
    if (room < configured)
        room = configured;
    return room > max ? (configured > max ? configured : max) : room;
}

static int process_instances(const srv__config_t *cfg)
{
    int n = 0;
    for (int i = 0; i < cfg->nprocess; i++)
        n += cfg->process[i].num;
    return n;
}

void srv__server_layout(srv__server_t *S)
{
    const srv__config_t *cfg = &S->cfg;
    S->wcap = capacity(cfg->worker_num, 4, SRV_MAX_WORKERS);
    S->tcap = capacity(cfg->task_worker_num, 4, SRV_MAX_WORKERS);
    S->pcap = process_instances(cfg) + 4;
    S->tbase = S->wcap;
    S->timer_slot = S->tbase + S->tcap; /* kept even without cron jobs: a reload may add some */
    S->proc_base = S->timer_slot + 1;
    S->nslots = S->proc_base + S->pcap;
    S->taskq = 2 * S->nslots; /* two mailboxes per slot (old and new process overlap) */
}

const char *srv__server_fits(const srv__server_t *S, const srv__config_t *cfg)
{
    if (cfg->worker_num > S->wcap)
        return "worker_num";
    if (cfg->task_worker_num > S->tcap)
        return "task_worker_num";
    if (process_instances(cfg) > S->pcap)
        return "process";
    return NULL;
}

bool srv__slot_active(int slot)
{
    const srv__server_t *S = &srv__server;
    switch (srv__slot_kind(slot)) {
    case SRV_SLOT_WORKER:
        return slot < S->cfg.worker_num;
    case SRV_SLOT_TASK:
        return slot - S->tbase < S->cfg.task_worker_num;
    case SRV_SLOT_TIMER:
        return S->cfg.ncron > 0;
    default:
        return srv__slot_process(slot, NULL) >= 0;
    }
}

bool srv__slot_shown(int slot)
{
    const srv__stats_t *st = srv__server.stats;
    return srv__slot_active(slot) || (st && atomic_load(&st->workers[slot].pid) > 0);
}

int srv__server_active_slots(void)
{
    int n = 0;
    for (int i = 0; i < srv__server.nslots; i++)
        n += srv__slot_active(i);
    return n;
}

srv__slot_kind_t srv__slot_kind(int slot)
{
    const srv__server_t *S = &srv__server;
    if (slot < S->wcap)
        return SRV_SLOT_WORKER;
    if (slot < S->tbase + S->tcap)
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

/* A slot's number within its kind: worker 0.., task 0.., timer 0, process instance 0..
 * counted across every [[process]]. */
int srv__slot_local_id(int slot)
{
    const srv__server_t *S = &srv__server;
    switch (srv__slot_kind(slot)) {
    case SRV_SLOT_TASK:
        return slot - S->tbase;
    case SRV_SLOT_TIMER:
        return 0;
    case SRV_SLOT_PROCESS:
        return slot - S->proc_base;
    default:
        return slot;
    }
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

srv__netstat_t *srv__stats_net(int engine)
{
    const srv__stats_t *st = srv__server.stats;
    if (st == NULL || st->net == NULL || engine < 0 || engine >= st->nengines)
        return NULL;
    return &st->net[(size_t)engine * (size_t)st->nlisten];
}

int srv__server_alog_open(void)
{
    const srv__server_t *S = &srv__server;
    if (S->cfg.access_log[0] == '\0')
        return 0;
    srv__alog_counters_t n = {.lines = &S->stats->alog_lines,
                              .errors = &S->stats->alog_errors,
                              .dropped = &S->stats->alog_dropped};
    int rc = srv__alog_open(S->cfg.access_log, &n);
    if (rc < 0)
        srv__log(SRV_LOG_ERROR, "alog", rc, "access log %s: cannot start its writer",
                 S->cfg.access_log);
    return rc;
}

const char *srv__stats_backend(void)
{
    return srv__server.stats ? srv__server.stats->backend : "";
}

void srv__stats_set_backend(const char *name)
{
    if (srv__server.stats)
        snprintf(srv__server.stats->backend, sizeof(srv__server.stats->backend), "%s", name);
}

/* The sum of every engine's counters for listener i. */
void srv__stats_net_sum(int i, srv__netstat_t *sum)
{
    memset(sum, 0, sizeof(*sum));
    const srv__stats_t *st = srv__server.stats;
    for (int e = 0; e < st->nengines; e++) {
        const srv__netstat_t *n = &st->net[(size_t)e * (size_t)st->nlisten + (size_t)i];
#define ADD(f) atomic_store(&sum->f, atomic_load(&sum->f) + atomic_load(&n->f))
        for (int k = 0; k < 5; k++)
            ADD(requests[k]);
        for (int k = 0; k <= SRV_NETSTAT_NBOUNDS; k++)
            ADD(duration[k]);
        ADD(duration_us);
        ADD(accepted);
        ADD(refused);
        ADD(bytes_in);
        ADD(bytes_out);
        ADD(ws_in);
        ADD(ws_out);
        for (int k = 0; k < SRV_NETSTAT_NPROTO; k++)
            ADD(open[k]);
#undef ADD
    }
}
