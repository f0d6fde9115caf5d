/* Control socket: the info report the master builds from shared stats, and the client side
 * the srv command uses. */
#include "core/ctl.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/atomic.h"
#include "core/msg.h"
#include "core/reactor.h"
#include "core/server.h"
#include "core/table.h"

static const char *state_name(int s)
{
    switch (s) {
    case SRV_WSTATE_STARTING:
        return "starting";
    case SRV_WSTATE_READY:
        return "ready";
    case SRV_WSTATE_STOPPING:
        return "stopping";
    case SRV_WSTATE_BACKOFF:
        return "backoff";
    default:
        return "down";
    }
}

/* A slot's number within its kind: worker 0.., task 0.., timer 0, process instance 0..
 * counted across every [[process]]. */
static int local_id(int slot)
{
    const srv_server_t *S = &srv__server;
    switch (srv__slot_kind(slot)) {
    case SRV_SLOT_TASK:
        return slot - S->cfg.worker_num;
    case SRV_SLOT_TIMER:
        return 0;
    case SRV_SLOT_PROCESS:
        return slot - S->proc_base;
    default:
        return slot;
    }
}

typedef struct out {
    char *buf;
    size_t cap, len;
} out_t;

__attribute__((format(printf, 2, 3))) static void put(out_t *o, const char *fmt, ...)
{
    if (o->len >= o->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
    if (o->len >= o->cap)
        o->len = o->cap - 1;
}

static void totals(uint64_t *conns, uint64_t *accepted, uint64_t *requests, uint64_t *e503)
{
    const srv_stats_t *st = srv__server.stats;
    *conns = *accepted = *requests = *e503 = 0;
    for (int i = 0; i < SRV_MAX_REACTORS; i++) {
        *conns += atomic_load(&st->reactors[i].connections);
        *accepted += atomic_load(&st->reactors[i].accepted);
        *requests += atomic_load(&st->reactors[i].requests);
        *e503 += atomic_load(&st->reactors[i].errors_503);
    }
}

void srv__info_json(char *buf, size_t cap)
{
    const srv_server_t *S = &srv__server;
    const srv_stats_t *st = S->stats;
    out_t o = {buf, cap, 0};
    uint64_t conns, accepted, requests, e503;
    totals(&conns, &accepted, &requests, &e503);
    const char *backend = S->nreactors > 0 ? srv__reactors_backend() : "";
    put(&o,
        "{\"version\":\"%s\",\"pid\":%d,\"manager_pid\":%d,\"mode\":\"%s\",\"backend\":\"%s\","
        "\"uptime\":%.3f,\"reactors\":%d,\"reloads\":%llu,\"connections\":%llu,"
        "\"accepted\":%llu,\"requests\":%llu,\"errors_503\":%llu,\"workers\":[",
        SRV_VERSION, atomic_load(&st->master_pid), atomic_load(&st->manager_pid),
        S->cfg.mode == SRV_MODE_BASE ? "base" : "process", backend,
        (double)(srv__now_ms() - st->start_ms) / 1000.0, S->nreactors,
        (unsigned long long)atomic_load(&st->reloads), (unsigned long long)conns,
        (unsigned long long)accepted, (unsigned long long)requests, (unsigned long long)e503);
    for (int i = 0; i < st->nworkers; i++) {
        const srv_worker_stat_t *w = &st->workers[i];
        put(&o,
            "%s{\"id\":%d,\"type\":\"%s\",\"pid\":%d,\"state\":\"%s\",\"requests\":%llu,"
            "\"total_requests\":%llu,\"respawns\":%llu,\"recycles\":%llu,\"generation\":%u}",
            i ? "," : "", local_id(i), srv__slot_kind_name(i), atomic_load(&w->pid),
            state_name(atomic_load(&w->state)), (unsigned long long)atomic_load(&w->requests),
            (unsigned long long)atomic_load(&w->total_requests),
            (unsigned long long)atomic_load(&w->respawns),
            (unsigned long long)atomic_load(&w->recycles), atomic_load(&w->generation));
    }
    put(&o, "],\"tasks\":");
    if (o.len < o.cap) {
        int n = srv__tasks_info_json(o.buf + o.len, o.cap - o.len);
        if (n > 0)
            o.len += (size_t)n;
    }
    put(&o, ",\"cron\":");
    if (o.len < o.cap) {
        int n = srv__cron_info_json(o.buf + o.len, o.cap - o.len);
        if (n > 0)
            o.len += (size_t)n;
    }
    put(&o, ",\"atomics\":");
    if (o.len < o.cap) {
        int n = srv__atomics_info_json(o.buf + o.len, o.cap - o.len);
        if (n > 0)
            o.len += (size_t)n;
        else
            put(&o, "[]");
    }
    put(&o, ",\"tables\":");
    if (o.len < o.cap) {
        int n = srv_tables_info_json(o.buf + o.len, o.cap - o.len);
        if (n > 0)
            o.len += (size_t)n;
        else
            put(&o, "[]");
    }
    put(&o, "}\n");
}

void srv__info_text(char *buf, size_t cap)
{
    const srv_server_t *S = &srv__server;
    const srv_stats_t *st = S->stats;
    out_t o = {buf, cap, 0};
    uint64_t conns, accepted, requests, e503;
    totals(&conns, &accepted, &requests, &e503);
    int64_t up = (srv__now_ms() - st->start_ms) / 1000;
    put(&o, "srv %s, pid %d (manager %d), mode %s", SRV_VERSION, atomic_load(&st->master_pid),
        atomic_load(&st->manager_pid), S->cfg.mode == SRV_MODE_BASE ? "base" : "process");
    if (S->nreactors > 0)
        put(&o, ", %d reactor(s) on %s", S->nreactors, srv__reactors_backend());
    put(&o, "\nuptime %lldd %02lld:%02lld:%02lld, reloads %llu\n", (long long)(up / 86400),
        (long long)(up / 3600 % 24), (long long)(up / 60 % 60), (long long)(up % 60),
        (unsigned long long)atomic_load(&st->reloads));
    put(&o, "connections %llu open, %llu accepted; requests %llu; 503 answers %llu\n",
        (unsigned long long)conns, (unsigned long long)accepted, (unsigned long long)requests,
        (unsigned long long)e503);
    put(&o, "%-7s %-4s %-8s %-9s %12s %12s %9s %9s\n", "type", "id", "pid", "state", "requests",
        "total", "respawns", "recycles");
    for (int i = 0; i < st->nworkers; i++) {
        const srv_worker_stat_t *w = &st->workers[i];
        put(&o, "%-7s %-4d %-8d %-9s %12llu %12llu %9llu %9llu\n", srv__slot_kind_name(i),
            local_id(i), atomic_load(&w->pid), state_name(atomic_load(&w->state)),
            (unsigned long long)atomic_load(&w->requests),
            (unsigned long long)atomic_load(&w->total_requests),
            (unsigned long long)atomic_load(&w->respawns),
            (unsigned long long)atomic_load(&w->recycles));
    }
    char js[8192];
    if (srv__server.cfg.task_worker_num > 0 && srv__tasks_info_json(js, sizeof(js)) > 0)
        put(&o, "tasks %s\n", js);
    if (srv__server.cfg.ncron > 0 && srv__cron_info_json(js, sizeof(js)) > 0)
        put(&o, "cron %s\n", js);
    if (srv_tables_info_json(js, sizeof(js)) > 2)
        put(&o, "tables %s\n", js);
    if (srv__atomics_info_json(js, sizeof(js)) > 2)
        put(&o, "atomics %s\n", js);
}

int srv__ctl_request(const char *path, const char *cmd, char *buf, size_t cap, int timeout_ms)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path))
        return -ENAMETOOLONG;
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    char line[256];
    int n = snprintf(line, sizeof(line), "%s\n", cmd);
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
        int err = -errno;
        close(fd);
        return err;
    }
    size_t len = 0;
    int rc = 0;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int p = poll(&pfd, 1, timeout_ms);
        if (p < 0 && errno == EINTR)
            continue;
        if (p <= 0) {
            rc = p == 0 ? -ETIMEDOUT : -errno;
            break;
        }
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : (int)len;
            break;
        }
        len += (size_t)r;
        if (len >= cap - 1) {
            rc = (int)len;
            break;
        }
    }
    buf[len] = '\0';
    close(fd);
    return rc;
}
