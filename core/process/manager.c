/* Manager: spawns every worker slot, respawns crashed ones (with back-off when they keep
 * dying at start-up), replaces workers one at a time on reload or max_request, and stops the
 * tree gracefully (SIGTERM, then SIGKILL after max_wait_time).
 * Replacing a slot starts its new process while the old one goes on serving; the old one is
 * retired once the new one is ready. One replacement starts at a time. A reload moves on to the
 * next slot only once the old process exited (it reports done with every old worker gone); a
 * max_request recycle moves on as soon as the new process is ready, so one old worker finishing
 * a long request does not keep the others past their max_request. */
#include "core/process/manager.h"
#include "core/process/priv.h"
#include "core/process/watchdog.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/ipc/ipc.h"
#include "core/base/log.h"
#include "core/base/signals.h"
#include "tasks/task.h"
#include "core/server/server.h"
#include "core/worker/kinds.h"

typedef struct proc {
    pid_t pid;
    int ctl;                     /* our end of its status socket, -1 once closed */
    /* Reactor ends, handed to the master when it is ready: the channels, then each channel's
     * descriptor socket (file responses pass their fd there). */
    int chans[2 * SRV_MAX_REACTORS];
    int nchans;
    bool ready;
    uint32_t gen;
    int64_t started_ms;
} proc_t;

typedef struct slot {
    int id;
    srv__slot_kind_t kind;
    proc_t cur;           /* the serving (or starting) process */
    proc_t old;           /* the process being replaced (reload, recycle) */
    int64_t old_kill_at;  /* SIGKILL the old one after this */
    int fails;            /* consecutive deaths before ready */
    int64_t respawn_at;   /* back-off: respawn not before (0 = not waiting) */
    bool replace_pending; /* queued for replacement */
    /* A reload with a new configuration: a slot it adds starts once the reload succeeded; a
     * slot it removes is retired (its process ends, nobody replaces it). */
    bool grow_pending;
    bool retiring;
    int64_t retire_kill_at;
    bool reloaded; /* replaced during this reload (rolled back again if the reload fails) */
} slot_t;

static struct {
    int master_fd;
    int sig_fd;
    int nslots;
    slot_t *slots;
    bool stopping;
    int64_t stop_kill_at;
    bool initial; /* still starting the first generation */
    int initial_ready;
    /* rolling replacement: one slot at a time */
    int replacing;      /* slot index whose replacement holds the turn, -1 none */
    bool reload_active; /* a reload requested by the master (report when done) */
    bool reload_failed;
    char reload_err[512];
    bool cfg_changed;  /* this reload brought a new configuration (old one in g_old_cfg) */
    bool rolling_back; /* it failed: slots it replaced are replaced again with the old one */
    int initial_target; /* processes the first generation starts */
} M;

/* The configuration before the running reload, for its rollback. */
static srv__config_t g_old_cfg;

static void proc_reset(proc_t *p)
{
    p->pid = 0;
    p->ctl = -1;
    p->nchans = 0;
    p->ready = false;
}

static void proc_close(proc_t *p)
{
    if (p->ctl >= 0)
        close(p->ctl);
    for (int i = 0; i < p->nchans; i++)
        if (p->chans[i] >= 0)
            close(p->chans[i]);
    p->ctl = -1;
    p->nchans = 0;
}

static void send_master(uint32_t type, int slot, int pid, int code, uint32_t gen, const char *text,
                        const int *fds, int nfds)
{
    srv__ctl_msg_t m = {.type = type, .slot = slot, .pid = pid, .code = code, .generation = gen};
    if (text)
        snprintf(m.text, sizeof(m.text), "%s", text);
    int rc = srv__ctl_send(M.master_fd, &m, fds, nfds);
    if (rc < 0 && !M.stopping)
        srv__log(SRV_LOG_ERROR, "manager", rc, "cannot reach the master");
}

/* Close the first n channels (and their descriptor sockets, nchans further on) of both sides. */
static void close_chans(const int *ours, const int *theirs, int n, int nchans)
{
    for (int r = 0; r < n; r++) {
        close(theirs[r]);
        close(ours[r]);
        close(theirs[nchans + r]);
        close(ours[nchans + r]);
    }
}

