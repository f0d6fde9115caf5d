/* Control channel: the pid file (lock and lookup), the info report the master builds from
 * shared stats, command framing, and the client side of the control socket the srv command
 * uses. */
#include "core/process/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/net/maint.h"
#include "core/shm/atomic.h"
#include "tasks/task.h"
#include "timer/timer_process.h"
#include "core/process/reactor.h"
#include "core/server/server.h"
#include "core/worker/cluster.h"
#include "core/shm/table.h"

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

typedef struct out {
    char *buf;
    size_t cap, len;
} out_t;

__attribute__((format(printf, 2, 3))) static void put(out_t *o, const char *fmt, ...);

/* ,"key": then what fn writes (a subsystem's JSON), or empty when it writes nothing. */
static void put_part(out_t *o, const char *key, int (*fn)(char *, size_t), const char *empty)
{
    put(o, ",\"%s\":", key);
    if (o->len >= o->cap)
        return;
    int n = fn(o->buf + o->len, o->cap - o->len);
    if (n > 0)
        o->len += (size_t)n;
    else if (empty)
        put(o, "%s", empty);
}

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

static void h2_totals(uint64_t *conns, uint64_t *streams)
{
    const srv__stats_t *st = srv__server.stats;
    *conns = *streams = 0;
    for (int i = 0; i < SRV_MAX_REACTORS; i++) {
        *conns += atomic_load(&st->reactors[i].h2_connections);
        *streams += atomic_load(&st->reactors[i].h2_streams);
    }
}

static void totals(uint64_t *conns, uint64_t *accepted, uint64_t *requests, uint64_t *e503)
{
    const srv__stats_t *st = srv__server.stats;
    *conns = *accepted = *requests = *e503 = 0;
    for (int i = 0; i < SRV_MAX_REACTORS; i++) {
        *conns += atomic_load(&st->reactors[i].connections);
        *accepted += atomic_load(&st->reactors[i].accepted);
        *requests += atomic_load(&st->reactors[i].requests);
        *e503 += atomic_load(&st->reactors[i].errors_503);
    }
}

static const char *(*g_health)(void);

void srv__info_set_health(const char *(*fn)(void))
{
    g_health = fn;
}

/* s as the inside of a JSON string into out (cut short rather than overflow). */
static void json_escape(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = s; *p && n + 7 < cap; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\')
            n += (size_t)snprintf(out + n, cap - n, "\\%c", ch);
        else if (ch < 0x20)
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
        else
            out[n++] = (char)ch;
    }
    out[n] = '\0';
}

/* ,"config":{...}: the file the running configuration came from, its modification time and
 * digest then, and when it was applied (start or the last reload that changed it). */
static void put_config(out_t *o)
{
    const srv__server_t *S = &srv__server;
    char file[2 * SRV_CONFIG_PATH_MAX];
    json_escape(S->cfg.file, file, sizeof(file));
    put(o, ",\"config\":{\"file\":\"%s\",\"mtime_ms\":%lld,\"digest\":\"%s\",\"applied_ms\":%lld}",
        file, (long long)S->cfg_mtime_ms, S->cfg_digest, (long long)S->cfg_applied_ms);
}

/* The cluster's broadcast counters, summed over the workers. */
static void cluster_totals(uint64_t *pub, uint64_t *recv, uint64_t *unsent)
{
    const srv__stats_t *st = srv__server.stats;
    *pub = *recv = *unsent = 0;
    for (int i = 0; i < st->nworkers; i++) {
        *pub += atomic_load(&st->workers[i].cluster_published);
        *recv += atomic_load(&st->workers[i].cluster_received);
        *unsent += atomic_load(&st->workers[i].cluster_unsent);
    }
}

/* ,"cluster":{...} when cluster = true: this instance's id and its broadcast counters. */
static void put_cluster(out_t *o)
{
    const srv__config_t *cfg = &srv__server.cfg;
    if (!cfg->cluster)
        return;
    uint64_t pub, recv, unsent;
    cluster_totals(&pub, &recv, &unsent);
    char id[6 * sizeof(cfg->instance_id)];
    json_escape(cfg->instance_id, id, sizeof(id));
    put(o,
        ",\"cluster\":{\"instance_id\":\"%s\",\"number\":%d,\"published\":%llu,"
        "\"received\":%llu,\"unsent\":%llu}",
        id, srv__cluster_number(cfg), (unsigned long long)pub, (unsigned long long)recv,
        (unsigned long long)unsent);
}

