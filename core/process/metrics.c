/* The Prometheus exposition of /metrics; see metrics.h. Families are written whole, one after
 * another; per-listener counters are the sums over every engine's block. */
#include "core/process/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/net/maint.h"
#include "core/process/reactor.h"
#include "core/server/server.h"
#include "core/shm/table.h"
#include "tasks/task.h"
#include "timer/timer_process.h"

typedef struct out {
    char *buf;
    size_t cap, len;
    bool full;
} out_t;

__attribute__((format(printf, 2, 3))) static void put(out_t *o, const char *fmt, ...)
{
    if (o->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->full = true;
        return;
    }
    o->len += (size_t)n;
}

static void family(out_t *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *listener_name(int i, char *tmp, size_t cap)
{
    const srv__listen_config_t *l = &srv__server.cfg.listen[i];
    if (l->name[0])
        return l->name;
    snprintf(tmp, cap, "%d", i);
    return tmp;
}

static void put_histogram(out_t *o, const char *li, const srv__netstat_t *n)
{
    static const uint32_t bounds[] = {SRV_NETSTAT_BOUNDS};
    uint64_t cum = 0;
    for (int b = 0; b <= SRV_NETSTAT_NBOUNDS; b++) {
        cum += atomic_load(&n->duration[b]);
        if (b < SRV_NETSTAT_NBOUNDS)
            put(o, "srv_http_request_duration_seconds_bucket{listener=\"%s\",le=\"%g\"} %llu\n", li,
                bounds[b] / 1e6, (unsigned long long)cum);
        else
            put(o, "srv_http_request_duration_seconds_bucket{listener=\"%s\",le=\"+Inf\"} %llu\n",
                li, (unsigned long long)cum);
    }
    put(o, "srv_http_request_duration_seconds_sum{listener=\"%s\"} %.6f\n", li,
        (double)atomic_load(&n->duration_us) / 1e6);
    put(o, "srv_http_request_duration_seconds_count{listener=\"%s\"} %llu\n", li,
        (unsigned long long)cum);
}

/* One counter (or gauge) per listener: field is read by get. */
static void per_listener(out_t *o, const srv__netstat_t *sums, const char *name, const char *type,
                         const char *help, uint64_t (*get)(const srv__netstat_t *))
{
    family(o, name, type, help);
    char tmp[16];
    for (int i = 0; i < srv__server.cfg.nlisten; i++)
        put(o, "%s{listener=\"%s\"} %llu\n", name, listener_name(i, tmp, sizeof(tmp)),
            (unsigned long long)get(&sums[i]));
}

#define GETTER(f)                                                                                  \
    static uint64_t get_##f(const srv__netstat_t *n)                                               \
    {                                                                                              \
        return atomic_load(&n->f);                                                                 \
    }
GETTER(accepted)
GETTER(refused)
GETTER(bytes_in)
GETTER(bytes_out)
GETTER(ws_in)
GETTER(ws_out)
static uint64_t get_ws_open(const srv__netstat_t *n)
{
    int64_t v = atomic_load(&n->open[SRV_NETSTAT_WS]);
    return v > 0 ? (uint64_t)v : 0;
}

static void listeners(out_t *o)
{
    const srv__config_t *cfg = &srv__server.cfg;
    srv__netstat_t sums[SRV_CONFIG_MAX_LISTEN];
    for (int i = 0; i < cfg->nlisten; i++)
        srv__stats_net_sum(i, &sums[i]);
    char tmp[16];
    family(o, "srv_http_requests_total", "counter",
           "HTTP requests answered, by listener and status class.");
    for (int i = 0; i < cfg->nlisten; i++)
        if (cfg->listen[i].type == SRV_LISTEN_HTTP)
            for (int k = 0; k < 5; k++)
                put(o, "srv_http_requests_total{listener=\"%s\",code=\"%dxx\"} %llu\n",
                    listener_name(i, tmp, sizeof(tmp)), k + 1,
                    (unsigned long long)atomic_load(&sums[i].requests[k]));
    family(o, "srv_http_request_duration_seconds", "histogram",
           "Time from a request's dispatch to the last byte of its response queued.");
    for (int i = 0; i < cfg->nlisten; i++)
        if (cfg->listen[i].type == SRV_LISTEN_HTTP)
            put_histogram(o, listener_name(i, tmp, sizeof(tmp)), &sums[i]);
    family(o, "srv_connections", "gauge", "Connections open now, by listener and protocol.");
    static const char *const protos[] = {"http", "h2", "websocket", "tcp"};
    for (int i = 0; i < cfg->nlisten; i++) {
        if (cfg->listen[i].type == SRV_LISTEN_UDP)
            continue;
        bool http = cfg->listen[i].type == SRV_LISTEN_HTTP;
        for (int k = 0; k < SRV_NETSTAT_NPROTO; k++) {
            if (http == (k == SRV_NETSTAT_TCP))
                continue;
            int64_t v = atomic_load(&sums[i].open[k]);
            put(o, "srv_connections{listener=\"%s\",protocol=\"%s\"} %lld\n",
                listener_name(i, tmp, sizeof(tmp)), protos[k], (long long)(v > 0 ? v : 0));
        }
    }
    static const struct {
        const char *name, *type, *help;
        uint64_t (*get)(const srv__netstat_t *);
    } simple[] = {
        {"srv_connections_accepted_total", "counter", "Connections accepted.", get_accepted},
        {"srv_connections_refused_total", "counter",
         "Connections refused because max_conn was reached.", get_refused},
        {"srv_received_bytes_total", "counter",
         "Bytes received from clients (on the socket, before TLS).", get_bytes_in},
        {"srv_sent_bytes_total", "counter", "Bytes sent to clients (on the socket, after TLS).",
         get_bytes_out},
        {"srv_websocket_sessions", "gauge", "WebSocket sessions open now.", get_ws_open},
        {"srv_websocket_messages_received_total", "counter",
         "WebSocket messages received from clients.", get_ws_in},
        {"srv_websocket_messages_sent_total", "counter",
         "WebSocket messages sent to clients (pushes and broadcasts).", get_ws_out},
    };
    for (size_t k = 0; k < sizeof(simple) / sizeof(simple[0]); k++)
        per_listener(o, sums, simple[k].name, simple[k].type, simple[k].help, simple[k].get);
}

static const char *const state_names[] = {"down", "starting", "ready", "stopping", "backoff"};
static const char *const kind_names[] = {"worker", "task", "timer", "process"};

/* A counter family by process kind: the first nkinds kinds, those present. */
static void per_kind(out_t *o, const char *name, const char *help, const uint64_t *v,
                     const bool *present, int nkinds)
{
    family(o, name, "counter", help);
    for (int k = 0; k < nkinds; k++)
        if (present[k])
            put(o, "%s{kind=\"%s\"} %llu\n", name, kind_names[k], (unsigned long long)v[k]);
}

static void workers(out_t *o)
{
    const srv__stats_t *st = srv__server.stats;
    int count[4][5] = {{0}};
    uint64_t respawns[4] = {0}, recycles[4] = {0}, harakiris[4] = {0}, rss[4] = {0};
    bool present[4] = {false};
    for (int i = 0; i < st->nworkers; i++) {
        int k = (int)srv__slot_kind(i), s = atomic_load(&st->workers[i].state);
        if (srv__slot_shown(i)) {
            present[k] = true;
            count[k][s >= 0 && s < 5 ? s : 0]++;
        }
        respawns[k] += atomic_load(&st->workers[i].respawns);
        recycles[k] += atomic_load(&st->workers[i].recycles);
        harakiris[k] += atomic_load(&st->workers[i].harakiris);
        rss[k] += atomic_load(&st->workers[i].rss_recycles);
    }
    family(o, "srv_workers", "gauge", "Processes by kind and state.");
    for (int k = 0; k < 4; k++)
        for (int s = 0; present[k] && s < 5; s++)
            put(o, "srv_workers{kind=\"%s\",state=\"%s\"} %d\n", kind_names[k], state_names[s],
                count[k][s]);
    per_kind(o, "srv_worker_respawns_total",
             "Processes that died unexpectedly and were replaced.", respawns, present, 4);
    per_kind(o, "srv_worker_recycles_total",
             "Workers replaced on reaching max_request (reloads: srv_reloads_total).", recycles,
             present, 4);
    per_kind(o, "srv_worker_timeouts_total",
             "Processes killed for running a request or task past request_timeout / task_timeout.",
             harakiris, present, 2);
    per_kind(o, "srv_worker_rss_recycles_total",
             "Workers replaced gracefully for going over max_worker_rss.", rss, present, 1);
    family(o, "srv_timers", "gauge", "App timers pending, by process.");
    for (int i = 0; i < st->nworkers; i++) {
        if (!srv__slot_shown(i))
            continue;
        put(o, "srv_timers{kind=\"%s\",id=\"%d\"} %lld\n", kind_names[srv__slot_kind(i)],
            srv__slot_local_id(i), (long long)atomic_load(&st->workers[i].timers));
    }
}

static void tasks(out_t *o)
{
    srv__tasks_counts_t t;
    srv__tasks_counts(&t);
    family(o, "srv_task_queue_depth", "gauge", "Tasks waiting for a task worker.");
    put(o, "srv_task_queue_depth %llu\n", (unsigned long long)t.queued);
    family(o, "srv_tasks_delivered_total", "counter", "Tasks accepted by srv_task_deliver.");
    put(o, "srv_tasks_delivered_total %llu\n", (unsigned long long)t.delivered);
    family(o, "srv_tasks_finished_total", "counter", "Tasks whose on_task returned.");
    put(o, "srv_tasks_finished_total %llu\n", (unsigned long long)t.done);
    family(o, "srv_tasks_failed_total", "counter", "Tasks that failed (after their tries).");
    put(o, "srv_tasks_failed_total %llu\n", (unsigned long long)t.failed);
    family(o, "srv_tasks_retried_total", "counter", "Task runs retried.");
    put(o, "srv_tasks_retried_total %llu\n", (unsigned long long)t.retried);
}

/* The number after "key": inside [p, end), or 0. */
static long long json_num(const char *p, const char *end, const char *key)
{
    char k[48];
    snprintf(k, sizeof(k), "\"%s\":", key);
    const char *at = memmem(p, (size_t)(end - p), k, strlen(k));
    return at ? strtoll(at + strlen(k), NULL, 10) : 0;
}

/* Each object of a JSON list of {"name":"...",...} (names are [A-Za-z0-9_-]): calls fn with
 * the name and the object's extent. */
static void json_each(const char *js,
                      void (*fn)(out_t *, int, const char *, const char *, const char *), out_t *o,
                      int which)
{
    for (const char *p = js; (p = strstr(p, "{\"name\":\"")) != NULL;) {
        p += 9;
        const char *q = strchr(p, '"');
        const char *end = q ? strchr(q, '}') : NULL;
        if (q == NULL || end == NULL || q - p >= 64)
            return;
        char name[64];
        memcpy(name, p, (size_t)(q - p));
        name[q - p] = '\0';
        fn(o, which, name, q, end);
        p = end;
    }
}

/* The cron job's line of family `which` (runs, overruns, lateness). */
static void cron_job(out_t *o, int which, const char *name, const char *p, const char *end)
{
    if (which == 0)
        put(o, "srv_cron_runs_total{job=\"%s\"} %lld\n", name, json_num(p, end, "runs"));
    else if (which == 1)
        put(o, "srv_cron_overruns_total{job=\"%s\"} %lld\n", name, json_num(p, end, "skips"));
    else
        put(o, "srv_cron_max_lateness_seconds{job=\"%s\"} %.6f\n", name,
            (double)json_num(p, end, "max_lateness_us") / 1e6);
}

/* The table's line of family `which` (rows, capacity). */
static void table_row(out_t *o, int which, const char *name, const char *p, const char *end)
{
    if (which == 0)
        put(o, "srv_table_rows{table=\"%s\"} %lld\n", name, json_num(p, end, "rows"));
    else
        put(o, "srv_table_capacity{table=\"%s\"} %lld\n", name, json_num(p, end, "capacity"));
}

static void cron_and_tables(out_t *o)
{
    static char js[65536];
    if (srv__cron_info_json(js, sizeof(js)) < 0)
        js[0] = '\0';
    static const char *const cron[][3] = {
        {"srv_cron_runs_total", "counter", "Cron job runs."},
        {"srv_cron_overruns_total", "counter",
         "Beats skipped because the previous run was still going."},
        {"srv_cron_max_lateness_seconds", "gauge", "The latest a run started after its beat."}};
    for (int k = 0; k < 3; k++) {
        family(o, cron[k][0], cron[k][1], cron[k][2]);
        json_each(js, cron_job, o, k);
    }
    if (srv__tables_info_json(js, sizeof(js)) < 0)
        js[0] = '\0';
    family(o, "srv_table_rows", "gauge", "Rows in use, by table.");
    json_each(js, table_row, o, 0);
    family(o, "srv_table_capacity", "gauge", "Rows a table holds at most.");
    json_each(js, table_row, o, 1);
}

/* Resident memory (bytes) and CPU time (seconds) of pid, from /proc. */
static bool proc_usage(int pid, double *rss, double *cpu)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* after the command name, which may hold spaces */
    unsigned long long utime = 0, stime = 0;
    long long rss_pages = 0;
    if (p == NULL || sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                            "%*d %*d %*u %*u %lld",
                            &utime, &stime, &rss_pages) != 3)
        return false;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    *cpu = (double)(utime + stime) / (double)(tick > 0 ? tick : 100);
    *rss = (double)rss_pages * (double)(page > 0 ? page : 4096);
    return true;
}