/* The reactor<->worker channels of a new worker, one per reactor, each with its descriptor
 * socket (nchans further on): our ends in p->chans (handed to the master once it is ready), the
 * worker's in wchans. Returns 0, or -errno with none of them left open. */
static int open_chans(proc_t *p, int *wchans, int nchans)
{
    for (int r = 0; r < nchans; r++) {
        int cv[2] = {-1, -1}, dv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, cv) != 0 ||
            socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, dv) != 0) {
            int err = -errno;
            if (cv[0] >= 0) {
                close(cv[0]);
                close(cv[1]);
            }
            close_chans(p->chans, wchans, r, nchans);
            return err;
        }
        /* Big socket buffers let one write carry a large batch of requests or responses. */
        int sz = 4 << 20;
        setsockopt(cv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        setsockopt(cv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        setsockopt(cv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        setsockopt(cv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        p->chans[r] = cv[0];
        wchans[r] = cv[1];
        p->chans[nchans + r] = dv[0];
        wchans[nchans + r] = dv[1];
    }
    return 0;
}

/* Fork a new process for slot s into p. */
static int spawn(slot_t *s, proc_t *p)
{
    srv__server_t *S = &srv__server;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    int wchans[2 * SRV_MAX_REACTORS];
    int nchans = s->kind == SRV_SLOT_WORKER ? S->nreactors : 0;
    proc_reset(p);
    int rc = open_chans(p, wchans, nchans);
    if (rc < 0) {
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    p->nchans = 2 * nchans;
    uint32_t gen = atomic_fetch_add(&S->stats->workers[s->id].generation, 1) + 1;
    pid_t pid = fork();
    if (pid < 0) {
        int err = -errno;
        close_chans(p->chans, wchans, nchans, nchans);
        close(sv[0]);
        close(sv[1]);
        p->nchans = 0;
        return err;
    }
    if (pid == 0) {
        /* Child: keep only its own ends. Everything else the manager holds is close-on-exec
         * but we do not exec, so close explicitly. */
        close(M.master_fd);
        close(M.sig_fd);
        for (int i = 0; i < M.nslots; i++) {
            slot_t *o = &M.slots[i];
            if (o->cur.pid || o->cur.ctl >= 0)
                proc_close(&o->cur);
            if (o->old.pid || o->old.ctl >= 0)
                proc_close(&o->old);
        }
        for (int r = 0; r < 2 * nchans; r++)
            close(p->chans[r]);
        close(sv[0]);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        srv__child_kinds[s->kind](s->id, sv[1], wchans, nchans);
    }
    close(sv[1]);
    for (int r = 0; r < 2 * nchans; r++)
        close(wchans[r]);
    p->pid = pid;
    p->ctl = sv[0];
    p->gen = gen;
    p->ready = false;
    p->started_ms = srv__mono_ms();
    srv__worker_stat_t *st = &S->stats->workers[s->id];
    atomic_store(&st->pid, pid);
    atomic_store(&st->state, SRV_WSTATE_STARTING);
    atomic_store(&st->requests, 0);
    atomic_store(&st->started_ms, srv__now_ms());
    srv__log_debug("manager", "spawned %s #%d pid %d", srv__slot_kind_name(s->id), s->id, pid);
    return 0;
}

static void spawn_or_backoff(slot_t *s)
{
    int rc = spawn(s, &s->cur);
    if (rc < 0) {
        srv__log(SRV_LOG_ERROR, "manager", rc, "cannot fork worker #%d; retrying in 1 s", s->id);
        s->respawn_at = srv__mono_ms() + 1000;
        atomic_store(&srv__server.stats->workers[s->id].state, SRV_WSTATE_BACKOFF);
    }
}

static void start_next_replacement(void);

static void retire_slot(slot_t *s);

/* The log and its level follow the configuration of the processes we fork (the log file was
 * `was`). */
static void apply_log_settings(const char *was)
{
    const srv__config_t *cfg = &srv__server.cfg;
    srv__log_set_level(cfg->log_level);
    if (strcmp(was, cfg->log_file) != 0 && srv__log_switch(cfg->log_file) < 0)
        srv__log(SRV_LOG_ERROR, "manager", errno, "cannot open log file %s", cfg->log_file);
}

/* A reload that brought a new configuration failed: go back to the old one, and replace again
 * the slots it had replaced already. Returns true while that runs. */
static bool roll_back(void)
{
    if (!M.cfg_changed || M.rolling_back)
        return false;
    M.rolling_back = true;
    char was[sizeof(g_old_cfg.log_file)];
    memcpy(was, srv__server.cfg.log_file, sizeof(was));
    srv__server.cfg = g_old_cfg;
    apply_log_settings(was);
    int n = 0;
    for (int i = 0; i < M.nslots; i++) {
        slot_t *s = &M.slots[i];
        s->grow_pending = false;
        s->replace_pending = s->reloaded && s->cur.pid > 0;
        n += s->replace_pending;
    }
    if (n == 0)
        return false;
    srv__log(SRV_LOG_WARN, "manager", 0, "reload failed; putting %d process(es) back on the "
             "previous configuration", n);
    start_next_replacement();
    return M.reload_active;
}

/* The reload succeeded: start the slots it added, retire the ones it removed. */
static void resize(void)
{
    for (int i = 0; i < M.nslots; i++) {
        slot_t *s = &M.slots[i];
        if (s->grow_pending) {
            s->grow_pending = false;
            s->fails = 0;
            if (s->cur.pid <= 0 && !s->respawn_at)
                spawn_or_backoff(s);
        }
        if (!srv__slot_active(s->id) && (s->cur.pid > 0 || s->respawn_at))
            retire_slot(s);
    }
}

static void finish_reload(void)
{
    if (!M.reload_active)
        return;
    if (M.reload_failed && roll_back())
        return;
    M.reload_active = false;
    if (M.reload_failed) {
        send_master(SRV_CTL_RELOAD_DONE, -1, 0, 6, 0, M.reload_err, NULL, 0);
    } else {
        atomic_fetch_add(&srv__server.stats->reloads, 1);
        if (M.cfg_changed)
            resize();
        send_master(SRV_CTL_RELOAD_DONE, -1, 0, 0, 0, "ok", NULL, 0);
        srv__log(SRV_LOG_NOTICE, "manager", 0, "reload finished");
    }
    M.cfg_changed = M.rolling_back = false;
}

/* The replacement in slot s became ready: hand it to the master, retire the old process. */
static void on_ready(slot_t *s, proc_t *p)
{
    p->ready = true;
    s->fails = 0;
    srv__worker_stat_t *st = &srv__server.stats->workers[s->id];
    atomic_store(&st->state, SRV_WSTATE_READY);
    send_master(SRV_CTL_WORKER_READY, s->id, p->pid, s->kind, p->gen, NULL, p->chans, p->nchans);
    for (int r = 0; r < p->nchans; r++)
        close(p->chans[r]);
    p->nchans = 0;
    if (M.initial) {
        M.initial_ready++;
        if (M.initial_ready == M.initial_target) {
            M.initial = false;
            srv__log(SRV_LOG_NOTICE, "manager", 0, "all %d worker processes ready",
                     M.initial_target);
        }
    }
    if (s->old.pid > 0) {
        if (M.reload_active)
            s->reloaded = true;
        /* Process mode: the master switches the reactors to the new channels and shuts the
         * old ones, so the old worker drains and exits by itself. Base mode: tell it. */
        if (s->kind == SRV_SLOT_PROCESS)
            kill(s->old.pid, SIGUSR1); /* its on_reload hook, not on_stop */
        else if (srv__server.nreactors == 0 || s->kind != SRV_SLOT_WORKER)
            kill(s->old.pid, SIGTERM);
        int wait = srv__server.cfg.max_wait_time;
        s->old_kill_at = srv__mono_ms() + (int64_t)wait * 1000 + 1000;
    }
}

static void replace_slot(slot_t *s)
{
    if (s->cur.pid <= 0) {
        s->replace_pending = false;
        return;
    }
    s->old = s->cur;
    proc_reset(&s->cur);
    M.replacing = s->id;
    int rc = spawn(s, &s->cur);
    if (rc < 0) {
        srv__log(SRV_LOG_ERROR, "manager", rc, "cannot fork replacement for worker #%d", s->id);
        s->cur = s->old;
        proc_reset(&s->old);
        M.replacing = -1;
        M.reload_failed = true;
        snprintf(M.reload_err, sizeof(M.reload_err), "fork failed: %s", srv_strerror(rc));
        for (int i = 0; i < M.nslots; i++)
            M.slots[i].replace_pending = false;
        finish_reload();
    }
}

static void start_next_replacement(void)
{
    if (M.replacing >= 0 || M.stopping)
        return;
    for (int i = 0; i < M.nslots; i++) {
        slot_t *s = &M.slots[i];
        /* A slot whose previous old process still drains waits for it (reap calls us). */
        if (s->replace_pending && s->cur.pid > 0 && s->cur.ready && s->old.pid <= 0) {
            s->replace_pending = false;
            replace_slot(s);
            return;
        }
    }
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i].replace_pending)
            return; /* waits for that slot's process to become ready, or its old one to go */
    finish_reload();
}

static void fail_replacement(slot_t *s, const char *why)
{
    /* The new code does not start: keep the old process serving and stop the reload here. */
    srv__log(SRV_LOG_ERROR, "manager", 0, "reload stopped at worker #%d: %s", s->id, why);
    if (s->cur.pid > 0)
        kill(s->cur.pid, SIGKILL);
    M.reload_failed = true;
    snprintf(M.reload_err, sizeof(M.reload_err), "%s", why);
    for (int i = 0; i < M.nslots; i++)
        M.slots[i].replace_pending = false;
}

static void handle_worker_msg(slot_t *s, proc_t *p)
{
    srv__ctl_msg_t m;
    int rc = srv__ctl_recv(p->ctl, &m, NULL, 0);
    if (rc == -EAGAIN)
        return;
    if (rc < 0) {
        close(p->ctl); /* the process is exiting; SIGCHLD does the rest */
        p->ctl = -1;
        return;
    }
    switch (m.type) {
    case SRV_WMSG_READY:
        on_ready(s, p);
        if (M.replacing == s->id && (s->old.pid <= 0 || !M.reload_active))
            M.replacing = -1;
        /* Also when it was not replacing: a recycle it asked for before it was seen ready
         * (base mode serves as soon as its engine runs) waits for this. */
        start_next_replacement();
        break;
    case SRV_WMSG_FAIL:
        srv__log(SRV_LOG_ERROR, "manager", 0, "worker #%d failed to start: %s", s->id, m.text);
        if (M.initial) {
            send_master(SRV_CTL_START_FAILED, s->id, p->pid, 6, 0, m.text, NULL, 0);
        } else if (s->old.pid > 0 && p == &s->cur) {
            fail_replacement(s, m.text);
        }
        break;
    case SRV_WMSG_RECYCLE:
        /* A worker asks once. While its own predecessor still drains (a replacement that
         * reached max_request before the old process finished a long request) the request
         * is kept for later, not dropped: dropped, that worker was never recycled again.
         * An old process asking is being replaced already. */
        if (!M.stopping && p == &s->cur && !s->replace_pending) {
            srv__log(SRV_LOG_INFO, "manager", 0, "worker #%d reached max_request; replacing it",
                    s->id);
            atomic_fetch_add(&srv__server.stats->workers[s->id].recycles, 1);
            s->replace_pending = true;
            start_next_replacement();
        }
        break;
    default:
        break;
    }
}

static void describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "ended (status 0x%x)", status);
}

