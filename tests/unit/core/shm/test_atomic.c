/* Named atomics: registry (find-or-create, limits), arithmetic, compare-and-swap, exact sums
 * from several processes, and wait/wakeup across processes with timeouts. */
#include "core/shm/atomic.h"

#include <errno.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/shm/shm.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_registry(void)
{
    srv_atomic_t *a = NULL, *b = NULL;
    CHECK_INT(srv_atomic_find("a", &a), ==, 0);
    CHECK_INT(srv_atomic_find("a", &b), ==, 0);
    CHECK(a == b);
    CHECK_INT(srv_atomic_find("", &b), ==, -EINVAL);
    char longname[SRV_ATOMIC_NAME_MAX + 2];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    CHECK_INT(srv_atomic_find(longname, &b), ==, -ENAMETOOLONG);
    longname[SRV_ATOMIC_NAME_MAX] = '\0';
    CHECK_INT(srv_atomic_find(longname, &b), ==, 0);
    /* Six exist (ops, sum, w, ready, a, the long one): the registry takes 250 more. */
    for (int i = 6; i < SRV_ATOMIC_MAX; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        CHECK_INT(srv_atomic_find(name, &b), ==, 0);
    }
    CHECK_INT(srv_atomic_find("one-too-many", &b), ==, -ENOSPC);
    CHECK_INT(srv_atomic_find("c100", &b), ==, 0); /* existing ones are still found */
}

static void test_ops(void)
{
    srv_atomic_t *a;
    CHECK_INT(srv_atomic_find("ops", &a), ==, 0);
    CHECK_INT(srv_atomic_get(a), ==, 0);
    CHECK_INT(srv_atomic_add(a, 5), ==, 5);
    CHECK_INT(srv_atomic_sub(a, 7), ==, -2);
    srv_atomic_set(a, 40);
    CHECK_INT(srv_atomic_get(a), ==, 40);
    CHECK(!srv_atomic_cmpset(a, 41, 1));
    CHECK_INT(srv_atomic_get(a), ==, 40);
    CHECK(srv_atomic_cmpset(a, 40, 1));
    CHECK_INT(srv_atomic_get(a), ==, 1);
    srv_atomic_set(a, INT64_MAX);
    CHECK_INT(srv_atomic_add(a, 1), ==, INT64_MIN);
}

static void test_processes(void)
{
    enum { KIDS = 4, ADDS = 100000 };
    srv_atomic_t *a;
    CHECK_INT(srv_atomic_find("sum", &a), ==, 0);
    pid_t pids[KIDS];
    for (int i = 0; i < KIDS; i++) {
        pids[i] = fork();
        CHECK(pids[i] >= 0);
        if (pids[i] == 0) {
            srv_atomic_t *mine;
            /* Looked up again after fork: the registry is shared. */
            if (srv_atomic_find("sum", &mine) != 0 || mine != a)
                _exit(2);
            for (int j = 0; j < ADDS; j++) {
                srv_atomic_add(mine, 3);
                srv_atomic_sub(mine, 1);
            }
            _exit(0);
        }
    }
    for (int i = 0; i < KIDS; i++) {
        int st;
        CHECK_INT(waitpid(pids[i], &st, 0), ==, pids[i]);
        CHECK(WIFEXITED(st));
        CHECK_INT(WEXITSTATUS(st), ==, 0);
    }
    CHECK_INT(srv_atomic_get(a), ==, 2 * KIDS * ADDS);
}

static void test_wait(void)
{
    srv_atomic_t *a, *ready;
    CHECK_INT(srv_atomic_find("w", &a), ==, 0);
    CHECK_INT(srv_atomic_find("ready", &ready), ==, 0);
    srv_atomic_set(a, 1);
    CHECK_INT(srv_atomic_wait(a, 0, 1000), ==, 0); /* differs already */
    double t0 = now_s();
    CHECK_INT(srv_atomic_wait(a, 1, 50), ==, -ETIMEDOUT);
    CHECK(now_s() - t0 >= 0.045);
    CHECK_INT(srv_atomic_wait(a, 1, 0), ==, -ETIMEDOUT);
    CHECK_INT(srv_atomic_wakeup(a, 1), ==, 0); /* nobody sleeps */

    /* A child sleeps until the parent changes the value and wakes it. */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        srv_atomic_set(ready, 1);
        _exit(srv_atomic_wait(a, 1, 10000) == 0 && srv_atomic_get(a) == 2 ? 0 : 3);
    }
    double deadline = now_s() + 10;
    while (srv_atomic_get(ready) == 0)
        CHECK(now_s() < deadline);
    srv_atomic_set(a, 2);
    int st;
    pid_t got;
    /* The child may not be asleep yet: wake until it is gone (it rechecks the value anyway). */
    while ((got = waitpid(pid, &st, WNOHANG)) == 0) {
        CHECK(srv_atomic_wakeup(a, 0) >= 0);
        CHECK(now_s() < deadline);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    CHECK_INT(got, ==, pid);
    CHECK(WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), ==, 0);
}

int main(void)
{
    (void)check_failures_; /* check.h defines it for tests that count failures */
    srv_atomic_t *a;
    CHECK_INT(srv_atomic_find("a", &a), ==, -ENODEV);
    CHECK_INT(srv__atomics_create(), ==, -ENODEV);
    /* The registry declares its own size: exactly that is enough. */
    CHECK_INT(srv__shm_create(srv__atomics_region_size()), ==, 0);
    CHECK_INT(srv_atomic_find("a", &a), ==, -ENODEV);
    CHECK_INT(srv__atomics_create(), ==, 0);
    test_ops();
    test_processes();
    test_wait();
    test_registry();
    srv__shm_destroy();
    CHECK_INT(srv_atomic_find("a", &a), ==, -ENODEV);
    /* A new region starts with an empty registry. */
    CHECK_INT(srv__shm_create(srv__atomics_region_size()), ==, 0);
    CHECK_INT(srv__atomics_create(), ==, 0);
    CHECK_INT(srv_atomic_find("a", &a), ==, 0);
    CHECK_INT(srv_atomic_get(a), ==, 0);
    srv__shm_destroy();
    CHECK_INT(srv_atomic_find("a", &a), ==, -ENODEV);
    return 0;
}
