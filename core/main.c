/* The srv command: start, stop, reload, restart, info, check, version, help. */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/process/ctl.h"
#include "core/base/log.h"
#include "core/net/tls_listen.h"
#include "core/process/master.h"
#include "core/server/server.h"

static const char usage[] =
    "usage: srv <command> [-c FILE] [options]\n"
    "\n"
    "commands:\n"
    "  start [-d]        start the server (foreground; -d: as a daemon)\n"
    "  stop              stop gracefully: finish in-flight work (max_wait_time), then exit\n"
    "  reload [--tasks]  rolling restart of workers and task workers (--tasks: task workers)\n"
    "  restart [-d]      stop if running, then start\n"
    "  reopen            every process reopens the error and access logs (after logrotate)\n"
    "  info [--json]     show processes, connections and counters\n"
    "  maintenance [on [--retry-after SECONDS] [--message TEXT] | off]\n"
    "                    answer HTTP requests 503 (except maintenance_allow), or stop; alone:\n"
    "                    print the state\n"
    "  check             validate the configuration file\n"
    "  version           print the version\n"
    "  help              print this text\n"
    "\n"
    "options:\n"
    "  -c FILE           configuration file, TOML or INI (default ./srv.toml)\n"
    "\n"
    "exit codes:\n"
    "  0 ok, 1 runtime failure, 2 usage error, 3 invalid configuration, 4 cannot listen,\n"
    "  5 already running (start) or not running (stop/reload/info), 6 app failed to load\n";

/* start and restart also resolve listener names and refuse two listeners on one address
 * (srv__config_check), so they fail as `srv check` does, with file:line, instead of at bind;
 * stop, reload and info must work while the name service is down. */
static int load(const char *file, srv__config_t *cfg, bool resolve)
{
    srv__config_error_t err;
    int rc = resolve ? srv__config_check(file, cfg, &err) : srv__config_load(file, cfg, &err);
    if (rc < 0) {
        char buf[1024];
        fprintf(stderr, "srv: %s\n", srv__config_error_format(&err, buf, sizeof(buf)));
        return SRV_EXIT_CONFIG;
    }
    return 0;
}

static void print_warning(void *arg, const char *msg)
{
    (void)arg;
    printf("%s\n", msg);
}

/* srv check: what start would refuse, with file:line; unlike the other commands it also resolves
 * listener host names (srv__config_check). */
static int cmd_check(const char *file)
{
    srv__config_t *cfg = malloc(sizeof(*cfg));
    srv__config_error_t err;
    if (cfg == NULL) {
        fprintf(stderr, "srv: %s\n", strerror(ENOMEM));
        return SRV_EXIT_FAILURE;
    }
    int rc = srv__config_check(file, cfg, &err);
    if (rc < 0) {
        char buf[1024];
        fprintf(stderr, "srv: %s\n", srv__config_error_format(&err, buf, sizeof(buf)));
        free(cfg);
        return SRV_EXIT_CONFIG;
    }
    srv__tls_listen_expiring(cfg, SRV__TLS_WARN_DAYS, print_warning, NULL);
    printf("%s: ok\n", cfg->file);
    free(cfg);
    return SRV_EXIT_OK;
}

/* A server is running while its master holds the pid file's lock: unlike kill(pid, 0), this
 * is false for a master that exited but was not reaped yet, and for a recycled pid. */
static bool pidfile_locked(const srv__config_t *cfg)
{
    return srv__pidfile_locked(cfg->pid_file);
}

static pid_t running_pid(const srv__config_t *cfg)
{
    return srv__pidfile_pid(cfg->pid_file);
}

static void ctl_path(const srv__config_t *cfg, char *path, size_t cap)
{
    snprintf(path, cap, "%s.sock", cfg->pid_file);
}

/* connect_ms: how long a busy control socket is retried; reply_ms: how long the answer may
 * take once the command is in. */
static int ctl(const srv__config_t *cfg, const char *cmd, char *buf, size_t cap, int connect_ms,
               int reply_ms)
{
    char path[SRV_CONFIG_PATH_MAX + 8];
    ctl_path(cfg, path, sizeof(path));
    return srv__ctl_request(path, cmd, buf, cap, connect_ms, reply_ms);
}

/* Why the control socket could not take a command (srv__ctl_request failed before sending). */
static const char *ctl_unavailable(int rc)
{
    if (rc == -EBUSY)
        return "busy";
    if (rc == -ENOENT || rc == -ECONNREFUSED)
        return "not there";
    return srv_strerror(rc);
}

