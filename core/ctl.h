/* The control channel: a unix socket next to the pid file (mode 0600) through which
 * `srv info|reload|stop` talk to the master and get an answer, not just a signal. */
#ifndef SRV_CTL_H
#define SRV_CTL_H

#include <stddef.h>

/* Master side: describe the running server (from the shared stats) into buf. */
void srv__info_json(char *buf, size_t cap);
void srv__info_text(char *buf, size_t cap);

/* Client side: send cmd (one line) to the server at path and read the whole reply into buf
 * (NUL-terminated). Waits at most timeout_ms. Returns reply length or -errno (-ECONNREFUSED /
 * -ENOENT: nobody listening; -ETIMEDOUT). */
int srv__ctl_request(const char *path, const char *cmd, char *buf, size_t cap, int timeout_ms);

#endif