/* The old process of slot s (the one being replaced) exited. */
static void old_exited(slot_t *s, pid_t pid, const char *how)
{
    srv__log_debug("manager", "old worker #%d pid %d %s", s->id, pid, how);
    if (s->kind == SRV_SLOT_TASK)
        srv__task_orphaned(s->id, s->old.gen);
    proc_close(&s->old);
    proc_reset(&s->old);
    s->old_kill_at = 0;
    if (M.replacing == s->id)
        M.replacing = -1;
    start_next_replacement(); /* this slot may have a recycle waiting */
}

/* The replacement in slot s died before it was ready: the reload stops, the old process goes
 * on serving as the slot's current one. (One that was ready already had the old one retired:
 * it is respawned like any crashed worker.) */
static void replacement_died(slot_t *s, const char *how)
{
    char why[200];
    snprintf(why, sizeof(why), "replacement worker %s before it was ready", how);
    if (!M.reload_failed)
        fail_replacement(s, why);
    s->cur = s->old;
    proc_reset(&s->old);
    s->old_kill_at = 0;
    srv__worker_stat_t *st = &srv__server.stats->workers[s->id];
    atomic_store(&st->pid, s->cur.pid);
    atomic_store(&st->state, SRV_WSTATE_READY);
    M.replacing = -1;
    start_next_replacement();
}

