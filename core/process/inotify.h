/* Development reloads (inotify_reload): the master watches the app module, the config file and
 * inotify_reload_paths, and asks for one reload after 300 ms without a change. */
#ifndef SRV_INOTIFY_H
#define SRV_INOTIFY_H

#include <poll.h>
#include <stdint.h>

#include "config/config.h"

/* Watch what cfg names (nothing unless cfg->inotify_reload). Again after each reload that
 * changed the configuration: the old watches go. Returns 0 or -errno (logged). */
int srv__inotify_open(const srv__config_t *cfg);
void srv__inotify_close(void);
/* The master's poll entry (fd -1 when off), and its deadline: the end of the quiet period. */
void srv__inotify_poll(struct pollfd *pfd, int64_t *wake);
/* Read the events; true when the quiet period ended (now_ms): reload now. While busy (a
 * reload runs) the reload waits for another quiet period. */
bool srv__inotify_dispatch(const struct pollfd *pfd, int64_t now_ms, bool busy);

#endif
