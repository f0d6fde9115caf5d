/* What every process the manager forks does the same way: start-up (title, signals, mailbox,
 * app), its event loop, its status messages to the manager, and leaving. Workers, task workers,
 * the timer process and custom processes each have their own entry and call these. */
#ifndef SRV_CHILD_H
#define SRV_CHILD_H

#include <signal.h>

#include "core/loop/loop.h"
#include "srv/srv.h"

/* Status messages to the manager travel on ctl_fd as srv__ctl_msg_t with these types. */
enum {
    SRV_WMSG_READY = 100,   /* app loaded, on_worker_start returned 0 */
    SRV_WMSG_FAIL = 101,    /* could not start; text = why */
    SRV_WMSG_RECYCLE = 102, /* max_request reached: replace me */
};

/* The entry of one process kind, run in the child the manager just forked; never returns.
 * ctl_fd: the status socket to the manager. chans: a process-mode worker's ends of one channel
 * per reactor; none for every other kind. */
typedef void (*srv__child_main_fn)(int slot, int ctl_fd, const int *chans, int nchans)
    __attribute__((noreturn));

typedef struct srv__child_opts {
    const char *role;  /* in log lines and srv_worker_self()->role */
    int id;            /* srv_worker_self()->id */
    int log_id;        /* the #id in log lines, -1 for none */
    const char *title; /* the process name after "srv: " */
    /* Where the signal handler records what it was asked (the caller's flags, so its loop can
     * test them): stop on SIGTERM, SIGINT and SIGUSR1; reload too on SIGUSR1 (replaced by a
     * reload, not stopped); reopen on SIGRTMIN (the error log is reopened in the handler
     * itself, in every process; the flag is for the access log's writer). NULL reload: that
     * signal only stops. */
    volatile sig_atomic_t *stop;
    volatile sig_atomic_t *reload;
    volatile sig_atomic_t *reopen;
} srv__child_opts_t;

/* In a child just forked for slot: name it, tie its life to the manager's, catch the signals
 * above, open its mailbox (srv__msg_init) and load the app. A child that cannot start reports
 * why to the manager and exits (srv__child_fail). Returns the loaded app. */
const srv_app_t *srv__child_start(int slot, int ctl_fd, const srv__child_opts_t *o);
/* An event loop for this child on the configured backend, woken by the signal handler so a
 * stop is seen at once; fails the start-up when none can be made. */
srv__loop_t *srv__child_loop(void);
/* Tell the manager: type is SRV_WMSG_*, text a reason or NULL. */
void srv__child_tell(int type, const char *text);
/* Start-up failed: log why, tell the manager, exit with SRV_EXIT_APP. */
__attribute__((noreturn)) void srv__child_fail(const char *why);
/* Leaving: mark the slot stopping (unless it already belongs to a replacement) and run the
 * app's on_worker_stop. */
void srv__child_retire(const srv_app_t *app);

#endif
