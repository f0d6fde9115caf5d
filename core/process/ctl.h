/* The control channel: how `srv stop|reload|info` find a running master and talk to it. The
 * master holds a lock on its pid file while it runs, and answers one-line commands on a unix
 * socket next to it (<pid_file>.sock, mode 0600), so callers get an answer, not just a signal. */
#ifndef SRV_CTL_H
#define SRV_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Longest command line (newline included) the master reads from a control connection. */
#define SRV_CTL_CMD_MAX 2048
/* How a reply that means "not now, try again" starts: the command was not run. */
#define SRV_CTL_BUSY "error 1 busy"

/* Master side: describe the running server (from the shared stats) into buf. */
void srv__info_json(char *buf, size_t cap);
/* What "health" says in the report ("ok", "starting", "stopping"); the master sets it. */
void srv__info_set_health(const char *(*fn)(void));
void srv__info_text(char *buf, size_t cap);
/* Master side: maintenance mode's state as one or two lines of text (what `srv maintenance`
 * prints). Returns the bytes written (buf stays NUL-terminated). */
size_t srv__info_maint(char *buf, size_t cap);

/* Master side, before any thread or fork: make path this process's pid file, holding an
 * exclusive flock on it for as long as the returned fd stays open (callers find the server by
 * that lock). An existing file at path is never opened for writing: the pid goes into a new
 * file in the same folder, locked before it is renamed over path, so the lock is on the file
 * that ends up at path. Returns that fd, or -errno with *why naming the problem:
 * -EEXIST: a live server holds the lock; -ELOOP: path is a symbolic link; -EINVAL: path is
 * not a regular file; -EPERM: the folder is writable by everyone and not sticky (anyone could
 * swap the file); others: the step in *why failed. */
int srv__pidfile_lock(const char *path, const char **why);

/* Master side, at exit: remove path if it is still the file fd locks, then close fd. */
void srv__pidfile_unlock(const char *path, int fd);

/* Client side: whether a live server holds the lock on the pid file at path. A symbolic link
 * there is never followed (no server of ours can be behind one). */
bool srv__pidfile_locked(const char *path);

/* Client side: the pid written in a pid file whose lock is held, or 0 (no file, a symbolic
 * link, not locked: nobody running; no pid in it; or a file not owned by root naming a process
 * that does not run as the file's owner, which no server of ours writes). */
pid_t srv__pidfile_pid(const char *path);

/* Master side: look for the end of the command line in the first len bytes received on a
 * control connection (buf has room for cap bytes). Once its newline arrived, ends the command
 * with a NUL there (dropping a CR before it) and returns the bytes the line took, newline
 * included (> 0); returns 0 while more bytes are needed, -EMSGSIZE when cap - 1 bytes hold no
 * newline. */
int srv__ctl_parse(char *buf, size_t len, size_t cap);

/* Client side: send cmd (one line) to the server listening at path and read the whole reply
 * into buf (NUL-terminated). While the server cannot take the command (its socket's backlog is
 * full, it answered "error 1 busy", or it closed the connection without a word) this retries
 * for up to connect_ms; then it waits at most reply_ms for the reply. Returns the reply length,
 * or -errno: -EBUSY: still busy after connect_ms; -ENOENT, -ECONNREFUSED, ...: nobody
 * listening. In both cases the command did not run. -ETIMEDOUT: no whole reply within
 * reply_ms, -ECONNRESET: the connection broke during the reply; the command may have run. */
int srv__ctl_request(const char *path, const char *cmd, char *buf, size_t cap, int connect_ms,
                     int reply_ms);

#endif
