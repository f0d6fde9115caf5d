/* Private to core/loop*.c: the loop object's shared part and the table of operations each
 * backend implements (like redis's aeApi* set or nginx's ngx_event_actions_t). loop.c checks
 * arguments and forwards; the backend files never see each other. */
#ifndef SRV_LOOP_INTERNAL_H
#define SRV_LOOP_INTERNAL_H

#include <stdatomic.h>

#include <stdbool.h>
#include <time.h>

#include "core/loop/loop.h"

enum {
    SRV__OP_NONE = 0,
    SRV__OP_ACCEPT,
    SRV__OP_RECV,
    SRV__OP_SEND,
    SRV__OP_POLL,
    SRV__OP_TIMER,
};

typedef struct srv__loop_backend {
    const char *name;
    /* Allocate the backend's loop (which embeds srv__loop_t first) and call srv__loop_base_init.
     * On failure write a readable reason into why (size whylen) and return -errno. */
    int (*create)(srv__loop_t **out, const srv__loop_opts_t *opts, char *why, size_t whylen);
    void (*destroy)(srv__loop_t *loop);
    int (*accept)(srv__loop_t *loop, srv__loop_op_t *op);
    int (*recv)(srv__loop_t *loop, srv__loop_op_t *op);
    int (*send)(srv__loop_t *loop, srv__loop_op_t *op);
    int (*poll)(srv__loop_t *loop, srv__loop_op_t *op);
    int (*timer)(srv__loop_t *loop, srv__loop_op_t *op); /* op->deadline_ns is set */
    int (*cancel)(srv__loop_t *loop, srv__loop_op_t *op);
    int (*run)(srv__loop_t *loop, int timeout_ms);
} srv__loop_backend_t;

extern const srv__loop_backend_t srv__loop_uring;
extern const srv__loop_backend_t srv__loop_epoll;

struct srv__loop {
    const srv__loop_backend_t *be;
    int64_t now_ns;
    int wake_fd;             /* eventfd, non-blocking */
    atomic_int wake_pending; /* set by srv__loop_wake before it writes, cleared by the loop */
    void (*wake_cb)(srv__loop_t *loop, void *arg);
    void *wake_arg;
    srv__loop_opts_t opts;
    char fallback[192];
};

/* Shared set-up/tear-down of the base part (eventfd, clock, options). */
int srv__loop_base_init(srv__loop_t *loop, const srv__loop_backend_t *be,
                        const srv__loop_opts_t *opts);
void srv__loop_base_fini(srv__loop_t *loop);

/* Fresh CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall). */
static inline int64_t srv__loop_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void srv__loop_update_now(srv__loop_t *loop)
{
    loop->now_ns = srv__loop_clock();
}

/* The eventfd was drained: clear the pending flag, then run the wake callback. Order matters: a
 * waker that saw the flag still set skipped its write, so the flag is cleared only after the
 * read, and the exchange gives the callback the waker's earlier stores. */
static inline void srv__loop_woken(srv__loop_t *loop)
{
    atomic_exchange(&loop->wake_pending, 0);
    if (loop->wake_cb)
        loop->wake_cb(loop, loop->wake_arg);
}

/* An accept(2) error that leaves the listener usable (see loop.c). */
bool srv__loop_accept_transient(int err);

#endif
