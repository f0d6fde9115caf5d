/* timer/cron_lock. Without a Redis: every way of not reaching one is an error the caller can
 * log, counted, never a claim. With a redis-server of its own (skipped when there is none):
 * a beat is won once, later and repeated beats are lost, a held lock makes the next beat busy,
 * tokens rise, and a release deletes only the holder's own lock (compare-and-delete). Two
 * instances and their processes: test_cron_lock.py. */
#include "timer/cron_lock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "redis_server.h"

static void expect_error(const char *addr, const char *why)
{
    srv__cron_lock_t *l = srv__cron_lock_create(&(srv__cron_lock_redis_t){addr, NULL, 0}, "job",
                                                "host:1", 10000);
    CHECK(l != NULL);
    char err[256];
    for (int i = 1; i <= 2; i++) { /* and again: a failed connection is retried, not reused */
        CHECK_INT(srv__cron_lock_claim(l, 42, 200, err, sizeof(err)), ==, -EIO);
        CHECK(strstr(err, why) != NULL);
        CHECK(strstr(err, addr) != NULL);
        srv__cron_lock_stats_t st;
        srv__cron_lock_stats(l, &st);
        CHECK_INT(st.errors, ==, (uint64_t)i);
        CHECK_INT(st.won + st.lost, ==, 0);
    }
    srv__cron_lock_destroy(l);
}

static void test_fenced(void)
{
    int port = test_free_port();
    pid_t pid = test_redis_start(port, NULL);
    if (pid == 0) {
        printf("test_cron_lock: no %s, fenced claims not tested here\n", TEST_REDIS_BIN);
        return;
    }
    char addr[64], err[256];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    srv__cron_lock_redis_t where = {addr, NULL, 0};
    srv__cron_lock_t *a = srv__cron_lock_create(&where, "job", "host:1", 60000);
    srv__cron_lock_t *b = srv__cron_lock_create(&where, "job", "host:2", 60000);
    CHECK(a != NULL && b != NULL);
    CHECK_INT(srv__cron_lock_claim(a, 5, 2000, err, sizeof(err)), ==, 1); /* token 1 */
    CHECK_INT(srv__cron_lock_claim(b, 5, 2000, err, sizeof(err)), ==, 0); /* the same beat */
    CHECK_INT(srv__cron_lock_claim(b, 6, 2000, err, sizeof(err)), ==, 0); /* a holds: busy */
    CHECK_INT(srv__cron_lock_release(b, 2000, err, sizeof(err)), ==, 0);  /* b holds nothing */
    CHECK_INT(srv__cron_lock_release(a, 2000, err, sizeof(err)), ==, 1);
    CHECK_INT(srv__cron_lock_claim(b, 6, 2000, err, sizeof(err)), ==, 2);
    CHECK_INT(srv__cron_lock_claim(a, 6, 2000, err, sizeof(err)), ==, 0); /* taken */
    CHECK_INT(srv__cron_lock_claim(a, 4, 2000, err, sizeof(err)), ==, 0); /* late: lost */
    /* b's lock expires while b still runs (deleted here instead of waiting for the TTL), a
     * takes the next beat; b's release must not delete a's lock. */
    test_redis_cmd(port, NULL, "DEL srv:cron:{job}:lock");
    CHECK_INT(srv__cron_lock_claim(a, 7, 2000, err, sizeof(err)), ==, 3);
    CHECK_INT(srv__cron_lock_release(b, 2000, err, sizeof(err)), ==, 0);
    CHECK_INT(srv__cron_lock_claim(b, 8, 2000, err, sizeof(err)), ==, 0); /* still a's: busy */
    CHECK_INT(srv__cron_lock_release(a, 2000, err, sizeof(err)), ==, 1);
    srv__cron_lock_stats_t sa, sb;
    srv__cron_lock_stats(a, &sa);
    srv__cron_lock_stats(b, &sb);
    CHECK(sa.won == 2 && sa.lost == 2 && sa.busy == 0 && sa.stale == 0 && sa.token == 3);
    CHECK(sb.won == 1 && sb.lost == 1 && sb.busy == 2 && sb.stale == 1 && sb.token == 2);
    CHECK(sa.errors == 0 && sb.errors == 0);
    srv__cron_lock_destroy(a);
    srv__cron_lock_destroy(b);
    test_redis_stop(pid);
}

/* redis_password and redis_db: claims go to that database; a wrong password is an error. */
static void test_auth_db(void)
{
    int port = test_free_port();
    pid_t pid = test_redis_start(port, "pw1");
    if (pid == 0)
        return;
    char addr[64], err[256];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    srv__cron_lock_t *l = srv__cron_lock_create(&(srv__cron_lock_redis_t){addr, "pw1", 5},
                                                "job", "host:1", 1000);
    CHECK_INT(srv__cron_lock_claim(l, 1, 2000, err, sizeof(err)), ==, 1);
    CHECK_INT(srv__cron_lock_release(l, 2000, err, sizeof(err)), ==, 1);
    /* The keys are in db 5, not in db 0: SELECT 5 then the same beat is lost, in 0 it is not. */
    test_redis_cmd(port, "pw1", "SET probe 1");
    srv__cron_lock_t *l0 = srv__cron_lock_create(&(srv__cron_lock_redis_t){addr, "pw1", 0},
                                                 "job", "host:2", 1000);
    CHECK_INT(srv__cron_lock_claim(l0, 1, 2000, err, sizeof(err)), ==, 1);
    CHECK_INT(srv__cron_lock_claim(l, 1, 2000, err, sizeof(err)), ==, 0);
    srv__cron_lock_t *bad = srv__cron_lock_create(&(srv__cron_lock_redis_t){addr, "nope", 0},
                                                  "job", "host:3", 1000);
    CHECK_INT(srv__cron_lock_claim(bad, 2, 2000, err, sizeof(err)), ==, -EIO);
    CHECK(strstr(err, "AUTH refused") != NULL);
    srv__cron_lock_t *none = srv__cron_lock_create(&(srv__cron_lock_redis_t){addr, NULL, 0},
                                                   "job", "host:4", 1000);
    CHECK_INT(srv__cron_lock_claim(none, 2, 2000, err, sizeof(err)), ==, -EIO);
    CHECK(strstr(err, "NOAUTH") != NULL);
    srv__cron_lock_destroy(l);
    srv__cron_lock_destroy(l0);
    srv__cron_lock_destroy(bad);
    srv__cron_lock_destroy(none);
    test_redis_stop(pid);
}

int main(void)
{
    test_auth_db();
    test_fenced();
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", test_free_port());
    expect_error(addr, "cannot connect");
    expect_error("/nonexistent/redis.sock", "cannot connect");
    expect_error("no-port-here", "not host:port");
    srv__cron_lock_destroy(NULL);
    printf("test_cron_lock: ok\n");
    return check_failures_ ? 1 : 0;
}
