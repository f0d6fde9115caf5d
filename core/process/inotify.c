/* The master's inotify watches (see inotify.h). Directories are watched rather than files:
 * a deploy or an editor replaces a file by renaming a new one over it, which a watch on the
 * old inode would miss. A path that is a directory counts every change in it. */
#include "core/process/inotify.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/base/util.h"

#define QUIET_MS 300
#define MAX_WATCH 64
#define EVENTS                                                                                 \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MODIFY |            \
     IN_MOVED_FROM)

typedef struct watch {
    int wd;
    char name[NAME_MAX + 1]; /* the file in that directory; "" = anything in it */
    char path[PATH_MAX];     /* for the log line */
} watch_t;

static struct {
    int fd;
    watch_t w[MAX_WATCH];
    int n;
    int64_t due; /* reload at this time (0: nothing pending) */
    char what[PATH_MAX];
} I = {.fd = -1};

static void add(const char *path)
{
    if (I.n == MAX_WATCH) {
        srv__log(SRV_LOG_WARN, "master", 0, "inotify_reload: more than %d paths; %s not watched",
                 MAX_WATCH, path);
        return;
    }
    watch_t *w = &I.w[I.n];
    struct stat st;
    char dir[PATH_MAX];
    snprintf(w->path, sizeof(w->path), "%s", path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof(dir), "%s", path);
        w->name[0] = '\0';
    } else {
        const char *slash = strrchr(path, '/');
        snprintf(dir, sizeof(dir), "%.*s", slash && slash != path ? (int)(slash - path) : 1,
                 slash ? path : "/");
        snprintf(w->name, sizeof(w->name), "%s", slash ? slash + 1 : path);
    }
    w->wd = inotify_add_watch(I.fd, dir, EVENTS);
    if (w->wd < 0) {
        srv__log(SRV_LOG_WARN, "master", errno, "inotify_reload: cannot watch %s", dir);
        return;
    }
    I.n++;
}

int srv__inotify_open(const srv__config_t *cfg)
{
    srv__inotify_close();
    if (!cfg->inotify_reload)
        return 0;
    I.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (I.fd < 0) {
        int err = -errno;
        srv__log(SRV_LOG_ERROR, "master", err, "inotify_reload: inotify_init1");
        return err;
    }
    add(cfg->file);
    add(cfg->app);
    char paths[sizeof(cfg->inotify_reload_paths)];
    snprintf(paths, sizeof(paths), "%s", cfg->inotify_reload_paths);
    char *save = NULL;
    for (char *p = strtok_r(paths, " ", &save); p; p = strtok_r(NULL, " ", &save))
        add(p);
    srv__log(SRV_LOG_NOTICE, "master", 0, "inotify_reload: watching %d path(s)", I.n);
    return 0;
}

void srv__inotify_close(void)
{
    if (I.fd >= 0)
        close(I.fd);
    I.fd = -1;
    I.n = 0;
}

void srv__inotify_poll(struct pollfd *pfd, int64_t *wake)
{
    *pfd = (struct pollfd){.fd = I.fd, .events = POLLIN};
    if (I.due && I.due < *wake)
        *wake = I.due;
}

/* A change to one of ours: the quiet period starts again. */
static void changed(const struct inotify_event *ev, int64_t now_ms)
{
    for (int i = 0; i < I.n; i++) {
        const watch_t *w = &I.w[i];
        if (w->wd != ev->wd)
            continue;
        if (w->name[0] && (ev->len == 0 || strcmp(w->name, ev->name) != 0))
            continue;
        if (!I.due)
            snprintf(I.what, sizeof(I.what), "%s", w->path);
        I.due = now_ms + QUIET_MS;
        return;
    }
}

bool srv__inotify_dispatch(const struct pollfd *pfd, int64_t now_ms, bool busy)
{
    if (I.fd >= 0 && pfd->revents) {
        char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
        ssize_t n;
        while ((n = read(I.fd, buf, sizeof(buf))) > 0)
            for (char *p = buf; p < buf + n;) {
                const struct inotify_event *ev = (const struct inotify_event *)p;
                changed(ev, now_ms);
                p += sizeof(*ev) + ev->len;
            }
    }
    if (!I.due || now_ms < I.due)
        return false;
    if (busy) { /* a reload runs: this one comes after it */
        I.due = now_ms + QUIET_MS;
        return false;
    }
    I.due = 0;
    srv__log(SRV_LOG_NOTICE, "master", 0, "inotify_reload: %s changed; reloading", I.what);
    return true;
}
