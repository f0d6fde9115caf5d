/* The timer process (cron jobs from the config, each on its own thread) and custom processes
 * (a long-running entry function of the app with a mailbox for messages from workers). Both
 * are forked by the manager like workers, load the app themselves, and report ready. */
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
#include "core/shm/shm.h"
#include "config/cron.h"
#include "timer/cron_lock.h"
#include "timer/cron_sched.h"

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_reload; /* replaced by a reload (the manager's SIGUSR1) */

/* ---- cron ---- */

struct srv_cron_job; /* the scheduler's job, handed to the app as srv_cron_job_t */

static void trampoline(srv_cron_job_t *job)
{
    srv_cron_handler_t fn = (srv_cron_handler_t)srv__cron_job_arg(job);
    fn(job);
}

/* A job with global_lock = true: each beat first claims its slot in Redis (timer/cron_lock.h),
 * so across instances sharing that Redis every beat runs once. */
#define CRON_LOCK_TIMEOUT_MS 500
#define CRON_LOCK_LOG_EVERY_MS 10000

typedef struct locked_job {
    srv_cron_handler_t fn;
    srv__cron_lock_t *lock;
    const char *name;
    int64_t interval_ms; /* 0: crontab job, slot = its scheduled minute */
    int64_t last_log_ms;
} locked_job_t;

static locked_job_t g_locked[SRV_CONFIG_MAX_CRON];
static int g_nlocked;

static void locked_trampoline(srv_cron_job_t *job)
{
    locked_job_t *lj = srv__cron_job_arg(job);
    /* Crontab beats are minutes every instance agrees on. Interval beats are slots of wall-clock
     * time: instances started at different moments tick at different phases, and the first to
     * reach a slot takes it. */
    int64_t slot = lj->interval_ms > 0 ? srv__now_ms() / lj->interval_ms
                                       : srv__cron_job_due_ns(job) / (60 * 1000000000LL);
    char err[256];
    int r = srv__cron_lock_claim(lj->lock, slot, CRON_LOCK_TIMEOUT_MS, err, sizeof(err));
    if (r == 1) {
        lj->fn(job);
        return;
    }
    if (r < 0) {
        int64_t now = srv__now_ms();
        if (lj->last_log_ms == 0 || now - lj->last_log_ms >= CRON_LOCK_LOG_EVERY_MS) {
            lj->last_log_ms = now;
            srv__cron_lock_stats_t st;
            srv__cron_lock_stats(lj->lock, &st);
            srv__log(SRV_LOG_WARN, "timer", 0,
                    "cron %s: global_lock: %s; beats are skipped until Redis answers (%llu so "
                    "far)",
                    lj->name, err, (unsigned long long)st.errors);
        }
    }
}

const char *srv_cron_name(srv_cron_job_t *job)
{
    return srv__cron_job_name(job);
}

void srv_cron_stop(srv_cron_job_t *job)
{
    srv__cron_job_stop(job);
}

bool srv_cron_stopping(srv_cron_job_t *job)
{
    return srv__cron_job_stopping(job);
}

/* The timer process writes its jobs' stats here (a seqlock'd JSON text) for srv info. */
#define CRON_INFO_MAX 8192
typedef struct cron_info {
    _Atomic uint32_t seq;
    char json[CRON_INFO_MAX];
} cron_info_t;
static cron_info_t *g_cron_info;

int srv__cron_info_create(void)
{
    g_cron_info = srv__shm_alloc(sizeof(cron_info_t), 64);
    if (g_cron_info == NULL)
        return -ENOMEM;
    strcpy(g_cron_info->json, "{\"jobs\":[]}");
    return 0;
}

/* `,"locks":{"job":{"won":N,"lost":N,"errors":N},...}` before the closing brace of buf. */
static void append_locks(char *buf, size_t cap)
{
    size_t n = strlen(buf);
    if (g_nlocked == 0 || n == 0 || buf[n - 1] != '}')
        return;
    size_t at = n - 1;
    int w = snprintf(buf + at, cap - at, ",\"locks\":{");
    for (int i = 0; i < g_nlocked && w > 0 && (size_t)w < cap - at; i++) {
        srv__cron_lock_stats_t st;
        srv__cron_lock_stats(g_locked[i].lock, &st);
        at += (size_t)w;
        w = snprintf(buf + at, cap - at, "%s\"%s\":{\"won\":%llu,\"lost\":%llu,\"errors\":%llu}",
                     i ? "," : "", g_locked[i].name, (unsigned long long)st.won,
                     (unsigned long long)st.lost, (unsigned long long)st.errors);
    }
    if (w > 0 && (size_t)w < cap - at) {
        at += (size_t)w;
        if (snprintf(buf + at, cap - at, "}}") == 2)
            return;
    }
    buf[n - 1] = '}'; /* did not fit: the jobs alone */
    buf[n] = '\0';
}

