/* timer/cron_lock without a Redis: every way of not reaching one is an error the caller can
 * log, counted, never a claim. (Claims against a real redis-server: test_cron_lock.py.) */
#include "timer/cron_lock.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

/* A loopback port nothing listens on: bind one, read it, close it. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    CHECK(fd >= 0);
    CHECK_INT(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    CHECK_INT(getsockname(fd, (struct sockaddr *)&a, &len), ==, 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void expect_error(const char *addr, const char *why)
{
    srv__cron_lock_t *l = srv__cron_lock_create(addr, "job", "host:1", 10000);
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

int main(void)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", dead_port());
    expect_error(addr, "cannot connect");
    expect_error("/nonexistent/redis.sock", "cannot connect");
    expect_error("no-port-here", "not host:port");
    srv__cron_lock_destroy(NULL);
    printf("test_cron_lock: ok\n");
    return check_failures_ ? 1 : 0;
}