static int not_running(const srv__config_t *cfg)
{
    fprintf(stderr, "srv: not running (no live process in pid file %s)\n", cfg->pid_file);
    return SRV_EXIT_RUNNING;
}

/* pid exited (a zombie waiting for its parent counts: it runs no more code). */
static bool pid_gone(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return kill(pid, 0) != 0 && errno == ESRCH;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')'); /* the name in between may hold anything */
    return paren == NULL || paren[1] == '\0' || paren[2] == 'Z' || paren[2] == 'X';
}

static int cmd_stop(const srv__config_t *cfg, bool quiet_if_absent)
{
    pid_t pid = running_pid(cfg);
    if (pid == 0)
        return quiet_if_absent ? 0 : not_running(cfg);
    char buf[256];
    int rc = ctl(cfg, "stop", buf, sizeof(buf), 3000, 5000);
    if (rc < 0) {
        /* No control socket (an old or wedged server): fall back to the signal. */
        if (kill(pid, SIGTERM) != 0) {
            fprintf(stderr, "srv: cannot signal pid %d: %s\n", (int)pid, strerror(errno));
            return SRV_EXIT_FAILURE;
        }
    }
    /* Wait until the tree is gone: the master exits after its children. It lets the pid file
     * go just before it exits; the exit itself can take a while yet (a sanitizer's leak check
     * runs then), so the process is waited for too. */
    int64_t deadline = srv__mono_ms() + (int64_t)cfg->max_wait_time * 2000 + 15000;
    while (pidfile_locked(cfg) || !pid_gone(pid)) {
        if (srv__mono_ms() > deadline) {
            fprintf(stderr, "srv: pid %d did not stop in time\n", (int)pid);
            return SRV_EXIT_FAILURE;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return SRV_EXIT_OK;
}

/* A control reply "error <code> <text>" (or anything else) on stderr after "srv: " and what;
 * returns the code (SRV_EXIT_FAILURE when there is none). */
static int print_error(const char *what, const char *buf)
{
    int code = SRV_EXIT_FAILURE;
    char msg[4096] = "";
    if (sscanf(buf, "error %d %4095[^\n]", &code, msg) < 1)
        snprintf(msg, sizeof(msg), "%s", buf);
    fprintf(stderr, "srv: %s%s\n", what, msg);
    return code;
}

static int cmd_reload(const srv__config_t *cfg, bool tasks)
{
    pid_t pid = running_pid(cfg);
    if (pid == 0)
        return not_running(cfg);
    char buf[4096];
    int64_t slots = cfg->worker_num + cfg->task_worker_num;
    int64_t wait = slots * (cfg->max_wait_time + 15) * 1000; /* 2048 slots x 3615 s > INT_MAX */
    int timeout = wait > INT32_MAX ? INT32_MAX : (int)wait;
    int rc = ctl(cfg, tasks ? "reload tasks" : "reload", buf, sizeof(buf), 5000, timeout);
    if (rc == -ETIMEDOUT || rc == -ECONNRESET) {
        /* The command went in: it may be running. A signal now would start a second one. */
        fprintf(stderr, "srv: reload: %s; see srv info and the log for its outcome\n",
                rc == -ETIMEDOUT ? "no answer in time" : "the server broke the connection");
        return SRV_EXIT_FAILURE;
    }
    if (rc < 0) {
        /* Issue 11: the control socket is busy or gone but the server runs (it holds the pid
         * file's lock): the signal still reloads it, without telling us how it went. */
        char path[SRV_CONFIG_PATH_MAX + 8];
        ctl_path(cfg, path, sizeof(path));
        int sig = tasks ? SIGUSR2 : SIGUSR1;
        if (kill(pid, sig) != 0) {
            int err = errno;
            if (err == ESRCH)
                return not_running(cfg);
            fprintf(stderr, "srv: reload: control socket %s %s, and cannot signal pid %d: %s\n",
                    path, ctl_unavailable(rc), (int)pid, strerror(err));
            return SRV_EXIT_FAILURE;
        }
        fprintf(stderr,
                "srv: note: control socket %s %s; sent %s to pid %d instead (the outcome is "
                "not reported: see srv info and the log)\n",
                path, ctl_unavailable(rc), tasks ? "SIGUSR2" : "SIGUSR1", (int)pid);
        printf("reload signalled\n");
        return SRV_EXIT_OK;
    }
    if (strncmp(buf, "ok", 2) == 0) {
        /* What the new configuration changes that only a restart applies, one per line. */
        const char *notes = strchr(buf, '\n');
        printf("reloaded\n%s", notes && strncmp(buf, "ok no", 5) != 0 ? notes + 1 : "");
        return SRV_EXIT_OK;
    }
    int code = print_error("reload failed: ", buf);
    return code == SRV_EXIT_APP || code == SRV_EXIT_CONFIG ? code : SRV_EXIT_FAILURE;
}

/* Every process reopens its logs: the control socket, or SIGRTMIN when it cannot answer. */
static int cmd_reopen(const srv__config_t *cfg)
{
    pid_t pid = running_pid(cfg);
    if (pid == 0)
        return not_running(cfg);
    char buf[256];
    int rc = ctl(cfg, "reopen", buf, sizeof(buf), 5000, 5000);
    if (rc >= 0 && strncmp(buf, "ok", 2) == 0) {
        printf("logs reopened\n");
        return SRV_EXIT_OK;
    }
    if (rc >= 0) {
        fprintf(stderr, "srv: reopen: %s", buf);
        return SRV_EXIT_FAILURE;
    }
    if (kill(pid, SIGRTMIN) != 0) {
        fprintf(stderr, "srv: reopen: control socket %s, and cannot signal pid %d: %s\n",
                ctl_unavailable(rc), (int)pid, strerror(errno));
        return errno == ESRCH ? SRV_EXIT_RUNNING : SRV_EXIT_FAILURE;
    }
    fprintf(stderr, "srv: note: control socket %s; sent SIGRTMIN to pid %d instead\n",
            ctl_unavailable(rc), (int)pid);
    return SRV_EXIT_OK;
}

typedef struct maint_args {
    const char *what; /* NULL (print the state), "on" or "off" */
    long retry_after; /* -1: none */
    const char *message;
} maint_args_t;

/* srv maintenance [on [--retry-after N] [--message T] | off]. */
static int cmd_maintenance(const srv__config_t *cfg, const maint_args_t *a)
{
    pid_t pid = running_pid(cfg);
    if (pid == 0)
        return not_running(cfg);
    for (const char *p = a->message; p && *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            fprintf(stderr, "srv: maintenance: the message must be one line (no control "
                            "characters)\n");
            return SRV_EXIT_USAGE;
        }
    char cmd[SRV_CTL_CMD_MAX], buf[4096];
    int n;
    if (a->what == NULL || strcmp(a->what, "off") == 0)
        n = snprintf(cmd, sizeof(cmd), "maintenance%s", a->what ? " off" : "");
    else
        n = snprintf(cmd, sizeof(cmd), "maintenance on %ld %s", a->retry_after,
                     a->message ? a->message : "");
    if (n < 0 || (size_t)n >= sizeof(cmd)) {
        fprintf(stderr, "srv: maintenance: the message is too long (at most 1024 bytes)\n");
        return SRV_EXIT_USAGE;
    }
    int rc = ctl(cfg, cmd, buf, sizeof(buf), 5000, 5000);
    if (rc < 0) {
        fprintf(stderr, "srv: maintenance: pid %d is running but its control socket is %s\n",
                (int)pid, ctl_unavailable(rc));
        return SRV_EXIT_FAILURE;
    }
    if (strncmp(buf, "ok\n", 3) != 0) {
        int code = print_error("", buf);
        return code == SRV_EXIT_USAGE ? SRV_EXIT_USAGE : SRV_EXIT_FAILURE;
    }
    fputs(buf + 3, stdout);
    return SRV_EXIT_OK;
}

/* The words after `srv maintenance`: on|off and on's options. Returns 0 or a usage error. */
static int maint_arg(int argc, char **argv, int *i, maint_args_t *a)
{
    const char *arg = argv[*i];
    if ((strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0) && a->what == NULL) {
        a->what = arg;
        return 0;
    }
    if (strcmp(arg, "--message") == 0 && *i + 1 < argc) {
        a->message = argv[++*i];
        return 0;
    }
    if (strcmp(arg, "--retry-after") == 0 && *i + 1 < argc) {
        char *end;
        errno = 0;
        a->retry_after = strtol(argv[++*i], &end, 10);
        if (errno == 0 && *end == '\0' && end != argv[*i] && a->retry_after >= 0 &&
            a->retry_after <= 31536000)
            return 0;
        fprintf(stderr, "srv: --retry-after: want seconds (0 to 31536000), got '%s'\n", argv[*i]);
        return SRV_EXIT_USAGE;
    }
    fprintf(stderr, "srv: unknown argument '%s'\n\n%s", arg, usage);
    return SRV_EXIT_USAGE;
}

static int cmd_info(const srv__config_t *cfg, bool json)
{
    pid_t pid = running_pid(cfg);
    if (pid == 0)
        return not_running(cfg);
    static char buf[1 << 20];
    int rc = ctl(cfg, json ? "info json" : "info", buf, sizeof(buf), 5000, 5000);
    if (rc < 0) {
        /* Issue 11: the server runs (it holds the pid file's lock) but cannot tell us. */
        char path[SRV_CONFIG_PATH_MAX + 8];
        ctl_path(cfg, path, sizeof(path));
        if (rc == -ETIMEDOUT || rc == -ECONNRESET)
            fprintf(stderr, "srv: info: pid %d did not answer on %s: %s\n", (int)pid, path,
                    srv_strerror(rc));
        else
            fprintf(stderr, "srv: info: pid %d is running but its control socket %s is %s\n",
                    (int)pid, path, ctl_unavailable(rc));
        return SRV_EXIT_FAILURE;
    }
    if (strncmp(buf, "error ", 6) == 0) {
        fprintf(stderr, "srv: info: %s", buf);
        return SRV_EXIT_FAILURE;
    }
    fputs(buf, stdout);
    return SRV_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return SRV_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    const char *file = "srv.toml";
    bool daemon = false, json = false, tasks = false;
    bool maint = strcmp(cmd, "maintenance") == 0;
    maint_args_t ma = {.retry_after = -1};
    for (int i = 2; i < argc; i++) {
        if (maint && strcmp(argv[i], "-c") != 0) {
            int bad = maint_arg(argc, argv, &i, &ma);
            if (bad)
                return bad;
        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strcmp(argv[i], "-d") == 0 || strcmp(argv[i], "--daemonize") == 0)
            daemon = true;
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--tasks") == 0)
            tasks = true;
        else {
            fprintf(stderr, "srv: unknown argument '%s'\n\n%s", argv[i], usage);
            return SRV_EXIT_USAGE;
        }
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage, stdout);
        return SRV_EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("srv %s\n", SRV_VERSION);
        return SRV_EXIT_OK;
    }
    bool known = strcmp(cmd, "start") == 0 || strcmp(cmd, "stop") == 0 ||
                 strcmp(cmd, "reload") == 0 || strcmp(cmd, "restart") == 0 ||
                 strcmp(cmd, "info") == 0 || strcmp(cmd, "check") == 0 ||
                 strcmp(cmd, "reopen") == 0 || maint;
    if (!known) {
        fprintf(stderr, "srv: unknown command '%s'\n\n%s", cmd, usage);
        return SRV_EXIT_USAGE;
    }
    if (strcmp(cmd, "check") == 0)
        return cmd_check(file);
    static srv__config_t cfg;
    int rc = load(file, &cfg, strcmp(cmd, "start") == 0 || strcmp(cmd, "restart") == 0);
    if (rc != 0)
        return rc;
    if (strcmp(cmd, "start") == 0)
        return srv__master_run(&cfg, daemon || cfg.daemonize);
    if (strcmp(cmd, "stop") == 0)
        return cmd_stop(&cfg, false);
    if (strcmp(cmd, "reload") == 0)
        return cmd_reload(&cfg, tasks);
    if (strcmp(cmd, "reopen") == 0)
        return cmd_reopen(&cfg);
    if (strcmp(cmd, "info") == 0)
        return cmd_info(&cfg, json);
    if (maint) {
        if ((ma.message || ma.retry_after >= 0) && (ma.what == NULL || strcmp(ma.what, "on"))) {
            fprintf(stderr, "srv: --retry-after and --message go with 'maintenance on'\n");
            return SRV_EXIT_USAGE;
        }
        return cmd_maintenance(&cfg, &ma);
    }
    /* restart */
    rc = cmd_stop(&cfg, true);
    if (rc != 0)
        return rc;
    return srv__master_run(&cfg, daemon || cfg.daemonize);
}
