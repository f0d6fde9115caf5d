/* Privilege drop (see priv.h): resolving user and group, giving the files the master created
 * to the user, chroot, and setgroups/setgid/setuid with a check that root cannot come back. */
#include "core/process/priv.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/log.h"

typedef struct ident {
    uid_t uid;
    gid_t gid;
    bool set_uid; /* user set: uid, initgroups */
    bool set_gid; /* user or group set */
} ident_t;

static bool wanted(const srv__config_t *cfg)
{
    return cfg->user[0] || cfg->group[0] || cfg->chroot[0];
}

/* The configured identity; gid is the user's primary group unless group is set. Returns 0, or
 * -ENOENT with the unknown name in err (the file was checked at load: it changed since). */
static int resolve(const srv__config_t *cfg, ident_t *id, char *err, size_t len)
{
    memset(id, 0, sizeof(*id));
    if (cfg->user[0]) {
        struct passwd *pw = getpwnam(cfg->user);
        if (pw == NULL) {
            snprintf(err, len, "user: no such user \"%s\"", cfg->user);
            return -ENOENT;
        }
        id->uid = pw->pw_uid;
        id->gid = pw->pw_gid;
        id->set_uid = id->set_gid = true;
    }
    if (cfg->group[0]) {
        struct group *gr = getgrnam(cfg->group);
        if (gr == NULL) {
            snprintf(err, len, "group: no such group \"%s\"", cfg->group);
            return -ENOENT;
        }
        id->gid = gr->gr_gid;
        id->set_gid = true;
    }
    return 0;
}

int srv__priv_check(const srv__config_t *cfg, char *err, size_t len)
{
    ident_t id;
    if (!wanted(cfg))
        return 0;
    int rc = resolve(cfg, &id, err, len);
    if (rc < 0 || geteuid() == 0)
        return rc;
    /* Not root: nothing can be dropped. Naming the identity we already have is fine (the same
     * file serves root and non-root starts); anything else would silently not happen. */
    if (cfg->chroot[0]) {
        snprintf(err, len, "chroot = \"%s\" needs srv started as root (running as uid %u)",
                 cfg->chroot, (unsigned)geteuid());
        return -EPERM;
    }
    if (id.set_uid && id.uid != geteuid()) {
        snprintf(err, len,
                 "user = \"%s\" needs srv started as root or as that user (running as "
                 "uid %u)",
                 cfg->user, (unsigned)geteuid());
        return -EPERM;
    }
    if (id.set_gid && id.gid != getegid()) {
        if (cfg->group[0])
            snprintf(err, len,
                     "group = \"%s\" needs srv started as root or with that group "
                     "(running as gid %u)",
                     cfg->group, (unsigned)getegid());
        else
            snprintf(err, len,
                     "user = \"%s\": its group (gid %u) needs srv started as root or "
                     "with that group (running as gid %u)",
                     cfg->user, (unsigned)id.gid, (unsigned)getegid());
        return -EPERM;
    }
    return 0;
}

/* A file srv created (a log): open without following a link, then fchown. */
static void give_file(const char *path, const ident_t *id, const char *what)
{
    if (path[0] == '\0' || strcmp(path, "-") == 0)
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 || fchown(fd, id->set_uid ? id->uid : (uid_t)-1, id->gid) != 0)
        srv__log(SRV_LOG_WARN, "master", errno, "cannot give %s %s to uid %u", what, path,
                 (unsigned)id->uid);
    if (fd >= 0)
        close(fd);
}

/* A socket file srv bound: lchown (a socket cannot be opened). */
static void give_socket(const char *path, const ident_t *id, const char *what)
{
    if (path[0] != '\0' && lchown(path, id->set_uid ? id->uid : (uid_t)-1, id->gid) != 0)
        srv__log(SRV_LOG_WARN, "master", errno, "cannot give %s %s to uid %u", what, path,
                 (unsigned)id->uid);
}

