/* Start-up, loop, status messages and leaving, shared by every process kind; see child.h. */
#include "core/server/child.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/ipc/ipc.h"
#include "core/server/app.h"
#include "core/server/msg.h"
#include "core/server/server.h"

static struct {
    int slot;
    int ctl_fd;
    srv__child_opts_t o;
    srv__loop_t *loop; /* woken by the signal handler */
} C = {.slot = -1, .ctl_fd = -1};

static void on_signal(int sig)
{
    if (sig == SIGRTMIN) {
        srv__log_reopen(); /* every process kind, whatever its loop (async-signal-safe) */
        if (C.o.reopen)
            *C.o.reopen = 1;
    } else {
        if (sig == SIGUSR1 && C.o.reload)
            *C.o.reload = 1;
        *C.o.stop = 1;
    }
    if (C.loop)
        srv__loop_wake(C.loop);
}

static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    /* A log reopen must not interrupt what the process is doing (a custom process's own
     * calls): SA_RESTART. */
    struct sigaction re = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&re.sa_mask);
    sigaction(SIGRTMIN, &re, NULL);
    signal(SIGPIPE, SIG_IGN);
}

const srv_app_t *srv__child_start(int slot, int ctl_fd, const srv__child_opts_t *o)
{
    const srv__config_t *cfg = &srv__server.cfg;
    C.slot = slot;
    C.ctl_fd = ctl_fd;
    C.o = *o;
    srv__log_set_role(o->role, o->log_id);
    char title[16];
    snprintf(title, sizeof(title), "srv: %s", o->title);
    prctl(PR_SET_NAME, title);
    /* If the manager dies, we go too: no orphans serving stale code. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        _exit(1);
    catch_signals();
    srv__msg_init(slot);
    srv__msg_set_stop(o->stop);
    const srv_app_t *app;
    char err[2048];
    /* With chroot the manager forked us inside it; the app lies under it (config/validate.c). */
    size_t jail = cfg->chroot[0] && strcmp(cfg->chroot, "/") != 0 ? strlen(cfg->chroot) : 0;
    if (srv__app_load(cfg->app + jail, &app, err, sizeof(err)) < 0)
        srv__child_fail(err);
    srv__worker_set_self(o->id, o->role, cfg->worker_num);
    return app;
}

static void on_wake(srv__loop_t *loop, void *arg)
{
}

srv__loop_t *srv__child_loop(void)
{
    srv__loop_t *loop;
    int rc = srv__loop_create(&loop, srv__server.cfg.reactor_backend, &srv__loop_opts);
    if (rc < 0) {
        char err[128];
        snprintf(err, sizeof(err), "cannot create event loop: %s", srv_strerror(rc));
        srv__child_fail(err);
    }
    srv__loop_set_wake(loop, on_wake, NULL);
    C.loop = loop;
    return loop;
}

void srv__child_tell(int type, const char *text)
{
    srv__ctl_msg_t m = {.type = (uint32_t)type, .slot = C.slot, .pid = getpid()};
    if (text)
        snprintf(m.text, sizeof(m.text), "%s", text);
    srv__ctl_send(C.ctl_fd, &m, NULL, 0);
}

void srv__child_fail(const char *why)
{
    srv__slot_kind_t kind = srv__slot_kind(C.slot);
    bool worker = kind == SRV_SLOT_WORKER || kind == SRV_SLOT_TASK;
    srv__log(SRV_LOG_ERROR, worker ? "worker" : "process", 0, "%s", why);
    srv__child_tell(SRV_WMSG_FAIL, why);
    _exit(SRV_EXIT_APP);
}

void srv__child_retire(const srv_app_t *app)
{
    srv__worker_stat_t *st = &srv__server.stats->workers[C.slot];
    /* The slot may already belong to our replacement (reload): its state is not ours. */
    if (atomic_load(&st->pid) == getpid())
        atomic_store(&st->state, SRV_WSTATE_STOPPING);
    if (app->on_worker_stop)
        app->on_worker_stop(srv_worker_self());
}
