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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/process/ctl.h"
#include "core/ipc/ipc.h"
#include "core/net/listen.h"
#include "core/base/log.h"
#include "core/base/signals.h"
#include "core/process/manager.h"
#include "core/process/reactor.h"
#include "core/process/region.h"
#include "core/server/server.h"
#include "core/shm/shm.h"

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
    int fds[SRV_MAX_REACTORS];
    int rc = srv__ctl_recv(G.mgr_fd, &m, fds, SRV_MAX_REACTORS);
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
        int n = (int)m.nfds;
        for (int r = 0; r < n; r++) {
            if (r < srv__server.nreactors)
                srv__reactor_post_channel(r, m.slot, m.generation, fds[r]);
            else
                close(fds[r]);
        }
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

/* Stop on TERM, INT and HUP; reload on USR1 (workers) and USR2 (task workers); reopen the log
 * on RTMIN (logrotate). SIGCHLD only wakes the loop, which then looks at the manager. */
static void on_signal(int sig, void *arg)
{
    (void)arg;
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

/* ---- srv__master_run, step by step ---- */

/* Fresh state; srv__server filled from cfg (children inherit it); the log set up. */
static void master_init(const srv__config_t *cfg)
{
    srv__server_t *S = &srv__server;
    memset(&G, 0, sizeof(G));
    G.pid_fd = G.ctl_fd = G.reserve_fd = G.mgr_fd = G.sig_fd = G.ready_fd = -1;
    for (int i = 0; i < MAX_CLIENTS; i++)
        G.clients[i].fd = -1;
    S->cfg = *cfg;
    srv__server_layout(S);
    S->nreactors = cfg->mode == SRV_MODE_PROCESS ? cfg->reactor_num : 0;
    S->nlisten = 0;
    snprintf(S->ctl_path, sizeof(S->ctl_path), "%s.sock", cfg->pid_file);
    srv__log_set_role("master", -1);
    srv__log_set_level(cfg->log_level);
    const char *dbg = getenv("SRV_DEBUG");
    if (dbg)
        srv__log_set_debug(dbg);
}

/* Before anything is created: refuse when a live server holds the pid file (before
 * daemonizing, so the caller hears it), open the log file, daemonize. Returns SRV_EXIT_OK to go
 * on, else the exit code. */
static int master_prepare(const srv__config_t *cfg, bool daemon)
{
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
    return SRV_EXIT_OK;
}

/* Lock the pid file into G.pid_fd. Returns SRV_EXIT_OK, else the exit code (error printed). */
static int take_pidfile(const srv__config_t *cfg)
{
    const char *why = "";
    G.pid_fd = srv__pidfile_lock(cfg->pid_file, &why);
    if (G.pid_fd >= 0)
        return SRV_EXIT_OK;
    if (G.pid_fd == -EEXIST) {
        start_err("srv: already running (pid file %s is locked)\n", cfg->pid_file);
        return SRV_EXIT_RUNNING;
    }
    if (G.pid_fd == -ELOOP || G.pid_fd == -EINVAL || G.pid_fd == -EPERM) {
        /* Issue 11: a pid file we will not write (a link planted for root to overwrite its
         * target, or a place anyone can swap it): the configuration must change. */
        start_err("srv: refusing pid file %s: %s; choose another pid_file\n", cfg->pid_file, why);
        return SRV_EXIT_CONFIG;
    }
    start_err("srv: cannot write pid file %s: %s: %s\n", cfg->pid_file, why,
              srv_strerror(G.pid_fd));
    return SRV_EXIT_FAILURE;
}

static const char *listen_kind(const srv__listen_config_t *l)
{
    return l->type == SRV_LISTEN_HTTP ? "http" : l->type == SRV_LISTEN_TCP ? "tcp" : "udp";
}

/* Bind every listener into srv__server.listen_fd (nlisten counts those open, for the caller to
 * close). Returns SRV_EXIT_OK, or SRV_EXIT_LISTEN (error printed). */
static int open_listeners(const srv__config_t *cfg)
{
    srv__server_t *S = &srv__server;
    for (int i = 0; i < cfg->nlisten; i++) {
        const char *what = "";
        char desc[300];
        int fd = srv__listen_open(&cfg->listen[i], &what);
        srv__listen_describe(&cfg->listen[i], desc, sizeof(desc));
        if (fd < 0) {
            srv__log(SRV_LOG_ERROR, "master", fd, "cannot listen on %s (%s)", desc, what);
            start_err("srv: cannot listen on %s: %s: %s\n", desc, what, srv_strerror(fd));
            return SRV_EXIT_LISTEN;
        }
        S->listen_fd[S->nlisten++] = fd;
        srv__log(SRV_LOG_NOTICE, "master", 0, "listening on %s (%s)", desc,
                 listen_kind(&cfg->listen[i]));
    }
    return SRV_EXIT_OK;
}

/* Block the signals we handle (in every thread and child to come) and open their signalfd,
 * then fork the manager with its end of a control channel: before any reactor thread starts,
 * since a threaded process must never fork. Returns 0 or -errno (logged). */
static int start_manager(void)
{
    int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGRTMIN, SIGCHLD, SIGHUP};
    G.sig_fd = srv__signals_open(sigs, (int)(sizeof(sigs) / sizeof(sigs[0])));
    signal(SIGPIPE, SIG_IGN);
    if (G.sig_fd < 0) {
        srv__log(SRV_LOG_ERROR, "master", G.sig_fd, "signalfd");
        return G.sig_fd;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        srv__log(SRV_LOG_ERROR, "master", errno, "socketpair");
        return -errno;
    }
    G.mgr_pid = fork();
    if (G.mgr_pid < 0) {
        int err = -errno;
        srv__log(SRV_LOG_ERROR, "master", err, "fork manager");
        close(sv[0]);
        close(sv[1]);
        return err;
    }
    if (G.mgr_pid == 0) {
        close(sv[0]);
        close(G.pid_fd);
        close(G.ctl_fd);
        close(G.sig_fd);
        if (G.ready_fd >= 0)
            close(G.ready_fd);
        srv__manager_main(sv[1]);
    }
    close(sv[1]);
    G.mgr_fd = sv[0];
    fcntl(G.mgr_fd, F_SETFL, fcntl(G.mgr_fd, F_GETFL) | O_NONBLOCK);
    prctl(PR_SET_NAME, "srv: master");
    reserve_refill(); /* after the fork: only the master needs it */
    return 0;
}

