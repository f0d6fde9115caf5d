/* The systemd notification protocol (sd_notify), spoken by the master: READY, RELOADING,
 * STOPPING, STATUS and WATCHDOG datagrams to $NOTIFY_SOCKET. Does nothing without it. */
#ifndef SRV_CORE_PROCESS_NOTIFY_H
#define SRV_CORE_PROCESS_NOTIFY_H

#include <stdint.h>

/* Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID and remove them from the environment (no
 * child inherits them). Call in the final master process (after daemonizing), before forks. */
void srv__notify_init(void);

/* Every worker is ready: READY=1, MAINPID and STATUS. */
void srv__notify_ready(void);

/* A reload starts: RELOADING=1 and MONOTONIC_USEC. */
void srv__notify_reload_begin(void);

/* The reload is over (applied, refused or rolled back): READY=1 and STATUS. */
void srv__notify_reload_end(void);

/* srv__notify_reload_end() when reply (a reload's refusal) is not NULL; returns reply. */
const char *srv__notify_reload_refused(const char *reply);

/* The server stops: STOPPING=1. */
void srv__notify_stopping(void);

/* The master's loop: *wake (monotonic ms) no later than the next watchdog ping or status
 * refresh; srv__notify_tick sends those that are due. */
void srv__notify_next(int64_t *wake);
void srv__notify_tick(int64_t now_ms);

#endif
