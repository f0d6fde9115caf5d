/* Master: owns the pid file, the listeners and the shared region (all created before any fork
 * or thread), forks the manager, runs the reactor threads (process mode), turns signals and
 * control-socket commands (served by ctl_serve.c) into actions, and stops the tree gracefully. */
#include "core/process/master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/base/alog.h"
#include "core/process/admin.h"
#include "core/process/ctl.h"
#include "core/process/ctl_serve.h"
#include "core/process/inotify.h"
#include "core/ipc/ipc.h"
#include "core/net/listen.h"
#include "core/net/tls_listen.h"
#include "core/net/tls_keys.h"
#include "core/base/log.h"
#include "core/base/signals.h"
#include "core/process/manager.h"
#include "core/process/notify.h"
#include "core/process/priv.h"
#include "core/process/reactor.h"
#include "core/process/region.h"
#include "core/server/server.h"
#include "core/worker/cluster.h"
#include "core/shm/shm.h"

static struct {
    int pid_fd;
    int mgr_fd;
    pid_t mgr_pid;
    int sig_fd;
    int ready_fd; /* daemonize: pipe to the waiting parent, -1 once told */
    bool started; /* every worker reported ready once */
    int ready_count;
    bool stopping;
    int exit_code;
    int64_t stop_deadline; /* monotonic ms: stop waiting for in-flight work */
    bool mgr_told_stop;
    bool reload_running;
    bool reload_cfg; /* the running reload brings g_next */
    /* What the reactors serve with (heap copies: the main thread's srv__server.cfg changes
     * under them at reload), and the one before, freed once they all moved on. */
    srv__config_t *live, *live_prev;
} G;

/* The configuration a reload validated, and what it could not apply. */
static srv__config_t g_next;
static char g_notes[2048];

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

