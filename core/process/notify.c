/* The systemd notification protocol, written directly (no libsystemd): datagrams of
 * "KEY=value\n" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for
 * the abstract namespace). Only the master sends; sending never blocks and a failure is logged
 * once. The watchdog pings come from the master's own loop, so a stuck loop stops them. */
#include "core/process/notify.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/base/util.h"
#include "core/server/server.h"

#define STATUS_EVERY_MS 5000

static struct {
    bool on;
    struct sockaddr_un addr;
    socklen_t addr_len;
    int fd;
    bool failed_once;
    bool ready;          /* READY=1 sent, not stopping: STATUS refreshes, reloads are told */
    bool reloading;      /* RELOADING=1 sent, READY=1 not yet */
    bool stopping;       /* STOPPING=1 sent: nothing but WATCHDOG from then on */
    int64_t watchdog_ms; /* ping period (half of WATCHDOG_USEC), 0 = none */
    int64_t next_ping, next_status;
} N = {.fd = -1};

/* NOTIFY_SOCKET into N.addr. Returns false when unusable. */
static bool parse_addr(const char *s)
{
    size_t len = strlen(s);
    if ((s[0] != '/' && s[0] != '@') || len < 2 || len >= sizeof(N.addr.sun_path))
        return false;
    memset(&N.addr, 0, sizeof(N.addr));
    N.addr.sun_family = AF_UNIX;
    memcpy(N.addr.sun_path, s, len);
    if (s[0] == '@') /* abstract: a leading NUL, and the length counts exactly the name */
        N.addr.sun_path[0] = '\0';
    N.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (s[0] == '/'));
    return true;
}

/* WATCHDOG_USEC, when WATCHDOG_PID is unset or names this process. */
static void parse_watchdog(const char *usec, const char *pid)
{
    if (usec == NULL || (pid && strtol(pid, NULL, 10) != (long)getpid()))
        return;
    char *end;
    unsigned long long us = strtoull(usec, &end, 10);
    if (*end != '\0' || us == 0)
        return;
    N.watchdog_ms = (int64_t)(us / 2000);
    if (N.watchdog_ms < 1)
        N.watchdog_ms = 1;
}

/* Remove name from the environment, and wipe its "name=value" bytes: children forked without
 * exec show the original environment block in /proc/PID/environ, not environ[]. */
static void forget_env(const char *name)
{
    char *value = getenv(name);
    if (value == NULL)
        return;
    size_t nlen = strlen(name);
    char *entry = value - nlen - 1;
    unsetenv(name);
    if (memcmp(entry, name, nlen) == 0 && entry[nlen] == '=')
        memset(entry, 0, nlen + 1 + strlen(value));
}

void srv__notify_init(void)
{
    int fd = N.fd;
    memset(&N, 0, sizeof(N));
    N.fd = fd;
    const char *sock = getenv("NOTIFY_SOCKET");
    N.on = sock && parse_addr(sock);
    if (sock && !N.on)
        srv__log(SRV_LOG_WARN, "master", 0, "NOTIFY_SOCKET %s is not usable; ignored", sock);
    if (N.on)
        parse_watchdog(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"));
    forget_env("NOTIFY_SOCKET");
    forget_env("WATCHDOG_USEC");
    forget_env("WATCHDOG_PID");
    N.next_ping = srv__mono_ms();
}

static void send_msg(const char *msg)
{
    if (!N.on)
        return;
    if (N.fd < 0) /* first use: opened after the manager's fork, so no child holds it */
        N.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ssize_t rc = -1;
    if (N.fd >= 0)
        rc = sendto(N.fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
                    (const struct sockaddr *)&N.addr, N.addr_len);
    if (rc < 0 && !N.failed_once) {
        N.failed_once = true;
        srv__log(SRV_LOG_WARN, "master", errno, "cannot notify the service manager");
    }
}

/* "STATUS=4 workers, 2 task workers, 123 requests, 5 connections". */
static void status_line(char *buf, size_t cap)
{
    const srv__server_t *S = &srv__server;
    uint64_t requests = 0;
    for (int i = 0; S->stats && i < SRV_MAX_REACTORS; i++)
        requests += atomic_load_explicit(&S->stats->reactors[i].requests, memory_order_relaxed);
    snprintf(buf, cap, "STATUS=%d workers, %d task workers, %llu requests, %llu connections\n",
             S->cfg.worker_num, S->cfg.task_worker_num, (unsigned long long)requests,
             (unsigned long long)srv__stats_connections());
}

static void send_ready(void)
{
    char msg[300];
    int n = snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d\n", (int)getpid());
    status_line(msg + n, sizeof(msg) - (size_t)n);
    send_msg(msg);
    N.ready = true;
    N.next_status = srv__mono_ms() + STATUS_EVERY_MS;
}

void srv__notify_ready(void)
{
    if (!N.stopping)
        send_ready();
}

void srv__notify_reload_begin(void)
{
    if (!N.ready) /* starting (READY=1 comes when it is over) or stopping */
        return;
    N.reloading = true;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[200];
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading\n",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    send_msg(msg);
}

void srv__notify_reload_end(void)
{
    if (N.reloading && N.ready)
        send_ready();
    N.reloading = false;
}

const char *srv__notify_reload_refused(const char *reply)
{
    if (reply)
        srv__notify_reload_end();
    return reply;
}

void srv__notify_stopping(void)
{
    send_msg("STOPPING=1\nSTATUS=stopping\n");
    N.ready = false; /* no more STATUS refreshes over "stopping" */
    N.stopping = true;
}

void srv__notify_next(int64_t *wake)
{
    if (!N.on)
        return;
    if (N.watchdog_ms > 0 && N.next_ping < *wake)
        *wake = N.next_ping;
    if (N.ready && !N.reloading && N.next_status < *wake)
        *wake = N.next_status;
}

void srv__notify_tick(int64_t now_ms)
{
    if (!N.on)
        return;
    if (N.watchdog_ms > 0 && now_ms >= N.next_ping) {
        send_msg("WATCHDOG=1\n");
        N.next_ping = now_ms + N.watchdog_ms;
    }
    if (N.ready && !N.reloading && now_ms >= N.next_status) {
        char msg[200];
        status_line(msg, sizeof(msg));
        send_msg(msg);
        N.next_status = now_ms + STATUS_EVERY_MS;
    }
}