static void processes(out_t *o)
{
    const srv__stats_t *st = srv__server.stats;
    typedef struct {
        const char *kind;
        int id, pid;
        double rss, cpu;
    } proc_t;
    int n = 0, cap = st->nworkers + 2;
    proc_t *ps = calloc((size_t)cap, sizeof(*ps));
    if (ps == NULL)
        return;
    int pids[2] = {atomic_load(&st->master_pid), atomic_load(&st->manager_pid)};
    for (int i = 0; i < cap; i++) {
        proc_t p = {.kind = i == 0 ? "master" : "manager"};
        if (i < 2) {
            p.pid = pids[i];
        } else {
            int slot = i - 2;
            p.kind = kind_names[srv__slot_kind(slot)];
            p.id = srv__slot_local_id(slot);
            p.pid = atomic_load(&st->workers[slot].pid);
        }
        if (p.pid > 0 && proc_usage(p.pid, &p.rss, &p.cpu))
            ps[n++] = p;
    }
    family(o, "srv_process_resident_memory_bytes", "gauge", "Resident memory of each process.");
    for (int i = 0; i < n; i++)
        put(o, "srv_process_resident_memory_bytes{kind=\"%s\",id=\"%d\",pid=\"%d\"} %.0f\n",
            ps[i].kind, ps[i].id, ps[i].pid, ps[i].rss);
    family(o, "srv_process_cpu_seconds_total", "counter",
           "CPU time (user and system) of each "
           "process.");
    for (int i = 0; i < n; i++)
        put(o, "srv_process_cpu_seconds_total{kind=\"%s\",id=\"%d\",pid=\"%d\"} %.2f\n", ps[i].kind,
            ps[i].id, ps[i].pid, ps[i].cpu);
    free(ps);
}

