/* Control channel: the pid file (issue 11: never written through a link, lock on the file at
 * the path, refusals), command framing split at every byte, and the client's retries against
 * fake control sockets (busy, dropped, backlog full, no reply). */
#include "core/process/ctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char g_dir[256];

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", g_dir, name);
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    CHECK_INT(write(fd, text, strlen(text)), ==, (long long)strlen(text));
    close(fd);
}

static void read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    ssize_t n = read(fd, buf, cap - 1);
    CHECK(n >= 0);
    buf[n] = '\0';
    close(fd);
}

/* Entries in folder (not . and ..). */
static int entries(const char *folder)
{
    DIR *d = opendir(folder);
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void test_parse(void)
{
    char buf[SRV_CTL_CMD_MAX];
    strcpy(buf, "info\n");
    CHECK_INT(srv__ctl_parse(buf, 5, sizeof(buf)), ==, 5);
    CHECK_STR(buf, "info");
    strcpy(buf, "stop\r\nrest");
    CHECK_INT(srv__ctl_parse(buf, 10, sizeof(buf)), ==, 6);
    CHECK_STR(buf, "stop");
    strcpy(buf, "\n");
    CHECK_INT(srv__ctl_parse(buf, 1, sizeof(buf)), ==, 1);
    CHECK_STR(buf, "");
    CHECK_INT(srv__ctl_parse(buf, 0, sizeof(buf)), ==, 0);

    /* Issue 11: a command split over several reads, at every byte boundary, twice over. */
    const char *cmd = "info json\r\n";
    size_t n = strlen(cmd);
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            char in[16];
            size_t len = 0;
            int used = 0;
            size_t cuts[3] = {a, b, n};
            for (int k = 0; k < 3 && used == 0; k++) {
                memcpy(in + len, cmd + len, cuts[k] - len);
                len = cuts[k];
                used = srv__ctl_parse(in, len, sizeof(in));
                if (k < 2 && cuts[k] < n)
                    CHECK_INT(used, ==, 0);
            }
            CHECK_INT(used, ==, (long long)n);
            CHECK_STR(in, "info json");
        }
    }

    /* Bounded: cap - 1 bytes without a newline is too long, one byte less needs more. */
    char big[16];
    memset(big, 'x', sizeof(big));
    CHECK_INT(srv__ctl_parse(big, 14, sizeof(big)), ==, 0);
    CHECK_INT(srv__ctl_parse(big, 15, sizeof(big)), ==, -EMSGSIZE);
    CHECK_INT(srv__ctl_parse(big, 16, sizeof(big)), ==, -EMSGSIZE);
    big[14] = '\n';
    CHECK_INT(srv__ctl_parse(big, 15, sizeof(big)), ==, 15);
}

