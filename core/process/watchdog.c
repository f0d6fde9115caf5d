/* The manager's watchdog (see watchdog.h): once a second, for every worker and task worker,
 * what it is busy with (published in its srv__worker_stat_t by core/worker and tasks/) against
 * request_timeout / task_timeout, and its resident memory (/proc/PID/statm) against
 * max_worker_rss. */
#include "core/process/watchdog.h"

#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/base/util.h"
#include "core/server/server.h"

#define WATCHDOG_PERIOD_MS 250

static int64_t next_check;

/* Workers sent SIGXCPU (their last word: base mode writes the 504), SIGKILLed at .at. */
#define WATCHDOG_GRACE_MS 200
static struct {
    int pid;
    int64_t at;
} pending[64];

static void kill_later(int pid, int64_t now)
{
    for (size_t i = 0; i < sizeof(pending) / sizeof(pending[0]); i++)
        if (pending[i].pid == 0) {
            pending[i].pid = pid;
            pending[i].at = now + WATCHDOG_GRACE_MS;
            kill(pid, SIGXCPU);
            return;
        }
    kill(pid, SIGKILL);
}

static void kill_due(int64_t now)
{
    for (size_t i = 0; i < sizeof(pending) / sizeof(pending[0]); i++)
        if (pending[i].pid != 0 && now >= pending[i].at) {
            kill(pending[i].pid, SIGKILL); /* (gone already, or a zombie: no harm) */
            pending[i].pid = 0;
        }
}

void srv__watchdog_forget(int pid)
{
    for (size_t i = 0; i < sizeof(pending) / sizeof(pending[0]); i++)
        if (pending[i].pid == pid)
            pending[i].pid = 0;
}

void srv__watchdog_init(void)
{
    next_check = srv__mono_ms() + WATCHDOG_PERIOD_MS;
}

int64_t srv__watchdog_deadline(void)
{
    const srv__config_t *cfg = &srv__server.cfg;
    bool any = cfg->request_timeout > 0 || cfg->task_timeout > 0 || cfg->max_worker_rss > 0;
    for (int i = 0; !any && i < cfg->nlisten; i++)
        any = cfg->listen[i].request_timeout > 0;
    return any ? next_check : -1;
}

/* Resident bytes of pid, or -1. */
static int64_t rss_of(int pid)
{
    char path[64], buf[128];
    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    long long size = 0, resident = 0;
    if (sscanf(buf, "%lld %lld", &size, &resident) != 2)
        return -1;
    return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

/* A handler or task past its limit: the client of the request gets 504 (process mode: the
 * reactor reads harakiri_session when the channel dies), the process dies, the manager
 * respawns it (a task counts as failed and follows its retry rule). */
static void check_busy(int slot, srv__worker_stat_t *st, int pid, int64_t now)
{
    int64_t since = atomic_load_explicit(&st->busy_ms, memory_order_acquire);
    int limit = atomic_load_explicit(&st->busy_limit, memory_order_relaxed);
    if (since == 0 || limit <= 0 || now - since < (int64_t)limit * 1000)
        return;
    char what[sizeof(st->busy_what)];
    snprintf(what, sizeof(what), "%s", st->busy_what);
    bool task = srv__slot_kind(slot) == SRV_SLOT_TASK;
    int id = srv__slot_local_id(slot);
    srv__log(SRV_LOG_ERROR, "manager", 0,
             "%s: %s #%d pid %d killed after %.1f s running %s (limit %d s)",
             task ? "task_timeout" : "request_timeout", task ? "task worker" : "worker", id, pid,
             (double)(now - since) / 1000.0, what, limit);
    if (!task)
        atomic_store(&st->harakiri_session, atomic_load(&st->busy_session));
    atomic_fetch_add(&st->harakiris, 1);
    atomic_store(&st->busy_ms, 0); /* one kill: the process cannot clear it any more */
    if (task)
        kill(pid, SIGKILL);
    else
        kill_later(pid, now);
}

static void check_rss(int slot, srv__worker_stat_t *st, int pid, bool (*recycle)(int slot))
{
    int64_t limit = srv__server.cfg.max_worker_rss;
    if (limit <= 0 || srv__slot_kind(slot) != SRV_SLOT_WORKER)
        return;
    int64_t rss = rss_of(pid);
    if (rss <= limit || !recycle(slot))
        return;
    srv__log(SRV_LOG_WARN, "manager", 0,
             "worker #%d pid %d uses %lld KiB, above max_worker_rss (%lld KiB); replacing it", slot,
             pid, (long long)(rss / 1024), (long long)(limit / 1024));
    atomic_fetch_add(&st->rss_recycles, 1);
}

void srv__watchdog_run(int64_t now, bool (*recycle)(int slot))
{
    if (now < next_check)
        return;
    next_check = now + WATCHDOG_PERIOD_MS;
    kill_due(now);
    static unsigned tick;
    bool rss_due = tick++ % 4 == 0; /* memory about once a second */
    srv__stats_t *stats = srv__server.stats;
    int n = stats->nworkers;
    for (int i = 0; i < n && i < srv__server.nslots; i++) {
        srv__slot_kind_t k = srv__slot_kind(i);
        if (k != SRV_SLOT_WORKER && k != SRV_SLOT_TASK)
            continue;
        srv__worker_stat_t *st = &stats->workers[i];
        int pid = atomic_load(&st->pid);
        if (pid <= 0 || atomic_load(&st->state) != SRV_WSTATE_READY)
            continue;
        check_busy(i, st, pid, now);
        if (rss_due)
            check_rss(i, st, pid, recycle);
    }
}
