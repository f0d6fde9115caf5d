/* Unit tests for timer/cron_sched.c: interval runs on a drift-free grid, immediate, overrun is
 * skipped and counted and never concurrent, stop from inside a job, graceful stop that waits
 * and one that times out on a stuck job, crontab jobs, stats JSON. Waits poll with deadlines. */
#include "timer/cron_sched.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#include "check.h"

#define MS 1000000LL

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void nap_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * MS};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Poll cond() every millisecond for up to limit_ms; true if it came true. */
#define WAIT_FOR(cond, limit_ms)                                                                   \
    ({                                                                                             \
        int64_t end_ = mono() + (int64_t)(limit_ms)*MS;                                            \
        bool ok_ = false;                                                                          \
        while (!(ok_ = (cond)) && mono() < end_)                                                   \
            nap_ms(1);                                                                             \
        ok_;                                                                                       \
    })

static srv__cron_stats_t stats_of(srv_cron_job_t *job)
{
    srv__cron_stats_t st;
    srv__cron_job_stats(job, &st);
    return st;
}

/* ---- interval runs ---- */

struct tick_ctx {
    atomic_int runs;
    int64_t due[16];
    int64_t start[16];
};

static void tick_fn(srv_cron_job_t *job)
{
    struct tick_ctx *ctx = srv__cron_job_arg(job);
    int i = atomic_load(&ctx->runs);
    if (i < 16) {
        ctx->due[i] = srv__cron_job_due_ns(job);
        ctx->start[i] = mono();
    }
    atomic_fetch_add(&ctx->runs, 1);
}

static void test_interval(void)
{
    srv__cron_sched_t *s;
    CHECK_INT(srv__cron_sched_create(&s), ==, 0);
    static struct tick_ctx ctx;
    srv__cron_job_def_t def = {.name = "tick", .fn = tick_fn, .arg = &ctx, .interval_ms = 20};
    CHECK_INT(srv__cron_sched_add(s, &def), ==, 0);
    CHECK_INT(srv__cron_sched_count(s), ==, 1);
    srv_cron_job_t *job = srv__cron_sched_job(s, 0);
    CHECK(job != NULL);
    CHECK(srv__cron_sched_job(s, 1) == NULL);
    CHECK_STR(srv__cron_job_name(job), "tick");
    int64_t t0 = mono();
    CHECK_INT(srv__cron_sched_start(s), ==, 0);
    CHECK_INT(srv__cron_sched_start(s), ==, -EBUSY);
    CHECK_INT(srv__cron_sched_add(s, &def), ==, -EBUSY);
    CHECK(WAIT_FOR(atomic_load(&ctx.runs) >= 5, 10000));
    CHECK_INT(srv__cron_sched_stop(s, 5000), ==, 0);
    int runs = atomic_load(&ctx.runs);
    /* Not immediate: the first beat is one interval after start; beats sit on a 20 ms grid
     * (drift-free) and no run starts before its beat. */
    CHECK_INT(ctx.due[0] - t0, >=, 20 * MS);
    for (int i = 0; i < 5; i++) {
        CHECK_INT(ctx.start[i], >=, ctx.due[i]);
        if (i > 0)
            CHECK_INT((ctx.due[i] - ctx.due[0]) % (20 * MS), ==, 0);
    }
    srv__cron_stats_t st = stats_of(job);
    CHECK_INT(st.runs, ==, runs);
    CHECK(st.stopped);
    CHECK(!st.running);
    CHECK(st.last_start_wall_ns > 0);
    CHECK(st.max_lateness_ns >= 0);
    CHECK_INT(st.next_due_wall_ns, ==, -1);
    nap_ms(50); /* stopped: no run may start any more */
    CHECK_INT(atomic_load(&ctx.runs), ==, runs);
    srv__cron_sched_destroy(s);
}

static void test_immediate(void)
{
    srv__cron_sched_t *s;
    CHECK_INT(srv__cron_sched_create(&s), ==, 0);
    static struct tick_ctx ctx;
    srv__cron_job_def_t def = {.name = "hourly",
                              .fn = tick_fn,
                              .arg = &ctx,
                              .interval_ms = 3600 * 1000,
                              .immediate = true};
    CHECK_INT(srv__cron_sched_add(s, &def), ==, 0);
    srv_cron_job_t *job = srv__cron_sched_job(s, 0);
    CHECK_INT(srv__cron_sched_start(s), ==, 0);
    CHECK(WAIT_FOR(atomic_load(&ctx.runs) == 1 && !stats_of(job).running, 5000));
    srv__cron_stats_t st = stats_of(job);
    CHECK_INT(st.runs, ==, 1);
    CHECK_INT(st.skips, ==, 0);
    CHECK(!st.stopped);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t wall = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
    /* The next beat is one hour after start. */
    CHECK_INT(st.next_due_wall_ns - wall, >, 3590LL * 1000 * MS);
    CHECK_INT(st.next_due_wall_ns - wall, <=, 3600LL * 1000 * MS);
    srv__cron_sched_destroy(s); /* stops and joins without an explicit stop */
}