static void test_pidfile_fresh_and_lock(void)
{
    char path[512], text[64], want[64];
    path_in(path, sizeof(path), "a.pid");
    const char *why = NULL;
    CHECK(!srv__pidfile_locked(path));
    CHECK_INT(srv__pidfile_pid(path), ==, 0);
    int fd = srv__pidfile_lock(path, &why);
    CHECK_INT(fd, >=, 0);
    read_file(path, text, sizeof(text));
    snprintf(want, sizeof(want), "%d\n", (int)getpid());
    CHECK_STR(text, want);
    struct stat st;
    CHECK_INT(lstat(path, &st), ==, 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK_INT(st.st_mode & 0777, ==, 0644);
    /* The lock is on the file at the path: another open file description cannot take it. */
    int other = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(other >= 0);
    CHECK_INT(flock(other, LOCK_SH | LOCK_NB), ==, -1);
    CHECK_INT(errno, ==, EWOULDBLOCK);
    close(other);
    CHECK(srv__pidfile_locked(path));
    CHECK_INT(srv__pidfile_pid(path), ==, getpid());
    /* A file owned by someone who does not run the process it names was planted: its pid is
     * never signalled (only root can give a file away, so only checked as root). */
    if (geteuid() == 0) {
        CHECK_INT(fchown(fd, 12345, (gid_t)-1), ==, 0);
        CHECK_INT(srv__pidfile_pid(path), ==, 0);
        CHECK(srv__pidfile_locked(path));
        CHECK_INT(fchown(fd, 0, (gid_t)-1), ==, 0);
        CHECK_INT(srv__pidfile_pid(path), ==, getpid());
    }
    /* A second server: already running, and the file is left alone. */
    CHECK_INT(srv__pidfile_lock(path, &why), ==, -EEXIST);
    struct stat again;
    CHECK_INT(lstat(path, &again), ==, 0);
    CHECK_INT(again.st_ino, ==, st.st_ino);
    CHECK_INT(entries(g_dir), ==, 1); /* no temporary file left behind */
    srv__pidfile_unlock(path, fd);
    CHECK_INT(access(path, F_OK), ==, -1);
    CHECK(!srv__pidfile_locked(path));
    CHECK_INT(entries(g_dir), ==, 0);
}

static void test_pidfile_held_by_other_process(void)
{
    char path[512];
    path_in(path, sizeof(path), "b.pid");
    int fds[2];
    CHECK_INT(pipe(fds), ==, 0);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed CHECK in the parent leaves no orphan */
        close(fds[0]);
        int fd = srv__pidfile_lock(path, NULL);
        char c = fd >= 0 ? 'y' : 'n';
        if (write(fds[1], &c, 1) != 1)
            _exit(2);
        for (;;)
            pause(); /* holding the lock until killed */
    }
    close(fds[1]);
    char c = 0;
    CHECK_INT(read(fds[0], &c, 1), ==, 1);
    CHECK_INT(c, ==, 'y');
    CHECK(srv__pidfile_locked(path));
    CHECK_INT(srv__pidfile_pid(path), ==, child);
    CHECK_INT(srv__pidfile_lock(path, NULL), ==, -EEXIST);
    kill(child, SIGKILL);
    int status;
    CHECK_INT(waitpid(child, &status, 0), ==, child);
    close(fds[0]);
    /* The owner died without cleaning up: a stale file, not a running server. */
    CHECK(!srv__pidfile_locked(path));
    CHECK_INT(srv__pidfile_pid(path), ==, 0);
    int fd = srv__pidfile_lock(path, NULL);
    CHECK_INT(fd, >=, 0);
    CHECK_INT(srv__pidfile_pid(path), ==, getpid());
    srv__pidfile_unlock(path, fd);
}

/* Issue 11: a link planted at the pid file's path never gets its target written. */
static void test_pidfile_links(void)
{
    char path[512], target[512], text[64];
    path_in(path, sizeof(path), "c.pid");
    path_in(target, sizeof(target), "precious");
    write_file(target, "precious data\n");
    const char *why = NULL;

    CHECK_INT(symlink(target, path), ==, 0);
    CHECK_INT(srv__pidfile_lock(path, &why), ==, -ELOOP);
    CHECK(strstr(why, "symbolic link") != NULL);
    read_file(target, text, sizeof(text));
    CHECK_STR(text, "precious data\n");
    CHECK(!srv__pidfile_locked(path));
    CHECK_INT(srv__pidfile_pid(path), ==, 0);
    CHECK_INT(unlink(path), ==, 0);

    /* Dangling: the target must not be created either. */
    char absent[512];
    path_in(absent, sizeof(absent), "absent");
    CHECK_INT(symlink(absent, path), ==, 0);
    CHECK_INT(srv__pidfile_lock(path, &why), ==, -ELOOP);
    CHECK_INT(access(absent, F_OK), ==, -1);
    CHECK_INT(unlink(path), ==, 0);

    /* A hard link: the pid goes into a new file, the linked one keeps its bytes. */
    CHECK_INT(link(target, path), ==, 0);
    int fd = srv__pidfile_lock(path, &why);
    CHECK_INT(fd, >=, 0);
    read_file(target, text, sizeof(text));
    CHECK_STR(text, "precious data\n");
    CHECK_INT(srv__pidfile_pid(path), ==, getpid());
    struct stat a, b;
    CHECK_INT(stat(target, &a), ==, 0);
    CHECK_INT(stat(path, &b), ==, 0);
    CHECK(a.st_ino != b.st_ino);
    CHECK_INT(a.st_nlink, ==, 1);
    srv__pidfile_unlock(path, fd);
    read_file(target, text, sizeof(text));
    CHECK_STR(text, "precious data\n");
    CHECK_INT(unlink(target), ==, 0);
    CHECK_INT(entries(g_dir), ==, 0);
}

