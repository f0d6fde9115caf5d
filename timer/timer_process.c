/* The timer process: cron jobs from the config, each on its own thread (cron_sched.h), those
 * with global_lock claiming each beat in Redis first (cron_lock.h); their stats published in the
 * shared region for srv info; and the srv_cron_* calls the jobs make. See timer_process.h. */
#include "timer/timer_process.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/cron.h"
#include "core/base/log.h"
#include "core/server/app.h"
#include "core/server/child.h"
#include "core/server/msg.h"
#include "core/server/server.h"
#include "core/shm/shm.h"
#include "timer/cron_lock.h"

static volatile sig_atomic_t g_stop;

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
    int64_t wall_minus_mono_ns; /* interval jobs are scheduled on CLOCK_MONOTONIC */
    int64_t ttl_ms;             /* how long a run holds the lock */
    int64_t last_log_ms;
} locked_job_t;

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Redis failed for this job: one warning per CRON_LOCK_LOG_EVERY_MS. */
static void lock_trouble(locked_job_t *lj, const char *err)
{
    int64_t now = srv__now_ms();
    if (lj->last_log_ms != 0 && now - lj->last_log_ms < CRON_LOCK_LOG_EVERY_MS)
        return;
    lj->last_log_ms = now;
    srv__cron_lock_stats_t st;
    srv__cron_lock_stats(lj->lock, &st);
    srv__log(SRV_LOG_WARN, "timer", 0,
             "cron %s: global_lock: %s; beats are skipped until Redis answers (%llu so far)",
             lj->name, err, (unsigned long long)st.errors);
}

static locked_job_t g_locked[SRV_CONFIG_MAX_CRON];
static int g_nlocked;

static void locked_trampoline(srv_cron_job_t *job)
{
    locked_job_t *lj = srv__cron_job_arg(job);
    /* A beat is its scheduled time, not the moment the thread woke: consecutive beats of one
     * instance are consecutive slots, with no gap and no repeat. Crontab beats are minutes
     * every instance agrees on; interval beats are slots of wall-clock time, so instances
     * started at different moments agree on them too. */
    int64_t due = srv__cron_job_due_ns(job);
    int64_t slot = lj->interval_ms > 0
                       ? (due + lj->wall_minus_mono_ns) / (lj->interval_ms * 1000000LL)
                       : due / (60 * 1000000000LL);
    char err[256];
    int64_t token = srv__cron_lock_claim(lj->lock, slot, CRON_LOCK_TIMEOUT_MS, err, sizeof(err));
    if (token < 0)
        lock_trouble(lj, err);
    if (token <= 0)
        return;
    lj->fn(job);
    int rc = srv__cron_lock_release(lj->lock, CRON_LOCK_TIMEOUT_MS, err, sizeof(err));
    if (rc == 0)
        srv__log(SRV_LOG_WARN, "timer", 0,
                 "cron %s: global_lock: the run with fencing token %lld outlasted its lock (%lld "
                 "ms); another instance may have run a later beat meanwhile",
                 lj->name, (long long)token, (long long)lj->ttl_ms);
    else if (rc < 0)
        lock_trouble(lj, err);
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

size_t srv__cron_info_region_size(void)
{
    return sizeof(cron_info_t) + 64; /* + alignment */
}

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
        w = snprintf(buf + at, cap - at,
                     "%s\"%s\":{\"won\":%llu,\"lost\":%llu,\"busy\":%llu,\"errors\":%llu,"
                     "\"stale\":%llu,\"token\":%lld}",
                     i ? "," : "", g_locked[i].name, (unsigned long long)st.won,
                     (unsigned long long)st.lost, (unsigned long long)st.busy,
                     (unsigned long long)st.errors, (unsigned long long)st.stale,
                     (long long)st.token);
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

/* A job with global_lock = true: its lock in Redis, claimed as this instance (host:master pid). */
static locked_job_t *lock_job(const srv__cron_config_t *c, srv_cron_handler_t fn)
{
    locked_job_t *lj = &g_locked[g_nlocked];
    char owner[128], host[64] = "?";
    gethostname(host, sizeof(host) - 1);
    snprintf(owner, sizeof(owner), "%s:%d", host, atomic_load(&srv__server.stats->master_pid));
    /* A run holds the lock for at most the job's interval (a crontab job's: a minute), at
     * least 1 s: a paused or partitioned instance loses it, and its release then finds
     * another value and deletes nothing. */
    int64_t ttl = c->schedule[0] ? 60000 : c->interval_ms;
    lj->ttl_ms = ttl > 1000 ? ttl : 1000;
    const srv__config_t *cfg = &srv__server.cfg;
    srv__cron_lock_redis_t where = {cfg->redis, cfg->redis_password, cfg->redis_db};
    lj->lock = srv__cron_lock_create(&where, c->name, owner, ttl);
    lj->wall_minus_mono_ns = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
    if (lj->lock == NULL)
        srv__child_fail("out of memory");
    lj->fn = fn;
    lj->name = c->name;
    lj->interval_ms = c->schedule[0] ? 0 : c->interval_ms;
    g_nlocked++;
    return lj;
}

/* Schedule the [[cron]] entry c; one the app or the grammar refuses fails the start-up. */
static void add_job(srv__cron_sched_t *s, const srv__cron_config_t *c)
{
    char err[1024];
    void *fn = srv__app_symbol(c->handler);
    if (fn == NULL) {
        snprintf(err, sizeof(err), "cron %s: the app exports no function %s", c->name, c->handler);
        srv__child_fail(err);
    }
    srv__cron_job_def_t def = {.name = c->name,
                               .fn = trampoline,
                               .arg = fn,
                               .interval_ms = c->interval_ms,
                               .immediate = c->immediate,
                               .max_wait_ms = (int64_t)c->max_wait_time * 1000};
    if (c->global_lock) {
        def.fn = locked_trampoline;
        def.arg = lock_job(c, (srv_cron_handler_t)fn);
    }
    srv__cron_t tab;
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

void srv__timer_main(int slot, int ctl_fd, const int *chans, int nchans)
{
    const srv__config_t *cfg = &srv__server.cfg;
    srv__child_opts_t o = {
        .role = "timer", .id = 0, .log_id = -1, .title = "timer", .stop = &g_stop};
    srv__child_start(slot, ctl_fd, &o);
    srv__cron_sched_t *s;
    if (srv__cron_sched_create(&s) < 0)
        srv__child_fail("out of memory");
    for (int i = 0; i < cfg->ncron; i++)
        add_job(s, &cfg->cron[i]);
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
