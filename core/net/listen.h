/* Listening sockets: bound once by the master before any fork and inherited by everyone, so a
 * worker that exits (reload, crash) never takes the accept queue with it. */
#ifndef SRV_LISTEN_H
#define SRV_LISTEN_H

#include <stddef.h>

#include "config/config.h"

/* Bind and listen (or bind, for UDP) the socket for l; non-blocking, close-on-exec. A stale
 * unix socket file left by a dead server is removed first; a live one is -EADDRINUSE. A unix
 * socket file gets l->socket_mode, and is removed again if a step after bind() fails.
 * Returns the fd or -errno; *what names the failing call for the error message. */
int srv__listen_open(const srv__listen_config_t *l, const char **what);
/* "127.0.0.1:9501", "[::1]:80" or "unix:/path" into buf. */
const char *srv__listen_describe(const srv__listen_config_t *l, char *buf, size_t len);

#endif