void srv__cron_publish(srv__cron_sched_t *s)
{
    char buf[CRON_INFO_MAX];
    if (g_cron_info == NULL || srv__cron_sched_info_json(s, buf, sizeof(buf)) < 0)
        return;
    append_locks(buf, sizeof(buf));
    atomic_fetch_add(&g_cron_info->seq, 1);
    memcpy(g_cron_info->json, buf, strlen(buf) + 1);
    atomic_fetch_add(&g_cron_info->seq, 1);
}

int srv__cron_info_json(char *buf, size_t cap)
{
    if (g_cron_info == NULL)
        return snprintf(buf, cap, "{\"jobs\":[]}");
    for (int i = 0; i < 100; i++) {
        uint32_t a = atomic_load(&g_cron_info->seq);
        if (a & 1)
            continue;
        int n = snprintf(buf, cap, "%s", g_cron_info->json);
        if (atomic_load(&g_cron_info->seq) == a)
            return n;
    }
    return snprintf(buf, cap, "{\"jobs\":[]}");
}

void srv__timer_main(int slot, int ctl_fd)
{
    const srv__config_t *cfg = &srv__server.cfg;
    srv__child_opts_t o = {
        .role = "timer", .id = 0, .log_id = -1, .title = "timer", .stop = &g_stop};
    srv__child_start(slot, ctl_fd, &o);
    char err[1024];
    srv__cron_sched_t *s;
    if (srv__cron_sched_create(&s) < 0)
        srv__child_fail("out of memory");
    for (int i = 0; i < cfg->ncron; i++) {
        const srv__cron_config_t *c = &cfg->cron[i];
        void *fn = srv__app_symbol(c->handler);
        if (fn == NULL) {
            snprintf(err, sizeof(err), "cron %s: the app exports no function %s", c->name,
                     c->handler);
            srv__child_fail(err);
        }
        srv__cron_fn tramp = trampoline;
        void *arg = fn;
        if (c->global_lock) {
            locked_job_t *lj = &g_locked[g_nlocked];
            char owner[128], host[64] = "?";
            gethostname(host, sizeof(host) - 1);
            snprintf(owner, sizeof(owner), "%s:%d", host,
                     atomic_load(&srv__server.stats->master_pid));
            /* A claim outlives its beat by enough to cover clock skew between instances. */
            int64_t ttl = c->interval_ms > 0 ? 2 * c->interval_ms : 120000;
            if (ttl < 10000)
                ttl = 10000;
            lj->lock = srv__cron_lock_create(cfg->redis, c->name, owner, ttl);
            if (lj->lock == NULL)
                srv__child_fail("out of memory");
            lj->fn = (srv_cron_handler_t)fn;
            lj->name = c->name;
            lj->interval_ms = c->schedule[0] ? 0 : c->interval_ms;
            g_nlocked++;
            tramp = locked_trampoline;
            arg = lj;
        }
        srv__cron_t tab;
        srv__cron_job_def_t def = {.name = c->name,
                                  .fn = tramp,
                                  .arg = arg,
                                  .interval_ms = c->interval_ms,
                                  .immediate = c->immediate,
                                  .max_wait_ms = (int64_t)c->max_wait_time * 1000};
        if (c->schedule[0]) {
            char why[200];
            if (srv__cron_parse(&tab, c->schedule, why, sizeof(why)) < 0) {
                snprintf(err, sizeof(err), "cron %s: schedule: %s", c->name, why);
                srv__child_fail(err);
            }
            def.schedule = &tab;
            def.interval_ms = 0;
        }
        int rc = srv__cron_sched_add(s, &def);
        if (rc < 0) {
            snprintf(err, sizeof(err), "cron %s: %s", c->name, srv_strerror(rc));
            srv__child_fail(err);
        }
    }
    if (srv__cron_sched_start(s) < 0)
        srv__child_fail("cannot start cron threads");
    srv__child_tell(SRV_WMSG_READY, NULL);
    srv__log(SRV_LOG_NOTICE, "timer", 0, "%d cron job(s) running", cfg->ncron);
    while (!g_stop) {
        /* Results of tasks the jobs delivered come back here; the jobs' counters go to the
         * shared region for `srv info`. */
        struct pollfd pfd = {.fd = srv__mbox_fd(srv__msg_self()), .events = POLLIN};
        poll(&pfd, 1, 500);
        srv__msg_dispatch();
        srv__cron_publish(s);
    }
    int left = srv__cron_sched_stop(s, -1);
    if (left > 0) {
        srv__log(SRV_LOG_WARN, "timer", 0, "%d cron job(s) still running after max_wait_time",
                 left);
        _exit(1); /* the threads are stuck in app code; exiting ends them */
    }
    srv__cron_sched_destroy(s);
    for (int i = 0; i < g_nlocked; i++)
        srv__cron_lock_destroy(g_locked[i].lock);
    _exit(0);
}

/* ---- custom processes ---- */

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

void srv__process_main(int slot, int ctl_fd)
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