/* The current process of slot s died unplanned: respawn it, at once or after a delay (during
 * start-up, a custom process's restart_interval, or a back-off while it keeps dying before it
 * is ready). */
static void respawn_dead(slot_t *s, pid_t pid, const char *how, bool was_ready)
{
    srv__worker_stat_t *st = &srv__server.stats->workers[s->id];
    atomic_fetch_add(&st->respawns, 1);
    if (M.initial && !was_ready) {
        /* START_FAILED was sent if it could not load; the master stops us. */
        srv__log(SRV_LOG_ERROR, "manager", 0, "worker #%d pid %d %s during start-up", s->id, pid,
                 how);
        s->fails++;
        s->respawn_at = srv__mono_ms() + 1000;
        atomic_store(&st->state, SRV_WSTATE_BACKOFF);
        return;
    }
    if (s->kind == SRV_SLOT_PROCESS && was_ready) {
        int idx = srv__slot_process(s->id, NULL);
        int64_t delay = (int64_t)srv__server.cfg.process[idx].restart_interval * 1000;
        s->respawn_at = srv__mono_ms() + (delay > 0 ? delay : 1);
        atomic_store(&st->state, SRV_WSTATE_BACKOFF);
        srv__log(SRV_LOG_WARN, "manager", 0, "process %s #%d pid %d %s; restarting in %lld ms",
                 srv__server.cfg.process[idx].name, s->id, pid, how, (long long)delay);
        return;
    }
    if (was_ready) {
        srv__log(SRV_LOG_WARN, "manager", 0, "worker #%d pid %d %s; respawning", s->id, pid, how);
        spawn_or_backoff(s);
        return;
    }
    s->fails++;
    int64_t delay = 100LL << (s->fails < 7 ? s->fails : 7);
    if (delay > 10000)
        delay = 10000;
    s->respawn_at = srv__mono_ms() + delay;
    atomic_store(&st->state, SRV_WSTATE_BACKOFF);
    srv__log(SRV_LOG_WARN, "manager", 0,
             "worker #%d pid %d %s before it was ready (%d times in a row); "
             "respawning in %lld ms",
             s->id, pid, how, s->fails, (long long)delay);
}

