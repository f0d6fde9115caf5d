/* The access log's writer: per-thread buffers, one writer thread, reopen and error reports;
 * see alog.h. */
#include "core/base/alog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/base/util.h"

/* One serving thread's lines, until the writer takes them. */
typedef struct abuf {
    pthread_mutex_t mu;
    char *data; /* SRV_ALOG_BUF bytes */
    size_t len;
    uint64_t lines;
    struct abuf *next;
} abuf_t;

static struct {
    pthread_mutex_t mu; /* the list of buffers and the flags below */
    pthread_cond_t cv;
    abuf_t *bufs;
    bool kick, stop, reopen;
    _Atomic bool on;
    pthread_t th;
    /* The writer thread's alone once it runs: */
    int fd;
    char path[PATH_MAX];      /* the writer thread's (set before it starts) */
    char next_path[PATH_MAX]; /* a reload's new path, under mu, for the writer to take */
    srv__alog_counters_t n;
    int64_t next_open;   /* monotonic ms: when to try opening again (fd < 0) */
    int64_t last_report; /* monotonic ms */
    int last_err;
    uint64_t lost; /* lines lost since the last report */
} A = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static __thread abuf_t *t_buf;

static void count(_Atomic uint64_t *c, uint64_t d)
{
    if (c != NULL && d > 0)
        atomic_fetch_add_explicit(c, d, memory_order_relaxed);
}

/* ---- the writer thread ---- */

/* Report a problem: at most one line a second, with what was lost meanwhile. */
static void trouble(int err, uint64_t lost)
{
    A.lost += lost;
    A.last_err = err;
    int64_t now = srv__mono_ms();
    if (A.last_report != 0 && now - A.last_report < 1000)
        return;
    A.last_report = now;
    srv__log(SRV_LOG_ERROR, "alog", err, "access log %s: cannot write; %llu line(s) lost", A.path,
             (unsigned long long)A.lost);
    A.lost = 0;
}

static int open_file(void)
{
    if (strcmp(A.path, "-") == 0)
        return 2;
    int fd = open(A.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    return fd >= 0 ? fd : -errno;
}

static void reopen_file(void)
{
    if (strcmp(A.path, "-") == 0)
        return;
    int fd = open_file();
    if (fd < 0) {
        count(A.n.errors, 1);
        srv__log(SRV_LOG_ERROR, "alog", fd, "access log %s: cannot reopen; keeping the old file",
                 A.path);
        if (A.fd >= 0)
            return;
        A.next_open = srv__mono_ms() + 1000;
        return;
    }
    if (A.fd > 2)
        close(A.fd);
    A.fd = fd;
}

/* Write n bytes holding `lines` lines. */
static void put_out(const char *p, size_t n, uint64_t lines)
{
    if (A.fd < 0) {
        int64_t now = srv__mono_ms();
        int fd = now >= A.next_open ? open_file() : -EAGAIN;
        if (fd < 0) {
            if (fd != -EAGAIN) {
                count(A.n.errors, 1);
                A.next_open = now + 1000;
                A.last_err = fd;
            }
            count(A.n.dropped, lines);
            trouble(A.last_err, lines);
            return;
        }
        A.fd = fd;
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(A.fd, p + off, n - off);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        int err = w < 0 ? -errno : -EIO;
        /* Whole lines are what was lost: count those not entirely written. */
        uint64_t done = 0;
        for (const char *q = p; q < p + off && (q = memchr(q, '\n', (size_t)(p + off - q)));)
            done++, q++;
        count(A.n.errors, 1);
        count(A.n.dropped, lines - done);
        count(A.n.lines, done);
        trouble(err, lines - done);
        return;
    }
    count(A.n.lines, lines);
}

/* Take every buffer holding lines and write it; returns nothing, spare is swapped through. */
static void drain(abuf_t *head, char **spare)
{
    for (abuf_t *b = head; b != NULL; b = b->next) {
        pthread_mutex_lock(&b->mu);
        if (b->len == 0) {
            pthread_mutex_unlock(&b->mu);
            continue;
        }
        char *full = b->data;
        size_t n = b->len;
        uint64_t lines = b->lines;
        b->data = *spare;
        b->len = 0;
        b->lines = 0;
        pthread_mutex_unlock(&b->mu);
        put_out(full, n, lines);
        *spare = full;
    }
}

static void *writer(void *arg)
{
    char *spare = arg;
    for (;;) {
        pthread_mutex_lock(&A.mu);
        if (!A.kick && !A.stop) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += SRV_ALOG_FLUSH_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&A.cv, &A.mu, &ts);
        }
        A.kick = false;
        bool stop = A.stop, reopen = A.reopen;
        A.reopen = false;
        if (A.next_path[0]) {
            memcpy(A.path, A.next_path, sizeof(A.path));
            A.next_path[0] = '\0';
        }
        abuf_t *head = A.bufs;
        pthread_mutex_unlock(&A.mu);
        if (reopen)
            reopen_file();
        drain(head, &spare);
        if (stop)
            break;
    }
    free(spare);
    return NULL;
}