static void master_begin_stop(const char *why)
{
    if (G.stopping)
        return;
    G.stopping = true;
    srv__notify_stopping();
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

/* `srv stop` and `srv reload [tasks]` from the control socket. */
static void ctl_stop(void)
{
    master_begin_stop("srv stop");
}

/* The TLS certificates are read again at each reload: the new ones serve new handshakes
 * (process mode: here, at once; base mode: in each new worker). Problems leave the old ones
 * serving and refuse the reload. Returns NULL, or the control socket's error reply. */
static const char *tls_reload(const srv__config_t *cfg)
{
    static char reply[640];
    if (!srv__tls_listen_any(cfg))
        return NULL;
    char err[512];
    if (srv__tls_listen_load(cfg, srv__tls_keys(), err, sizeof(err)) < 0) {
        srv__log(SRV_LOG_ERROR, "master", 0, "reload refused, certificates kept: %s", err);
        snprintf(reply, sizeof(reply), "error %d %s\n", SRV_EXIT_CONFIG, err);
        return reply;
    }
    srv__tls_listen_warn_expiry(cfg, SRV__TLS_WARN_DAYS);
    return NULL;
}

/* Settings the loader's merge does not know about: the log's destination kind, and the
 * capacities reserved at start. Kept at the running value and noted. */
static void keep_layout(const srv__config_t *run, srv__config_t *next)
{
    size_t used = strlen(g_notes);
    if ((run->log_file[0] == '\0') != (next->log_file[0] == '\0')) {
        snprintf(next->log_file, sizeof(next->log_file), "%s", run->log_file);
        snprintf(g_notes + used, sizeof(g_notes) - used,
                 "needs restart: server.log_file (between stderr and a file)\n");
        used = strlen(g_notes);
    }
    const char *key;
    while ((key = srv__server_fits(&srv__server, next)) != NULL) {
        const srv__server_t *S = &srv__server;
        int cap = strcmp(key, "worker_num") == 0 ? S->wcap
                  : strcmp(key, "task_worker_num") == 0 ? S->tcap : S->pcap;
        snprintf(g_notes + used, sizeof(g_notes) - used,
                 "needs restart: server.%s (over the %d processes room was made for at start)\n",
                 key, cap);
        used = strlen(g_notes);
        if (strcmp(key, "worker_num") == 0)
            next->worker_num = run->worker_num;
        else if (strcmp(key, "task_worker_num") == 0)
            next->task_worker_num = run->task_worker_num;
        else {
            next->nprocess = run->nprocess;
            memcpy(next->process, run->process, sizeof(run->process));
        }
    }
}

/* Read the configuration file again and validate it here, in the running server: a file that
 * does not load, or certificates that do not, leave everything as it is. Then hand it to the
 * manager, which replaces every process with one of the new configuration. Returns NULL, or
 * the control socket's error reply (also logged). */
static const char *begin_config_reload(void)
{
    static char reply[700];
    srv__config_error_t err;
    const srv__config_t *run = &srv__server.cfg;
    if (srv__config_load(run->file, &g_next, &err) < 0) {
        char msg[600];
        srv__config_error_format(&err, msg, sizeof(msg));
        srv__log(SRV_LOG_ERROR, "master", 0, "reload refused, configuration kept: %s", msg);
        snprintf(reply, sizeof(reply), "error %d %s\n", SRV_EXIT_CONFIG, msg);
        return reply;
    }
    srv__config_reload_merge(run, &g_next, g_notes, sizeof(g_notes));
    keep_layout(run, &g_next);
    const char *refused = tls_reload(&g_next);
    if (refused)
        return refused;
    for (char *line = g_notes, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        if (end == NULL)
            break;
        srv__log(SRV_LOG_WARN, "master", 0, "reload: %.*s", (int)(end - line), line);
    }
    *srv__server.next_cfg = g_next;
    G.reload_cfg = true;
    G.reload_running = true;
    send_mgr(SRV_CTL_RELOAD, 2);
    return NULL;
}

static const char *ctl_reload(bool tasks)
{
    if (G.stopping)
        return "error 1 the server is stopping\n";
    if (tasks && srv__server.cfg.task_worker_num == 0)
        return "ok no task workers to reload\n";
    if (G.reload_running)
        return "error 1 a reload is already running\n";
    srv__notify_reload_begin(); /* READY=1 follows when it is over, refused or not */
    if (!tasks)
        return srv__notify_reload_refused(begin_config_reload());
    G.reload_running = true;
    send_mgr(SRV_CTL_RELOAD, 1);
    return NULL;
}

/* The reactors serve with a copy of cfg from their next wake-up; the copy before the last
 * goes once they all took the last. */
static void reactors_follow(const srv__config_t *cfg)
{
    if (srv__server.nreactors == 0)
        return;
    srv__config_t *copy = malloc(sizeof(*copy));
    if (copy == NULL) {
        srv__log(SRV_LOG_ERROR, "master", ENOMEM, "reactors keep their settings");
        return;
    }
    *copy = *cfg;
    if (G.live_prev && srv__reactors_cfg_taken(G.live)) {
        free(G.live_prev);
        G.live_prev = NULL;
    }
    if (G.live_prev == NULL) /* else (a reactor still busy with the one before): kept */
        G.live_prev = G.live;
    G.live = copy;
    srv__reactors_set_cfg(copy);
}

/* The manager reported the reload that brought g_next done: on success the master and the
 * reactors follow it, and the reactors let go of the workers it removed. */
static void config_reload_done(bool ok)
{
    srv__server_t *S = &srv__server;
    if (!ok) {
        tls_reload(&S->cfg); /* the certificates of the configuration kept */
        return;
    }
    bool log_moved = strcmp(S->cfg.log_file, g_next.log_file) != 0;
    bool alog_moved = strcmp(S->cfg.access_log, g_next.access_log) != 0;
    int old_workers = S->cfg.worker_num;
    S->cfg = g_next;
    srv__log_set_level(S->cfg.log_level);
    if (log_moved && srv__log_switch(S->cfg.log_file) < 0)
        srv__log(SRV_LOG_ERROR, "master", errno, "cannot open log file %s", S->cfg.log_file);
    if (S->nreactors > 0 && alog_moved) {
        if (srv__alog_on() && S->cfg.access_log[0])
            srv__alog_switch(S->cfg.access_log);
        else if (!srv__alog_on())
            srv__server_alog_open();
    }
    reactors_follow(&S->cfg);
    srv__inotify_open(&S->cfg); /* the app or the paths may have moved */
    for (int w = S->cfg.worker_num; w < old_workers && S->nreactors > 0; w++)
        for (int r = 0; r < S->nreactors; r++)
            srv__reactor_post_channel(r, w, 0, -1, -1);
    srv__server_config_stamp(S);
}

/* `srv reopen` and SIGRTMIN: this process's logs, then every other process's (through the
 * manager). */
static void reopen_logs(void)
{
    int rc = srv__log_reopen(); /* after a privilege drop, as the user: it may be refused */
    if (rc < 0)
        srv__log(SRV_LOG_ERROR, "master", rc, "cannot reopen log file %s; writing the open one",
                 srv__server.cfg.log_file);
    srv__alog_reopen();
    send_mgr(SRV_CTL_REOPEN_LOG, 0);
}

static const srv__ctl_serve_ops_t ctl_ops = {
    .stop = ctl_stop, .reload = ctl_reload, .reopen = reopen_logs};

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
            int total = srv__server_active_slots();
            if (G.ready_count >= total) {
                G.started = true;
                srv__log(SRV_LOG_NOTICE, "master", 0, "server ready");
                srv__notify_ready();
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
        G.reload_running = false;
        if (G.reload_cfg) {
            G.reload_cfg = false;
            config_reload_done(m.code == 0);
        }
        srv__notify_reload_end(); /* before the answer: systemd sees READY=1 first */
        srv__ctl_serve_reload_done(m.code, m.code == 0 ? g_notes : m.text);
        g_notes[0] = '\0';
        break;
    default:
        for (uint32_t i = 0; i < m.nfds; i++)
            close(fds[i]);
        break;
    }
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
        srv__log_stdio(true);
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
        if (G.reload_running || G.stopping)
            srv__log(SRV_LOG_WARN, "master", 0, "%s ignored: %s", strsignal(sig),
                     G.stopping ? "stopping" : "a reload is already running");
        else
            ctl_reload(sig == SIGUSR2); /* the outcome is logged */
    } else if (sig == SIGRTMIN) {
        reopen_logs();
    }
}

