/* The async Redis connection on srv's loop, against a redis-server of the test's own (skipped
 * without one): commands and replies in order; AUTH and SELECT done before it reports up (and a
 * wrong password retried with back-off, never up); while Redis is down commands are refused at
 * once and counted, commands in flight get NULL, and the connection comes back by itself when
 * Redis does; the bound of unsent bytes; pub/sub with a resubscription after a reconnect;
 * destroy from inside a callback. Runs on the backend SRV_REACTOR_BACKEND names. */
#include "core/ipc/redis.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/base/util.h"
#include "redis_server.h"

static srv__loop_t *g_loop;

/* Run the loop until *flag is true, at most ms. */
static bool run_until(volatile bool *flag, int ms)
{
    int64_t end = srv__mono_ms() + ms;
    while (!*flag && srv__mono_ms() < end)
        srv__loop_run(g_loop, 20);
    return *flag;
}

typedef struct seen {
    bool up, down, done;
    int ups, downs, replies, nulls, messages;
    char last[256];
} seen_t;

static void on_up(srv__redis_t *r, void *arg)
{
    (void)r;
    seen_t *s = arg;
    s->up = true;
    s->down = false;
    s->ups++;
}

static void on_down(srv__redis_t *r, const char *why, void *arg)
{
    (void)r;
    seen_t *s = arg;
    s->down = true;
    s->up = false;
    s->downs++;
    snprintf(s->last, sizeof(s->last), "%s", why);
}

static void on_reply(srv__redis_t *r, const redisReply *rep, void *arg)
{
    (void)r;
    seen_t *s = arg;
    if (rep == NULL) {
        s->nulls++;
    } else {
        s->replies++;
        if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS ||
            rep->type == REDIS_REPLY_ERROR)
            snprintf(s->last, sizeof(s->last), "%s", rep->str);
        else if (rep->type == REDIS_REPLY_INTEGER)
            snprintf(s->last, sizeof(s->last), "%lld", rep->integer);
    }
    s->done = true;
}

static srv__redis_t *connect_to(int port, const char *password, int db, seen_t *s)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    srv__redis_opts_t o = {.addr = addr,
                           .password = password,
                           .db = db,
                           .name = "test",
                           .on_up = on_up,
                           .on_down = on_down,
                           .arg = s,
                           .backoff_min_ms = 50,
                           .backoff_max_ms = 400,
                           .connect_timeout_ms = 1000};
    srv__redis_t *r = NULL;
    CHECK_INT(srv__redis_create(&r, g_loop, &o), ==, 0);
    return r;
}

static void cmd(srv__redis_t *r, seen_t *s, int argc, const char **argv)
{
    s->done = false;
    CHECK_INT(srv__redis_command(r, on_reply, s, argc, argv, NULL), ==, 0);
    CHECK(run_until(&s->done, 5000));
}

static void test_addresses(void)
{
    srv__redis_t *r = NULL;
    const char *bad[] = {"nohost", "host:", "host:0", "host:70000", ":80", "[]:80", NULL};
    for (int i = 0; bad[i]; i++) {
        srv__redis_opts_t o = {.addr = bad[i]};
        CHECK_INT(srv__redis_create(&r, g_loop, &o), ==, -EINVAL);
    }
}

static void test_commands_auth_db(int port, const char *pw)
{
    seen_t s = {0};
    srv__redis_t *r = connect_to(port, pw, 3, &s);
    CHECK(!srv__redis_up(r));
    const char *get[] = {"GET", "k"};
    CHECK_INT(srv__redis_command(r, on_reply, &s, 2, get, NULL), ==, -ENOTCONN); /* not yet */
    CHECK(run_until(&s.up, 5000));
    const char *set[] = {"SET", "k", "v3"};
    cmd(r, &s, 3, set);
    CHECK_STR(s.last, "OK");
    cmd(r, &s, 2, get);
    CHECK_STR(s.last, "v3");
    /* SELECT 3 happened: db 0 does not have it. */
    test_redis_cmd(port, pw, "SET k v0");
    cmd(r, &s, 2, get);
    CHECK_STR(s.last, "v3");
    /* Many in a row: replies in order, counted. */
    for (int i = 0; i < 100; i++) {
        const char *incr[] = {"INCR", "n"};
        CHECK_INT(srv__redis_command(r, i == 99 ? on_reply : NULL, &s, 2, incr, NULL), ==, 0);
    }
    s.done = false;
    CHECK(run_until(&s.done, 5000));
    CHECK_STR(s.last, "100");
    srv__redis_stats_t st;
    srv__redis_stats(r, &st);
    CHECK(st.up && st.connects == 1 && st.refused == 1 && st.sent == 103 && st.failed == 0);
    srv__redis_destroy(r);
    srv__loop_run(g_loop, 0);
}