/* ---- overrun ---- */

static atomic_int in_flight, max_in_flight, overrun_runs;

static void slow_fn(srv_cron_job_t *job)
{
    (void)job;
    int n = atomic_fetch_add(&in_flight, 1) + 1;
    int m = atomic_load(&max_in_flight);
    while (n > m && !atomic_compare_exchange_weak(&max_in_flight, &m, n))
        ;
    nap_ms(35); /* the workload: three and a half intervals */
    atomic_fetch_add(&overrun_runs, 1);
    atomic_fetch_sub(&in_flight, 1);
}

static void test_overrun(void)
{
    srv__cron_sched_t *s;
    CHECK_INT(srv__cron_sched_create(&s), ==, 0);
    srv__cron_job_def_t def = {.name = "slow", .fn = slow_fn, .interval_ms = 10};
    CHECK_INT(srv__cron_sched_add(s, &def), ==, 0);
    srv_cron_job_t *job = srv__cron_sched_job(s, 0);
    CHECK_INT(srv__cron_sched_start(s), ==, 0);
    CHECK(WAIT_FOR(atomic_load(&overrun_runs) >= 4, 10000));
    CHECK_INT(srv__cron_sched_stop(s, 5000), ==, 0);
    srv__cron_stats_t st = stats_of(job);
    CHECK_INT(max_in_flight, ==, 1);
    CHECK_INT(st.runs, ==, atomic_load(&overrun_runs));
    /* Each 35 ms run covers at least three 10 ms beats, which are skipped, not queued. */
    CHECK_INT(st.skips, >=, 3 * (st.runs - 1));
    CHECK_INT(st.last_duration_ns, >=, 35 * MS);
    srv__cron_sched_destroy(s);
}

/* ---- stop from inside ---- */

static atomic_int self_stop_runs;

static void self_stop_fn(srv_cron_job_t *job)
{
    if (atomic_fetch_add(&self_stop_runs, 1) + 1 == 3) {
        srv__cron_job_stop(job);
        CHECK(srv__cron_job_stopping(job));
    }
}

static void test_stop_inside(void)
{
    srv__cron_sched_t *s;
    CHECK_INT(srv__cron_sched_create(&s), ==, 0);
    static struct tick_ctx other;
    srv__cron_job_def_t a = {.name = "self", .fn = self_stop_fn, .interval_ms = 5};
    srv__cron_job_def_t b = {.name = "other", .fn = tick_fn, .arg = &other, .interval_ms = 5};
    CHECK_INT(srv__cron_sched_add(s, &a), ==, 0);
    CHECK_INT(srv__cron_sched_add(s, &b), ==, 1);
    srv_cron_job_t *job = srv__cron_sched_job(s, 0);
    CHECK_INT(srv__cron_sched_start(s), ==, 0);
    CHECK(WAIT_FOR(stats_of(job).stopped && !stats_of(job).running, 10000));
    /* The other job keeps running after this one stopped itself. */
    int before = atomic_load(&other.runs);
    CHECK(WAIT_FOR(atomic_load(&other.runs) >= before + 3, 10000));
    CHECK_INT(atomic_load(&self_stop_runs), ==, 3);
    CHECK_INT(stats_of(job).runs, ==, 3);
    CHECK(!stats_of(srv__cron_sched_job(s, 1)).stopped);
    CHECK_INT(srv__cron_sched_stop(s, 5000), ==, 0);
    srv__cron_sched_destroy(s);
}

/* ---- a slow job does not delay the others ---- */

static atomic_int blocker_entered, release_blocker;

static void blocker_fn(srv_cron_job_t *job)
{
    (void)job;
    atomic_store(&blocker_entered, 1);
    WAIT_FOR(atomic_load(&release_blocker), 60000);
}