/* Slot s is no longer in the configuration: its process ends and nobody replaces it. Process
 * mode's workers drain by themselves once the master shut their channels (it does when the
 * reload is done); every other kind is told. SIGKILL after max_wait_time. */
static void retire_slot(slot_t *s)
{
    srv__worker_stat_t *st = &srv__server.stats->workers[s->id];
    s->replace_pending = false;
    s->respawn_at = 0;
    if (s->cur.pid <= 0) {
        atomic_store(&st->state, SRV_WSTATE_EMPTY);
        return;
    }
    s->retiring = true;
    atomic_store(&st->state, SRV_WSTATE_STOPPING);
    if (srv__server.nreactors == 0 || s->kind != SRV_SLOT_WORKER)
        kill(s->cur.pid, SIGTERM);
    s->retire_kill_at = srv__mono_ms() + (int64_t)srv__server.cfg.max_wait_time * 1000 + 1000;
    srv__log(SRV_LOG_NOTICE, "manager", 0, "%s #%d pid %d is no longer configured; retiring it",
             srv__slot_kind_name(s->id), srv__slot_local_id(s->id), s->cur.pid);
}

/* The current process of slot s exited: tell the master, then (unless stopping) put the old
 * process back or respawn. */
static void cur_exited(slot_t *s, pid_t pid, int status, const char *how)
{
    bool was_ready = s->cur.ready;
    if (s->kind == SRV_SLOT_TASK)
        srv__task_orphaned(s->id, s->cur.gen);
    proc_close(&s->cur);
    proc_reset(&s->cur);
    srv__worker_stat_t *st = &srv__server.stats->workers[s->id];
    atomic_store(&st->pid, 0);
    send_master(SRV_CTL_WORKER_EXIT, s->id, pid, status, 0, NULL, NULL, 0);
    if (s->retiring && !M.stopping && srv__slot_active(s->id)) {
        /* A later reload configured the slot again while it drained: a fresh process. */
        s->retiring = false;
        s->retire_kill_at = 0;
        spawn_or_backoff(s);
    } else if (M.stopping || s->retiring) {
        atomic_store(&st->state, SRV_WSTATE_EMPTY);
        s->retiring = false;
        s->retire_kill_at = 0;
    } else if (s->old.pid > 0 && !was_ready)
        replacement_died(s, how);
    else
        respawn_dead(s, pid, how, was_ready);
}

