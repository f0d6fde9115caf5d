/* Cron engine: each job owns a thread that sleeps in pthread_cond_timedwait() until its absolute
 * due time and then runs the handler in place. Sleeping in the thread that runs the job (rather
 * than a scheduler thread waking workers) saves one cross-thread wake-up per beat, which is most
 * of the lateness budget, and makes "never twice at once" true by construction. The condvar (not
 * clock_nanosleep) is what lets stop() and srv__cron_job_stop() interrupt a sleep at once. */
#include "timer/cron_sched.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000LL

struct srv_cron_job {
    char name[SRV_CRON_NAME_MAX];
    srv__cron_fn fn;
    void *arg;
    int64_t interval_ns; /* 0 for crontab jobs */
    bool immediate;
    srv__cron_t cron;
    int64_t max_wait_ms;
    clockid_t clock; /* CLOCK_MONOTONIC (interval) or CLOCK_REALTIME (crontab) */

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;  /* guards everything below */
    pthread_cond_t wake; /* on `clock`: sleeping until due, or told to stop */
    pthread_cond_t done; /* on CLOCK_MONOTONIC: a run ended or the thread left its loop */
    bool stop_req;       /* srv__cron_job_stop() */
    bool shutdown;       /* srv__cron_sched_stop() */
    bool exited;
    bool running;
    int64_t due;     /* next (or, while running, current) due time on `clock`; -1 = none */
    int64_t run_due; /* due time of the run in progress, for srv__cron_job_due_ns() */
    uint64_t runs, skips;
    int64_t last_start_wall, last_duration, max_lateness;
};

struct srv__cron_sched {
    srv_cron_job_t **jobs;
    size_t njobs, capjobs;
    bool started;
};

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static struct timespec to_ts(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / NS, .tv_nsec = ns % NS};
    return ts;
}

int srv__cron_sched_create(srv__cron_sched_t **out)
{
    srv__cron_sched_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    *out = s;
    return 0;
}

static int cond_init(pthread_cond_t *c, clockid_t clk)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0)
        return -rc;
    rc = pthread_condattr_setclock(&attr, clk);
    if (rc == 0)
        rc = pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
    return -rc;
}

int srv__cron_sched_add(srv__cron_sched_t *s, const srv__cron_job_def_t *def)
{
    if (s->started)
        return -EBUSY;
    if (def == NULL || def->fn == NULL || def->name == NULL ||
        (def->interval_ms > 0) == (def->schedule != NULL) || def->interval_ms < 0 ||
        def->interval_ms > INT64_MAX / 1000000 / 4)
        return -EINVAL;
    if (def->schedule != NULL) {
        time_t next;
        int rc = srv__cron_next(def->schedule, time(NULL), &next);
        if (rc < 0)
            return rc;
    }
    if (s->njobs == s->capjobs) {
        size_t ncap = s->capjobs ? s->capjobs * 2 : 8;
        srv_cron_job_t **nj = realloc(s->jobs, ncap * sizeof(*nj));
        if (nj == NULL)
            return -ENOMEM;
        s->jobs = nj;
        s->capjobs = ncap;
    }
    srv_cron_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return -ENOMEM;
    int rc;
    snprintf(job->name, sizeof(job->name), "%s", def->name);
    job->fn = def->fn;
    job->arg = def->arg;
    job->interval_ns = def->interval_ms * 1000000;
    job->immediate = def->immediate;
    if (def->schedule != NULL)
        job->cron = *def->schedule;
    job->max_wait_ms = def->max_wait_ms < 0 ? 0 : def->max_wait_ms;
    job->clock = def->schedule != NULL ? CLOCK_REALTIME : CLOCK_MONOTONIC;
    job->due = -1;
    job->run_due = -1;
    if ((rc = -pthread_mutex_init(&job->mu, NULL)) < 0)
        goto fail;
    if ((rc = cond_init(&job->wake, job->clock)) < 0)
        goto fail_mu;
    if ((rc = cond_init(&job->done, CLOCK_MONOTONIC)) < 0)
        goto fail_wake;
    s->jobs[s->njobs] = job;
    return (int)s->njobs++;

fail_wake:
    pthread_cond_destroy(&job->wake);
fail_mu:
    pthread_mutex_destroy(&job->mu);
fail:
    free(job);
    return rc;
}

