/* Privilege drop ([server] user, group, chroot): the master opens what needs root (listeners,
 * pid file, control socket, logs), hands the files it created to the user, and drops; the
 * manager chroots (when asked) and drops before it forks anyone, so every process of the tree
 * runs as the user with no way back. */
#ifndef SRV_PROCESS_PRIV_H
#define SRV_PROCESS_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

/* At start, before anything is created: user and group must exist, and a process not started
 * as root may only name its own user and group (nothing to drop) and no chroot. Returns 0, or
 * -errno with the reason in err ("user = ... needs ..."). */
int srv__priv_check(const srv__config_t *cfg, char *err, size_t len);

/* The master, once it holds every listener, the pid file (pid_fd), the control socket
 * (ctl_path) and the logs: give those files to the user (so `srv stop/reload/info` run as the
 * user work), then drop. Does nothing when there is nothing to drop. Returns 0 or -errno
 * (logged): the server must not serve then. */
int srv__priv_drop_master(const srv__config_t *cfg, int pid_fd, const char *ctl_path);

/* The manager, before it forks anyone: chroot into cfg->chroot when set, then drop. Returns 0
 * or -errno (logged). */
int srv__priv_drop_manager(const srv__config_t *cfg);

#endif
