/* The access log writer: lines from several threads all arrive, whole; the writer flushes on
 * its own within SRV_ALOG_FLUSH_MS; a reopen moves new lines to a new file; a full disk
 * (/dev/full) or a folder that does not exist counts errors and lost lines instead of
 * blocking, and the writer recovers once the file can be opened. */
#include "core/base/alog.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/base/util.h"

#define THREADS 4
#define LINES 20000

static _Atomic uint64_t n_lines, n_errors, n_dropped;
static const srv__alog_counters_t counters = {&n_lines, &n_errors, &n_dropped};

static void *writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    char line[128];
    for (int i = 0; i < LINES; i++) {
        int n = snprintf(line, sizeof(line), "thread %d line %d padding-padding-padding\n", t, i);
        srv__alog_write(line, (size_t)n);
    }
    return NULL;
}

/* Lines in path, each checked to be whole. */
static long count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char buf[256];
    long n = 0;
    while (fgets(buf, sizeof(buf), f)) {
        int t, i;
        CHECK_INT(sscanf(buf, "thread %d line %d padding-padding-padding", &t, &i), ==, 2);
        n++;
    }
    fclose(f);
    return n;
}

/* Wait (bounded) until cond() holds. */
static bool wait_until(bool (*cond)(void), int ms)
{
    int64_t end = srv__mono_ms() + ms;
    while (!cond()) {
        if (srv__mono_ms() > end)
            return false;
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    return true;
}

static char g_path[256];
static long g_want;
static bool file_has_want(void)
{
    return count_lines(g_path) == g_want;
}

static bool had_error(void)
{
    return atomic_load(&n_errors) > 0 && atomic_load(&n_dropped) > 0;
}

static void test_threads_and_reopen(const char *dir)
{
    char path[256], moved[300];
    snprintf(path, sizeof(path), "%s/access.log", dir);
    snprintf(moved, sizeof(moved), "%s/access.log.1", dir);
    CHECK_INT(srv__alog_open(path, &counters), ==, 0);
    CHECK(srv__alog_on());
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    /* The writer flushes by itself, without a close. */
    snprintf(g_path, sizeof(g_path), "%s", path);
    g_want = (long)THREADS * LINES - (long)atomic_load(&n_dropped);
    CHECK(wait_until(file_has_want, 5000));
    CHECK_INT(atomic_load(&n_dropped), ==, 0); /* 4 MB at once fits the buffers here */
    CHECK_INT(atomic_load(&n_lines), ==, (uint64_t)THREADS * LINES);
    /* logrotate moves the file; after a reopen new lines go to a new one. */
    CHECK_INT(rename(path, moved), ==, 0);
    srv__alog_reopen();
    struct stat sb;
    for (int i = 0; i < 1000 && stat(path, &sb) != 0; i++)
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    CHECK_INT(stat(path, &sb), ==, 0);
    writer((void *)(intptr_t)9);
    srv__alog_close();
    CHECK(!srv__alog_on());
    CHECK_INT(count_lines(moved), ==, (long)THREADS * LINES);
    CHECK_INT(count_lines(path), ==, LINES);
    unlink(moved);
    unlink(path);
}

static void test_full_disk(void)
{
    atomic_store(&n_errors, 0);
    atomic_store(&n_dropped, 0);
    CHECK_INT(srv__alog_open("/dev/full", &counters), ==, 0);
    srv__alog_write("one line\n", 9);
    CHECK(wait_until(had_error, 5000));
    srv__alog_close();
    CHECK_INT(atomic_load(&n_dropped), ==, 1);
}

static char g_dir[300];
static bool recovered(void)
{
    char p[400];
    snprintf(p, sizeof(p), "%s/late.log", g_dir);
    srv__alog_write("thread 1 line 1 padding-padding-padding\n", 40);
    return count_lines(p) > 0;
}

static void test_missing_folder(const char *dir)
{
    atomic_store(&n_errors, 0);
    atomic_store(&n_dropped, 0);
    snprintf(g_dir, sizeof(g_dir), "%s/later", dir);
    char path[400];
    snprintf(path, sizeof(path), "%s/late.log", g_dir);
    CHECK_INT(srv__alog_open(path, &counters), ==, 0); /* starts anyway */
    srv__alog_write("thread 1 line 0 padding-padding-padding\n", 40);
    CHECK(wait_until(had_error, 5000));
    /* The folder appears: the writer opens the file (it tries every second). */
    CHECK_INT(mkdir(g_dir, 0755), ==, 0);
    CHECK(wait_until(recovered, 5000));
    srv__alog_close();
    unlink(path);
    rmdir(g_dir);
}

int main(void)
{
    char dir[] = "/tmp/srv-alog-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    test_threads_and_reopen(dir);
    test_full_disk();
    test_missing_folder(dir);
    rmdir(dir);
    printf("ok\n");
    return 0;
}
