/* The master's side of the control socket: serves `srv info|reload|stop` on <pid_file>.sock
 * (mode 0600) from the master's poll loop, a bounded number of connections at once, never
 * blocking on a peer. What a command does to the server is the master's: it passes the
 * actions in. Master process only, main thread. */
#ifndef SRV_CTL_SERVE_H
#define SRV_CTL_SERVE_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

/* Control connections served at once. */
#define SRV_CTL_SERVE_CLIENTS 16
/* Poll entries srv__ctl_serve_poll() fills: the socket, then one per connection. */
#define SRV_CTL_SERVE_NPOLL (1 + SRV_CTL_SERVE_CLIENTS)

typedef struct srv__ctl_serve_ops {
    /* `srv stop`: begin a graceful stop (the connection has its "ok" already). */
    void (*stop)(void);
    /* `srv reload` (tasks false) or `srv reload tasks`: start the reload and return NULL (its
     * outcome goes to srv__ctl_serve_reload_done()), or return the reply line to send now. */
    const char *(*reload)(bool tasks);
    /* `srv reopen`: every process reopens its logs (the connection gets "ok"). */
    void (*reopen)(void);
} srv__ctl_serve_ops_t;

/* Listen at path (a stale socket file there is replaced: the caller holds the pid file).
 * ops is borrowed until srv__ctl_serve_close(). Returns 0 or -errno (-ENAMETOOLONG: path
 * does not fit a unix socket address). */
int srv__ctl_serve_open(const char *path, const srv__ctl_serve_ops_t *ops);

/* Set a descriptor aside for accepting when every other one is taken (issue 11). Call after
 * forking the children that must not inherit it. */
void srv__ctl_serve_reserve(void);

/* Fill pfd[0 .. SRV_CTL_SERVE_NPOLL - 1] for poll(), closing connections past their deadline
 * first; lowers *wake (monotonic ms) to the next deadline of ours. Returns the entries filled. */
int srv__ctl_serve_poll(struct pollfd *pfd, int64_t now, int64_t *wake);

/* Act on what poll() reported for the entries srv__ctl_serve_poll() filled: read commands,
 * send replies, accept new connections. */
void srv__ctl_serve_dispatch(const struct pollfd *pfd);

/* A reload finished: code 0 answers "ok" to every connection waiting for it, else
 * "error <code> <text>". */
void srv__ctl_serve_reload_done(int code, const char *text);

/* In a forked child: close every descriptor of ours, leaving the socket file in place. */
void srv__ctl_serve_drop(void);

/* Close every connection, the reserve and the socket, and remove the socket file. */
void srv__ctl_serve_close(void);

#endif
