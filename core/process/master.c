/* Master: owns the pid file, the listeners and the shared region (all created before any fork
 * or thread), forks the manager, runs the reactor threads (process mode), turns signals and
 * control-socket commands into actions, and stops the tree gracefully. */
#include "core/process/master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/net/conn.h"
#include "core/net/conninfo.h"
#include "core/process/ctl.h"
#include "core/ipc/ipc.h"
#include "core/net/listen.h"
#include "core/base/log.h"
#include "core/process/manager.h"
#include "core/ipc/mbox.h"
#include "core/server/msg.h"
#include "core/process/reactor.h"
#include "core/server/server.h"
#include "core/shm/shm.h"
#include "core/shm/table.h"

/* Control connections served at once. More are accepted by dropping the oldest one still
 * waiting for its command (issue 11: a few idle ones must not lock `srv info` out). */
#define MAX_CLIENTS 16
/* A control connection must deliver its command, and then take each part of the reply, within
 * this: our own CLI sends at once and reads at once, so only a stuck or hostile peer waits. */
#define CTL_IDLE_MS 2000
/* Out of descriptors with the reserve spent: how long the control socket leaves the poll set,
 * instead of waking us at once for a connection we cannot accept. */
#define CTL_BACKOFF_MS 100
/* Out of descriptors, a silent control connection older than this gives way to a new one. */
#define CTL_MIN_AGE_MS 100

typedef struct client {
    int fd;
    bool wants_reload; /* waiting for the manager's RELOAD_DONE */
    bool hup_only;     /* the peer is done writing: only watch for it hanging up */
    char in[SRV_CTL_CMD_MAX];
    size_t in_len;
    char *out; /* the reply being sent (owned), then the connection closes */
    size_t out_len, out_off;
    int64_t since;    /* monotonic ms: accepted */
    int64_t deadline; /* monotonic ms: the command, or the reply's next part, is due */
} client_t;

static struct {
    int pid_fd;
    int ctl_fd;
    /* Issue 11: a descriptor held in reserve so that, with every descriptor taken (client
     * connections up to RLIMIT_NOFILE), the control socket can still accept: close it, accept,
     * and turn the connection's fd back into the reserve when it ends. -1 while spent. */
    int reserve_fd;
    int64_t ctl_backoff_until; /* monotonic ms; 0: the control socket is polled */
    int64_t last_fd_warn;
    int mgr_fd;
    pid_t mgr_pid;
    int sig_fd;
    int ready_fd; /* daemonize: pipe to the waiting parent, -1 once told */
    client_t clients[MAX_CLIENTS];
    bool started; /* every worker reported ready once */
    int ready_count;
    bool stopping;
    int exit_code;
    int64_t stop_deadline; /* monotonic ms: stop waiting for in-flight work */
    bool mgr_told_stop;
    bool reload_running;
} G;

/* A start-up failure: on stderr, and (daemonized) kept for the waiting parent to print. */
static char g_start_err[600];

__attribute__((format(printf, 1, 2))) static void start_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_start_err, sizeof(g_start_err), fmt, ap);
    va_end(ap);
    fputs(g_start_err, stderr);
}

/* Daemonized: the verdict (exit code, then the error text) for the parent waiting in srv start. */
static void tell_parent(int code)
{
    if (G.ready_fd < 0)
        return;
    char buf[1 + sizeof(g_start_err)];
    buf[0] = (char)code;
    size_t n = strlen(g_start_err);
    memcpy(buf + 1, g_start_err, n);
    ssize_t rc = write(G.ready_fd, buf, 1 + n);
    (void)rc;
    close(G.ready_fd);
    G.ready_fd = -1;
}

static int ctl_listen(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path))
        return -ENAMETOOLONG;
    strcpy(sun.sun_path, path);
    unlink(path); /* we hold the pid file lock: any socket file here is stale */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    mode_t old = umask(0177); /* 0600: only the owner may stop or reload the server */
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc != 0 || listen(fd, 64) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

/* The reserve is spent: take a descriptor back for it, if one is free. */
static void reserve_refill(void)
{
    if (G.reserve_fd < 0 && G.ctl_fd >= 0)
        G.reserve_fd = fcntl(G.ctl_fd, F_DUPFD_CLOEXEC, 0);
}

/* Release a descriptor we no longer need. With the reserve spent it becomes the reserve in
 * one step (dup3 closes the old file and reuses the number), so a reactor thread accepting
 * in the same process cannot take the number in between. */
