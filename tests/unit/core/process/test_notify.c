/* sd_notify (core/process/notify.c): the datagrams on a socket the test owns (abstract and path
 * addresses), the environment cleared, the watchdog period and WATCHDOG_PID, nothing but
 * WATCHDOG after STOPPING, and an address nobody listens on (not fatal). */
#include "core/process/notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "core/base/util.h"

static int bind_at(const char *addr)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(addr);
    memcpy(sa.sun_path, addr, len);
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (addr[0] == '@')
        sa.sun_path[0] = '\0';
    else
        sl++;
    CHECK_INT(bind(fd, (struct sockaddr *)&sa, sl), ==, 0);
    return fd;
}

/* The next datagram (waits at most 2 s), or "" when none. */
static const char *next_msg(int fd, char *buf, size_t cap)
{
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = recv(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static bool pending(int fd)
{
    char c;
    return recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) >= 0;
}

static void test_abstract_sequence(void)
{
    char addr[64], buf[512], want[64];
    snprintf(addr, sizeof(addr), "@srv-test-notify-%d", (int)getpid());
    int fd = bind_at(addr);
    setenv("NOTIFY_SOCKET", addr, 1);
    setenv("WATCHDOG_USEC", "200000", 1);
    unsetenv("WATCHDOG_PID");
    srv__notify_init();
    CHECK(getenv("NOTIFY_SOCKET") == NULL && getenv("WATCHDOG_USEC") == NULL);

    srv__notify_reload_begin(); /* still starting: not told */
    srv__notify_reload_end();
    CHECK(!pending(fd));
    srv__notify_ready();
    snprintf(want, sizeof(want), "READY=1\nMAINPID=%d\nSTATUS=", (int)getpid());
    CHECK(strncmp(next_msg(fd, buf, sizeof(buf)), want, strlen(want)) == 0);
    CHECK(strstr(buf, "workers, ") && strstr(buf, "requests, ") && strstr(buf, "connections\n"));

    srv__notify_reload_begin();
    CHECK(strncmp(next_msg(fd, buf, sizeof(buf)), "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
    long long usec = atoll(buf + 27);
    CHECK_INT(llabs(usec - srv__mono_ms() * 1000), <, 2000000);
    CHECK(srv__notify_reload_refused(NULL) == NULL); /* a reload under way: no READY yet */
    CHECK(!pending(fd));
    CHECK_STR(srv__notify_reload_refused("error 3 x\n"), "error 3 x\n");
    CHECK(strncmp(next_msg(fd, buf, sizeof(buf)), "READY=1\n", 8) == 0);

    /* The watchdog: due at once, then half of WATCHDOG_USEC later. */
    int64_t now = srv__mono_ms(), wake = INT64_MAX;
    srv__notify_next(&wake);
    CHECK_INT(wake, <=, now);
    srv__notify_tick(now);
    CHECK_STR(next_msg(fd, buf, sizeof(buf)), "WATCHDOG=1\n");
    wake = INT64_MAX;
    srv__notify_next(&wake);
    CHECK_INT(wake, ==, now + 100);
    srv__notify_tick(now + 50);
    CHECK(!pending(fd));

    srv__notify_stopping();
    CHECK(strncmp(next_msg(fd, buf, sizeof(buf)), "STOPPING=1\n", 11) == 0);
    srv__notify_ready();
    srv__notify_reload_begin();
    srv__notify_reload_end();
    srv__notify_tick(now + 10000); /* the watchdog only, no STATUS refresh */
    CHECK_STR(next_msg(fd, buf, sizeof(buf)), "WATCHDOG=1\n");
    CHECK(!pending(fd));
    close(fd);
}

static void test_path_and_watchdog_pid(void)
{
    char path[] = "/tmp/srv-test-notify-XXXXXX", addr[64], buf[512];
    CHECK(mkdtemp(path) != NULL);
    snprintf(addr, sizeof(addr), "%s/n.sock", path);
    int fd = bind_at(addr);
    setenv("NOTIFY_SOCKET", addr, 1);
    setenv("WATCHDOG_USEC", "200000", 1);
    setenv("WATCHDOG_PID", "1", 1); /* not ours: no pings */
    srv__notify_init();
    CHECK(getenv("WATCHDOG_PID") == NULL);
    int64_t wake = INT64_MAX;
    srv__notify_next(&wake);
    CHECK_INT(wake, ==, INT64_MAX);
    srv__notify_ready();
    CHECK(strncmp(next_msg(fd, buf, sizeof(buf)), "READY=1\n", 8) == 0);
    wake = INT64_MAX;
    srv__notify_next(&wake); /* the STATUS refresh only, a few seconds on */
    CHECK_INT(wake - srv__mono_ms(), >, 1000);
    srv__notify_tick(wake);
    CHECK(strncmp(next_msg(fd, buf, sizeof(buf)), "STATUS=", 7) == 0);
    close(fd);
    /* Nobody listens any more: sends fail, quietly after the first, and nothing stops. */
    unlink(addr);
    rmdir(path);
    srv__notify_reload_begin();
    srv__notify_reload_end();
}

static void test_unusable(void)
{
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    srv__notify_init();
    CHECK(getenv("NOTIFY_SOCKET") == NULL);
    int64_t wake = INT64_MAX;
    srv__notify_ready();
    srv__notify_next(&wake);
    CHECK_INT(wake, ==, INT64_MAX);
}

int main(void)
{
    test_abstract_sequence();
    test_path_and_watchdog_pid();
    test_unusable();
    printf("ok\n");
    return 0;
}