static void test_pidfile_refusals(void)
{
    char path[600], sub[512];
    const char *why = NULL;
    path_in(path, sizeof(path), "d.pid");
    CHECK_INT(mkfifo(path, 0600), ==, 0);
    CHECK_INT(srv__pidfile_lock(path, &why), ==, -EINVAL); /* and does not hang on the FIFO */
    CHECK(strstr(why, "regular") != NULL);
    CHECK(!srv__pidfile_locked(path));
    CHECK_INT(unlink(path), ==, 0);
    CHECK_INT(mkdir(path, 0700), ==, 0);
    CHECK_INT(srv__pidfile_lock(path, &why), ==, -EINVAL);
    CHECK_INT(rmdir(path), ==, 0);

    /* A folder anyone may write without the sticky bit: anyone could swap the file. */
    path_in(sub, sizeof(sub), "open");
    CHECK_INT(mkdir(sub, 0700), ==, 0);
    CHECK_INT(chmod(sub, 0777), ==, 0);
    snprintf(path, sizeof(path), "%s/srv.pid", sub);
    CHECK_INT(srv__pidfile_lock(path, &why), ==, -EPERM);
    CHECK(strstr(why, "writable by everyone") != NULL);
    CHECK_INT(access(path, F_OK), ==, -1);
    /* With the sticky bit (like /tmp), only the owner may replace it. */
    CHECK_INT(chmod(sub, 01777), ==, 0);
    int fd = srv__pidfile_lock(path, &why);
    CHECK_INT(fd, >=, 0);
    srv__pidfile_unlock(path, fd);
    CHECK_INT(rmdir(sub), ==, 0);

    /* A stale file with junk in it is replaced. */
    path_in(path, sizeof(path), "e.pid");
    write_file(path, "not a pid at all\n");
    CHECK_INT(srv__pidfile_pid(path), ==, 0);
    fd = srv__pidfile_lock(path, &why);
    CHECK_INT(fd, >=, 0);
    CHECK_INT(srv__pidfile_pid(path), ==, getpid());
    srv__pidfile_unlock(path, fd);

    /* No folder: the error names the step, nothing is created. */
    path_in(path, sizeof(path), "missing/srv.pid");
    CHECK_INT(srv__pidfile_lock(path, &why), ==, -ENOENT);
    CHECK(why != NULL && why[0] != '\0');
    CHECK_INT(entries(g_dir), ==, 0);
}

/* A fake master: serves `script` on each accepted connection in turn. */
typedef enum {
    ACT_REPLY_SPLIT, /* read the command (in pieces), reply "ok <cmd>\n" in two sends */
    ACT_BUSY,        /* reply SRV_CTL_BUSY without reading */
    ACT_DROP,        /* close without a word */
    ACT_SILENT,      /* read the command, never answer (until the test ends) */
} act_t;

typedef struct fake {
    int lfd;
    act_t script[8];
    int nscript;
    int served;
    char got[SRV_CTL_CMD_MAX];
    int stop_fd; /* readable: give up */
} fake_t;

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    for (int i = 0; i < f->nscript; i++) {
        struct pollfd p[2] = {{.fd = f->lfd, .events = POLLIN},
                              {.fd = f->stop_fd, .events = POLLIN}};
        if (poll(p, 2, 10000) <= 0 || p[1].revents)
            return NULL;
        int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            return NULL;
        f->served++;
        if (f->script[i] == ACT_BUSY) {
            const char busy[] = SRV_CTL_BUSY " (test)\n";
            if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL) < 0)
                break;
        } else if (f->script[i] == ACT_REPLY_SPLIT || f->script[i] == ACT_SILENT) {
            size_t len = 0;
            int used = 0;
            while (used == 0) {
                ssize_t n = recv(fd, f->got + len, sizeof(f->got) - 1 - len, 0);
                if (n <= 0)
                    break;
                len += (size_t)n;
                used = srv__ctl_parse(f->got, len, sizeof(f->got));
            }
            if (f->script[i] == ACT_SILENT) {
                struct pollfd s = {.fd = f->stop_fd, .events = POLLIN};
                poll(&s, 1, 10000);
            } else {
                char reply[300];
                int n = snprintf(reply, sizeof(reply), "ok %s\n", f->got);
                if (send(fd, reply, 2, MSG_NOSIGNAL) < 0 ||
                    send(fd, reply + 2, (size_t)n - 2, MSG_NOSIGNAL) < 0)
                    break;
            }
        }
        close(fd);
    }
    return NULL;
}

static void unix_addr(struct sockaddr_un *sun, const char *path)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    CHECK_INT(strlen(path), <, sizeof(sun->sun_path));
    memcpy(sun->sun_path, path, strlen(path) + 1);
}