static void fd_release(int fd)
{
    if (fd < 0)
        return;
    if (G.reserve_fd < 0 && G.ctl_fd >= 0 && dup3(G.ctl_fd, fd, O_CLOEXEC) == fd) {
        G.reserve_fd = fd;
        G.ctl_backoff_until = 0; /* we can accept again */
        return;
    }
    close(fd);
}

static void client_close(client_t *c)
{
    fd_release(c->fd);
    c->fd = -1;
    c->wants_reload = false;
    c->hup_only = false;
    c->in_len = 0;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
}

/* Send what the socket takes now; the rest when poll says it has room. Closes the connection
 * once the reply is out, or when the peer is gone. */
static void client_flush(client_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->deadline = srv__mono_ms() + CTL_IDLE_MS;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        break;
    }
    client_close(c);
}

/* Reply with text (owned: freed with the connection) and close once it is sent. Never blocks:
 * a peer that does not read cannot hold the master up (issue 11). */
static void client_send(client_t *c, char *text, size_t len)
{
    c->wants_reload = false;
    c->out = text;
    c->out_len = len;
    c->out_off = 0;
    c->deadline = srv__mono_ms() + CTL_IDLE_MS;
    client_flush(c);
}

static void client_reply(client_t *c, const char *text)
{
    char *copy = strdup(text);
    if (copy == NULL) {
        client_close(c);
        return;
    }
    client_send(c, copy, strlen(copy));
}

static void master_begin_stop(const char *why)
{
    if (G.stopping)
        return;
    G.stopping = true;
    srv__log(SRV_LOG_NOTICE, "master", 0, "stopping (%s)", why);
    G.stop_deadline = srv__mono_ms() + (int64_t)srv__server.cfg.max_wait_time * 1000;
    if (srv__server.nreactors > 0)
        srv__reactors_stop_accepting();
}

static void send_mgr(uint32_t type, int code)
{
    srv__ctl_msg_t m = {.type = type, .code = code};
    if (G.mgr_fd >= 0)
        srv__ctl_send(G.mgr_fd, &m, NULL, 0);
}

static void handle_command(client_t *c, const char *cmd)
{
    if (strcmp(cmd, "info") == 0 || strcmp(cmd, "info json") == 0) {
        char *buf = malloc(1 << 20);
        if (buf == NULL) {
            client_reply(c, "error out of memory\n");
            return;
        }
        if (strcmp(cmd, "info") == 0)
            srv__info_text(buf, 1 << 20);
        else
            srv__info_json(buf, 1 << 20);
        size_t len = strlen(buf);
        char *fit = realloc(buf, len + 1); /* up to MAX_CLIENTS replies may be in flight */
        client_send(c, fit ? fit : buf, len);
    } else if (strcmp(cmd, "reload") == 0 || strcmp(cmd, "reload tasks") == 0) {
        bool tasks = strcmp(cmd, "reload tasks") == 0;
        if (G.stopping) {
            client_reply(c, "error 1 the server is stopping\n");
            return;
        }
        if (tasks && srv__server.cfg.task_worker_num == 0) {
            client_reply(c, "ok no task workers to reload\n");
            return;
        }
        if (G.reload_running) {
            client_reply(c, "error 1 a reload is already running\n");
            return;
        }
        G.reload_running = true;
        c->wants_reload = true;
        send_mgr(SRV_CTL_RELOAD, tasks ? 1 : 0);
    } else if (strcmp(cmd, "stop") == 0) {
        client_reply(c, "ok\n");
        master_begin_stop("srv stop");
    } else {
        client_reply(c, "error 2 unknown command\n");
    }
}

static void client_read(client_t *c)
{
    if (c->out != NULL)
        return;
    if (c->wants_reload) {
        /* The command is in; anything more is ignored. The peer may have shut down its side
         * only and still wait for the outcome: from then on we watch for a hang-up alone. */
        char sink[256];
        ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n == 0)
            c->hup_only = true;
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            client_close(c);
        return;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, MSG_DONTWAIT);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            client_close(c);
        return;
    }
    if (n == 0) {
        /* The peer finished writing without a newline: answer what it sent, if anything. */
        if (c->in_len > 0)
            client_reply(c, "error 2 bad command (no newline)\n");
        else
            client_close(c);
        return;
    }
    c->in_len += (size_t)n;
    /* Issue 11: a command may come in several pieces; it ends at its newline. */
    int used = srv__ctl_parse(c->in, c->in_len, sizeof(c->in));
    if (used < 0)
        client_reply(c, "error 2 command too long\n");
    else if (used > 0)
        handle_command(c, c->in);
}

