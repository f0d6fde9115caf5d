/* Privilege drop: nothing to do without user/group/chroot; unknown names; a non-root process
 * may only name itself; as root (in forked children), the master's drop gives its files to the
 * user and both drops leave no way back to root, the manager's inside its chroot. */
#include "core/process/priv.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define NOBODY 65534

static srv__config_t *new_cfg(const char *user, const char *group, const char *jail)
{
    srv__config_t *cfg = calloc(1, sizeof(*cfg));
    CHECK(cfg != NULL);
    snprintf(cfg->user, sizeof(cfg->user), "%s", user);
    snprintf(cfg->group, sizeof(cfg->group), "%s", group);
    snprintf(cfg->chroot, sizeof(cfg->chroot), "%s", jail);
    return cfg;
}

static void test_nothing_wanted(void)
{
    srv__config_t *cfg = new_cfg("", "", "");
    char err[256] = "";
    uid_t uid = getuid();
    CHECK_INT(srv__priv_check(cfg, err, sizeof(err)), ==, 0);
    CHECK_INT(srv__priv_drop_master(cfg, -1, ""), ==, 0);
    CHECK_INT(srv__priv_drop_manager(cfg), ==, 0);
    CHECK_INT(getuid(), ==, uid);
    free(cfg);
}

static void test_unknown_names(void)
{
    char err[256];
    srv__config_t *cfg = new_cfg("no-such-user-srv", "", "");
    CHECK_INT(srv__priv_check(cfg, err, sizeof(err)), ==, -ENOENT);
    CHECK_STR(err, "user: no such user \"no-such-user-srv\"");
    snprintf(cfg->user, sizeof(cfg->user), "nobody");
    snprintf(cfg->group, sizeof(cfg->group), "no-such-group-srv");
    CHECK_INT(srv__priv_check(cfg, err, sizeof(err)), ==, -ENOENT);
    CHECK_STR(err, "group: no such group \"no-such-group-srv\"");
    free(cfg);
}

/* Run as nobody: naming root, another group or a chroot is refused; naming nobody is fine. */
static void check_as_nobody(void)
{
    char err[256];
    srv__config_t *cfg = new_cfg("root", "", "");
    CHECK_INT(srv__priv_check(cfg, err, sizeof(err)), ==, -EPERM);
    CHECK(strstr(err, "user = \"root\" needs srv started as root") != NULL);
    snprintf(cfg->user, sizeof(cfg->user), "nobody");
    CHECK_INT(srv__priv_check(cfg, err, sizeof(err)), ==, 0);
    snprintf(cfg->group, sizeof(cfg->group), "nogroup");
    CHECK_INT(srv__priv_check(cfg, err, sizeof(err)), ==, 0);
    CHECK_INT(srv__priv_drop_manager(cfg), ==, 0); /* not root: nothing to drop */
    snprintf(cfg->group, sizeof(cfg->group), "root");
    CHECK_INT(srv__priv_check(cfg, err, sizeof(err)), ==, -EPERM);
    CHECK(strstr(err, "group = \"root\" needs srv started as root") != NULL);
    cfg->group[0] = '\0';
    snprintf(cfg->chroot, sizeof(cfg->chroot), "/");
    CHECK_INT(srv__priv_check(cfg, err, sizeof(err)), ==, -EPERM);
    CHECK(strstr(err, "chroot = \"/\" needs srv started as root") != NULL);
    free(cfg);
}

