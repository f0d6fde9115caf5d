/* Writers killed with SIGKILL must never freeze a table: a process that dies holding a bucket
 * lock is detected (its pid is gone) and the lock is taken over, the half-done write closed.
 * First deterministically (a child takes a lock and kills itself; a child dies in the middle of
 * an insert and of a delete), then in a loop that kills
 * busy writers of 1 KiB rows at random points, SRV_TABLE_KILL_ROUNDS times (default 60). */
#include "core/shm/table.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/shm/shm.h"

/* The table called name, or NULL. */
static srv_table_t *table_named(const char *name)
{
    srv_table_t *t = NULL;
    return srv_table_find(name, &t) == 0 ? t : NULL;
}

enum { KEYS = 16, WRITERS = 2, BIG = 1024 };
enum { COL_N, COL_S };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void reap(pid_t pid)
{
    int st;
    CHECK_INT(waitpid(pid, &st, 0), ==, pid);
}

/* A child takes key's lock, opens a write, and dies: readers and writers must get through. */
static void test_dead_holder(srv_table_t *t)
{
    CHECK_INT(srv_table_set_int(t, "x", COL_N, 1), ==, 0);
    uint64_t before = srv__table_steals(t);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        srv__table_lock_key(t, "x");
        raise(SIGKILL);
        _exit(1);
    }
    reap(pid);
    int64_t v = 0;
    CHECK_INT(srv_table_get_int(t, "x", COL_N, &v), ==, 0); /* a reader repairs */
    CHECK_INT(v, ==, 1);
    CHECK_INT(srv__table_steals(t), ==, before + 1);

    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        srv__table_lock_key(t, "x");
        raise(SIGKILL);
        _exit(1);
    }
    reap(pid);
    CHECK_INT(srv_table_incr(t, "x", COL_N, 1, &v), ==, 0); /* so does a writer */
    CHECK_INT(v, ==, 2);
    CHECK_INT(srv__table_steals(t), ==, before + 2);
    CHECK_INT(srv_table_del(t, "x"), ==, 0);
}

/* A child killed halfway through an insert (row linked, not yet LIVE) or a delete (row FREE,
 * still linked): the repair rolls the insert back and finishes the delete, and the slot is
 * reused, so a table that was full before is full again, not short of a row. */
static void test_half_writes(srv_table_t *t)
{
    int64_t n0 = srv_table_count(t);
    for (int where = 1; where <= 2; where++) {
        CHECK_INT(srv_table_set_int(t, "victim", COL_N, 5), ==, 0);
        if (where == 1)
            CHECK_INT(srv_table_del(t, "victim"), ==, 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            srv__table_test_crash = where;
            if (where == 1)
                srv_table_set_int(t, "victim", COL_N, 6);
            else
                srv_table_del(t, "victim");
            _exit(1);
        }
        int st;
        CHECK_INT(waitpid(pid, &st, 0), ==, pid);
        CHECK(WIFSIGNALED(st));
        CHECK_INT(srv_table_exists(t, "victim"), ==, 0);
        CHECK_INT(srv_table_count(t), ==, n0);
    }
    /* Every slot is usable: fill the table, then empty it again. */
    char key[32];
    int64_t added = 0;
    for (int i = 0; srv_table_count(t) < srv_table_capacity(t); i++) {
        snprintf(key, sizeof(key), "fill%d", i);
        CHECK_INT(srv_table_set_int(t, key, COL_N, i), ==, 0);
        added++;
    }
    CHECK_INT(srv_table_set_int(t, "one-more", COL_N, 0), ==, -ENOSPC);
    for (int64_t i = 0; i < added; i++) {
        snprintf(key, sizeof(key), "fill%lld", (long long)i);
        CHECK_INT(srv_table_del(t, key), ==, 0);
    }
    CHECK_INT(srv_table_count(t), ==, n0);
}

static void writer(srv_table_t *t, int64_t *progress, int id)
{
    char s[BIG];
    char key[16];
    for (int64_t v = 0;; v++) {
        memset(s, 'a' + (int)(v % 26), sizeof(s));
        snprintf(key, sizeof(key), "k%d", (int)(v % KEYS));
        srv_table_field_t f[] = {{.column = COL_N, .i = v}, {.column = COL_S, .s = s, .len = BIG}};
        srv_table_set(t, key, f, 2);
        /* Inserts and deletes too, so kills land inside chain updates. */
        snprintf(key, sizeof(key), "t%d-%d", id, (int)(v % 8));
        if (v % 2)
            srv_table_del(t, key);
        else
            srv_table_incr(t, key, COL_N, 1, NULL);
        __atomic_add_fetch(progress, 1, __ATOMIC_RELAXED);
    }
}