/* The next crontab minute strictly after after_ns (CLOCK_REALTIME ns), or -1 when none. */
static int64_t cron_after(const srv_cron_job_t *job, int64_t after_ns)
{
    time_t next;
    if (srv__cron_next(&job->cron, (time_t)(after_ns / NS), &next) < 0)
        return -1;
    return (int64_t)next * NS;
}

/* After a run of job->due ended at `now`: the next beat after now; the beats that fell due while
 * the handler ran are skipped and counted. Called with mu held. */
static void skip_past(srv_cron_job_t *job, int64_t now)
{
    int64_t due = job->due;
    if (job->interval_ns > 0) {
        int64_t next = due + job->interval_ns;
        if (next <= now) {
            int64_t k = (now - next) / job->interval_ns + 1;
            job->skips += (uint64_t)k;
            next += k * job->interval_ns;
        }
        job->due = next;
        return;
    }
    int64_t next = cron_after(job, due);
    /* A handler that overran by hours passes a few hundred matching minutes at most per hour;
     * the cap only guards against a wall clock stepped years ahead. */
    for (int i = 0; next >= 0 && next <= now && i < 100000; i++) {
        job->skips++;
        next = cron_after(job, next);
    }
    job->due = next;
}

/* The latest beat at or before now that the thread should run now (it may have woken after
 * several beats; the earlier ones are skipped, never run in a burst). */
static void catch_up(srv_cron_job_t *job, int64_t now)
{
    if (job->interval_ns > 0) {
        if (now - job->due >= job->interval_ns) {
            int64_t k = (now - job->due) / job->interval_ns;
            job->skips += (uint64_t)k;
            job->due += k * job->interval_ns;
        }
        return;
    }
    for (int i = 0; i < 100000; i++) {
        int64_t next = cron_after(job, job->due);
        if (next < 0 || next > now)
            break;
        job->skips++;
        job->due = next;
    }
}

/* Ask the fair scheduler for a 100 us slice (sched_attr.sched_runtime on SCHED_OTHER, Linux
 * 6.12+ EEVDF): a task with a short slice gets an early virtual deadline and may preempt the
 * running task when it wakes, so a beat is not held up by a busy neighbour's 3 ms slice. Same
 * policy and nice, no privilege needed; older kernels reject or ignore it, which is fine. */
static void request_short_slice(void)
{
    /* struct sched_attr (SCHED_ATTR_SIZE_VER0); <linux/sched/types.h> clashes with <sched.h>. */
    struct {
        uint32_t size, sched_policy;
        uint64_t sched_flags;
        int32_t sched_nice;
        uint32_t sched_priority;
        uint64_t sched_runtime, sched_deadline, sched_period;
    } attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.sched_policy = SCHED_OTHER;
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, (id_t)gettid());
    if (nice == -1 && errno != 0)
        return;
    attr.sched_nice = nice;
    attr.sched_runtime = 100000;
    (void)syscall(SYS_sched_setattr, 0, &attr, 0);
}