static void test_independent(void)
{
    srv__cron_sched_t *s;
    CHECK_INT(srv__cron_sched_create(&s), ==, 0);
    static struct tick_ctx fast[8];
    srv__cron_job_def_t slow = {.name = "blocker", .fn = blocker_fn, .interval_ms = 5};
    CHECK_INT(srv__cron_sched_add(s, &slow), ==, 0);
    for (int i = 0; i < 8; i++) {
        srv__cron_job_def_t def = {
            .name = "fast", .fn = tick_fn, .arg = &fast[i], .interval_ms = 5};
        CHECK_INT(srv__cron_sched_add(s, &def), ==, i + 1);
    }
    CHECK_INT(srv__cron_sched_start(s), ==, 0);
    CHECK(WAIT_FOR(atomic_load(&blocker_entered), 10000));
    int before[8];
    for (int i = 0; i < 8; i++)
        before[i] = atomic_load(&fast[i].runs);
    for (int i = 0; i < 8; i++)
        CHECK(WAIT_FOR(atomic_load(&fast[i].runs) >= before[i] + 3, 10000));
    CHECK(stats_of(srv__cron_sched_job(s, 0)).running); /* still blocked all along */
    CHECK_INT(stats_of(srv__cron_sched_job(s, 0)).runs, ==, 1);
    atomic_store(&release_blocker, 1);
    CHECK_INT(srv__cron_sched_stop(s, 10000), ==, 0);
    CHECK(stats_of(srv__cron_sched_job(s, 0)).skips > 0);
    srv__cron_sched_destroy(s);
}

/* ---- graceful stop ---- */

static atomic_int busy_entered, busy_finished, release_stuck;

static void busy_fn(srv_cron_job_t *job)
{
    (void)job;
    atomic_store(&busy_entered, 1);
    nap_ms(150); /* ignores srv__cron_job_stopping(): stop() must wait for it */
    atomic_store(&busy_finished, 1);
}

static void stuck_fn(srv_cron_job_t *job)
{
    (void)job;
    atomic_store(&busy_entered, 1);
    WAIT_FOR(atomic_load(&release_stuck), 60000);
}

static void polite_fn(srv_cron_job_t *job)
{
    WAIT_FOR(srv__cron_job_stopping(job), 60000);
}

static void test_graceful_wait(void)
{
    srv__cron_sched_t *s;
    CHECK_INT(srv__cron_sched_create(&s), ==, 0);
    srv__cron_job_def_t def = {.name = "busy", .fn = busy_fn, .interval_ms = 1, .immediate = true};
    srv__cron_job_def_t idle = {.name = "idle", .fn = busy_fn, .interval_ms = 3600 * 1000};
    CHECK_INT(srv__cron_sched_add(s, &def), ==, 0);
    CHECK_INT(srv__cron_sched_add(s, &idle), ==, 1);
    CHECK_INT(srv__cron_sched_start(s), ==, 0);
    CHECK(WAIT_FOR(atomic_load(&busy_entered), 10000));
    CHECK_INT(srv__cron_sched_stop(s, 10000), ==, 0);
    CHECK_INT(atomic_load(&busy_finished), ==, 1);
    CHECK(!stats_of(srv__cron_sched_job(s, 0)).running);
    CHECK_INT(stats_of(srv__cron_sched_job(s, 0)).runs, ==, 1);
    srv__cron_sched_destroy(s);
}

static void test_graceful_timeout(void)
{
    srv__cron_sched_t *s;
    CHECK_INT(srv__cron_sched_create(&s), ==, 0);
    atomic_store(&busy_entered, 0);
    atomic_store(&release_stuck, 0);
    srv__cron_job_def_t stuck = {
        .name = "stuck", .fn = stuck_fn, .interval_ms = 1, .immediate = true, .max_wait_ms = 50};
    srv__cron_job_def_t polite = {
        .name = "polite", .fn = polite_fn, .interval_ms = 1, .immediate = true, .max_wait_ms = 50};
    CHECK_INT(srv__cron_sched_add(s, &stuck), ==, 0);
    CHECK_INT(srv__cron_sched_add(s, &polite), ==, 1);
    CHECK_INT(srv__cron_sched_start(s), ==, 0);
    CHECK(
        WAIT_FOR(atomic_load(&busy_entered) && stats_of(srv__cron_sched_job(s, 1)).running, 10000));
    int64_t t0 = mono();
    CHECK_INT(srv__cron_sched_stop(s, 300), ==, 1); /* polite returned, stuck did not */
    CHECK_INT(mono() - t0, >=, 300 * MS);
    CHECK(stats_of(srv__cron_sched_job(s, 0)).running);
    CHECK(!stats_of(srv__cron_sched_job(s, 1)).running);
    /* Again with each job's own max_wait_ms. */
    t0 = mono();
    CHECK_INT(srv__cron_sched_stop(s, -1), ==, 1);
    CHECK_INT(mono() - t0, >=, 50 * MS);
    char json[1024];
    CHECK(srv__cron_sched_info_json(s, json, sizeof(json)) > 0);
    CHECK(strstr(json, "{\"name\":\"stuck\",\"kind\":\"interval\",\"interval_ms\":1,\"runs\":1,") !=
          NULL);
    CHECK(strstr(json, "\"running\":true,\"stopped\":true") != NULL); /* only stuck runs */
    atomic_store(&release_stuck, 1);
    CHECK_INT(srv__cron_sched_stop(s, 10000), ==, 0);
    srv__cron_sched_destroy(s);
}