static void server(out_t *o)
{
    const srv__stats_t *st = srv__server.stats;
    family(o, "srv_build_info", "gauge", "Version, event backend and process mode.");
    put(o, "srv_build_info{version=\"%s\",backend=\"%s\",mode=\"%s\"} 1\n", SRV_VERSION,
        srv__stats_backend(), srv__server.cfg.mode == SRV_MODE_BASE ? "base" : "process");
    family(o, "srv_start_time_seconds", "gauge", "When the server started (unix time).");
    put(o, "srv_start_time_seconds %.3f\n", (double)st->start_ms / 1000.0);
    srv__maint_state_t m;
    srv__maint_get(&m);
    family(o, "srv_maintenance", "gauge", "1 while maintenance mode is on (srv maintenance).");
    put(o, "srv_maintenance %d\n", m.on ? 1 : 0);
    family(o, "srv_maintenance_responses_total", "counter",
           "Requests answered 503 by maintenance mode.");
    put(o, "srv_maintenance_responses_total %llu\n", (unsigned long long)m.answered);
    if (srv__server.cfg.cluster) {
        uint64_t n[3] = {0, 0, 0};
        for (int i = 0; i < st->nworkers; i++) {
            n[0] += atomic_load(&st->workers[i].cluster_published);
            n[1] += atomic_load(&st->workers[i].cluster_received);
            n[2] += atomic_load(&st->workers[i].cluster_unsent);
        }
        family(o, "srv_cluster_broadcasts_total", "counter",
               "Broadcasts and session actions to the other instances: published, received from them, and not sent "
               "(Redis down or over its bound).");
        static const char *const dir[] = {"published", "received", "unsent"};
        for (int k = 0; k < 3; k++)
            put(o, "srv_cluster_broadcasts_total{direction=\"%s\"} %llu\n", dir[k],
                (unsigned long long)n[k]);
    }
    family(o, "srv_reloads_total", "counter", "Rolling reloads done.");
    put(o, "srv_reloads_total %llu\n", (unsigned long long)atomic_load(&st->reloads));
    family(o, "srv_access_log_lines_total", "counter", "Access log lines written.");
    put(o, "srv_access_log_lines_total %llu\n", (unsigned long long)atomic_load(&st->alog_lines));
    family(o, "srv_access_log_errors_total", "counter",
           "Access log writes and opens that failed (a full disk, a read-only folder).");
    put(o, "srv_access_log_errors_total %llu\n", (unsigned long long)atomic_load(&st->alog_errors));
    family(o, "srv_access_log_dropped_total", "counter", "Access log lines lost.");
    put(o, "srv_access_log_dropped_total %llu\n",
        (unsigned long long)atomic_load(&st->alog_dropped));
}

int srv__metrics_text(char *buf, size_t cap)
{
    out_t o = {buf, cap, 0, false};
    server(&o);
    listeners(&o);
    workers(&o);
    tasks(&o);
    cron_and_tables(&o);
    processes(&o);
    return o.full ? -1 : (int)o.len;
}
