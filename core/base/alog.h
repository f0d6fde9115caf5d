/* The access log's writer, one per process that serves requests (the master for its reactor
 * threads, each base-mode worker). A thread that serves appends whole lines to a buffer of its
 * own and never waits for the disk: a writer thread of the log's takes each buffer once it
 * holds SRV_ALOG_FLUSH_AT bytes, and every SRV_ALOG_FLUSH_MS whatever it holds, and writes it
 * with O_APPEND. A buffer still full when a line comes (the disk is that far behind) drops the
 * line and counts it. Write and open errors are counted and logged at most once per second;
 * serving goes on (the file is opened again every second until it can be). */
#ifndef SRV_ALOG_H
#define SRV_ALOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_ALOG_BUF (1u << 20)       /* a thread's buffer */
#define SRV_ALOG_FLUSH_AT (64u << 10) /* the writer is woken at this much */
#define SRV_ALOG_FLUSH_MS 100

/* Where the writer adds up what it did (shared memory, for /metrics); any may be NULL. */
typedef struct srv__alog_counters {
    _Atomic uint64_t *lines;   /* written */
    _Atomic uint64_t *errors;  /* failed writes and opens */
    _Atomic uint64_t *dropped; /* lines lost: buffer full, or not written */
} srv__alog_counters_t;

/* Start the writer for path ("-": stderr). A file that cannot be opened now is reported and
 * tried again later. Returns 0 or -errno (the thread could not start). */
int srv__alog_open(const char *path, const srv__alog_counters_t *counters);
/* Whether srv__alog_open() ran (and srv__alog_close() did not). */
bool srv__alog_on(void);
/* Append one line (with its newline) from any thread. */
void srv__alog_write(const char *line, size_t len);
/* Have the writer reopen the file (after logrotate moved it). Any thread. */
void srv__alog_reopen(void);
/* A reload moved access_log: the writer writes to path from its next round on. */
void srv__alog_switch(const char *path);
/* Write what is buffered, stop the writer and close the file. */
void srv__alog_close(void);

#endif