/* What a process said before it exited (a start-up failure's reason) is read before its exit
 * is handled: the exit may be reaped in the same loop turn the message arrived in. */
static void drain_msgs(slot_t *s, proc_t *p)
{
    struct pollfd q = {.fd = p->ctl, .events = POLLIN};
    while (p->ctl >= 0 && poll(&q, 1, 0) > 0 && (q.revents & (POLLIN | POLLHUP))) {
        handle_worker_msg(s, p);
        q.fd = p->ctl;
    }
}

/* Collect every child that exited (SIGCHLD only wakes the loop). */
static void reap(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        srv__watchdog_forget(pid);
        char how[96];
        describe_status(status, how, sizeof(how));
        for (int i = 0; i < M.nslots; i++) {
            slot_t *s = &M.slots[i];
            if (s->old.pid == pid) {
                drain_msgs(s, &s->old);
                old_exited(s, pid, how);
                break;
            }
            if (s->cur.pid == pid) {
                drain_msgs(s, &s->cur);
                cur_exited(s, pid, status, how);
                break;
            }
        }
    }
}

static void begin_stop(void)
{
    if (M.stopping)
        return;
    M.stopping = true;
    M.stop_kill_at = srv__mono_ms() + (int64_t)srv__server.cfg.max_wait_time * 1000 + 500;
    for (int i = 0; i < M.nslots; i++) {
        slot_t *s = &M.slots[i];
        s->replace_pending = false;
        if (s->cur.pid > 0) {
            atomic_store(&srv__server.stats->workers[s->id].state, SRV_WSTATE_STOPPING);
            kill(s->cur.pid, SIGTERM);
        }
        if (s->old.pid > 0)
            kill(s->old.pid, SIGTERM);
    }
}

static bool all_gone(void)
{
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i].cur.pid > 0 || M.slots[i].old.pid > 0)
            return false;
    return true;
}

static void forward_signal(int sig)
{
    for (int i = 0; i < M.nslots; i++) {
        if (M.slots[i].cur.pid > 0)
            kill(M.slots[i].cur.pid, sig);
        if (M.slots[i].old.pid > 0)
            kill(M.slots[i].old.pid, sig);
    }
}

/* code 0: every process; 1: task workers; 2: every process, with the new configuration the
 * master left in srv__server.next_cfg. Slots it adds start and slots it removes retire once
 * the replacements all succeeded (finish_reload). */
static void begin_reload(int code)
{
    M.reload_active = true;
    M.reload_failed = false;
    M.reload_err[0] = '\0';
    M.cfg_changed = code == 2;
    M.rolling_back = false;
    for (int i = 0; i < M.nslots; i++) {
        M.slots[i].reloaded = false;
        M.slots[i].grow_pending = !srv__slot_active(i); /* for now: "was idle" */
    }
    if (M.cfg_changed) {
        g_old_cfg = srv__server.cfg;
        srv__server.cfg = *srv__server.next_cfg;
        apply_log_settings(g_old_cfg.log_file);
    }
    srv__log(SRV_LOG_NOTICE, "manager", 0, "reloading %s%s", code == 1 ? "task workers" : "workers",
             M.cfg_changed ? " with the new configuration" : "");
    for (int i = 0; i < M.nslots; i++) {
        slot_t *s = &M.slots[i];
        bool idle_before = s->grow_pending, active = srv__slot_active(i);
        s->grow_pending = M.cfg_changed && active && idle_before;
        s->replace_pending = active && !idle_before && (code != 1 || s->kind == SRV_SLOT_TASK);
    }
    start_next_replacement();
}