/* ,"maintenance":{...}: whether it is on, since when, its Retry-After and message, and how many
 * requests it answered. */
static void put_maint(out_t *o)
{
    srv__maint_state_t m;
    srv__maint_get(&m);
    char msg[6 * SRV_MAINT_MSG_MAX + 8];
    json_escape(m.msg, msg, sizeof(msg));
    put(o,
        ",\"maintenance\":{\"on\":%s,\"since_ms\":%lld,\"retry_after\":%d,\"message\":\"%s\","
        "\"answered\":%llu}",
        m.on ? "true" : "false", (long long)m.since_ms, m.retry_after, m.on ? msg : "",
        (unsigned long long)m.answered);
}

size_t srv__info_maint(char *buf, size_t cap)
{
    out_t o = {buf, cap, 0};
    srv__maint_state_t m;
    srv__maint_get(&m);
    if (!m.on) {
        put(&o, "maintenance off (%llu requests answered 503 by it since start)\n",
            (unsigned long long)m.answered);
        return o.len;
    }
    char since[32] = "?", retry[32] = "no Retry-After";
    time_t t = (time_t)(m.since_ms / 1000);
    struct tm tm;
    if (localtime_r(&t, &tm))
        strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", &tm);
    if (m.retry_after >= 0)
        snprintf(retry, sizeof(retry), "Retry-After %d", m.retry_after);
    put(&o, "maintenance ON since %s, %s, %llu requests answered 503\nmessage: %s\n", since, retry,
        (unsigned long long)m.answered, m.msg);
    return o.len;
}

/* ,"listeners":[...]: each listener's counters (the same as /metrics). */
static void put_listeners(out_t *o)
{
    const srv__config_t *cfg = &srv__server.cfg;
    static const char *const types[] = {"http", "tcp", "udp"};
    put(o, ",\"listeners\":[");
    for (int i = 0; i < cfg->nlisten; i++) {
        const srv__listen_config_t *l = &cfg->listen[i];
        srv__netstat_t n;
        srv__stats_net_sum(i, &n);
        char name[16];
        snprintf(name, sizeof(name), "%d", i);
#define COUNT(f) (unsigned long long)atomic_load(&n.f)
#define OPEN(k) (long long)(atomic_load(&n.open[k]) > 0 ? atomic_load(&n.open[k]) : 0)
        put(o,
            "%s{\"name\":\"%s\",\"type\":\"%s\",\"port\":%d,\"requests\":{\"1xx\":%llu,"
            "\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu},\"connections\":{\"http\":%lld,"
            "\"h2\":%lld,\"websocket\":%lld,\"tcp\":%lld},\"accepted\":%llu,\"refused\":%llu,"
            "\"bytes_in\":%llu,\"bytes_out\":%llu,\"ws_messages_in\":%llu,"
            "\"ws_messages_out\":%llu}",
            i ? "," : "", l->name[0] ? l->name : name, types[l->type], l->port,
            COUNT(requests[0]), COUNT(requests[1]), COUNT(requests[2]), COUNT(requests[3]),
            COUNT(requests[4]), OPEN(SRV_NETSTAT_HTTP), OPEN(SRV_NETSTAT_H2), OPEN(SRV_NETSTAT_WS),
            OPEN(SRV_NETSTAT_TCP), COUNT(accepted), COUNT(refused), COUNT(bytes_in),
            COUNT(bytes_out), COUNT(ws_in), COUNT(ws_out));
#undef COUNT
#undef OPEN
    }
    put(o, "]");
}

