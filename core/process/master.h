/* The master process: pid file, daemonizing, listeners and shared region before any fork,
 * the manager, reactor threads, signals and the control socket. */
#ifndef SRV_MASTER_H
#define SRV_MASTER_H

#include <stdbool.h>

#include "config/config.h"

/* Run a server with cfg (already loaded and valid). Returns the process exit code (SRV_EXIT_*);
 * with daemonize the calling process returns once the daemon reported ready or failed. */
int srv__master_run(const srv__config_t *cfg, bool daemonize);

#endif