static void give_all(const srv__config_t *cfg, const ident_t *id, int pid_fd, const char *ctl_path)
{
    uid_t uid = id->set_uid ? id->uid : (uid_t)-1;
    if (pid_fd >= 0 && fchown(pid_fd, uid, id->gid) != 0)
        srv__log(SRV_LOG_WARN, "master", errno, "cannot give pid file %s", cfg->pid_file);
    if (srv__log_fd() > 2 && fchown(srv__log_fd(), uid, id->gid) != 0)
        srv__log(SRV_LOG_WARN, "master", errno, "cannot give log file %s", cfg->log_file);
    /* The access log is opened after the drop (by the reactors' writer, or each base-mode
     * worker): it exists, owned by the user, before. */
    give_file(cfg->access_log, id, "access log");
    give_socket(ctl_path, id, "control socket");
    for (int i = 0; i < cfg->nlisten; i++)
        give_socket(cfg->listen[i].path, id, "listener socket");
}

/* chroot (jail), groups, gid, uid; then prove root is gone. Logs what it did. */
static int drop(const srv__config_t *cfg, const char *role, bool jail)
{
    ident_t id;
    char err[256];
    if (!wanted(cfg) || geteuid() != 0)
        return 0;
    int rc = resolve(cfg, &id, err, sizeof(err));
    if (rc < 0) {
        srv__log(SRV_LOG_ERROR, role, 0, "cannot drop privileges: %s", err);
        return rc;
    }
    const char *step = "chroot";
    if (jail && cfg->chroot[0] && (chroot(cfg->chroot) != 0 || chdir("/") != 0))
        goto fail;
    if (jail && cfg->chroot[0] && cfg->max_worker_rss > 0 && access("/proc/self/statm", R_OK) != 0)
        srv__log(SRV_LOG_WARN, role, 0, "max_worker_rss has no effect: no /proc inside %s",
                 cfg->chroot);
    step = "setgroups";
    if (id.set_uid ? initgroups(cfg->user, id.gid) != 0 : id.set_gid && setgroups(1, &id.gid) != 0)
        goto fail;
    step = "setgid";
    if (id.set_gid && setgid(id.gid) != 0)
        goto fail;
    step = "setuid";
    if (id.set_uid && setuid(id.uid) != 0)
        goto fail;
    if (id.set_uid && (setuid(0) == 0 || seteuid(0) == 0)) {
        srv__log(SRV_LOG_ERROR, role, 0, "setuid(0) succeeded after dropping privileges");
        abort();
    }
    gid_t groups[64];
    int ng = getgroups(64, groups);
    char list[256] = "";
    for (int i = 0, used = 0; i < ng && used < (int)sizeof(list) - 12; i++)
        used += snprintf(list + used, sizeof(list) - (size_t)used, "%s%u", i ? "," : "",
                         (unsigned)groups[i]);
    srv__log(SRV_LOG_NOTICE, role, 0, "running as uid %u (%s), gid %u (%s), groups %s%s%s",
             (unsigned)getuid(), cfg->user[0] ? cfg->user : "unchanged", (unsigned)getgid(),
             cfg->group[0]  ? cfg->group
             : cfg->user[0] ? "user's"
                            : "unchanged",
             list, jail && cfg->chroot[0] ? ", chroot " : "", jail ? cfg->chroot : "");
    return 0;
fail:
    rc = -errno;
    srv__log(SRV_LOG_ERROR, role, rc, "cannot drop privileges: %s", step);
    return rc;
}

int srv__priv_drop_master(const srv__config_t *cfg, int pid_fd, const char *ctl_path)
{
    ident_t id;
    char err[256];
    if (!wanted(cfg) || geteuid() != 0)
        return 0;
    if (resolve(cfg, &id, err, sizeof(err)) == 0 && id.set_gid)
        give_all(cfg, &id, pid_fd, ctl_path);
    return drop(cfg, "master", false);
}

int srv__priv_drop_manager(const srv__config_t *cfg)
{
    srv__log_set_role("manager", -1);
    return drop(cfg, "manager", true);
}