static void *job_main(void *p)
{
    srv_cron_job_t *job = p;
    /* Default slack is 50 us per sleep; the 10 ms tick target is a 1 ms p99, and these threads
     * sleep almost all the time, so exact wake-ups cost nothing noticeable. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    request_short_slice();
    char tname[16];
    snprintf(tname, sizeof(tname), "cron:%.10s", job->name);
    pthread_setname_np(pthread_self(), tname);

    pthread_mutex_lock(&job->mu);
    for (;;) {
        while (!job->stop_req && !job->shutdown && job->due >= 0 && now_ns(job->clock) < job->due) {
            struct timespec ts = to_ts(job->due);
            pthread_cond_timedwait(&job->wake, &job->mu, &ts);
        }
        if (job->stop_req || job->shutdown || job->due < 0)
            break;
        int64_t start = now_ns(job->clock);
        catch_up(job, start);
        int64_t lateness = start - job->due;
        if (lateness > job->max_lateness)
            job->max_lateness = lateness;
        job->running = true;
        job->runs++;
        job->run_due = job->due;
        job->last_start_wall = job->clock == CLOCK_REALTIME ? start : now_ns(CLOCK_REALTIME);
        int64_t t0 = now_ns(CLOCK_MONOTONIC);
        pthread_mutex_unlock(&job->mu);

        job->fn(job);

        pthread_mutex_lock(&job->mu);
        job->last_duration = now_ns(CLOCK_MONOTONIC) - t0;
        job->running = false;
        skip_past(job, now_ns(job->clock));
        pthread_cond_broadcast(&job->done);
    }
    job->exited = true;
    job->running = false;
    pthread_cond_broadcast(&job->done);
    pthread_mutex_unlock(&job->mu);
    return NULL;
}

static void shutdown_job(srv_cron_job_t *job)
{
    pthread_mutex_lock(&job->mu);
    job->shutdown = true;
    pthread_cond_broadcast(&job->wake);
    pthread_mutex_unlock(&job->mu);
}

int srv__cron_sched_start(srv__cron_sched_t *s)
{
    if (s->started)
        return -EBUSY;
    s->started = true;
    int64_t mono = now_ns(CLOCK_MONOTONIC), wall = now_ns(CLOCK_REALTIME);
    for (size_t i = 0; i < s->njobs; i++) {
        srv_cron_job_t *job = s->jobs[i];
        pthread_mutex_lock(&job->mu);
        if (job->immediate)
            job->due = job->clock == CLOCK_MONOTONIC ? mono : wall;
        else if (job->interval_ns > 0)
            job->due = mono + job->interval_ns;
        else
            job->due = cron_after(job, wall);
        pthread_mutex_unlock(&job->mu);
    }

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    for (size_t i = 0; i < s->njobs && rc == 0; i++) {
        srv_cron_job_t *job = s->jobs[i];
        rc = -pthread_create(&job->thread, NULL, job_main, job);
        if (rc == 0)
            job->thread_started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        for (size_t i = 0; i < s->njobs; i++) {
            srv_cron_job_t *job = s->jobs[i];
            if (job->thread_started) {
                shutdown_job(job);
                pthread_join(job->thread, NULL);
                job->thread_started = false;
            }
        }
    }
    return rc;
}

int srv__cron_sched_stop(srv__cron_sched_t *s, int64_t timeout_ms)
{
    int64_t begin = now_ns(CLOCK_MONOTONIC);
    for (size_t i = 0; i < s->njobs; i++)
        shutdown_job(s->jobs[i]);
    int stuck = 0;
    for (size_t i = 0; i < s->njobs; i++) {
        srv_cron_job_t *job = s->jobs[i];
        if (!job->thread_started)
            continue;
        int64_t wait_ms = timeout_ms >= 0 ? timeout_ms : job->max_wait_ms;
        if (wait_ms > INT64_MAX / 1000000 / 4)
            wait_ms = INT64_MAX / 1000000 / 4;
        struct timespec deadline = to_ts(begin + wait_ms * 1000000);
        pthread_mutex_lock(&job->mu);
        while (!job->exited) {
            if (pthread_cond_timedwait(&job->done, &job->mu, &deadline) == ETIMEDOUT)
                break;
        }
        if (!job->exited)
            stuck++;
        pthread_mutex_unlock(&job->mu);
    }
    return stuck;
}

void srv__cron_sched_destroy(srv__cron_sched_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->njobs; i++) {
        srv_cron_job_t *job = s->jobs[i];
        shutdown_job(job);
        if (job->thread_started)
            pthread_join(job->thread, NULL);
        pthread_cond_destroy(&job->done);
        pthread_cond_destroy(&job->wake);
        pthread_mutex_destroy(&job->mu);
        free(job);
    }
    free(s->jobs);
    free(s);
}

size_t srv__cron_sched_count(const srv__cron_sched_t *s)
{
    return s->njobs;
}

srv_cron_job_t *srv__cron_sched_job(srv__cron_sched_t *s, size_t i)
{
    return i < s->njobs ? s->jobs[i] : NULL;
}

const char *srv__cron_job_name(const srv_cron_job_t *job)
{
    return job->name;
}

void *srv__cron_job_arg(const srv_cron_job_t *job)
{
    return job->arg;
}

int64_t srv__cron_job_due_ns(const srv_cron_job_t *job)
{
    /* Written under mu before the handler is called, on the same thread that calls this. */
    return job->run_due;
}