/* As root: the master's drop gives the pid file to nobody and keeps no way back. */
static void master_drop(const char *pid_path)
{
    srv__config_t *cfg = new_cfg("nobody", "nogroup", "");
    int fd = open(pid_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    CHECK_INT(srv__priv_drop_master(cfg, fd, ""), ==, 0);
    struct stat st;
    CHECK_INT(fstat(fd, &st), ==, 0);
    CHECK_INT(st.st_uid, ==, NOBODY);
    CHECK_INT(st.st_gid, ==, NOBODY);
    uid_t r, e, s;
    CHECK_INT(getresuid(&r, &e, &s), ==, 0);
    CHECK(r == NOBODY && e == NOBODY && s == NOBODY);
    CHECK_INT(getgid(), ==, NOBODY);
    gid_t groups[8];
    CHECK_INT(getgroups(8, groups), ==, 1);
    CHECK_INT(groups[0], ==, NOBODY);
    CHECK(setuid(0) != 0);
    close(fd);
    free(cfg);
}

/* As root: the manager's drop with a group alone keeps uid 0 but the one group; with a user
 * and a chroot, the process is inside it. */
static void manager_drop(const char *jail)
{
    srv__config_t *cfg = new_cfg("nobody", "", jail);
    CHECK(access("/etc/passwd", F_OK) == 0);
    CHECK_INT(srv__priv_drop_manager(cfg), ==, 0);
    CHECK_INT(getuid(), ==, NOBODY);
    CHECK_INT(getgid(), ==, NOBODY);         /* nobody's primary group */
    CHECK(access("/etc/passwd", F_OK) != 0); /* the jail is empty */
    char cwd[64];
    CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
    CHECK_STR(cwd, "/");
    free(cfg);
}

static void group_only(void)
{
    srv__config_t *cfg = new_cfg("", "nogroup", "");
    CHECK_INT(srv__priv_drop_manager(cfg), ==, 0);
    CHECK_INT(getuid(), ==, 0);
    CHECK_INT(getgid(), ==, NOBODY);
    gid_t groups[8];
    CHECK_INT(getgroups(8, groups), ==, 1);
    CHECK_INT(groups[0], ==, NOBODY);
    free(cfg);
}

/* fn in a child process (drops cannot be undone); the child's checks decide. */
static void in_child(void (*fn)(const char *), const char *arg)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    int st;
    CHECK_INT(waitpid(pid, &st, 0), ==, pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void as_nobody(const char *unused)
{
    (void)unused;
    CHECK_INT(setgroups(0, NULL), ==, 0);
    CHECK_INT(setgid(NOBODY), ==, 0);
    CHECK_INT(setuid(NOBODY), ==, 0);
    check_as_nobody();
}

/* Run as uid nobody, gid root: nobody's own group is not ours. */
static void as_nobody_in_root_group(const char *unused)
{
    (void)unused;
    char err[256];
    CHECK_INT(setgroups(0, NULL), ==, 0);
    CHECK_INT(setuid(NOBODY), ==, 0);
    srv__config_t *cfg = new_cfg("nobody", "", "");
    CHECK_INT(srv__priv_check(cfg, err, sizeof(err)), ==, -EPERM);
    CHECK_STR(err, "user = \"nobody\": its group (gid 65534) needs srv started as root or with "
                   "that group (running as gid 0)");
    free(cfg);
}

static void group_only_child(const char *unused)
{
    (void)unused;
    group_only();
}

int main(void)
{
    test_nothing_wanted();
    test_unknown_names();
    if (geteuid() != 0) {
        check_as_nobody(); /* meaningful only when not started as nobody; still must not crash */
        puts("test_priv: ok (not root: drops not exercised)");
        return 0;
    }
    char dir[] = "/tmp/srv-priv-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char pid_path[64], jail[64];
    snprintf(pid_path, sizeof(pid_path), "%s/srv.pid", dir);
    snprintf(jail, sizeof(jail), "%s/jail", dir);
    CHECK_INT(mkdir(jail, 0755), ==, 0);
    in_child(as_nobody, NULL);
    in_child(as_nobody_in_root_group, NULL);
    in_child(master_drop, pid_path);
    in_child(manager_drop, jail);
    in_child(group_only_child, NULL);
    unlink(pid_path);
    rmdir(jail);
    rmdir(dir);
    puts("test_priv: ok");
    return 0;
}
