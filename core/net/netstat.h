/* What an engine counts per listener, in shared memory for /metrics and `srv info`: requests
 * by status class and their durations, connections open by protocol, bytes, WebSocket
 * messages. Each engine (a reactor thread, or a base-mode worker) has its own block per
 * listener and is its only writer, so a count is a plain load and store, never a locked add;
 * readers add the blocks of every engine up. */
#ifndef SRV_NETSTAT_H
#define SRV_NETSTAT_H

#include <stdatomic.h>
#include <stdint.h>

/* Upper bounds of the request duration histogram, in microseconds; one more bucket: +Inf. */
#define SRV_NETSTAT_BOUNDS                                                                         \
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,      \
        10000000
#define SRV_NETSTAT_NBOUNDS 13

/* The protocols a connection is counted under (srv_connections{protocol}). */
enum { SRV_NETSTAT_HTTP, SRV_NETSTAT_H2, SRV_NETSTAT_WS, SRV_NETSTAT_TCP, SRV_NETSTAT_NPROTO };

typedef struct srv__netstat {
    _Atomic uint64_t requests[5];                       /* answered, by status class 1xx..5xx */
    _Atomic uint64_t duration[SRV_NETSTAT_NBOUNDS + 1]; /* per bucket (not cumulative) */
    _Atomic uint64_t duration_us;                       /* sum */
    _Atomic uint64_t accepted, refused, bytes_in, bytes_out, ws_in, ws_out;
    _Atomic int64_t open[SRV_NETSTAT_NPROTO];
} srv__netstat_t;

/* The engine's own counters: add without a locked instruction (one writer). */
static inline void srv__netstat_add(_Atomic uint64_t *c, uint64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static inline void srv__netstat_open(_Atomic int64_t *g, int64_t d)
{
    atomic_store_explicit(g, atomic_load_explicit(g, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

#endif
