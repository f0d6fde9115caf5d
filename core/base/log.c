/* Logging to a file or stderr, one write(2) per line; see log.h. */
#include "core/base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warn", "notice", "info", "debug"};

static struct {
    char role[16];
    int id;
    srv__log_level_t level;
    char debug[256];
    char path[PATH_MAX];
    int fd;
    bool stdio; /* stdout and stderr follow the log file on reopen */
} g_log = {.role = "srv", .id = -1, .level = SRV_LOG_NOTICE, .fd = 2};

void srv__log_set_role(const char *role, int id)
{
    snprintf(g_log.role, sizeof(g_log.role), "%s", role);
    g_log.id = id;
}

void srv__log_set_level(srv__log_level_t level)
{
    g_log.level = level;
}

void srv__log_set_debug(const char *subsystems)
{
    snprintf(g_log.debug, sizeof(g_log.debug), "%s", subsystems ? subsystems : "");
}

int srv__log_open(const char *path)
{
    if (path == NULL || path[0] == '\0') {
        if (g_log.fd > 2)
            close(g_log.fd);
        g_log.fd = 2;
        g_log.path[0] = '\0';
        return 0;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (g_log.fd > 2)
        close(g_log.fd);
    g_log.fd = fd;
    snprintf(g_log.path, sizeof(g_log.path), "%s", path);
    return 0;
}

int srv__log_reopen(void)
{
    if (g_log.path[0] == '\0')
        return 0;
    /* The new file takes the old one's descriptor number (dup3 replaces it in one step): a
     * line written meanwhile by another thread goes to one file or the other, never to a
     * closed descriptor. Only async-signal-safe calls: a signal handler may call this. */
    int saved = errno;
    int fd = open(g_log.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -errno : 0;
    if (fd >= 0 && g_log.fd > 2) {
        if (dup3(fd, g_log.fd, O_CLOEXEC) < 0)
            rc = -errno;
        close(fd);
    } else if (fd >= 0) {
        g_log.fd = fd;
    }
    if (rc == 0 && g_log.stdio && g_log.fd > 2) {
        dup2(g_log.fd, 1);
        dup2(g_log.fd, 2);
    }
    errno = saved;
    return rc;
}

int srv__log_switch(const char *path)
{
    if (g_log.path[0] == '\0' || path == NULL || path[0] == '\0')
        return -EINVAL;
    if (strcmp(g_log.path, path) == 0)
        return 0;
    char old[sizeof(g_log.path)];
    snprintf(old, sizeof(old), "%s", g_log.path);
    snprintf(g_log.path, sizeof(g_log.path), "%s", path);
    int rc = srv__log_reopen();
    if (rc < 0)
        snprintf(g_log.path, sizeof(g_log.path), "%s", old);
    return rc;
}

void srv__log_stdio(bool follow)
{
    g_log.stdio = follow;
}

int srv__log_fd(void)
{
    return g_log.fd;
}

bool srv__log_enabled(srv__log_level_t level, const char *subsystem)
{
    if (level != SRV_LOG_DEBUG)
        return level <= g_log.level;
    if (g_log.level >= SRV_LOG_DEBUG)
        return true;
    if (g_log.debug[0] == '\0' || subsystem == NULL)
        return false;
    if (strcmp(g_log.debug, "all") == 0)
        return true;
    size_t n = strlen(subsystem);
    for (const char *p = g_log.debug; (p = strstr(p, subsystem)) != NULL; p += n) {
        bool start = p == g_log.debug || p[-1] == ',';
        bool end = p[n] == '\0' || p[n] == ',';
        if (start && end)
            return true;
    }
    return false;
}

void srv__log(srv__log_level_t level, const char *subsystem, int err, const char *fmt, ...)
{
    if (!srv__log_enabled(level, subsystem))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
    char who[32];
    if (g_log.id >= 0)
        snprintf(who, sizeof(who), "%s#%d", g_log.role, g_log.id);
    else
        snprintf(who, sizeof(who), "%s", g_log.role);
    n += (size_t)snprintf(line + n, sizeof(line) - n,
                          ".%03ld [%s] %s[%d] %s: ", ts.tv_nsec / 1000000, level_names[level], who,
                          (int)getpid(), subsystem ? subsystem : "-");
    if (n < sizeof(line)) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        if (w > 0)
            n += (size_t)w;
    }
    if (err != 0 && n < sizeof(line))
        n += (size_t)snprintf(line + n, sizeof(line) - n, ": %s (%d)", srv_strerror(err),
                              err < 0 ? -err : err);
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* One write so concurrent writers with O_APPEND never interleave; a failed log write has
     * nowhere to be reported. */
    ssize_t rc = write(g_log.fd, line, n);
    (void)rc;
}

void srv__assert_fail(const char *expr, const char *file, int line)
{
    srv__log(SRV_LOG_ERROR, "assert", 0, "%s:%d: assertion failed: %s", file, line, expr);
    abort();
}

const char *srv_strerror(int err)
{
    if (err < 0)
        err = -err;
    static __thread char buf[128];
    return strerror_r(err, buf, sizeof(buf));
}