static void reload_done(int code, const char *text)
{
    G.reload_running = false;
    char reply[600];
    if (code == 0)
        snprintf(reply, sizeof(reply), "ok\n");
    else
        snprintf(reply, sizeof(reply), "error %d %s\n", code, text);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (G.clients[i].fd >= 0 && G.clients[i].wants_reload)
            client_reply(&G.clients[i], reply);
}

static void handle_mgr(void)
{
    srv__ctl_msg_t m;
    int fds[2 * SRV_MAX_REACTORS];
    int rc = srv__ctl_recv(G.mgr_fd, &m, fds, 2 * SRV_MAX_REACTORS);
    if (rc == -EAGAIN)
        return;
    if (rc < 0) {
        close(G.mgr_fd);
        G.mgr_fd = -1;
        if (!G.stopping) {
            srv__log(SRV_LOG_ERROR, "master", 0, "the manager process went away; stopping");
            G.exit_code = SRV_EXIT_FAILURE;
            master_begin_stop("manager lost");
        }
        return;
    }
    switch (m.type) {
    case SRV_CTL_WORKER_READY: {
        /* Each reactor's channel, then each channel's descriptor socket. */
        int n = (int)m.nfds / 2;
        for (int r = 0; r < n; r++) {
            if (r < srv__server.nreactors) {
                srv__reactor_post_channel(r, m.slot, m.generation, fds[r], fds[n + r]);
            } else {
                close(fds[r]);
                close(fds[n + r]);
            }
        }
        if (m.nfds % 2)
            close(fds[m.nfds - 1]);
        if (!G.started) {
            G.ready_count++;
            int total = srv__server.nslots;
            if (G.ready_count >= total) {
                G.started = true;
                srv__log(SRV_LOG_NOTICE, "master", 0, "server ready");
                tell_parent(SRV_EXIT_OK);
            }
        }
        break;
    }
    case SRV_CTL_START_FAILED:
        if (!G.started && !G.stopping) {
            srv__log(SRV_LOG_ERROR, "master", 0, "the app failed to load: %s", m.text);
            start_err("srv: %s\n", m.text);
            G.exit_code = SRV_EXIT_APP;
            master_begin_stop("app failed to load");
        }
        for (uint32_t i = 0; i < m.nfds; i++)
            close(fds[i]);
        break;
    case SRV_CTL_RELOAD_DONE:
        reload_done(m.code, m.text);
        break;
    default:
        for (uint32_t i = 0; i < m.nfds; i++)
            close(fds[i]);
        break;
    }
}

/* The connection accepted longest ago, before `before`, of those still waiting for their
 * command: the one to drop for a newcomer (it has had its chance). */
static client_t *oldest_waiting(int64_t before)
{
    client_t *oldest = NULL;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        client_t *c = &G.clients[i];
        if (c->fd >= 0 && !c->wants_reload && c->out == NULL && c->since < before &&
            (oldest == NULL || c->since < oldest->since))
            oldest = c;
    }
    return oldest;
}

static void client_drop(client_t *c, const char *why)
{
    static const char busy[] = SRV_CTL_BUSY " (dropped for a newer control connection)\n";
    srv__log(SRV_LOG_INFO, "master", 0,
            "control socket: %s; dropping the oldest connection still without a command", why);
    ssize_t rc = send(c->fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)rc;
    client_close(c);
}

/* A slot for a new control connection: a free one, else the oldest one still waiting for its
 * command, dropped; NULL when every one is busy with a reply or a reload. */
static client_t *client_slot(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (G.clients[i].fd < 0)
            return &G.clients[i];
    client_t *c = oldest_waiting(INT64_MAX);
    if (c != NULL)
        client_drop(c, "every connection slot taken");
    return c;
}