static void test_wrong_password(int port)
{
    seen_t s = {0};
    srv__redis_t *r = connect_to(port, "wrong", 0, &s);
    int64_t end = srv__mono_ms() + 600;
    while (srv__mono_ms() < end)
        srv__loop_run(g_loop, 20);
    srv__redis_stats_t st;
    srv__redis_stats(r, &st);
    CHECK(!s.up && s.ups == 0 && !st.up && st.connects == 0);
    CHECK_INT(st.losses, >=, 2); /* refused, and tried again after the back-off */
    CHECK_INT(st.losses, <=, 8); /* 50 ms doubling up to 400 ms: not a busy loop */
    srv__redis_destroy(r);
    srv__loop_run(g_loop, 0);
}

static void test_down_and_back(int port)
{
    pid_t pid = test_redis_start(port, NULL);
    seen_t s = {0};
    srv__redis_t *r = connect_to(port, NULL, 0, &s);
    CHECK(run_until(&s.up, 5000));
    /* A command in flight when Redis dies gets NULL; then commands are refused at once. */
    const char *blpop[] = {"BLPOP", "never", "0"};
    s.done = false;
    CHECK_INT(srv__redis_command(r, on_reply, &s, 3, blpop, NULL), ==, 0);
    srv__loop_run(g_loop, 20);
    test_redis_stop(pid);
    CHECK(run_until(&s.down, 5000));
    CHECK(s.done && s.nulls == 1);
    const char *ping[] = {"PING"};
    for (int i = 0; i < 10; i++)
        CHECK_INT(srv__redis_command(r, on_reply, &s, 1, ping, NULL), ==, -ENOTCONN);
    srv__redis_stats_t st;
    srv__redis_stats(r, &st);
    CHECK(!st.up && st.refused == 10 && st.failed == 1 && st.losses >= 1);
    /* Redis back on the same port: up again within the back-off's bound, by itself. */
    pid = test_redis_start(port, NULL);
    CHECK(run_until(&s.up, 5000));
    cmd(r, &s, 1, ping);
    CHECK_STR(s.last, "PONG");
    srv__redis_stats(r, &st);
    CHECK(st.up && st.connects == 2 && s.ups == 2 && s.downs == 1);
    srv__redis_destroy(r);
    srv__loop_run(g_loop, 0);
    test_redis_stop(pid);
}

static void test_bound(int port)
{
    seen_t s = {0};
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    srv__redis_opts_t o = {.addr = addr, .on_up = on_up, .arg = &s, .max_pending = 64 * 1024};
    srv__redis_t *r = NULL;
    CHECK_INT(srv__redis_create(&r, g_loop, &o), ==, 0);
    CHECK(run_until(&s.up, 5000));
    static char big[16 * 1024];
    memset(big, 'x', sizeof(big));
    const char *argv[] = {"SET", "big", big};
    size_t lens[] = {3, 3, sizeof(big)};
    int ok = 0, rc = 0;
    while ((rc = srv__redis_command(r, NULL, NULL, 3, argv, lens)) == 0 && ok < 100)
        ok++; /* the loop does not run: nothing is written meanwhile */
    CHECK_INT(rc, ==, -EAGAIN);
    CHECK(ok >= 4 && ok <= 6);
    srv__redis_stats_t st;
    srv__redis_stats(r, &st);
    CHECK(st.overflow == 1);
    CHECK_INT(st.pending, >=, 64 * 1024);
    /* Once written, there is room again. */
    for (int i = 0; i < 250 && st.pending > 0; i++) {
        srv__loop_run(g_loop, 20);
        srv__redis_stats(r, &st);
    }
    CHECK_INT(st.pending, ==, 0);
    const char *ping[] = {"PING"};
    cmd(r, &s, 1, ping);
    CHECK_STR(s.last, "PONG");
    srv__redis_destroy(r);
    srv__loop_run(g_loop, 0);
}

typedef struct sub {
    seen_t *s;
    srv__redis_t *pub;
} sub_t;

static void on_message(srv__redis_t *r, const redisReply *rep, void *arg)
{
    (void)r;
    seen_t *s = arg;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
        strcmp(rep->element[0]->str, "message") == 0) {
        s->messages++;
        snprintf(s->last, sizeof(s->last), "%s", rep->element[2]->str);
        s->done = true;
    }
}