void srv__info_json(char *buf, size_t cap)
{
    const srv__server_t *S = &srv__server;
    const srv__stats_t *st = S->stats;
    out_t o = {buf, cap, 0};
    uint64_t conns, accepted, requests, e503;
    totals(&conns, &accepted, &requests, &e503);
    uint64_t h2c, h2s;
    h2_totals(&h2c, &h2s);
    const char *backend = srv__stats_backend();
    put(&o,
        "{\"version\":\"%s\",\"pid\":%d,\"manager_pid\":%d,\"mode\":\"%s\",\"backend\":\"%s\","
        "\"health\":\"%s\",\"uptime\":%.3f,\"reactors\":%d,\"reloads\":%llu,\"connections\":%llu,"
        "\"accepted\":%llu,\"requests\":%llu,\"errors_503\":%llu,\"h2_connections\":%llu,"
        "\"h2_streams\":%llu,\"workers\":[",
        SRV_VERSION, atomic_load(&st->master_pid), atomic_load(&st->manager_pid),
        S->cfg.mode == SRV_MODE_BASE ? "base" : "process", backend,
        g_health ? g_health() : "ok", (double)(srv__now_ms() - st->start_ms) / 1000.0, S->nreactors,
        (unsigned long long)atomic_load(&st->reloads), (unsigned long long)conns,
        (unsigned long long)accepted, (unsigned long long)requests, (unsigned long long)e503,
        (unsigned long long)h2c, (unsigned long long)h2s);
    for (int i = 0, first = 1; i < st->nworkers; i++) {
        const srv__worker_stat_t *w = &st->workers[i];
        if (!srv__slot_shown(i))
            continue;
        put(&o,
            "%s{\"id\":%d,\"type\":\"%s\",\"pid\":%d,\"state\":\"%s\",\"requests\":%llu,"
            "\"total_requests\":%llu,\"respawns\":%llu,\"recycles\":%llu,\"generation\":%u,"
            "\"udp_dropped\":%llu,\"timers\":%lld,\"timeouts\":%llu,\"rss_recycles\":%llu}",
            first ? "" : ",", srv__slot_local_id(i), srv__slot_kind_name(i), atomic_load(&w->pid),
            state_name(atomic_load(&w->state)), (unsigned long long)atomic_load(&w->requests),
            (unsigned long long)atomic_load(&w->total_requests),
            (unsigned long long)atomic_load(&w->respawns),
            (unsigned long long)atomic_load(&w->recycles), atomic_load(&w->generation),
            (unsigned long long)atomic_load(&w->udp_dropped), (long long)atomic_load(&w->timers),
            (unsigned long long)atomic_load(&w->harakiris),
            (unsigned long long)atomic_load(&w->rss_recycles));
        first = 0;
    }
    put(&o, "]");
    put_config(&o);
    put_maint(&o);
    put_cluster(&o);
    put_listeners(&o);
    put_part(&o, "tasks", srv__tasks_info_json, NULL);
    put_part(&o, "cron", srv__cron_info_json, NULL);
    put_part(&o, "atomics", srv__atomics_info_json, "[]");
    put_part(&o, "tables", srv__tables_info_json, "[]");
    put(&o, "}\n");
}