static void accept_clients(void)
{
    /* Bounded per wake-up: a flood of connections cannot keep the loop from the rest. */
    for (int k = 0; k < MAX_CLIENTS; k++) {
        int fd = accept4(G.ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int err = fd < 0 ? errno : 0;
        if (fd < 0 && (err == EMFILE || err == ENFILE)) {
            /* Issue 11: every descriptor is taken (typically by client connections). With the
             * reserve in use, the oldest control connection still silent after
             * CTL_MIN_AGE_MS gives up its descriptor, which becomes the reserve (a younger
             * one may just not have been read yet). */
            if (G.reserve_fd < 0) {
                client_t *old = oldest_waiting(srv__mono_ms() - CTL_MIN_AGE_MS);
                if (old != NULL)
                    client_drop(old, "out of descriptors");
            }
            /* Spend the reserve on this caller so `srv info` still answers. */
            if (G.reserve_fd >= 0) {
                close(G.reserve_fd);
                G.reserve_fd = -1;
                fd = accept4(G.ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                err = fd < 0 ? errno : 0;
            }
        }
        if (fd < 0) {
            if (err == EINTR || err == ECONNABORTED)
                continue;
            reserve_refill();
            if (err == EAGAIN)
                return;
            /* Still nothing to accept with (out of descriptors, typically): the control socket
             * would stay readable and poll would return at once (issue 11: 100 % CPU). Leave
             * it alone a while; a connection of ours ending brings it back sooner
             * (fd_release). */
            int64_t now = srv__mono_ms();
            G.ctl_backoff_until = now + CTL_BACKOFF_MS;
            if (now - G.last_fd_warn > 10000) {
                G.last_fd_warn = now;
                bool fds = err == EMFILE || err == ENFILE;
                srv__log(SRV_LOG_WARN, "master", err, "control socket: cannot accept%s",
                        fds ? "; out of descriptors" : "");
            }
            return;
        }
        client_t *c = client_slot();
        if (c == NULL) {
            static const char busy[] = SRV_CTL_BUSY " (too many control connections)\n";
            ssize_t rc = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)rc;
            fd_release(fd);
            continue;
        }
        c->fd = fd;
        c->wants_reload = false;
        c->in_len = 0;
        c->since = srv__mono_ms();
        c->deadline = c->since + CTL_IDLE_MS;
    }
}

/* Close control connections past their deadline; returns the earliest deadline left. */
static int64_t clients_expire(int64_t now)
{
    int64_t next = INT64_MAX;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        client_t *c = &G.clients[i];
        if (c->fd < 0 || c->wants_reload)
            continue;
        if (now >= c->deadline) {
            srv__log(SRV_LOG_INFO, "master", 0, "control connection %s; closed",
                    c->out ? "does not read its reply" : "sent no command in time");
            client_close(c);
            continue;
        }
        if (c->deadline < next)
            next = c->deadline;
    }
    return next;
}

static int daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) {
        /* The caller's process: wait for the daemon's verdict. */
        close(p[1]);
        char buf[1 + sizeof(g_start_err)];
        size_t got = 0;
        for (;;) {
            ssize_t n = read(p[0], buf + got, sizeof(buf) - 1 - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got == 0) {
            fputs("srv: the daemon died during start-up; see the log file\n", stderr);
            _exit(SRV_EXIT_FAILURE);
        }
        buf[got] = '\0';
        if (got > 1)
            fputs(buf + 1, stderr);
        _exit((unsigned char)buf[0]);
    }
    close(p[0]);
    setsid();
    pid = fork();
    if (pid < 0)
        _exit(SRV_EXIT_FAILURE);
    if (pid > 0)
        _exit(0); /* the session leader goes; the grandchild can never regain a terminal */
    G.ready_fd = p[1];
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        close(null);
    }
    return 0;
}

static void redirect_stdio_to_log(void)
{
    int fd = srv__log_fd();
    if (fd > 2) {
        dup2(fd, 1);
        dup2(fd, 2);
    } else {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
            close(null);
        }
    }
}