static void subscribe_on_up(srv__redis_t *r, void *arg)
{
    seen_t *s = arg;
    on_up(r, arg);
    const char *argv[] = {"SUBSCRIBE", "news"};
    CHECK_INT(srv__redis_command(r, on_message, s, 2, argv, NULL), ==, 0);
}

static void test_pubsub(int port)
{
    pid_t pid = test_redis_start(port, NULL);
    seen_t ss = {0}, ps = {0};
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    srv__redis_opts_t o = {.addr = addr,
                           .on_up = subscribe_on_up,
                           .on_down = on_down,
                           .arg = &ss,
                           .backoff_min_ms = 50,
                           .backoff_max_ms = 200};
    srv__redis_t *sub = NULL, *pub = connect_to(port, NULL, 0, &ps);
    CHECK_INT(srv__redis_create(&sub, g_loop, &o), ==, 0);
    const char *two[] = {"SUBSCRIBE", "a", "b"};
    CHECK(run_until(&ss.up, 5000) && run_until(&ps.up, 5000));
    CHECK_INT(srv__redis_command(sub, on_message, &ss, 3, two, NULL), ==, -EINVAL);
    /* Publish until the subscription is in place (it is asynchronous), then once more. */
    const char *publish[] = {"PUBLISH", "news", "hello"};
    for (int i = 0; i < 100 && ss.messages == 0; i++)
        cmd(pub, &ps, 3, publish);
    CHECK(ss.messages > 0);
    CHECK_STR(ss.last, "hello");
    /* Redis restarts: the owner's on_up subscribes again and messages flow again. */
    test_redis_stop(pid);
    CHECK(run_until(&ss.down, 5000));
    pid = test_redis_start(port, NULL);
    ss.up = ps.up = false;
    CHECK(run_until(&ss.up, 5000) && run_until(&ps.up, 5000));
    int before = ss.messages;
    const char *again[] = {"PUBLISH", "news", "again"};
    for (int i = 0; i < 100 && ss.messages == before; i++)
        cmd(pub, &ps, 3, again);
    CHECK_STR(ss.last, "again");
    CHECK_INT(ss.ups, ==, 2);
    srv__redis_destroy(sub);
    srv__redis_destroy(pub);
    srv__loop_run(g_loop, 0);
    test_redis_stop(pid);
}

/* Destroy from a reply's callback: hiredis is freed once it returns, the rest get NULL. */
static srv__redis_t *g_victim;
static void destroy_in_callback(srv__redis_t *r, const redisReply *rep, void *arg)
{
    seen_t *s = arg;
    s->replies++;
    s->done = true;
    srv__redis_destroy(r);
}

static void test_destroy_in_callback(int port)
{
    seen_t s = {0}, t = {0};
    g_victim = connect_to(port, NULL, 0, &s);
    CHECK(run_until(&s.up, 5000));
    const char *ping[] = {"PING"};
    const char *blpop[] = {"BLPOP", "never", "0"};
    CHECK_INT(srv__redis_command(g_victim, destroy_in_callback, &s, 1, ping, NULL), ==, 0);
    CHECK_INT(srv__redis_command(g_victim, on_reply, &t, 3, blpop, NULL), ==, 0);
    CHECK(run_until(&t.done, 5000));
    CHECK(s.replies == 1 && t.nulls == 1);
    for (int i = 0; i < 5; i++)
        srv__loop_run(g_loop, 10); /* the ops' last completions: the memory goes (LSan) */
}

int main(void)
{
    CHECK_INT(srv__loop_create(&g_loop, SRV_BACKEND_AUTO, NULL), ==, 0);
    test_addresses();
    int port = test_free_port();
    pid_t pid = test_redis_start(port, "s3cret");
    if (pid == 0) {
        printf("test_redis: no %s, skipped\n", TEST_REDIS_BIN);
        srv__loop_destroy(g_loop);
        return 77;
    }
    test_commands_auth_db(port, "s3cret");
    test_wrong_password(port);
    test_redis_stop(pid);
    test_down_and_back(test_free_port());
    pid = test_redis_start(port = test_free_port(), NULL);
    test_bound(port);
    test_destroy_in_callback(port);
    test_redis_stop(pid);
    test_pubsub(test_free_port());
    srv__loop_destroy(g_loop);
    printf("test_redis: ok\n");
    return check_failures_ ? 1 : 0;
}