void srv__info_text(char *buf, size_t cap)
{
    const srv__server_t *S = &srv__server;
    const srv__stats_t *st = S->stats;
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
    char mtime[32] = "?";
    time_t mt = (time_t)(S->cfg_mtime_ms / 1000);
    struct tm tm;
    if (S->cfg_mtime_ms > 0 && localtime_r(&mt, &tm))
        strftime(mtime, sizeof(mtime), "%Y-%m-%d %H:%M:%S", &tm);
    put(&o, "config %s (modified %s, digest %s)\n", S->cfg.file, mtime,
        S->cfg_digest[0] ? S->cfg_digest : "?");
    if (S->cfg.cluster) {
        uint64_t pub, recv, unsent;
        cluster_totals(&pub, &recv, &unsent);
        put(&o,
            "cluster instance %s (number %d): published %llu, received %llu, unsent %llu\n",
            S->cfg.instance_id, srv__cluster_number(&S->cfg), (unsigned long long)pub,
            (unsigned long long)recv, (unsigned long long)unsent);
    }
    srv__maint_state_t m;
    srv__maint_get(&m);
    if (m.on && o.len < o.cap)
        o.len += srv__info_maint(o.buf + o.len, o.cap - o.len);
    put(&o, "connections %llu open, %llu accepted; requests %llu; 503 answers %llu\n",
        (unsigned long long)conns, (unsigned long long)accepted, (unsigned long long)requests,
        (unsigned long long)e503);
    uint64_t h2c, h2s;
    h2_totals(&h2c, &h2s);
    if (h2c > 0 || h2s > 0)
        put(&o, "HTTP/2: %llu connections open; %llu streams\n", (unsigned long long)h2c,
            (unsigned long long)h2s);
    put(&o, "%-7s %-4s %-8s %-9s %12s %12s %9s %9s\n", "type", "id", "pid", "state", "requests",
        "total", "respawns", "recycles");
    for (int i = 0; i < st->nworkers; i++) {
        const srv__worker_stat_t *w = &st->workers[i];
        if (!srv__slot_shown(i))
            continue;
        put(&o, "%-7s %-4d %-8d %-9s %12llu %12llu %9llu %9llu\n", srv__slot_kind_name(i),
            srv__slot_local_id(i), atomic_load(&w->pid), state_name(atomic_load(&w->state)),
            (unsigned long long)atomic_load(&w->requests),
            (unsigned long long)atomic_load(&w->total_requests),
            (unsigned long long)atomic_load(&w->respawns),
            (unsigned long long)atomic_load(&w->recycles));
    }
    uint64_t dropped = 0;
    for (int i = 0; i < st->nworkers; i++)
        dropped += atomic_load(&st->workers[i].udp_dropped);
    if (dropped > 0)
        put(&o, "udp datagrams dropped (over package_max_length): %llu\n",
            (unsigned long long)dropped);
    char js[8192];
    if (srv__server.cfg.task_worker_num > 0 && srv__tasks_info_json(js, sizeof(js)) > 0)
        put(&o, "tasks %s\n", js);
    if (srv__server.cfg.ncron > 0 && srv__cron_info_json(js, sizeof(js)) > 0)
        put(&o, "cron %s\n", js);
    if (srv__tables_info_json(js, sizeof(js)) > 2)
        put(&o, "tables %s\n", js);
    if (srv__atomics_info_json(js, sizeof(js)) > 2)
        put(&o, "atomics %s\n", js);
}