static void handle_master_msg(void)
{
    srv__ctl_msg_t m;
    int rc = srv__ctl_recv(M.master_fd, &m, NULL, 0);
    if (rc == -EAGAIN)
        return;
    if (rc < 0) {
        /* The master is gone (even SIGKILL): take the whole tree down, leave no orphans. */
        if (!M.stopping)
            srv__log(SRV_LOG_WARN, "manager", 0, "master went away; stopping workers");
        begin_stop();
        M.stop_kill_at = srv__mono_ms() + 1000;
        close(M.master_fd);
        M.master_fd = -1;
        return;
    }
    switch (m.type) {
    case SRV_CTL_RELOAD:
        if (M.reload_active || M.replacing >= 0) {
            send_master(SRV_CTL_RELOAD_DONE, -1, 0, 1, 0, "a reload is already running", NULL, 0);
            break;
        }
        begin_reload(m.code);
        break;
    case SRV_CTL_STOP:
        begin_stop();
        break;
    case SRV_CTL_REOPEN_LOG:
        srv__log_reopen();
        forward_signal(SIGRTMIN);
        break;
    default:
        break;
    }
}

/* The watchdog's graceful replacement (max_worker_rss): like a max_request recycle. */
static bool watchdog_recycle(int slot)
{
    if (slot < 0 || slot >= M.nslots)
        return false;
    slot_t *s = &M.slots[slot];
    if (M.stopping || s->replace_pending || s->cur.pid <= 0 || s->old.pid > 0)
        return false;
    s->replace_pending = true;
    start_next_replacement();
    return true;
}

static int64_t next_deadline(void)
{
    int64_t d = srv__watchdog_deadline();
    for (int i = 0; i < M.nslots; i++) {
        slot_t *s = &M.slots[i];
        if (s->respawn_at && (d < 0 || s->respawn_at < d))
            d = s->respawn_at;
        if (s->old_kill_at && (d < 0 || s->old_kill_at < d))
            d = s->old_kill_at;
        if (s->retire_kill_at && (d < 0 || s->retire_kill_at < d))
            d = s->retire_kill_at;
    }
    if (M.stopping && (d < 0 || M.stop_kill_at < d))
        d = M.stop_kill_at;
    return d;
}

static void run_deadlines(void)
{
    int64_t now = srv__mono_ms();
    srv__watchdog_run(now, watchdog_recycle);
    for (int i = 0; i < M.nslots; i++) {
        slot_t *s = &M.slots[i];
        if (s->respawn_at && now >= s->respawn_at) {
            s->respawn_at = 0;
            if (!M.stopping)
                spawn_or_backoff(s);
        }
        if (s->old_kill_at && now >= s->old_kill_at && s->old.pid > 0) {
            srv__log(SRV_LOG_WARN, "manager", 0,
                    "old worker #%d pid %d still busy after max_wait_time; killing it", s->id,
                    s->old.pid);
            kill(s->old.pid, SIGKILL);
            s->old_kill_at = 0;
        }
        if (s->retire_kill_at && now >= s->retire_kill_at && s->cur.pid > 0) {
            srv__log(SRV_LOG_WARN, "manager", 0,
                     "retired %s #%d pid %d still busy after max_wait_time; killing it",
                     srv__slot_kind_name(s->id), srv__slot_local_id(s->id), s->cur.pid);
            kill(s->cur.pid, SIGKILL);
            s->retire_kill_at = 0;
        }
    }
    if (M.stopping && now >= M.stop_kill_at) {
        for (int i = 0; i < M.nslots; i++) {
            slot_t *s = &M.slots[i];
            if (s->cur.pid > 0) {
                srv__log(SRV_LOG_WARN, "manager", 0,
                        "worker #%d pid %d did not stop within max_wait_time; killing it", s->id,
                        s->cur.pid);
                kill(s->cur.pid, SIGKILL);
            }
            if (s->old.pid > 0)
                kill(s->old.pid, SIGKILL);
        }
        M.stop_kill_at = now + 1000;
    }
}

/* Stop on TERM and INT; pass RTMIN (reopen the log) on. SIGCHLD only wakes the loop, which
 * reaps after every wake-up; USR1/USR2 go to the master, which asks us to reload. */
static void on_signal(int sig, void *arg)
{
    (void)arg;
    if (sig == SIGTERM || sig == SIGINT)
        begin_stop();
    else if (sig == SIGRTMIN) {
        srv__log_reopen();
        forward_signal(SIGRTMIN);
    }
}

/* The manager's state, its signals and its slots (no process started yet). Exits the process
 * when it cannot run. */