/* ---- the serving threads ---- */

static abuf_t *thread_buf(void)
{
    abuf_t *b = calloc(1, sizeof(*b));
    char *data = malloc(SRV_ALOG_BUF);
    if (b == NULL || data == NULL) {
        free(b);
        free(data);
        return NULL;
    }
    pthread_mutex_init(&b->mu, NULL);
    b->data = data;
    pthread_mutex_lock(&A.mu);
    b->next = A.bufs;
    A.bufs = b;
    pthread_mutex_unlock(&A.mu);
    return t_buf = b;
}

static void wake_writer(void)
{
    pthread_mutex_lock(&A.mu);
    A.kick = true;
    pthread_cond_signal(&A.cv);
    pthread_mutex_unlock(&A.mu);
}

void srv__alog_write(const char *line, size_t len)
{
    if (!atomic_load_explicit(&A.on, memory_order_relaxed))
        return;
    abuf_t *b = t_buf ? t_buf : thread_buf();
    if (b == NULL) {
        count(A.n.dropped, 1);
        return;
    }
    pthread_mutex_lock(&b->mu);
    bool room = b->len + len <= SRV_ALOG_BUF;
    bool crossed = false;
    if (room) {
        memcpy(b->data + b->len, line, len);
        crossed = b->len < SRV_ALOG_FLUSH_AT && b->len + len >= SRV_ALOG_FLUSH_AT;
        b->len += len;
        b->lines++;
    }
    pthread_mutex_unlock(&b->mu);
    if (!room)
        count(A.n.dropped, 1);
    if (crossed || !room)
        wake_writer();
}

int srv__alog_open(const char *path, const srv__alog_counters_t *counters)
{
    if (atomic_load(&A.on))
        return -EALREADY;
    snprintf(A.path, sizeof(A.path), "%s", path);
    A.n = counters ? *counters : (srv__alog_counters_t){0};
    A.kick = A.stop = A.reopen = false;
    A.last_report = 0;
    A.lost = 0;
    A.fd = open_file();
    if (A.fd < 0) {
        count(A.n.errors, 1);
        A.last_err = A.fd;
        srv__log(SRV_LOG_ERROR, "alog", A.fd,
                 "access log %s: cannot open; serving goes on, trying again every second", path);
        A.fd = -1;
        A.next_open = srv__mono_ms() + 1000;
    }
    char *spare = malloc(SRV_ALOG_BUF);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&A.cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = spare ? pthread_create(&A.th, NULL, writer, spare) : ENOMEM;
    if (rc != 0) {
        free(spare);
        if (A.fd > 2)
            close(A.fd);
        A.fd = -1;
        return -rc;
    }
    atomic_store(&A.on, true);
    return 0;
}

bool srv__alog_on(void)
{
    return atomic_load(&A.on);
}

void srv__alog_reopen(void)
{
    if (!atomic_load(&A.on))
        return;
    pthread_mutex_lock(&A.mu);
    A.reopen = A.kick = true;
    pthread_cond_signal(&A.cv);
    pthread_mutex_unlock(&A.mu);
}

void srv__alog_switch(const char *path)
{
    if (!atomic_load(&A.on))
        return;
    pthread_mutex_lock(&A.mu);
    snprintf(A.next_path, sizeof(A.next_path), "%s", path);
    A.reopen = A.kick = true;
    pthread_cond_signal(&A.cv);
    pthread_mutex_unlock(&A.mu);
}

void srv__alog_close(void)
{
    if (!atomic_exchange(&A.on, false))
        return;
    pthread_mutex_lock(&A.mu);
    A.stop = true;
    pthread_cond_signal(&A.cv);
    pthread_mutex_unlock(&A.mu);
    pthread_join(A.th, NULL);
    pthread_cond_destroy(&A.cv);
    for (abuf_t *b = A.bufs, *next; b != NULL; b = next) {
        next = b->next;
        pthread_mutex_destroy(&b->mu);
        free(b->data);
        free(b);
    }
    A.bufs = NULL;
    t_buf = NULL;
    if (A.fd > 2)
        close(A.fd);
    A.fd = -1;
}
