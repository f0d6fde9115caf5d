/* The Redis lock behind `global_lock = true` in [[cron]]: several srv instances run the same
 * job, and each beat runs on one of them. A beat is a slot of time (the scheduled minute of a
 * crontab job; wall-clock time / interval_ms for an interval job) and the instance that first
 * does SET srv:cron:<job>:<slot> <host>:<pid> NX PX <ttl> runs it; the others skip it. Redis
 * unreachable or answering an error: the beat is skipped on this instance (fail closed: never
 * twice), counted, and the caller logs it. One lock per job, used by the job's thread only;
 * the counters may be read from any thread. */
#ifndef SRV_TIMER_CRON_LOCK_H
#define SRV_TIMER_CRON_LOCK_H

#include <stddef.h>
#include <stdint.h>

typedef struct srv__cron_lock srv__cron_lock_t;

typedef struct srv__cron_lock_stats {
    uint64_t won;    /* beats this instance claimed (and ran) */
    uint64_t lost;   /* beats another instance had claimed */
    uint64_t errors; /* beats skipped because Redis could not be asked */
} srv__cron_lock_stats_t;

/* addr: "host:port" or a unix socket path (the config's redis). owner: what the key holds
 * (host:pid of this instance). ttl_ms: how long a claim lives; it must cover the clock skew
 * between instances. Connects lazily. NULL on ENOMEM. */
srv__cron_lock_t *srv__cron_lock_create(const char *addr, const char *job, const char *owner,
                                      int64_t ttl_ms);
void srv__cron_lock_destroy(srv__cron_lock_t *l);

/* Claim slot: 1 won (run the beat), 0 another instance has it, -EIO when Redis could not be
 * asked (why in err, NUL-terminated). Connect and command each time out after timeout_ms;
 * after a failure the next claim reconnects. */
int srv__cron_lock_claim(srv__cron_lock_t *l, int64_t slot, int timeout_ms, char *err,
                         size_t errlen);

void srv__cron_lock_stats(const srv__cron_lock_t *l, srv__cron_lock_stats_t *out);

#endif