static void manager_init(int master_fd)
{
    srv__server_t *S = &srv__server;
    srv__log_set_role("manager", -1);
    prctl(PR_SET_NAME, "srv: manager");
    /* The master might die without telling us (SIGKILL): our channel then reads EOF. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    atomic_store(&S->stats->manager_pid, getpid());
    memset(&M, 0, sizeof(M));
    M.master_fd = master_fd;
    M.replacing = -1;
    M.initial = true;
    srv__watchdog_init();

    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGRTMIN};
    M.sig_fd = srv__signals_open(sigs, (int)(sizeof(sigs) / sizeof(sigs[0])));
    if (M.sig_fd < 0) {
        srv__log(SRV_LOG_ERROR, "manager", M.sig_fd, "signalfd");
        _exit(1);
    }

    M.nslots = S->nslots;
    M.slots = calloc((size_t)M.nslots, sizeof(slot_t));
    if (M.slots == NULL)
        _exit(1);
    for (int i = 0; i < M.nslots; i++) {
        M.slots[i].id = i;
        M.slots[i].kind = srv__slot_kind(i);
        proc_reset(&M.slots[i].cur);
        proc_reset(&M.slots[i].old);
    }
}

/* Where each descriptor sits in the loop's poll set: then two per slot, current and old. */
enum { PFD_SIG, PFD_MASTER, PFD_SLOTS };

/* Fill the poll set (PFD_SLOTS + 2 * nslots entries); *timeout runs to the next deadline
 * (respawn, kill), at most a minute. Returns the number of entries. */
static int poll_set(struct pollfd *pfd, int *timeout)
{
    int n = 0;
    pfd[n++] = (struct pollfd){.fd = M.sig_fd, .events = POLLIN};
    pfd[n++] = (struct pollfd){.fd = M.master_fd, .events = POLLIN};
    for (int i = 0; i < M.nslots; i++) {
        pfd[n++] = (struct pollfd){.fd = M.slots[i].cur.ctl, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = M.slots[i].old.ctl, .events = POLLIN};
    }
    int64_t d = next_deadline();
    *timeout = -1;
    if (d >= 0) {
        int64_t left = d - srv__mono_ms();
        *timeout = left < 0 ? 0 : (int)(left > 60000 ? 60000 : left);
    }
    return n;
}

/* Act on what poll reported: signals, the master, the processes' status messages. */
static void poll_dispatch(const struct pollfd *pfd)
{
    if (pfd[PFD_SIG].revents)
        srv__signals_drain(M.sig_fd, on_signal, NULL);
    if (pfd[PFD_MASTER].revents)
        handle_master_msg();
    for (int i = 0; i < M.nslots; i++) {
        slot_t *s = &M.slots[i];
        if (pfd[PFD_SLOTS + 2 * i].revents && s->cur.ctl >= 0)
            handle_worker_msg(s, &s->cur);
        if (pfd[PFD_SLOTS + 2 * i + 1].revents && s->old.ctl >= 0)
            handle_worker_msg(s, &s->old);
    }
}

void srv__manager_main(int master_fd)
{
    if (srv__priv_drop_manager(&srv__server.cfg) < 0) /* before PDEATHSIG: a drop clears it */
        _exit(SRV_EXIT_FAILURE);
    manager_init(master_fd);
    M.initial_target = srv__server_active_slots();
    for (int i = 0; i < M.nslots; i++)
        if (srv__slot_active(i))
            spawn_or_backoff(&M.slots[i]);
    struct pollfd *pfd = calloc((size_t)M.nslots * 2 + PFD_SLOTS, sizeof(struct pollfd));
    if (pfd == NULL)
        _exit(1);
    for (;;) {
        if (M.stopping && all_gone())
            break;
        int timeout;
        int n = poll_set(pfd, &timeout);
        int rc = poll(pfd, (nfds_t)n, timeout);
        if (rc < 0 && errno != EINTR) {
            srv__log(SRV_LOG_ERROR, "manager", errno, "poll");
            break;
        }
        if (rc > 0)
            poll_dispatch(pfd);
        reap();
        run_deadlines();
    }
    srv__log(SRV_LOG_NOTICE, "manager", 0, "all workers stopped");
    free(pfd);
    free(M.slots);
    _exit(0);
}
