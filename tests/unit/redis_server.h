/* Unit tests' own redis-server: started on a free loopback port without persistence (and with
 * a password when asked), stopped and waited for. Tests that need one skip their Redis part
 * when Debian's redis-server is not installed. */
#ifndef SRV_TEST_REDIS_SERVER_H
#define SRV_TEST_REDIS_SERVER_H

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define TEST_REDIS_BIN "/usr/bin/redis-server"

/* A loopback port nothing listens on: bind one, read it, close it. */
static inline int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    CHECK(fd >= 0);
    CHECK_INT(bind(fd, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    CHECK_INT(getsockname(fd, (struct sockaddr *)&a, &len), ==, 0);
    close(fd);
    return ntohs(a.sin_port);
}

static inline bool test_redis_answers(int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    bool up = c != NULL && c->err == 0;
    redisFree(c);
    return up;
}

/* Start one on port (password NULL: none); 0 when there is no redis-server to run. Waits up to
 * 10 s for it to accept connections. */
static inline pid_t test_redis_start(int port, const char *password)
{
    if (access(TEST_REDIS_BIN, X_OK) != 0)
        return 0;
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    char *argv[16] = {TEST_REDIS_BIN, "--port", p, "--bind", "127.0.0.1", "--save", "",
                      "--appendonly", "no", "--loglevel", "warning"};
    int argc = 11;
    if (password) {
        argv[argc++] = "--requirepass";
        argv[argc++] = (char *)password;
    }
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    extern char **environ;
    CHECK_INT(posix_spawn(&pid, TEST_REDIS_BIN, &fa, NULL, argv, environ), ==, 0);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 1000 && !test_redis_answers(port); i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    CHECK(test_redis_answers(port));
    return pid;
}

static inline void test_redis_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* One command on a connection of its own (AUTH first when password is given); the reply must
 * not be an error. */
static inline void test_redis_cmd(int port, const char *password, const char *cmd)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    CHECK(c != NULL && c->err == 0);
    if (password) {
        redisReply *a = redisCommand(c, "AUTH %s", password);
        CHECK(a != NULL && a->type != REDIS_REPLY_ERROR);
        freeReplyObject(a);
    }
    redisReply *r = redisCommand(c, cmd);
    CHECK(r != NULL && r->type != REDIS_REPLY_ERROR);
    freeReplyObject(r);
    redisFree(c);
}

#endif
