/* Logging: one line per event with time, level, role, pid and subsystem; written with a single
 * write(2) so lines from many processes sharing the file never interleave. */
#ifndef SRV_LOG_H
#define SRV_LOG_H

#include <stdbool.h>

/* Log levels, most severe first; log_level keeps lines at or above it. */
typedef enum {
    SRV_LOG_ERROR = 0,
    SRV_LOG_WARN = 1,
    SRV_LOG_NOTICE = 2,
    SRV_LOG_INFO = 3,
    SRV_LOG_DEBUG = 4
} srv__log_level_t;

/* Name this process in every line it logs ("master", "reactor", "worker", ...); id < 0 omits it.
 * Call after fork, before the first line. */
void srv__log_set_role(const char *role, int id);
void srv__log_set_level(srv__log_level_t level);
/* Enable debug lines for a comma-separated list of subsystems ("loop,conn,http" or "all"). */
void srv__log_set_debug(const char *subsystems);
/* Open path (O_APPEND) as the log destination, or stderr for NULL/"". Returns 0 or -errno. */
int srv__log_open(const char *path);
/* Reopen the current file (after logrotate moved it), under the same descriptor number.
 * Async-signal-safe. */
int srv__log_reopen(void);
/* A reload moved log_file: write to path from now on, on the same descriptor (children forked
 * later inherit it). Only from one file to another; -EINVAL when either is stderr. */
int srv__log_switch(const char *path);
/* Stdout and stderr are the log file too (daemonized): a reopen moves them with it, so what an
 * app prints follows the log to its new file. Children inherit the setting. */
void srv__log_stdio(bool follow);
/* The fd lines go to (for dup2 of stdout/stderr when daemonized). */
int srv__log_fd(void);
bool srv__log_enabled(srv__log_level_t level, const char *subsystem);

/* err is an errno value (0 = none) appended as ": strerror (errno)". */
void srv__log(srv__log_level_t level, const char *subsystem, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define srv__log_debug(sub, ...)                                                                   \
    do {                                                                                           \
        if (srv__log_enabled(SRV_LOG_DEBUG, sub))                                                  \
            srv__log(SRV_LOG_DEBUG, sub, 0, __VA_ARGS__);                                          \
    } while (0)

/* For states our own code must never reach: logs and aborts in every build type. */
#define srv__assert(cond)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            srv__assert_fail(#cond, __FILE__, __LINE__);                                           \
    } while (0)
__attribute__((noreturn)) void srv__assert_fail(const char *expr, const char *file, int line);

/* Text for a -errno or errno value: public API, exported with the declaration in srv/srv.h. */
#include "srv/srv.h"

#endif