static int setup_stats(const srv__config_t *cfg)
{
    int nw = srv__server.nslots;
    size_t stats = sizeof(srv__stats_t) + (size_t)nw * sizeof(srv__worker_stat_t);
    int engines = cfg->mode == SRV_MODE_PROCESS ? cfg->reactor_num : cfg->worker_num;
    uint32_t slots = (uint32_t)cfg->max_conn;
    if (slots > (1u << SRV_SESSION_SLOT_BITS))
        slots = 1u << SRV_SESSION_SLOT_BITS;
    size_t conninfo = sizeof(srv__conninfo_t) * (size_t)engines * slots + 64;
    /* Mailboxes: 1 MiB per process slot, the task queue 8 MiB; task run records. */
    int nbox = 2 * srv__server.nslots + 1;
    size_t boxes =
        (size_t)2 * srv__server.nslots * ((1u << 20) + 64) + (8u << 20) + 64 + (size_t)nbox * 128;
    size_t tasks = (size_t)cfg->task_worker_num * 2 * ((256u << 10) + 64) + 4096;
    size_t bytes = stats + conninfo + boxes + tasks + srv__tables_region_size(cfg) + (2u << 20);
    int rc = srv__shm_create(bytes);
    if (rc < 0)
        return rc;
    srv__stats_t *st = srv__shm_alloc(stats, 64);
    if (st == NULL)
        return -ENOMEM;
    memset(st, 0, stats);
    st->nworkers = nw;
    st->start_ms = srv__now_ms();
    atomic_store(&st->master_pid, getpid());
    srv__server.stats = st;
    rc = srv__conninfo_create(engines, slots);
    if (rc < 0)
        return rc;
    size_t *caps = calloc((size_t)nbox, sizeof(size_t));
    uint32_t *maxm = calloc((size_t)nbox, sizeof(uint32_t));
    if (caps == NULL || maxm == NULL) {
        free(caps);
        free(maxm);
        return -ENOMEM;
    }
    for (int i = 0; i < nbox; i++)
        caps[i] = 1u << 20;
    caps[srv__server.taskq] = 8u << 20;
    maxm[srv__server.taskq] = (uint32_t)cfg->task_max_queue;
    rc = srv__mbox_create(nbox, caps, maxm);
    free(caps);
    free(maxm);
    if (rc < 0)
        return rc;
    rc = srv__tasks_create(srv__server.nslots);
    if (rc < 0)
        return rc;
    rc = srv__cron_info_create();
    if (rc < 0)
        return rc;
    return srv__tables_create(cfg);
}

