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
#include "core/ctl.h"
#include "core/log.h"
#include "core/master.h"
#include "core/server.h"

static const char usage[] =
    "usage: srv <command> [-c FILE] [options]\n"
    "\n"
    "commands:\n"
    "  start [-d]        start the server (foreground; -d: as a daemon)\n"
    "  stop              stop gracefully: finish in-flight work (max_wait_time), then exit\n"
    "  reload [--tasks]  rolling restart of workers and task workers (--tasks: task workers)\n"
    "  restart [-d]      stop if running, then start\n"
    "  info [--json]     show processes, connections and counters\n"
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

static int load(const char *file, srv_config_t *cfg)
{
    srv_config_error_t err;
    int rc = srv_config_load(file, cfg, &err);
    if (rc < 0) {
        char buf[1024];
        fprintf(stderr, "srv: %s\n", srv_config_error_format(&err, buf, sizeof(buf)));
        return SRV_EXIT_CONFIG;
    }
    return 0;
}

/* A server is running while its master holds the pid file's lock: unlike kill(pid, 0), this
 * is false for a master that exited but was not reaped yet, and for a recycled pid. */
static bool pidfile_locked(const srv_config_t *cfg)
{
    int fd = open(cfg->pid_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool locked = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return locked;
}

static pid_t running_pid(const srv_config_t *cfg)
{
    FILE *f = fopen(cfg->pid_file, "re");
    if (f == NULL)
        return 0;
    int pid = 0;
    if (fscanf(f, "%d", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid <= 0 || !pidfile_locked(cfg))
        return 0;
    return pid;
}

static int ctl(const srv_config_t *cfg, const char *cmd, char *buf, size_t cap, int timeout_ms)
{
    char path[SRV_CONFIG_PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s.sock", cfg->pid_file);
    return srv__ctl_request(path, cmd, buf, cap, timeout_ms);
}

static int not_running(const srv_config_t *cfg)
{
    fprintf(stderr, "srv: not running (no live process in pid file %s)\n", cfg->pid_file);
    return SRV_EXIT_RUNNING;
}

static int cmd_stop(const srv_config_t *cfg, bool quiet_if_absent)
{
    pid_t pid = running_pid(cfg);
    if (pid == 0)
        return quiet_if_absent ? 0 : not_running(cfg);
    char buf[256];
    int rc = ctl(cfg, "stop", buf, sizeof(buf), 5000);
    if (rc < 0) {
        /* No control socket (an old or wedged server): fall back to the signal. */
        if (kill(pid, SIGTERM) != 0) {
            fprintf(stderr, "srv: cannot signal pid %d: %s\n", (int)pid, strerror(errno));
            return SRV_EXIT_FAILURE;
        }
    }
    /* Wait until the tree is gone: the master exits after its children. */
    int64_t deadline = srv__mono_ms() + (int64_t)cfg->max_wait_time * 2000 + 15000;
    while (pidfile_locked(cfg)) {
        if (srv__mono_ms() > deadline) {
            fprintf(stderr, "srv: pid %d did not stop in time\n", (int)pid);
            return SRV_EXIT_FAILURE;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return SRV_EXIT_OK;
}

static int cmd_reload(const srv_config_t *cfg, bool tasks)
{
    if (running_pid(cfg) == 0)
        return not_running(cfg);
    char buf[1024];
    int slots = cfg->worker_num + cfg->task_worker_num;
    int timeout = slots * (cfg->max_wait_time + 15) * 1000;
    int rc = ctl(cfg, tasks ? "reload tasks" : "reload", buf, sizeof(buf), timeout);
    if (rc < 0) {
        fprintf(stderr, "srv: reload: %s\n", srv_strerror(rc));
        return SRV_EXIT_FAILURE;
    }
    if (strncmp(buf, "ok", 2) == 0) {
        printf("reloaded\n");
        return SRV_EXIT_OK;
    }
    int code = SRV_EXIT_FAILURE;
    char msg[1024] = "";
    if (sscanf(buf, "error %d %1023[^\n]", &code, msg) < 1)
        snprintf(msg, sizeof(msg), "%s", buf);
    fprintf(stderr, "srv: reload failed: %s\n", msg);
    return code == SRV_EXIT_APP ? SRV_EXIT_APP : SRV_EXIT_FAILURE;
}

static int cmd_info(const srv_config_t *cfg, bool json)
{
    if (running_pid(cfg) == 0)
        return not_running(cfg);
    static char buf[1 << 20];
    int rc = ctl(cfg, json ? "info json" : "info", buf, sizeof(buf), 5000);
    if (rc < 0) {
        fprintf(stderr, "srv: info: %s\n", srv_strerror(rc));
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
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
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
                 strcmp(cmd, "info") == 0 || strcmp(cmd, "check") == 0;
    if (!known) {
        fprintf(stderr, "srv: unknown command '%s'\n\n%s", cmd, usage);
        return SRV_EXIT_USAGE;
    }
    static srv_config_t cfg;
    int rc = load(file, &cfg);
    if (rc != 0)
        return rc;
    if (strcmp(cmd, "check") == 0) {
        printf("%s: ok\n", cfg.file);
        return SRV_EXIT_OK;
    }
    if (strcmp(cmd, "start") == 0)
        return srv__master_run(&cfg, daemon || cfg.daemonize);
    if (strcmp(cmd, "stop") == 0)
        return cmd_stop(&cfg, false);
    if (strcmp(cmd, "reload") == 0)
        return cmd_reload(&cfg, tasks);
    if (strcmp(cmd, "info") == 0)
        return cmd_info(&cfg, json);
    /* restart */
    rc = cmd_stop(&cfg, true);
    if (rc != 0)
        return rc;
    return srv__master_run(&cfg, daemon || cfg.daemonize);
}
