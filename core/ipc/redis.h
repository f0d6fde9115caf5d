/* One asynchronous Redis connection (hiredis's async API) driven by srv's own event loop: no
 * thread per call, nothing that blocks the loop's owner (a reactor, a worker, a task worker).
 * It connects, authenticates (redis_password) and selects redis_db by itself; when Redis goes
 * away it reconnects with exponential back-off and jitter, and meanwhile every command is
 * refused at once (-ENOTCONN), counted, and logged at most once a second, so local work goes on.
 * Commands queued but not yet written are bounded in bytes (-EAGAIN beyond, also counted).
 * Pub/sub: a connection that subscribes is for that (hiredis's rule); its owner subscribes
 * again from on_up after every reconnect. One connection belongs to its loop's thread. */
#ifndef SRV_IPC_REDIS_H
#define SRV_IPC_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "core/loop/loop.h"

typedef struct srv__redis srv__redis_t;

/* A command's reply: NULL when the connection failed before it came (the command may or may not
 * have run). The reply is hiredis's and valid only during the call. For SUBSCRIBE the callback
 * runs for the subscription's confirmation and then for every message. */
typedef void (*srv__redis_cb)(srv__redis_t *r, const redisReply *reply, void *arg);

typedef struct srv__redis_opts {
    const char *addr;       /* "host:port", "[v6]:port" or a unix socket path */
    const char *password;   /* NULL or "": no AUTH */
    int db;                 /* SELECT db when > 0 */
    const char *name;       /* for the log lines ("worker#3", "task worker#0", ...) */
    size_t max_pending;     /* bytes of commands not yet written; default 8 MiB */
    int connect_timeout_ms; /* default 2000 */
    int backoff_min_ms;     /* first retry after a failure; default 100 */
    int backoff_max_ms;     /* retries never further apart than this; default 5000 */
    /* Connected (and authenticated, db selected): subscribe here. Lost: every command in
     * flight has had its callback with NULL first. Both optional. */
    void (*on_up)(srv__redis_t *r, void *arg);
    void (*on_down)(srv__redis_t *r, const char *why, void *arg);
    void *arg;
} srv__redis_opts_t;

typedef struct srv__redis_stats {
    uint64_t sent;     /* commands queued for Redis */
    uint64_t refused;  /* commands refused while down (-ENOTCONN) */
    uint64_t overflow; /* commands refused over max_pending (-EAGAIN) */
    uint64_t failed;   /* commands whose reply never came (connection lost) */
    uint64_t connects; /* connections made (the first one included) */
    uint64_t losses;   /* connections lost or attempts that failed */
    size_t pending;    /* bytes of commands not yet written */
    bool up;
} srv__redis_stats_t;

/* Start connecting (the result comes through on_up / on_down from the loop). opts and its
 * strings are copied. Returns 0, -EINVAL (bad address), -ENOMEM. */
int srv__redis_create(srv__redis_t **out, srv__loop_t *loop, const srv__redis_opts_t *opts);

/* Disconnect: callbacks of commands in flight run with NULL. The memory goes once the loop has
 * finished with it (call srv__loop_run afterwards, or destroy the loop). NULL is a no-op. */
void srv__redis_destroy(srv__redis_t *r);

/* Queue one command (argv, with lengths; argvlen NULL: NUL-terminated strings). cb may be NULL
 * (fire and forget). Returns 0, -ENOTCONN (down: not sent), -EAGAIN (over max_pending: not
 * sent), -ENOMEM. */
int srv__redis_command(srv__redis_t *r, srv__redis_cb cb, void *arg, int argc, const char **argv,
                       const size_t *argvlen);

bool srv__redis_up(const srv__redis_t *r);
void srv__redis_stats(const srv__redis_t *r, srv__redis_stats_t *out);

/* "host:port", "[v6]:port" or a unix socket path: the host (or the path) into host, the port
 * (0 for a path) into *port. Returns 0 or -EINVAL. */
int srv__redis_addr_parse(const char *addr, char *host, size_t cap, int *port);

/* A blocking connection (connect and every command time out after timeout_ms), AUTH password
 * ("" or NULL: none) and SELECT db (> 0) done: for the few callers that may wait, such as a
 * cron job's own thread or the master at start. NULL with why set ("address is not host:port",
 * "cannot connect: ...", "AUTH refused: ...", "SELECT refused: ..."). */
redisContext *srv__redis_connect_sync(const char *addr, const char *password, int db,
                                      int timeout_ms, char *why, size_t len);

#endif
