/* The master's side of the control socket, driven by hand: each command comes from a child
 * process (the real client, srv__ctl_request) while the test runs the serving loop; stop and
 * reload reach the master's actions, a refused reload and a failed one answer with the reason,
 * info answers from the shared region, an unknown command says so, and the socket file goes
 * away on close. */
#include "core/process/ctl_serve.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/base/util.h"
#include "core/process/ctl.h"
#include "core/process/region.h"
#include "core/server/server.h"
#include "core/shm/shm.h"

static char g_dir[64];
static char g_path[128];
static int g_stops, g_reloads;
static bool g_reload_tasks, g_reload_pending;
static const char *g_refuse; /* what the reload action answers: NULL starts a reload */

static void op_stop(void)
{
    g_stops++;
}

static const char *op_reload(bool tasks)
{
    g_reloads++;
    g_reload_tasks = tasks;
    g_reload_pending = g_refuse == NULL;
    return g_refuse;
}

static const srv__ctl_serve_ops_t ops = {.stop = op_stop, .reload = op_reload};

/* A child sends cmd as `srv` does and writes the reply it got into a pipe; returns its end. */
static int client(const char *cmd, pid_t *pid)
{
    int p[2];
    CHECK_INT(pipe(p), ==, 0);
    *pid = fork();
    CHECK(*pid >= 0);
    if (*pid == 0) {
        close(p[0]);
        char buf[8192];
        int n = srv__ctl_request(g_path, cmd, buf, sizeof(buf), 2000, 5000);
        if (n < 0)
            n = snprintf(buf, sizeof(buf), "request failed: %d", n);
        _exit(write(p[1], buf, (size_t)n) == n ? 0 : 1);
    }
    close(p[1]);
    return p[0];
}

/* Serve until the child's reply is in; a reload it started is answered with reload_code. */
static void serve(const char *cmd, int reload_code, char *out, size_t cap)
{
    pid_t pid;
    int rfd = client(cmd, &pid);
    size_t got = 0;
    int64_t deadline = srv__mono_ms() + 10000;
    for (;;) {
        int64_t now = srv__mono_ms();
        CHECK(now < deadline);
        struct pollfd pfd[SRV_CTL_SERVE_NPOLL + 1];
        int64_t wake = INT64_MAX;
        CHECK_INT(srv__ctl_serve_poll(pfd, now, &wake), ==, SRV_CTL_SERVE_NPOLL);
        pfd[SRV_CTL_SERVE_NPOLL] = (struct pollfd){.fd = rfd, .events = POLLIN};
        int timeout = wake == INT64_MAX ? 100 : wake <= now ? 0 : (int)(wake - now);
        if (poll(pfd, SRV_CTL_SERVE_NPOLL + 1, timeout) <= 0)
            continue;
        srv__ctl_serve_dispatch(pfd);
        if (g_reload_pending) {
            g_reload_pending = false;
            srv__ctl_serve_reload_done(reload_code, reload_code == 0
                                                        ? "needs restart: listen.api.port\n"
                                                        : "the new code does not start");
        }
        if (pfd[SRV_CTL_SERVE_NPOLL].revents) {
            ssize_t n = read(rfd, out + got, cap - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    out[got] = '\0';
    close(rfd);
    int st;
    CHECK_INT(waitpid(pid, &st, 0), ==, pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_commands(void)
{
    char reply[8192];
    serve("stop", 0, reply, sizeof(reply));
    CHECK_STR(reply, "ok\n");
    CHECK_INT(g_stops, ==, 1);

    serve("reload", 0, reply, sizeof(reply));
    CHECK_STR(reply, "ok\nneeds restart: listen.api.port\n"); /* what it could not apply */
    CHECK_INT(g_reloads, ==, 1);
    CHECK(!g_reload_tasks);
    serve("reload tasks", 6, reply, sizeof(reply));
    CHECK_STR(reply, "error 6 the new code does not start\n");
    CHECK(g_reload_tasks);
    g_refuse = "error 1 a reload is already running\n";
    serve("reload", 0, reply, sizeof(reply));
    CHECK_STR(reply, g_refuse);
    CHECK_INT(g_reloads, ==, 3);

    serve("info", 0, reply, sizeof(reply));
    CHECK(strncmp(reply, "srv ", 4) == 0);
    serve("info json", 0, reply, sizeof(reply));
    CHECK(reply[0] == '{');
    serve("dance", 0, reply, sizeof(reply));
    CHECK_STR(reply, "error 2 unknown command\n");
    CHECK_INT(g_stops, ==, 1);
}

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/srv-test-ctl-serve-XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL);
    snprintf(g_path, sizeof(g_path), "%s/srv.pid.sock", g_dir);
    /* info reads the shared stats: a region as the master makes it. */
    srv__config_defaults(&srv__server.cfg);
    srv__server.cfg.worker_num = 1;
    srv__server_layout(&srv__server);
    CHECK_INT(srv__region_setup(&srv__server.cfg), ==, 0);

    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    CHECK_INT(srv__ctl_serve_open(longpath, &ops), ==, -ENAMETOOLONG);
    CHECK_INT(srv__ctl_serve_open(g_path, &ops), ==, 0);
    struct stat st;
    CHECK_INT(stat(g_path, &st), ==, 0);
    CHECK_INT(st.st_mode & 0777, ==, 0600); /* only the owner may stop or reload */
    srv__ctl_serve_reserve();
    test_commands();
    srv__ctl_serve_close();
    CHECK_INT(stat(g_path, &st), ==, -1);
    srv__shm_destroy();
    CHECK_INT(rmdir(g_dir), ==, 0);
    printf("ok\n");
    return 0;
}
