/* Maintenance mode: `srv maintenance on|off` switches every HTTP listener to answering 503
 * (with Retry-After and a message) except for the path prefixes of maintenance_allow. The state
 * lives in the shared region, so reactor threads and base-mode workers see it at once and it
 * outlives reloads (not restarts). The master is its only writer; readers on the request path
 * pay one relaxed load while it is off. */
#ifndef SRV_MAINT_H
#define SRV_MAINT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "srv/srv.h"

/* Longest message (the 503's body), in bytes. */
#define SRV_MAINT_MSG_MAX 1024
/* The body when the operator gave no message. */
#define SRV_MAINT_DEFAULT_MSG "the service is down for maintenance"

/* What a reader copies out (a consistent snapshot). */
typedef struct srv__maint_state {
    bool on;
    int retry_after;   /* seconds; -1: no Retry-After header */
    int64_t since_ms;  /* wall clock ms it was turned on; 0 while off */
    uint64_t answered; /* requests answered 503 for it since the server started */
    size_t msg_len;
    char msg[SRV_MAINT_MSG_MAX + 1];
} srv__maint_state_t;

/* Bytes of the shared region srv__maint_create() takes. */
size_t srv__maint_region_size(const srv__config_t *cfg);
/* Master, before any fork: take the state from the shared region (off). Returns 0 or -ENOMEM. */
int srv__maint_create(const srv__config_t *cfg);

/* Master only: switch on (retry_after -1: none; msg NULL or empty: the default) or off. Returns
 * 0, or -EINVAL (a message too long or with a control character), -ENODEV (no region). */
int srv__maint_set(bool on, int retry_after, const char *msg);

/* Whether maintenance is on: the request path's test, one relaxed load. */
extern _Atomic uint32_t *srv__maint_flag;
static inline bool srv__maint_on(void)
{
    return srv__maint_flag != NULL &&
           atomic_load_explicit(srv__maint_flag, memory_order_relaxed) != 0;
}

/* A consistent copy of the state (all zero, off, when there is no region). */
void srv__maint_get(srv__maint_state_t *out);

/* Whether a request for path is let through (a prefix of maintenance_allow in cfg). */
bool srv__maint_allows(const srv__config_t *cfg, srv_str_t path);

/* The request path's whole question: true when the request must get the maintenance answer. */
static inline bool srv__maint_blocks(const srv__config_t *cfg, srv_str_t path)
{
    return srv__maint_on() && !srv__maint_allows(cfg, path);
}

/* Write the maintenance answer (HTTP/1.1 503, Retry-After, the message as a text/plain body)
 * with extra_headers ("Name: value\r\n" lines, e.g. X-Request-Id) into buf, and count it.
 * Returns the bytes, or -ENOSPC. buf of SRV_MAINT_RESPONSE_MAX bytes always suffices. */
#define SRV_MAINT_RESPONSE_MAX (SRV_MAINT_MSG_MAX + 1024)
int srv__maint_response(char *buf, size_t cap, bool keep_alive, srv_str_t extra_headers);

#endif
