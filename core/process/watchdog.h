/* The manager's watchdog: request_timeout and task_timeout (a worker still busy past its
 * limit is killed; the manager replaces it like any dead worker) and max_worker_rss (a worker
 * above it is replaced gracefully, like a max_request recycle). Settings are read from
 * srv__server.cfg at each check, so a reload applies them. */
#ifndef SRV_PROCESS_WATCHDOG_H
#define SRV_PROCESS_WATCHDOG_H

#include <stdbool.h>
#include <stdint.h>

/* Start the checks (the manager, once). */
void srv__watchdog_init(void);
/* pid was reaped: no SIGKILL may follow for it (the number could be another process's soon). */
void srv__watchdog_forget(int pid);
/* When the next check is due (monotonic ms), or -1 when no limit is set. */
int64_t srv__watchdog_deadline(void);
/* Run the checks that are due. recycle(slot) asks the manager for a graceful replacement of
 * that slot's current process; it returns false when one is already under way. */
void srv__watchdog_run(int64_t now, bool (*recycle)(int slot));

#endif
