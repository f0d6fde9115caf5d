/* The admin endpoint (admin_server): a small HTTP/1.1 server in the master's poll loop, never
 * in an app worker, so it answers while every worker is busy or stuck. GET /health, /info (the
 * JSON of `srv info --json`), /metrics (Prometheus text format 0.0.4) and / (the dashboard).
 * With admin_token set, /info and /metrics need `Authorization: Bearer TOKEN` (the page
 * and /health hold no data). A bounded
 * number of connections, each with a deadline, never blocking the master. Master process
 * only, main thread. */
#ifndef SRV_ADMIN_H
#define SRV_ADMIN_H

#include <poll.h>
#include <stdint.h>

#define SRV_ADMIN_CLIENTS 32
/* Poll entries srv__admin_poll() fills: the socket, then one per connection. */
#define SRV_ADMIN_NPOLL (1 + SRV_ADMIN_CLIENTS)

typedef struct srv__admin_ops {
    /* "ok" while serving, "starting" or "stopping" (503). */
    const char *(*health)(void);
} srv__admin_ops_t;

/* Listen on addr ("127.0.0.1:9100", "[::1]:9100"). Returns 0 or -errno. */
int srv__admin_open(const char *addr, const srv__admin_ops_t *ops);
/* Fill pfd[0 .. SRV_ADMIN_NPOLL - 1] (entries of fd -1 when off), closing connections past
 * their deadline; lowers *wake (monotonic ms) to our next deadline. */
void srv__admin_poll(struct pollfd *pfd, int64_t now, int64_t *wake);
/* Act on what poll() reported for those entries. */
void srv__admin_dispatch(const struct pollfd *pfd);
/* In a forked child: close every descriptor of ours. */
void srv__admin_drop(void);
/* Close every connection and the socket. */
void srv__admin_close(void);

/* The dashboard page (dashboard.html, embedded at build time). */
extern const char srv__dashboard_html[];
extern const unsigned long srv__dashboard_html_len;

#endif
