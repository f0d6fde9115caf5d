/* Timer precision bench: runs one interval job through the cron engine (timer/cron_sched.c) and
 * records each run's start lateness (CLOCK_MONOTONIC now - the beat it was due at). Prints
 * p50/p90/p99/p99.9/max in microseconds. Built and run by bench/timer.sh.
 *   usage: timer_bench [interval_ms=10] [runs=1000] */
#include "timer/cron_sched.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct bench {
    int64_t *lateness;
    int want;
    atomic_int got;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void tick(srv_cron_job_t *job)
{
    int64_t now = mono_ns();
    struct bench *b = srv__cron_job_arg(job);
    int i = atomic_load(&b->got);
    if (i < b->want)
        b->lateness[i] = now - srv__cron_job_due_ns(job);
    if (atomic_fetch_add(&b->got, 1) + 1 >= b->want)
        srv__cron_job_stop(job);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_us(const int64_t *sorted, int n, double p)
{
    int idx = (int)(p / 100.0 * (n - 1) + 0.5);
    return (double)sorted[idx] / 1000.0;
}

int main(int argc, char **argv)
{
    int interval_ms = argc > 1 ? atoi(argv[1]) : 10;
    int runs = argc > 2 ? atoi(argv[2]) : 1000;
    if (interval_ms <= 0 || runs <= 0) {
        fprintf(stderr, "usage: timer_bench [interval_ms] [runs]\n");
        return 2;
    }
    struct bench b = {.lateness = calloc((size_t)runs, sizeof(int64_t)), .want = runs};
    if (b.lateness == NULL)
        return 1;
    srv__cron_sched_t *s;
    int rc = srv__cron_sched_create(&s);
    srv__cron_job_def_t def = {.name = "bench", .fn = tick, .arg = &b, .interval_ms = interval_ms};
    if (rc == 0)
        rc = srv__cron_sched_add(s, &def);
    if (rc >= 0)
        rc = srv__cron_sched_start(s);
    if (rc < 0) {
        fprintf(stderr, "timer_bench: cron engine: %d\n", rc);
        return 1;
    }
    /* The main thread only polls for the end, 4 times a second: it barely competes for the CPU
     * the job thread is pinned to. */
    struct timespec nap = {.tv_sec = 0, .tv_nsec = 250000000};
    while (atomic_load(&b.got) < runs)
        nanosleep(&nap, NULL);
    srv__cron_stats_t st;
    srv__cron_job_stats(srv__cron_sched_job(s, 0), &st);
    srv__cron_sched_stop(s, 1000);
    srv__cron_sched_destroy(s);

    qsort(b.lateness, (size_t)runs, sizeof(int64_t), cmp_i64);
    printf("interval_ms=%d runs=%d skips=%" PRIu64 " lateness_us p50=%.1f p90=%.1f p99=%.1f "
           "p99.9=%.1f max=%.1f min=%.1f\n",
           interval_ms, runs, st.skips, pct_us(b.lateness, runs, 50), pct_us(b.lateness, runs, 90),
           pct_us(b.lateness, runs, 99), pct_us(b.lateness, runs, 99.9),
           (double)b.lateness[runs - 1] / 1000.0, (double)b.lateness[0] / 1000.0);
    free(b.lateness);
    return 0;
}