/* Process mode: the reactor threads (a failure stops the server through the loop). */
static void start_reactors(const srv__config_t *cfg, bool daemon)
{
    if (srv__server.nreactors > 0) {
        int rc = srv__reactors_start();
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
}

/* Where each descriptor sits in the loop's poll set. */
enum { PFD_SIG, PFD_CTL, PFD_MGR, PFD_CLIENTS, PFD_COUNT = PFD_CLIENTS + MAX_CLIENTS };

/* Fill the poll set; *timeout is when the next deadline falls (control connections, the
 * control socket's back-off, stop supervision). Returns the number of entries. */
static int poll_set(struct pollfd *pfd, int *timeout)
{
    int64_t now = srv__mono_ms();
    int64_t wake = clients_expire(now);
    if (G.ctl_backoff_until != 0 && now >= G.ctl_backoff_until)
        G.ctl_backoff_until = 0;
    if (G.ctl_backoff_until != 0 && G.ctl_backoff_until < wake)
        wake = G.ctl_backoff_until;
    if (G.stopping && now + 20 < wake)
        wake = now + 20;
    pfd[PFD_SIG] = (struct pollfd){.fd = G.sig_fd, .events = POLLIN};
    /* A negative fd is skipped by poll: backing off (out of descriptors). */
    pfd[PFD_CTL] = (struct pollfd){.fd = G.ctl_backoff_until ? -1 : G.ctl_fd, .events = POLLIN};
    pfd[PFD_MGR] = (struct pollfd){.fd = G.mgr_fd, .events = POLLIN};
    for (int i = 0; i < MAX_CLIENTS; i++) {
        const client_t *c = &G.clients[i];
        short events = c->out ? POLLOUT : c->hup_only ? 0 : POLLIN;
        pfd[PFD_CLIENTS + i] = (struct pollfd){.fd = c->fd, .events = events};
    }
    *timeout = wake == INT64_MAX ? -1 : wake <= now ? 0 : (int)(wake - now);
    return PFD_COUNT;
}

/* Act on what poll reported: signals, the manager, control connections, new ones. */
static void poll_dispatch(const struct pollfd *pfd)
{
    if (pfd[PFD_SIG].revents)
        srv__signals_drain(G.sig_fd, on_signal, NULL);
    if (pfd[PFD_MGR].revents)
        handle_mgr();
    /* Commands already in before new connections: accepting may drop the oldest connection
     * still without one. */
    for (int i = 0; i < MAX_CLIENTS; i++) {
        client_t *c = &G.clients[i];
        const struct pollfd *p = &pfd[PFD_CLIENTS + i];
        if (!p->revents || c->fd < 0 || c->fd != p->fd)
            continue;
        if (c->out != NULL)
            client_flush(c);
        else if (c->hup_only)
            client_close(c); /* POLLHUP or POLLERR: nobody waits for the outcome */
        else
            client_read(c);
    }
    if (pfd[PFD_CTL].revents)
        accept_clients();
}

/* Watch the manager. Running: its death stops the server. Stopping: tell it to stop once
 * in-flight requests are done (or max_wait_time passed), and wait for it, killing it well
 * after its own deadline. Returns true once it is gone: the loop is over. */
static bool supervise_manager(const srv__config_t *cfg)
{
    int status;
    if (!G.stopping) {
        if (G.mgr_pid > 0 && waitpid(G.mgr_pid, &status, WNOHANG) == G.mgr_pid) {
            G.mgr_pid = 0;
            srv__log(SRV_LOG_ERROR, "master", 0, "the manager process died; stopping");
            G.exit_code = SRV_EXIT_FAILURE;
            master_begin_stop("manager died");
        }
        return false;
    }
    bool drained = srv__server.nreactors == 0 || srv__reactors_inflight() == 0;
    if (!G.mgr_told_stop && (drained || srv__mono_ms() >= G.stop_deadline)) {
        G.mgr_told_stop = true;
        send_mgr(SRV_CTL_STOP, 0);
    }
    if (G.mgr_pid > 0 && waitpid(G.mgr_pid, &status, WNOHANG) == G.mgr_pid)
        G.mgr_pid = 0;
    if (G.mgr_pid == 0)
        return true;
    if (srv__mono_ms() > G.stop_deadline + (int64_t)cfg->max_wait_time * 1000 + 5000) {
        srv__log(SRV_LOG_WARN, "master", 0, "manager did not stop; killing the tree");
        kill(G.mgr_pid, SIGKILL);
        waitpid(G.mgr_pid, &status, 0);
        G.mgr_pid = 0;
        return true;
    }
    return false;
}

/* The master's loop: until the manager is gone after a stop (or poll itself fails). */
static void master_loop(const srv__config_t *cfg)
{
    for (;;) {
        struct pollfd pfd[PFD_COUNT];
        int timeout;
        int n = poll_set(pfd, &timeout);
        int prc = poll(pfd, (nfds_t)n, timeout);
        if (prc < 0 && errno != EINTR)
            break;
        if (prc > 0)
            poll_dispatch(pfd);
        if (supervise_manager(cfg))
            break;
    }
}

/* After the loop: the reactors stop, the verdict goes to a waiting parent, the loop's own
 * descriptors close. Returns the exit code. */
static int master_finish(void)
{
    if (srv__server.nreactors > 0)
        srv__reactors_stop();
    int code = G.exit_code;
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
    G.mgr_fd = -1;
    return code;
}

int srv__master_run(const srv__config_t *cfg, bool daemon)
{
    srv__server_t *S = &srv__server;
    master_init(cfg);
    int code = master_prepare(cfg, daemon);
    if (code != SRV_EXIT_OK)
        return code;
    code = take_pidfile(cfg);
    if (code != SRV_EXIT_OK)
        goto out;
    /* Everything the children share exists before the first fork: region, listeners. */
    code = SRV_EXIT_FAILURE;
    int rc = srv__region_setup(cfg);
    if (rc < 0) {
        start_err("srv: cannot create the shared region: %s\n", srv_strerror(rc));
        goto out_listen;
    }
    code = open_listeners(cfg);
    if (code != SRV_EXIT_OK)
        goto out_listen;
    code = SRV_EXIT_FAILURE;
    G.ctl_fd = ctl_listen(S->ctl_path);
    if (G.ctl_fd < 0) {
        start_err("srv: cannot create control socket %s: %s\n", S->ctl_path,
                  srv_strerror(G.ctl_fd));
        goto out_listen;
    }
    if (start_manager() < 0)
        goto out_ctl;
    start_reactors(cfg, daemon);
    master_loop(cfg);
    code = master_finish();
out_ctl:
    if (G.sig_fd >= 0)
        close(G.sig_fd);
    close(G.ctl_fd);
    unlink(S->ctl_path);
out_listen:
    for (int i = 0; i < S->nlisten; i++) {
        close(S->listen_fd[i]);
        if (cfg->listen[i].path[0])
            unlink(cfg->listen[i].path);
    }
    srv__shm_destroy();
    srv__pidfile_unlock(cfg->pid_file, G.pid_fd);
out:
    tell_parent(code);
    return code;
}
