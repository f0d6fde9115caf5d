/* Reactor threads (process mode): each owns one event loop, accepts and serves connections,
 * and exchanges framed messages with every worker over its own channel to that worker. */
#ifndef SRV_REACTOR_H
#define SRV_REACTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

/* Start S->nreactors threads serving with cfg (the caller keeps it alive until the reactors
 * took another and stopped). Called by the master after the manager was forked. */
int srv__reactors_start(const srv__config_t *cfg);
/* A reload: every reactor follows cfg from its next wake-up (same lifetime rule). */
void srv__reactors_set_cfg(const srv__config_t *cfg);
/* True once every reactor took cfg (an older one may then be freed). */
bool srv__reactors_cfg_taken(const srv__config_t *cfg);
/* Hand reactor r its channel (fd) and the channel's descriptor socket (fdsock) to the process
 * now serving worker slot `slot` (master thread). The reactor closes the previous channel's
 * write side so the old process drains and exits. fd -1: the slot was retired by a reload;
 * its channel drains and none takes its place. */
void srv__reactor_post_channel(int r, int slot, uint32_t gen, int fd, int fdsock);
/* Stop accepting new connections (graceful stop, first step). */
void srv__reactors_stop_accepting(void);
/* Requests handed to workers and not answered yet, over all reactors. */
uint64_t srv__reactors_inflight(void);
/* Close every connection, stop the loops and join the threads. */
void srv__reactors_stop(void);
/* Backend name the reactors run ("io_uring"/"epoll"), "" before start. */
const char *srv__reactors_backend(void);

#endif