static int fake_listen(const char *path, int backlog)
{
    struct sockaddr_un sun;
    unix_addr(&sun, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK_INT(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), ==, 0);
    CHECK_INT(listen(fd, backlog), ==, 0);
    return fd;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Serve script on a fake control socket at path while the client sends cmd. Returns what
 * srv__ctl_request returned (reply in buf); *served: connections the fake accepted. */
static int run_fake(const char *path, const act_t *script, int n, const char *cmd, int connect_ms,
                    int reply_ms, char *buf, size_t cap, int *served)
{
    fake_t f = {.lfd = fake_listen(path, 16), .nscript = n};
    memcpy(f.script, script, sizeof(act_t) * (size_t)n);
    int stop[2];
    CHECK_INT(pipe2(stop, O_CLOEXEC), ==, 0);
    f.stop_fd = stop[0];
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, fake_main, &f), ==, 0);
    int rc = srv__ctl_request(path, cmd, buf, cap, connect_ms, reply_ms);
    CHECK_INT(write(stop[1], "x", 1), ==, 1);
    CHECK_INT(pthread_join(t, NULL), ==, 0);
    close(stop[0]);
    close(stop[1]);
    close(f.lfd);
    unlink(path);
    *served = f.served;
    return rc;
}

static void test_request(void)
{
    char path[512];
    path_in(path, sizeof(path), "ctl.sock");
    char buf[256];
    CHECK_INT(srv__ctl_request(path, "info", buf, sizeof(buf), 200, 200), ==, -ENOENT);

    int served = 0;
    act_t ok[] = {ACT_REPLY_SPLIT};
    CHECK_INT(run_fake(path, ok, 1, "info json", 1000, 2000, buf, sizeof(buf), &served), ==, 13);
    CHECK_STR(buf, "ok info json\n");
    CHECK_INT(served, ==, 1);
    /* Issue 11: busy, or dropped before it read the command: the client tries again. */
    act_t busy_then_ok[] = {ACT_BUSY, ACT_DROP, ACT_BUSY, ACT_REPLY_SPLIT};
    CHECK_INT(run_fake(path, busy_then_ok, 4, "reload", 5000, 2000, buf, sizeof(buf), &served), ==,
              10);
    CHECK_STR(buf, "ok reload\n");
    CHECK_INT(served, ==, 4);
    /* Busy for longer than connect_ms: -EBUSY (the command did not run). */
    act_t busy[8];
    for (int i = 0; i < 8; i++)
        busy[i] = ACT_BUSY;
    int64_t t0 = now_ms();
    CHECK_INT(run_fake(path, busy, 8, "info", 150, 2000, buf, sizeof(buf), &served), ==, -EBUSY);
    CHECK_INT(served, >=, 2);
    CHECK_INT(now_ms() - t0, <, 3000);
    /* The command went in, no answer: -ETIMEDOUT after reply_ms (it may have run). */
    act_t silent[] = {ACT_SILENT};
    t0 = now_ms();
    CHECK_INT(run_fake(path, silent, 1, "reload", 1000, 200, buf, sizeof(buf), &served), ==,
              -ETIMEDOUT);
    CHECK_INT(served, ==, 1);
    CHECK_INT(now_ms() - t0, <, 5000);

    /* A backlog that stays full (a master that cannot accept): connect never blocks, and
     * gives up after connect_ms with -EBUSY. */
    int lfd = fake_listen(path, 0);
    int fill[4], nfill = 0;
    for (int i = 0; i < 4; i++) {
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(c >= 0);
        struct sockaddr_un sun;
        unix_addr(&sun, path);
        if (connect(c, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
            CHECK_INT(errno, ==, EAGAIN);
            close(c);
            break;
        }
        fill[nfill++] = c;
    }
    CHECK_INT(nfill, >=, 1);
    t0 = now_ms();
    CHECK_INT(srv__ctl_request(path, "info", buf, sizeof(buf), 200, 200), ==, -EBUSY);
    int64_t took = now_ms() - t0;
    CHECK_INT(took, >=, 190);
    CHECK_INT(took, <, 3000);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(lfd);
    /* Bound, not listening any more. */
    CHECK_INT(srv__ctl_request(path, "info", buf, sizeof(buf), 200, 200), ==, -ECONNREFUSED);
    unlink(path);

    /* A command longer than the master takes is refused here already. */
    char big[SRV_CTL_CMD_MAX + 10];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_INT(srv__ctl_request(path, big, buf, sizeof(buf), 200, 200), ==, -EMSGSIZE);
}

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/srv-test-ctl-XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL);
    test_parse();
    test_pidfile_fresh_and_lock();
    test_pidfile_held_by_other_process();
    test_pidfile_links();
    test_pidfile_refusals();
    test_request();
    CHECK_INT(rmdir(g_dir), ==, 0);
    printf("ok\n");
    return 0;
}