/* The folder part of path ("." for a bare name) into dir. */
static int folder_of(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
    if (n >= cap)
        return -ENAMETOOLONG;
    if (n == 0) {
        strcpy(dir, ".");
        return 0;
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    return 0;
}

/* A new file beside path holding our pid, already locked: the lock must be taken before the
 * file becomes visible at path, or a second `srv start` could lock it first. */
static int pidfile_create(const char *path, char *tmp, size_t cap, const char **why)
{
    if ((size_t)snprintf(tmp, cap, "%s.XXXXXX", path) >= cap) {
        *why = "path too long";
        return -ENAMETOOLONG;
    }
    /* mkostemp creates with O_EXCL: never through a link someone placed under that name. */
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        *why = "cannot create a file in its folder";
        return -errno;
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    int rc = 0;
    if (fchmod(fd, 0644) != 0 || flock(fd, LOCK_EX | LOCK_NB) != 0)
        rc = -errno;
    else {
        ssize_t w = write(fd, buf, (size_t)n);
        rc = w == n ? 0 : w < 0 ? -errno : -EIO;
    }
    if (rc < 0) {
        *why = "cannot write the pid";
        unlink(tmp);
        close(fd);
        return rc;
    }
    return fd;
}

/* Put tmp at path where nothing is: never replacing a file a concurrent start put there. */
static int place_new(const char *tmp, const char *path)
{
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return -errno;
    /* A file system without RENAME_NOREPLACE: link(2) fails just as atomically on EEXIST. */
    int rc = link(tmp, path) == 0 ? 0 : -errno;
    unlink(tmp);
    return rc;
}

/* The folder of the pid file must be reachable, and not one where anyone can replace it.
 * Returns 0 or -errno with *why set. */
static int pidfile_folder_ok(const char *path, const char **why)
{
    char dir[PATH_MAX];
    int rc = folder_of(path, dir, sizeof(dir));
    if (rc < 0) {
        *why = "path too long";
        return rc;
    }
    struct stat ds;
    if (stat(dir, &ds) != 0) {
        *why = "cannot reach its folder";
        return -errno;
    }
    /* Issue 11: in a folder anyone may write without the sticky bit, anyone can replace the
     * pid file (and make stop/reload signal a process of their choosing). */
    if ((ds.st_mode & S_IWOTH) && !(ds.st_mode & S_ISVTX)) {
        *why = "its folder is writable by everyone and not sticky";
        return -EPERM;
    }
    return 0;
}

/* Open and lock the file already at path into *old (-1 when there is none). Issue 11: it is
 * only ever opened read-only and never through a symbolic link (O_NONBLOCK: a FIFO planted
 * there must not hang us); the lock tells whether a live server owns it, and keeps a
 * concurrent start out while we replace it. Returns 0; 1 when the file changed between open
 * and lock (look again); or -errno with *why set and nothing left open. */
static int pidfile_lock_old(const char *path, int *old, const char **why)
{
    *old = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (*old < 0) {
        if (errno == ELOOP) {
            *why = "it is a symbolic link";
            return -ELOOP;
        }
        if (errno != ENOENT) {
            *why = "cannot open it";
            return -errno;
        }
        return 0;
    }
    struct stat os, now;
    int rc = 0;
    if (fstat(*old, &os) != 0) {
        rc = -errno;
        *why = "cannot stat it";
    } else if (!S_ISREG(os.st_mode)) {
        rc = -EINVAL;
        *why = "it is not a regular file";
    } else if (flock(*old, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EEXIST : -errno;
        *why = rc == -EEXIST ? "locked by a running server" : "cannot lock it";
    } else if (lstat(path, &now) != 0 || now.st_dev != os.st_dev || now.st_ino != os.st_ino) {
        /* Between open and flock the previous owner may have exited (unlinking it) or a
         * concurrent start replaced it: the lock only counts on the file still there. */
        rc = 1;
    }
    if (rc != 0) {
        close(*old);
        *old = -1;
    }
    return rc;
}

int srv__pidfile_lock(const char *path, const char **why)
{
    static const char *none = "";
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    *why = none;
    int rc = pidfile_folder_ok(path, why);
    if (rc < 0)
        return rc;
    char tmp[PATH_MAX];
    for (int attempt = 0; attempt < 16; attempt++) {
        int old;
        rc = pidfile_lock_old(path, &old, why);
        if (rc < 0)
            return rc;
        if (rc > 0)
            continue;
        int fd = pidfile_create(path, tmp, sizeof(tmp), why);
        if (fd < 0) {
            if (old >= 0)
                close(old);
            return fd;
        }
        /* rename replaces whatever is at path (the stale file, or a link someone swapped in
         * since) without following it. */
        rc = old >= 0 ? (rename(tmp, path) == 0 ? 0 : -errno) : place_new(tmp, path);
        if (old >= 0)
            close(old);
        if (rc == 0)
            return fd;
        unlink(tmp);
        close(fd);
        if (rc != -EEXIST) {
            *why = "cannot rename the new file into place";
            return rc;
        }
    }
    *why = "it keeps changing under us";
    return -EAGAIN;
}

void srv__pidfile_unlock(const char *path, int fd)
{
    if (fd < 0)
        return;
    struct stat mine, now;
    if (fstat(fd, &mine) == 0 && lstat(path, &now) == 0 && mine.st_dev == now.st_dev &&
        mine.st_ino == now.st_ino)
        unlink(path);
    close(fd);
}

/* The pid file at path, open read-only, if a live server holds its lock; -1 otherwise. */
static int pidfile_open_locked(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        !(flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK)) {
        close(fd);
        return -1;
    }
    return fd;
}

bool srv__pidfile_locked(const char *path)
{
    int fd = pidfile_open_locked(path);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* The real and effective uid of pid (from /proc), or -1. */
static int proc_uids(pid_t pid, uid_t *real, uid_t *eff)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    int rc = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned r, e;
        if (sscanf(line, "Uid: %u %u", &r, &e) == 2) {
            *real = (uid_t)r;
            *eff = (uid_t)e;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

pid_t srv__pidfile_pid(const char *path)
{
    int fd = pidfile_open_locked(path);
    if (fd < 0)
        return 0;
    /* Read from the file whose lock we saw held: path may be replaced meanwhile. The master
     * writes the pid before the file appears at path, so it is never seen half written. */
    char buf[32];
    struct stat st;
    ssize_t n = fstat(fd, &st) == 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    if (end == buf || (*end != '\n' && *end != '\0') || pid <= 0 || pid > INT_MAX)
        return 0;
    /* A server writes its own pid file, so a file not owned by root names a process of its
     * owner. Anything else was planted (say in /tmp, holding the lock) to have stop or reload,
     * run by root, signal a process of someone else's choosing. */
    uid_t real, eff;
    if (st.st_uid != 0 &&
        (proc_uids((pid_t)pid, &real, &eff) != 0 || (real != st.st_uid && eff != st.st_uid)))
        return 0;
    return (pid_t)pid;
}

int srv__ctl_parse(char *buf, size_t len, size_t cap)
{
    if (len >= cap)
        return -EMSGSIZE;
    char *nl = memchr(buf, '\n', len);
    if (nl == NULL)
        return len + 1 >= cap ? -EMSGSIZE : 0;
    int used = (int)(nl - buf) + 1;
    *nl = '\0';
    if (nl > buf && nl[-1] == '\r')
        nl[-1] = '\0';
    return used;
}


/* One exchange. Returns the reply length, -EAGAIN when the server did not take the command
 * (retry), or another -errno. */
static int ctl_once(const struct sockaddr_un *sun, const char *line, size_t linelen, char *buf,
                    size_t cap, int64_t reply_deadline)
{
    buf[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = 0;
    /* Non-blocking: a unix socket whose backlog is full makes a blocking connect wait for as
     * long as the server does not accept (EAGAIN here instead, and we retry). */
    if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) != 0) {
        rc = errno == EINTR || errno == EWOULDBLOCK ? -EAGAIN : -errno;
        goto out;
    }
    size_t sent = 0;
    while (sent < linelen) {
        ssize_t n = send(fd, line + sent, linelen - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int left = (int)(reply_deadline - srv__mono_ms());
            if (left > 0 && poll(&pfd, 1, left) >= 0)
                continue;
            rc = -EAGAIN;
            goto out;
        }
        /* Dropped before it read the command (idle or busy): it did not run. */
        rc = -EAGAIN;
        goto out;
    }
    size_t len = 0;
    for (;;) {
        int left = (int)(reply_deadline - srv__mono_ms());
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int p = poll(&pfd, 1, left);
        if (p < 0 && errno == EINTR)
            continue;
        if (p < 0) {
            rc = -errno;
            break;
        }
        if (p == 0)
            continue;
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0 && len == 0)
            rc = -EAGAIN; /* reset before a word: dropped before the command was read */
        else if (r < 0)
            rc = -ECONNRESET;
        else if (r == 0)
            rc = len == 0 ? -EAGAIN : (int)len;
        else {
            len += (size_t)r;
            if (len < cap - 1)
                continue;
            rc = (int)len;
        }
        break;
    }
    buf[len] = '\0';
    /* Busy, however the connection ended after it (a close with our command unread resets). */
    if (len > 0 && strncmp(buf, SRV_CTL_BUSY, strlen(SRV_CTL_BUSY)) == 0)
        rc = -EAGAIN;
out:
    close(fd);
    return rc;
}

int srv__ctl_request(const char *path, const char *cmd, char *buf, size_t cap, int connect_ms,
                     int reply_ms)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (cap < 2)
        return -EINVAL;
    if (strlen(path) >= sizeof(sun.sun_path))
        return -ENAMETOOLONG;
    strcpy(sun.sun_path, path);
    char line[SRV_CTL_CMD_MAX];
    int linelen = snprintf(line, sizeof(line), "%s\n", cmd);
    if (linelen < 0 || (size_t)linelen >= sizeof(line))
        return -EMSGSIZE;
    int64_t give_up = srv__mono_ms() + connect_ms;
    int pause_ms = 10;
    for (;;) {
        int rc = ctl_once(&sun, line, (size_t)linelen, buf, cap, srv__mono_ms() + reply_ms);
        if (rc != -EAGAIN)
            return rc;
        int64_t left = give_up - srv__mono_ms();
        if (left <= 0)
            return -EBUSY;
        /* Busy: wait a little, longer each time, never past the deadline. */
        struct timespec ts = {0, (long)(pause_ms < left ? pause_ms : left) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        if (pause_ms < 200)
            pause_ms *= 2;
    }
}
