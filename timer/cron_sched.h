/* The cron engine the timer process runs: one long-lived thread per job, each sleeping until its
 * own due time (absolute, on CLOCK_MONOTONIC for interval jobs and CLOCK_REALTIME for crontab
 * jobs, timer slack 1 ns) and running the handler itself, so a slow job never delays another
 * and a job can never run twice at once: beats that fall due while it runs are skipped and
 * counted. Self-contained (libc + pthreads); the process only creates, starts and stops it. */
#ifndef SRV_TIMER_CRON_SCHED_H
#define SRV_TIMER_CRON_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/cron.h"

#define SRV_CRON_NAME_MAX 64

typedef struct srv__cron_sched srv__cron_sched_t;
typedef struct srv_cron_job srv_cron_job_t;

/* A job's handler, called on the job's own thread, never concurrently with itself. It may call
 * srv__cron_job_stop(job) to end the job, and should return soon once srv__cron_job_stopping(job)
 * turns true (graceful stop). */
typedef void (*srv__cron_fn)(srv_cron_job_t *job);

/* What srv__cron_sched_add() copies. Exactly one of interval_ms > 0 or schedule != NULL. */
typedef struct srv__cron_job_def {
    const char *name; /* copied, truncated to SRV_CRON_NAME_MAX - 1 bytes */
    srv__cron_fn fn;
    void *arg;                  /* returned by srv__cron_job_arg() */
    int64_t interval_ms;        /* > 0: due every interval_ms from start, drift-free */
    bool immediate;             /* also run once right at start */
    const srv__cron_t *schedule; /* crontab job (copied), wall-clock minutes; NULL otherwise */
    int64_t max_wait_ms;        /* this job's wait in srv__cron_sched_stop(s, -1) */
} srv__cron_job_def_t;

/* A snapshot of one job. Times: *_wall_ns are CLOCK_REALTIME ns since the epoch. */
typedef struct srv__cron_stats {
    uint64_t runs;
    uint64_t skips;             /* beats not run: due while the previous run was going, or missed
                                 * because the thread woke later than a whole interval */
    int64_t last_start_wall_ns; /* 0 = never ran */
    int64_t last_duration_ns;   /* of the last finished run */
    int64_t max_lateness_ns;    /* largest start - due over all runs */
    int64_t next_due_wall_ns;   /* -1 when the job will not run again */
    bool running;               /* the handler is executing now */
    bool stopped; /* the job ended (srv__cron_job_stop, sched stop, or no next time) */
} srv__cron_stats_t;

/* Allocate an empty engine. Returns 0 or -ENOMEM. Owned by the caller: srv__cron_sched_destroy().
 */
int srv__cron_sched_create(srv__cron_sched_t **out);

/* Add a job before srv__cron_sched_start(). Returns its index (>= 0), -EINVAL for a bad def,
 * -ERANGE for a schedule that never fires, -EBUSY once started, -ENOMEM. */
int srv__cron_sched_add(srv__cron_sched_t *s, const srv__cron_job_def_t *def);

/* Start one thread per job (created with every signal blocked, so signals stay with the
 * process's main thread). Interval beats count from this call. Returns 0, -EBUSY if already
 * started, or -errno from pthread_create (the threads already started are stopped again). */
int srv__cron_sched_start(srv__cron_sched_t *s);

/* Graceful stop (reload/shutdown): no job starts again; waits until every running handler has
 * returned or timeout_ms has passed (timeout_ms < 0: each job's own max_wait_ms, counted from
 * this call). Returns how many handlers were still running at the deadline (0 = all done); find
 * them with srv__cron_job_stats().running. May be called again to wait longer. Not from a job. */
int srv__cron_sched_stop(srv__cron_sched_t *s, int64_t timeout_ms);

/* Stop (if not yet), join every thread and free s. Blocks until stuck handlers return: when
 * srv__cron_sched_stop() reported stuck jobs, the process should exit instead. NULL is a no-op. */
void srv__cron_sched_destroy(srv__cron_sched_t *s);

size_t srv__cron_sched_count(const srv__cron_sched_t *s);
/* The i-th job (add order), NULL when out of range. Valid until srv__cron_sched_destroy(). */
srv_cron_job_t *srv__cron_sched_job(srv__cron_sched_t *s, size_t i);

const char *srv__cron_job_name(const srv_cron_job_t *job);
void *srv__cron_job_arg(const srv_cron_job_t *job);
/* From the handler: when the current run was due, in ns of the job's clock (CLOCK_MONOTONIC for
 * interval jobs, CLOCK_REALTIME for crontab jobs); start lateness = that clock's now - this. */
int64_t srv__cron_job_due_ns(const srv_cron_job_t *job);
/* End the job: the current run (if any) finishes, no further run starts. Any thread. */
void srv__cron_job_stop(srv_cron_job_t *job);
/* True once the job or the engine is stopping: a long handler should wrap up and return. */
bool srv__cron_job_stopping(srv_cron_job_t *job);
void srv__cron_job_stats(srv_cron_job_t *job, srv__cron_stats_t *out);

/* {"jobs":[{"name":..,"kind":"interval"|"cron","interval_ms":..,"runs":..,"skips":..,
 * "running":..,"stopped":..,"last_start_ms":..,"last_duration_us":..,"max_lateness_us":..,
 * "next_due_ms":..},...]} into buf (NUL-terminated). *_ms are wall-clock ms since the epoch
 * (0 = never, -1 = none). Returns the length, or -ENOSPC when cap is too small. Any thread. */
int srv__cron_sched_info_json(srv__cron_sched_t *s, char *buf, size_t cap);

#endif