int srv__master_run(const srv__config_t *cfg, bool daemon)
{
    srv__server_t *S = &srv__server;
    memset(&G, 0, sizeof(G));
    G.pid_fd = G.ctl_fd = G.reserve_fd = G.mgr_fd = G.sig_fd = G.ready_fd = -1;
    for (int i = 0; i < MAX_CLIENTS; i++)
        G.clients[i].fd = -1;
    S->cfg = *cfg;
    srv__server_layout(S);
    S->nreactors = cfg->mode == SRV_MODE_PROCESS ? cfg->reactor_num : 0;
    snprintf(S->ctl_path, sizeof(S->ctl_path), "%s.sock", cfg->pid_file);
    srv__log_set_role("master", -1);
    srv__log_set_level(cfg->log_level);
    const char *dbg = getenv("SRV_DEBUG");
    if (dbg)
        srv__log_set_debug(dbg);

    /* Refuse early (before daemonizing) when a live server holds the pid file. */
    if (srv__pidfile_locked(cfg->pid_file)) {
        start_err("srv: already running (pid file %s is locked)\n", cfg->pid_file);
        return SRV_EXIT_RUNNING;
    }
    if (cfg->log_file[0]) {
        int rc = srv__log_open(cfg->log_file);
        if (rc < 0) {
            start_err("srv: cannot open log file %s: %s\n", cfg->log_file, srv_strerror(rc));
            return SRV_EXIT_CONFIG;
        }
    }
    if (daemon) {
        int rc = daemonize();
        if (rc < 0) {
            start_err("srv: cannot daemonize: %s\n", srv_strerror(rc));
            return SRV_EXIT_FAILURE;
        }
        /* From here stdout/stderr are the log: no process of the tree may keep the caller's
         * terminal or pipes open (a caller reading them would wait forever). Start-up errors
         * still reach the caller through the ready pipe. */
        redirect_stdio_to_log();
    }
    int code = SRV_EXIT_FAILURE;
    const char *why = "";
    G.pid_fd = srv__pidfile_lock(cfg->pid_file, &why);
    if (G.pid_fd < 0) {
        if (G.pid_fd == -EEXIST) {
            start_err("srv: already running (pid file %s is locked)\n", cfg->pid_file);
            code = SRV_EXIT_RUNNING;
        } else if (G.pid_fd == -ELOOP || G.pid_fd == -EINVAL || G.pid_fd == -EPERM) {
            /* Issue 11: a pid file we will not write (a link planted for root to overwrite
             * its target, or a place anyone can swap it): the configuration must change. */
            start_err("srv: refusing pid file %s: %s; choose another pid_file\n", cfg->pid_file,
                      why);
            code = SRV_EXIT_CONFIG;
        } else
            start_err("srv: cannot write pid file %s: %s: %s\n", cfg->pid_file, why,
                      srv_strerror(G.pid_fd));
        goto out;
    }
    int rc = setup_stats(cfg);
    if (rc < 0) {
        start_err("srv: cannot create the shared region: %s\n", srv_strerror(rc));
        goto out_pid;
    }
    S->nlisten = 0;
    for (int i = 0; i < cfg->nlisten; i++) {
        const char *what = "";
        char desc[300];
        int fd = srv__listen_open(&cfg->listen[i], &what);
        if (fd < 0) {
            srv__log(SRV_LOG_ERROR, "master", fd, "cannot listen on %s (%s)",
                    srv__listen_describe(&cfg->listen[i], desc, sizeof(desc)), what);
            start_err("srv: cannot listen on %s: %s: %s\n",
                      srv__listen_describe(&cfg->listen[i], desc, sizeof(desc)), what,
                      srv_strerror(fd));
            code = SRV_EXIT_LISTEN;
            goto out_listen;
        }
        S->listen_fd[S->nlisten++] = fd;
        srv__log(SRV_LOG_NOTICE, "master", 0, "listening on %s (%s)",
                srv__listen_describe(&cfg->listen[i], desc, sizeof(desc)),
                cfg->listen[i].type == SRV_LISTEN_HTTP  ? "http"
                : cfg->listen[i].type == SRV_LISTEN_TCP ? "tcp"
                                                        : "udp");
    }
    G.ctl_fd = ctl_listen(S->ctl_path);
    if (G.ctl_fd < 0) {
        start_err("srv: cannot create control socket %s: %s\n", S->ctl_path,
                  srv_strerror(G.ctl_fd));
        goto out_listen;
    }

    /* Signals: blocked in every thread, read through a signalfd by the main loop. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGRTMIN);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        srv__log(SRV_LOG_ERROR, "master", errno, "socketpair");
        goto out_ctl;
    }
    /* Never fork a threaded process: the manager is forked before any reactor thread. */
    G.mgr_pid = fork();
    if (G.mgr_pid < 0) {
        srv__log(SRV_LOG_ERROR, "master", errno, "fork manager");
        close(sv[0]);
        close(sv[1]);
        goto out_ctl;
    }
    if (G.mgr_pid == 0) {
        close(sv[0]);
        close(G.pid_fd);
        close(G.ctl_fd);
        if (G.ready_fd >= 0)
            close(G.ready_fd);
        srv__manager_main(sv[1]);
    }
    close(sv[1]);
    G.mgr_fd = sv[0];
    fcntl(G.mgr_fd, F_SETFL, fcntl(G.mgr_fd, F_GETFL) | O_NONBLOCK);
    G.sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    prctl(PR_SET_NAME, "srv: master");
    reserve_refill(); /* after the fork: only the master needs it */

    if (S->nreactors > 0) {
        rc = srv__reactors_start();
        if (rc < 0) {
            srv__log(SRV_LOG_ERROR, "master", rc, "cannot start reactor threads");
            G.exit_code = SRV_EXIT_FAILURE;
            master_begin_stop("reactor start failed");
        }
    }
    srv__log(SRV_LOG_NOTICE, "master", 0,
            "srv %s started: mode %s, %d worker(s), %d task worker(s)%s", SRV_VERSION,
            cfg->mode == SRV_MODE_BASE ? "base" : "process", cfg->worker_num, cfg->task_worker_num,
            daemon ? ", daemonized" : "");

    for (;;) {
        int64_t now = srv__mono_ms();
        int64_t wake = clients_expire(now);
        if (G.ctl_backoff_until != 0 && now >= G.ctl_backoff_until)
            G.ctl_backoff_until = 0;
        if (G.ctl_backoff_until != 0 && G.ctl_backoff_until < wake)
            wake = G.ctl_backoff_until;
        if (G.stopping && now + 20 < wake)
            wake = now + 20;
        struct pollfd pfd[3 + MAX_CLIENTS];
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = G.sig_fd, .events = POLLIN};
        /* A negative fd is skipped by poll: backing off (out of descriptors). */
        pfd[n++] = (struct pollfd){.fd = G.ctl_backoff_until ? -1 : G.ctl_fd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = G.mgr_fd, .events = POLLIN};
        for (int i = 0; i < MAX_CLIENTS; i++)
            pfd[n++] = (struct pollfd){.fd = G.clients[i].fd,
                                       .events = G.clients[i].out        ? POLLOUT
                                                 : G.clients[i].hup_only ? 0
                                                                         : POLLIN};
        int timeout = wake == INT64_MAX ? -1 : wake <= now ? 0 : (int)(wake - now);
        int prc = poll(pfd, (nfds_t)n, timeout);
        if (prc < 0 && errno != EINTR)
            break;
        if (prc > 0) {
            if (pfd[0].revents) {
                struct signalfd_siginfo si;
                while (read(G.sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                    int sig = (int)si.ssi_signo;
                    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
                        master_begin_stop(strsignal(sig));
                    else if (sig == SIGUSR1 || sig == SIGUSR2) {
                        if (!G.reload_running && !G.stopping) {
                            G.reload_running = true;
                            send_mgr(SRV_CTL_RELOAD, sig == SIGUSR2);
                        }
                    } else if (sig == SIGRTMIN) {
                        srv__log_reopen();
                        send_mgr(SRV_CTL_REOPEN_LOG, 0);
                    }
                }
            }
            if (pfd[2].revents)
                handle_mgr();
            /* Commands already in before new connections: accepting may drop the oldest
             * connection still without one. */
            for (int i = 0; i < MAX_CLIENTS; i++) {
                client_t *c = &G.clients[i];
                if (!pfd[3 + i].revents || c->fd < 0 || c->fd != pfd[3 + i].fd)
                    continue;
                if (c->out != NULL)
                    client_flush(c);
                else if (c->hup_only)
                    client_close(c); /* POLLHUP or POLLERR: nobody waits for the outcome */
                else
                    client_read(c);
            }
            if (pfd[1].revents)
                accept_clients();
        }
        if (G.stopping) {
            /* Let in-flight requests finish (up to max_wait_time) before workers go. */
            bool drained = S->nreactors == 0 || srv__reactors_inflight() == 0;
            if (!G.mgr_told_stop && (drained || srv__mono_ms() >= G.stop_deadline)) {
                G.mgr_told_stop = true;
                send_mgr(SRV_CTL_STOP, 0);
            }
            int status;
            if (G.mgr_pid > 0 && waitpid(G.mgr_pid, &status, WNOHANG) == G.mgr_pid)
                G.mgr_pid = 0;
            if (G.mgr_pid == 0)
                break;
            /* A manager that does not stop gets killed well after its own deadline. */
            if (srv__mono_ms() > G.stop_deadline + (int64_t)cfg->max_wait_time * 1000 + 5000) {
                srv__log(SRV_LOG_WARN, "master", 0, "manager did not stop; killing the tree");
                kill(G.mgr_pid, SIGKILL);
                waitpid(G.mgr_pid, &status, 0);
                G.mgr_pid = 0;
                break;
            }
        } else if (G.mgr_pid > 0) {
            int status;
            if (waitpid(G.mgr_pid, &status, WNOHANG) == G.mgr_pid) {
                G.mgr_pid = 0;
                srv__log(SRV_LOG_ERROR, "master", 0, "the manager process died; stopping");
                G.exit_code = SRV_EXIT_FAILURE;
                master_begin_stop("manager died");
            }
        }
    }
    if (S->nreactors > 0)
        srv__reactors_stop();
    code = G.exit_code;
    if (!G.started && code == SRV_EXIT_OK)
        code = SRV_EXIT_FAILURE;
    tell_parent(code);
    srv__log(SRV_LOG_NOTICE, "master", 0, "stopped");
    for (int i = 0; i < MAX_CLIENTS; i++)
        client_close(&G.clients[i]);
    if (G.reserve_fd >= 0)
        close(G.reserve_fd);
    G.reserve_fd = -1;
    if (G.mgr_fd >= 0)
        close(G.mgr_fd);
    if (G.sig_fd >= 0)
        close(G.sig_fd);
out_ctl:
    close(G.ctl_fd);
    unlink(S->ctl_path);
out_listen:
    for (int i = 0; i < S->nlisten; i++) {
        close(S->listen_fd[i]);
        if (cfg->listen[i].path[0])
            unlink(cfg->listen[i].path);
    }
    srv__shm_destroy();
out_pid:
    srv__pidfile_unlock(cfg->pid_file, G.pid_fd);
out:
    tell_parent(code);
    return code;
}
