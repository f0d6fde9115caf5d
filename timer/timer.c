/* App timers of this process (srv_timer_*); see timer.h. */
#include "timer/timer.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "srv/srv.h"
#include "timer/timers.h"

static struct {
    srv__timers_t timers;
    bool init;
    _Atomic int64_t *gauge; /* where the count of timers pending is published */
} T;

static void publish(void)
{
    if (T.gauge)
        atomic_store_explicit(T.gauge, T.init ? (int64_t)srv__timers_count(&T.timers) : 0,
                              memory_order_relaxed);
}

void srv__timer_set_gauge(_Atomic int64_t *gauge)
{
    T.gauge = gauge;
    publish();
}

/* Each app timer's callback and argument, found by id when it fires or is cleared. */
typedef struct tctx {
    struct tctx *next;
    uint64_t id;
    srv_timer_fn cb;
    void *arg;
    bool repeat;
} tctx_t;

#define TBUCKETS 4096
static tctx_t *g_tctx[TBUCKETS];

static tctx_t **tctx_find(uint64_t id)
{
    tctx_t **pp = &g_tctx[id % TBUCKETS];
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->next;
    return pp;
}

static void tctx_drop(uint64_t id)
{
    tctx_t **pp = tctx_find(id);
    tctx_t *c = *pp;
    if (c) {
        *pp = c->next;
        free(c);
    }
}

static void timer_fire(srv__timers_t *t, uint64_t id, void *arg)
{
    tctx_t *c = *tctx_find(id);
    if (c == NULL)
        return;
    srv_timer_fn cb = c->cb;
    void *a = c->arg;
    if (!c->repeat)
        tctx_drop(id);
    cb(id, a);
}

static int64_t timer_add(uint64_t ms, bool repeat, srv_timer_fn cb, void *arg)
{
    if (cb == NULL || (repeat && ms == 0) || ms > (uint64_t)(INT64_MAX / 1000000) / 2)
        return -EINVAL;
    if (!T.init) {
        srv__timers_init(&T.timers);
        T.init = true;
    }
    tctx_t *c = malloc(sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    uint64_t id = srv__timers_add(&T.timers, srv__timers_now_ns(), ms, repeat, timer_fire, NULL);
    if (id == 0) {
        free(c);
        return -ENOMEM;
    }
    *c = (tctx_t){.id = id, .cb = cb, .arg = arg, .repeat = repeat};
    c->next = g_tctx[id % TBUCKETS];
    g_tctx[id % TBUCKETS] = c;
    publish();
    return (int64_t)id;
}

int64_t srv_timer_after(uint64_t ms, srv_timer_fn cb, void *arg)
{
    return timer_add(ms, false, cb, arg);
}

int64_t srv_timer_tick(uint64_t ms, srv_timer_fn cb, void *arg)
{
    return timer_add(ms, true, cb, arg);
}

int srv_timer_clear(uint64_t id)
{
    if (!T.init)
        return -ENOENT;
    int rc = srv__timers_clear(&T.timers, id);
    if (rc == 0)
        tctx_drop(id);
    publish();
    return rc;
}

int srv__timer_timeout(void)
{
    if (!T.init || srv__timers_count(&T.timers) == 0)
        return -1;
    return srv__timers_timeout_ms(&T.timers, srv__timers_now_ns());
}

void srv__timer_run(void)
{
    if (T.init) {
        srv__timers_run(&T.timers, srv__timers_now_ns());
        publish();
    }
}