/* The admin endpoint's /health: 503 until every worker was ready once, and once stopping. */
static const char *health(void)
{
    return G.stopping ? "stopping" : G.started ? "ok" : "starting";
}

static const srv__admin_ops_t admin_ops = {.health = health};

/* ---- srv__master_run, step by step ---- */

/* Fresh state; srv__server filled from cfg (children inherit it); the log set up. */
static void master_init(const srv__config_t *cfg)
{
    srv__server_t *S = &srv__server;
    memset(&G, 0, sizeof(G));
    G.pid_fd = G.mgr_fd = G.sig_fd = G.ready_fd = -1;
    S->cfg = *cfg;
    srv__server_layout(S);
    srv__server_config_stamp(S);
    S->nreactors = cfg->mode == SRV_MODE_PROCESS ? cfg->reactor_num : 0;
    S->nlisten = 0;
    snprintf(S->ctl_path, sizeof(S->ctl_path), "%s.sock", cfg->pid_file);
    srv__log_set_role("master", -1);
    srv__log_set_level(cfg->log_level);
    srv__info_set_health(health);
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
        srv__ctl_serve_drop();
        srv__admin_drop();
        close(G.sig_fd);
        if (G.ready_fd >= 0)
            close(G.ready_fd);
        srv__manager_main(sv[1]);
    }
    close(sv[1]);
    G.mgr_fd = sv[0];
    fcntl(G.mgr_fd, F_SETFL, fcntl(G.mgr_fd, F_GETFL) | O_NONBLOCK);
    prctl(PR_SET_NAME, "srv: master");
    srv__ctl_serve_reserve(); /* after the fork: only the master needs it */
    return 0;
}