static pid_t spawn(srv_table_t *t, int64_t *progress, int id)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        writer(t, progress, id);
        _exit(0);
    }
    return pid;
}

int main(void)
{
    (void)check_failures_; /* check.h defines it for tests that count failures */
    int rounds = 60;
    const char *env = getenv("SRV_TABLE_KILL_ROUNDS");
    if (env != NULL && atoi(env) > 0)
        rounds = atoi(env);
    srv__config_t *cfg = calloc(1, sizeof(*cfg));
    CHECK(cfg != NULL);
    cfg->ntable = 1;
    srv__table_config_t *tc = &cfg->table[0];
    snprintf(tc->name, sizeof(tc->name), "k");
    tc->size = 64;
    tc->ncolumns = 2;
    snprintf(tc->columns[0].name, SRV_CONFIG_NAME_MAX, "n");
    tc->columns[0].type = SRV_COL_INT;
    snprintf(tc->columns[1].name, SRV_CONFIG_NAME_MAX, "s");
    tc->columns[1].type = SRV_COL_STRING;
    tc->columns[1].size = BIG;
    CHECK_INT(srv__shm_create(srv__tables_region_size(cfg) + 4096), ==, 0);
    CHECK_INT(srv__tables_create(cfg), ==, 0);
    srv_table_t *t = table_named("k");
    int64_t *progress = srv__shm_alloc(sizeof(int64_t) * WRITERS, 64);
    CHECK(progress != NULL);

    test_dead_holder(t);
    test_half_writes(t);

    pid_t pids[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        pids[i] = spawn(t, &progress[i], i);
    uint64_t steals0 = srv__table_steals(t);
    for (int r = 0; r < rounds; r++) {
        int victim = r % WRITERS;
        /* Let the victim get going (and the survivor keep going): a frozen table shows here as
         * no progress until the deadline. */
        int64_t start = __atomic_load_n(&progress[victim], __ATOMIC_RELAXED);
        int64_t want = 50 + (r * 37) % 400;
        double deadline = now_s() + 20;
        while (__atomic_load_n(&progress[victim], __ATOMIC_RELAXED) - start < want) {
            CHECK(now_s() < deadline);
            sched_yield();
        }
        CHECK_INT(kill(pids[victim], SIGKILL), ==, 0);
        reap(pids[victim]);
        /* The parent reads and writes every key right after the kill. */
        for (int k = 0; k < KEYS; k++) {
            char key[16];
            snprintf(key, sizeof(key), "k%d", k);
            int64_t v;
            int rc = srv_table_get_int(t, key, COL_N, &v);
            CHECK(rc == 0 || rc == -ENOENT);
        }
        CHECK_INT(srv_table_incr(t, "parent", COL_N, 1, NULL), ==, 0);
        pids[victim] = spawn(t, &progress[victim], victim);
    }
    for (int i = 0; i < WRITERS; i++) {
        kill(pids[i], SIGKILL);
        reap(pids[i]);
    }
    /* Every key still reads and writes; the table holds what the iterator walks. */
    for (int k = 0; k < KEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", k);
        CHECK_INT(srv_table_set_int(t, key, COL_N, k), ==, 0);
        int64_t v;
        CHECK_INT(srv_table_get_int(t, key, COL_N, &v), ==, 0);
        CHECK_INT(v, ==, k);
    }
    int64_t parent = 0;
    CHECK_INT(srv_table_get_int(t, "parent", COL_N, &parent), ==, 0);
    CHECK_INT(parent, ==, rounds);
    srv_table_iter_t it;
    srv_table_iter_init(&it, t);
    int64_t rows = 0;
    while (srv_table_iter_next(&it, NULL, 0) == 1)
        rows++;
    CHECK_INT(rows, >=, KEYS + 1);
    CHECK_INT(rows, <=, srv_table_capacity(t));
    fprintf(stderr, "%d kills: %llu locks taken over from dead writers, %lld rows, count %lld\n",
            rounds, (unsigned long long)(srv__table_steals(t) - steals0), (long long)rows,
            (long long)srv_table_count(t));
    srv__shm_destroy();
    free(cfg);
    return 0;
}