/* ---- crontab jobs, bad definitions, JSON ---- */

static void never_fn(srv_cron_job_t *job)
{
    (void)job;
}

static void test_defs_and_json(void)
{
    srv__cron_sched_t *s;
    CHECK_INT(srv__cron_sched_create(&s), ==, 0);
    srv__cron_t every_minute, never;
    CHECK_INT(srv__cron_parse(&every_minute, "* * * * *", NULL, 0), ==, 0);
    CHECK_INT(srv__cron_parse(&never, "0 0 30 2 *", NULL, 0), ==, 0);

    srv__cron_job_def_t bad = {.name = "x", .fn = never_fn};
    CHECK_INT(srv__cron_sched_add(s, &bad), ==, -EINVAL); /* neither interval nor schedule */
    bad.interval_ms = 10;
    bad.schedule = &every_minute;
    CHECK_INT(srv__cron_sched_add(s, &bad), ==, -EINVAL); /* both */
    bad.schedule = NULL;
    bad.fn = NULL;
    CHECK_INT(srv__cron_sched_add(s, &bad), ==, -EINVAL);
    bad.fn = never_fn;
    bad.interval_ms = -5;
    CHECK_INT(srv__cron_sched_add(s, &bad), ==, -EINVAL);
    CHECK_INT(srv__cron_sched_add(s, NULL), ==, -EINVAL);
    srv__cron_job_def_t feb30 = {.name = "feb30", .fn = never_fn, .schedule = &never};
    CHECK_INT(srv__cron_sched_add(s, &feb30), ==, -ERANGE);

    srv__cron_job_def_t cron = {.name = "q\"uote\\\n", .fn = never_fn, .schedule = &every_minute};
    CHECK_INT(srv__cron_sched_add(s, &cron), ==, 0);
    char long_name[100];
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    srv__cron_job_def_t lng = {.name = long_name, .fn = never_fn, .interval_ms = 100000};
    CHECK_INT(srv__cron_sched_add(s, &lng), ==, 1);
    CHECK_INT(strlen(srv__cron_job_name(srv__cron_sched_job(s, 1))), ==, SRV_CRON_NAME_MAX - 1);
    CHECK_INT(srv__cron_sched_start(s), ==, 0);

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t wall = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
    srv__cron_stats_t st = stats_of(srv__cron_sched_job(s, 0));
    CHECK_INT(st.next_due_wall_ns % (60 * 1000 * MS), ==, 0); /* on a minute */
    CHECK(st.next_due_wall_ns > wall - 1000 * MS && st.next_due_wall_ns <= wall + 60 * 1000 * MS);

    char json[1024];
    int n = srv__cron_sched_info_json(s, json, sizeof(json));
    CHECK(n > 0);
    CHECK_INT(strlen(json), ==, n);
    const char *head = "{\"jobs\":[{\"name\":\"q\\\"uote\\\\\\u000a\",\"kind\":\"cron\"";
    CHECK(strncmp(json, head, strlen(head)) == 0);
    CHECK(strstr(json, "\"kind\":\"interval\",\"interval_ms\":100000,\"runs\":0") != NULL);
    CHECK(strcmp(json + n - 2, "]}") == 0);
    char small[16];
    CHECK_INT(srv__cron_sched_info_json(s, small, sizeof(small)), ==, -ENOSPC);
    CHECK_INT(srv__cron_sched_info_json(s, json, (size_t)n), ==, -ENOSPC); /* no room for NUL */
    CHECK_INT(srv__cron_sched_info_json(s, json, (size_t)n + 1), ==, n);
    CHECK_INT(srv__cron_sched_stop(s, 1000), ==, 0);
    srv__cron_sched_destroy(s);

    /* Empty engine, never started. */
    CHECK_INT(srv__cron_sched_create(&s), ==, 0);
    CHECK_INT(srv__cron_sched_info_json(s, json, sizeof(json)), ==, 11);
    CHECK_STR(json, "{\"jobs\":[]}");
    CHECK_INT(srv__cron_sched_stop(s, 0), ==, 0);
    srv__cron_sched_destroy(s);
    srv__cron_sched_destroy(NULL);
}

int main(void)
{
    (void)check_failures_; /* check.h's counter: unused here */
    test_interval();
    test_immediate();
    test_overrun();
    test_stop_inside();
    test_independent();
    test_graceful_wait();
    test_graceful_timeout();
    test_defs_and_json();
    printf("ok\n");
    return 0;
}