/* The TLS contexts (the reactor threads serve with them; base-mode workers build their own at
 * start but inherit these until then), and the certificate warnings. */
static int tls_load(const srv__config_t *cfg)
{
    if (!srv__tls_listen_any(cfg))
        return SRV_EXIT_OK;
    char err[512];
    if (srv__tls_listen_load(cfg, srv__tls_keys(), err, sizeof(err)) < 0) {
        start_err("srv: %s\n", err);
        return SRV_EXIT_CONFIG;
    }
    srv__tls_listen_warn_expiry(cfg, SRV__TLS_WARN_DAYS);
    return SRV_EXIT_OK;
}

/* Process mode: the reactor threads (a failure stops the server through the loop). */
static void start_reactors(const srv__config_t *cfg, bool daemon)
{
    bool dropped = srv__priv_drop_master(cfg, G.pid_fd, srv__server.ctl_path) == 0;
    if (srv__server.nreactors > 0 && dropped) {
        srv__server_alog_open(); /* before the threads that write it (serving goes on without) */
        G.live = malloc(sizeof(*G.live));
        int rc = G.live ? 0 : -ENOMEM;
        if (G.live)
            *G.live = *cfg;
        if (rc == 0)
            rc = srv__reactors_start(G.live);
        if (rc >= 0)
            srv__stats_set_backend(srv__reactors_backend());
        if (rc < 0) {
            srv__log(SRV_LOG_ERROR, "master", rc, "cannot start reactor threads");
            G.exit_code = SRV_EXIT_FAILURE;
            master_begin_stop("reactor start failed");
        }
    }
    if (!dropped) {
        G.exit_code = SRV_EXIT_FAILURE;
        master_begin_stop("privilege drop failed");
    }
    srv__log(SRV_LOG_NOTICE, "master", 0,
             "srv %s started: mode %s, %d worker(s), %d task worker(s)%s", SRV_VERSION,
             cfg->mode == SRV_MODE_BASE ? "base" : "process", cfg->worker_num, cfg->task_worker_num,
             daemon ? ", daemonized" : "");
}

/* Where each descriptor sits in the loop's poll set. */
enum {
    PFD_SIG,
    PFD_MGR,
    PFD_CTL,
    PFD_ADMIN = PFD_CTL + SRV_CTL_SERVE_NPOLL,
    PFD_INOTIFY = PFD_ADMIN + SRV_ADMIN_NPOLL,
    PFD_COUNT
};

/* Fill the poll set; *timeout is when the next deadline falls (the control socket's, stop
 * supervision, the next ticket key). Returns the number of entries. */
static int poll_set(struct pollfd *pfd, int *timeout)
{
    int64_t now = srv__mono_ms();
    int64_t wake = G.stopping ? now + 20 : INT64_MAX;
    if (srv__tls_keys_next_ms() < wake)
        wake = srv__tls_keys_next_ms();
    pfd[PFD_SIG] = (struct pollfd){.fd = G.sig_fd, .events = POLLIN};
    pfd[PFD_MGR] = (struct pollfd){.fd = G.mgr_fd, .events = POLLIN};
    srv__ctl_serve_poll(&pfd[PFD_CTL], now, &wake);
    srv__admin_poll(&pfd[PFD_ADMIN], now, &wake);
    srv__inotify_poll(&pfd[PFD_INOTIFY], &wake);
    srv__notify_next(&wake);
    *timeout = wake == INT64_MAX ? -1 : wake <= now ? 0 : (int)(wake - now);
    return PFD_COUNT;
}