void srv__cron_job_stop(srv_cron_job_t *job)
{
    pthread_mutex_lock(&job->mu);
    job->stop_req = true;
    pthread_cond_broadcast(&job->wake);
    pthread_mutex_unlock(&job->mu);
}

bool srv__cron_job_stopping(srv_cron_job_t *job)
{
    pthread_mutex_lock(&job->mu);
    bool r = job->stop_req || job->shutdown;
    pthread_mutex_unlock(&job->mu);
    return r;
}

void srv__cron_job_stats(srv_cron_job_t *job, srv__cron_stats_t *out)
{
    int64_t now_clock = now_ns(job->clock), now_wall = now_ns(CLOCK_REALTIME);
    pthread_mutex_lock(&job->mu);
    out->runs = job->runs;
    out->skips = job->skips;
    out->last_start_wall_ns = job->last_start_wall;
    out->last_duration_ns = job->last_duration;
    out->max_lateness_ns = job->max_lateness;
    out->running = job->running;
    out->stopped = job->stop_req || job->shutdown || job->exited;
    if (out->stopped || job->due < 0)
        out->next_due_wall_ns = -1;
    else if (job->running)
        out->next_due_wall_ns = -1; /* decided when the run returns */
    else if (job->clock == CLOCK_REALTIME)
        out->next_due_wall_ns = job->due;
    else
        out->next_due_wall_ns = job->due - now_clock + now_wall;
    pthread_mutex_unlock(&job->mu);
}

/* JSON string body with ", \ and control characters escaped. */
static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        char tmp[8];
        int len;
        if (ch == '"' || ch == '\\')
            len = snprintf(tmp, sizeof(tmp), "\\%c", ch);
        else if (ch < 0x20)
            len = snprintf(tmp, sizeof(tmp), "\\u%04x", ch);
        else
            len = snprintf(tmp, sizeof(tmp), "%c", ch);
        for (int i = 0; i < len; i++, n++)
            if (n + 1 < cap)
                out[n] = tmp[i];
    }
    if (cap > 0)
        out[n < cap ? n : cap - 1] = '\0';
    return n;
}

int srv__cron_sched_info_json(srv__cron_sched_t *s, char *buf, size_t cap)
{
    size_t n = 0;
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        int w_ = snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0, __VA_ARGS__);          \
        if (w_ < 0)                                                                                \
            return -EINVAL;                                                                        \
        n += (size_t)w_;                                                                           \
    } while (0)
    EMIT("{\"jobs\":[");
    for (size_t i = 0; i < s->njobs; i++) {
        srv_cron_job_t *job = s->jobs[i];
        srv__cron_stats_t st;
        srv__cron_job_stats(job, &st);
        char name[SRV_CRON_NAME_MAX * 6 + 1];
        json_escape(name, sizeof(name), job->name);
        EMIT("%s{\"name\":\"%s\",\"kind\":\"%s\",\"interval_ms\":%" PRId64 ",\"runs\":%" PRIu64
             ",\"skips\":%" PRIu64 ",\"running\":%s,\"stopped\":%s,\"last_start_ms\":%" PRId64
             ",\"last_duration_us\":%" PRId64 ",\"max_lateness_us\":%" PRId64
             ",\"next_due_ms\":%" PRId64 "}",
             i ? "," : "", name, job->interval_ns > 0 ? "interval" : "cron",
             job->interval_ns / 1000000, st.runs, st.skips, st.running ? "true" : "false",
             st.stopped ? "true" : "false", st.last_start_wall_ns / 1000000,
             st.last_duration_ns / 1000, st.max_lateness_ns / 1000,
             st.next_due_wall_ns < 0 ? -1 : st.next_due_wall_ns / 1000000);
    }
    EMIT("]}");
#undef EMIT
    if (n >= cap)
        return -ENOSPC;
    return (int)n;
}
