/* The fenced Redis lock behind `global_lock = true` in [[cron]]: several srv instances run the
 * same job, and each beat runs on exactly one of them. A beat is a slot of time (the scheduled
 * minute of a crontab job; the scheduled time / interval_ms of an interval job, on the wall
 * clock, so instances agree). One script claims it atomically, with three keys per job
 * (hash-tagged {job}, so they share a Redis Cluster slot):
 *   srv:cron:{job}:last   the last beat claimed: a beat at or before it is lost (it ran, or an
 *                         instance that was paused or partitioned comes back late);
 *   srv:cron:{job}:lock   "<host>:<pid>:<token>" while a run is in progress, with a TTL (the
 *                         job's interval, at least 1 s): a beat while it is held is skipped
 *                         (busy: the previous run overran);
 *   srv:cron:{job}:fence  the fencing token, incremented by every claim won: runs are
 *                         numbered in the order they were granted, cluster-wide.
 * After the run the lock is released by compare-and-delete (a second script), so an instance
 * whose lock expired (it was paused past the TTL) never deletes another instance's lock.
 * Redis unreachable or answering an error: the beat is skipped on this instance (fail closed:
 * never twice), counted, and the caller logs it. One lock per job, used by the job's thread
 * only; the counters may be read from any thread. */
#ifndef SRV_TIMER_CRON_LOCK_H
#define SRV_TIMER_CRON_LOCK_H

#include <stddef.h>
#include <stdint.h>

typedef struct srv__cron_lock srv__cron_lock_t;

typedef struct srv__cron_lock_stats {
    uint64_t won;    /* beats this instance claimed (and ran) */
    uint64_t lost;   /* beats another instance had claimed */
    uint64_t busy;   /* beats skipped: the previous run (anywhere) still held the lock */
    uint64_t errors; /* beats skipped because Redis could not be asked */
    uint64_t stale;  /* runs that ended after their lock had expired (not ours to release) */
    int64_t token;   /* fencing token of this instance's latest claim (0: none yet) */
} srv__cron_lock_stats_t;

/* Where Redis is: the config's redis ("host:port" or a unix socket path), redis_password
 * ("" or NULL: no AUTH) and redis_db (SELECT when > 0). */
typedef struct srv__cron_lock_redis {
    const char *addr;
    const char *password;
    int db;
} srv__cron_lock_redis_t;

/* owner: who holds the lock (host:pid of this instance). ttl_ms: how long a run may hold the
 * lock (raised to 1 s). Connects lazily. NULL on ENOMEM. */
srv__cron_lock_t *srv__cron_lock_create(const srv__cron_lock_redis_t *where, const char *job,
                                      const char *owner, int64_t ttl_ms);
void srv__cron_lock_destroy(srv__cron_lock_t *l);

/* Claim slot: its fencing token (> 0: won, run the beat, then release), 0 when it is not ours
 * (claimed already, or the lock is busy), -EIO when Redis could not be asked (why in err,
 * NUL-terminated). Connect and command each time out after timeout_ms; after a failure the
 * next call reconnects. */
int64_t srv__cron_lock_claim(srv__cron_lock_t *l, int64_t slot, int timeout_ms, char *err,
                             size_t errlen);

/* After the run of the beat last claimed: delete the lock if it still holds our token. 1
 * released, 0 it was no longer ours (expired, maybe taken: counted as stale), -EIO as above
 * (the lock then expires by its TTL). */
int srv__cron_lock_release(srv__cron_lock_t *l, int timeout_ms, char *err, size_t errlen);

void srv__cron_lock_stats(const srv__cron_lock_t *l, srv__cron_lock_stats_t *out);

#endif