/* Act on what poll reported: signals, the manager, then the control socket. */
static void poll_dispatch(const struct pollfd *pfd)
{
    if (pfd[PFD_SIG].revents)
        srv__signals_drain(G.sig_fd, on_signal, NULL);
    if (pfd[PFD_MGR].revents)
        handle_mgr();
    srv__ctl_serve_dispatch(&pfd[PFD_CTL]);
    srv__admin_dispatch(&pfd[PFD_ADMIN]);
    if (srv__inotify_dispatch(&pfd[PFD_INOTIFY], srv__mono_ms(), G.reload_running) &&
        !G.stopping)
        ctl_reload(false); /* refused or not, the outcome is logged */
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
        srv__tls_keys_tick(srv__mono_ms());
        srv__notify_tick(srv__mono_ms());
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
    free(G.live);
    free(G.live_prev);
    G.live = G.live_prev = NULL;
    srv__alog_close();
    int code = G.exit_code;
    if (!G.started && code == SRV_EXIT_OK)
        code = SRV_EXIT_FAILURE;
    tell_parent(code);
    srv__log(SRV_LOG_NOTICE, "master", 0, "stopped");
    if (G.mgr_fd >= 0)
        close(G.mgr_fd);
    G.mgr_fd = -1;
    return code;
}

int srv__master_run(const srv__config_t *cfg, bool daemon)
{
    srv__server_t *S = &srv__server;
    master_init(cfg);
    char why[300];
    if (srv__priv_check(cfg, why, sizeof(why)) < 0) {
        start_err("srv: %s\n", why);
        return SRV_EXIT_CONFIG;
    }
    int code = master_prepare(cfg, daemon);
    if (code != SRV_EXIT_OK)
        return code;
    srv__notify_init(); /* in the final master (after -d), before any child is forked */
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
    if (srv__cluster_register(cfg, why, sizeof(why)) < 0) { /* before any engine exists */
        start_err("srv: %s\n", why);
        code = SRV_EXIT_CONFIG;
        goto out_listen;
    }
    code = open_listeners(cfg);
    if (code != SRV_EXIT_OK)
        goto out_listen;
    code = tls_load(cfg);
    if (code != SRV_EXIT_OK)
        goto out_listen;
    code = SRV_EXIT_FAILURE;
    rc = srv__ctl_serve_open(S->ctl_path, &ctl_ops);
    if (rc < 0) {
        start_err("srv: cannot create control socket %s: %s\n", S->ctl_path, srv_strerror(rc));
        goto out_listen;
    }
    if (cfg->admin_server[0]) {
        rc = srv__admin_open(cfg->admin_server, &admin_ops);
        if (rc < 0) {
            start_err("srv: cannot listen on admin_server %s: %s\n", cfg->admin_server,
                      srv_strerror(rc));
            code = SRV_EXIT_LISTEN;
            goto out_ctl;
        }
        srv__log(SRV_LOG_NOTICE, "master", 0, "admin endpoint on http://%s/", cfg->admin_server);
    }
    if (start_manager() < 0)
        goto out_ctl;
    srv__inotify_open(cfg);
    start_reactors(cfg, daemon);
    master_loop(cfg);
    code = master_finish();
out_ctl:
    srv__inotify_close();
    srv__admin_close();
    if (G.sig_fd >= 0)
        close(G.sig_fd);
    srv__ctl_serve_close();
out_listen:
    for (int i = 0; i < S->nlisten; i++) {
        close(S->listen_fd[i]);
        if (cfg->listen[i].path[0])
            unlink(cfg->listen[i].path);
    }
    srv__tls_listen_unload();
    srv__shm_destroy();
    srv__pidfile_unlock(cfg->pid_file, G.pid_fd);
out:
    tell_parent(code);
    return code;
}
