/* An asynchronous Redis connection on srv's loop; see redis.h. hiredis does the protocol and
 * asks for read and write readiness through its event hooks; here those become one-shot polls
 * on the loop (re-armed after each completion), and a 100 ms tick runs while the connection is
 * not up: it ends a connect that takes too long and starts the next attempt when its back-off
 * has passed. */
#include "core/ipc/redis.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/async.h>
#include <hiredis/sds.h>

#include "core/base/log.h"
#include "core/base/util.h"

#define TICK_MS 100
#define DEFAULT_MAX_PENDING (8u << 20)

enum { R_WAIT, R_CONNECTING, R_HANDSHAKE, R_UP };

/* A command's callback and argument, for hiredis's single privdata. */
typedef struct pending {
    struct srv__redis *r;
    srv__redis_cb cb;
    void *arg;
    bool subscribe; /* called for every message until unsubscribed or disconnected */
} pending_t;

struct srv__redis {
    srv__loop_t *loop;
    redisAsyncContext *ac;
    int state;
    bool dead;         /* destroy was called: free once no op is armed */
    int in_hiredis;    /* inside redisAsyncHandle*: hiredis may not be freed from here */
    const char *hs[2]; /* the handshake's commands (AUTH, SELECT), in order */
    int hs_total, hs_done;
    char addr[256], host[256], password[256], name[64];
    int port, db;
    size_t max_pending;
    int connect_timeout_ms, backoff_min_ms, backoff_max_ms, backoff_ms;
    int64_t deadline_ms; /* R_CONNECTING / R_HANDSHAKE: give up; R_WAIT: try again */
    void (*on_up)(srv__redis_t *r, void *arg);
    void (*on_down)(srv__redis_t *r, const char *why, void *arg);
    void *arg;
    srv__loop_op_t io, tick;
    bool io_armed, tick_armed;
    int io_fd;
    uint32_t io_events, want;
    uint64_t rng;
    pending_t quiet;           /* the privdata of every command sent without a callback */
    char why[160];             /* why the connection is down */
    int64_t refuse_log_ms;     /* when the last "refused" line was written */
    uint64_t refused_unlogged; /* refused since then */
    srv__redis_stats_t st;
};

static void on_io(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data, uint32_t fl);
static void on_tick(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data, uint32_t fl);
static void start_connect(srv__redis_t *r);

/* ---- the loop side: polls and the tick ---- */

static void maybe_free(srv__redis_t *r)
{
    if (r->dead && !r->io_armed && !r->tick_armed && r->ac == NULL)
        free(r);
}

/* Poll for what hiredis wants on its current socket: a poll armed for other events or an old
 * socket is cancelled first (its completion re-arms). */
static void arm_io(srv__redis_t *r)
{
    int fd = r->ac ? r->ac->c.fd : -1;
    if (r->io_armed) {
        if (r->io_fd != fd || (r->want & ~r->io_events) != 0)
            srv__loop_cancel(r->loop, &r->io);
        return;
    }
    if (fd < 0 || r->want == 0 || r->dead)
        return;
    r->io.cb = on_io;
    r->io.data = r;
    if (srv__loop_poll(r->loop, &r->io, fd, r->want) == 0) {
        r->io_armed = true;
        r->io_fd = fd;
        r->io_events = r->want;
    }
}

static void arm_tick(srv__redis_t *r)
{
    if (r->tick_armed || r->dead || r->state == R_UP)
        return;
    r->tick.cb = on_tick;
    r->tick.data = r;
    if (srv__loop_timer(r->loop, &r->tick, TICK_MS) == 0)
        r->tick_armed = true;
}

static void on_io(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data, uint32_t fl)
{
    (void)loop, (void)data, (void)fl;
    srv__redis_t *r = op->data;
    r->io_armed = false;
    if (r->ac != NULL && r->io_fd == r->ac->c.fd && res != -ECANCELED && !r->dead) {
        uint32_t ev = res < 0 ? POLLERR : (uint32_t)res;
        r->in_hiredis++;
        if ((r->want & POLLIN) && (ev & (POLLIN | POLLERR | POLLHUP)))
            redisAsyncHandleRead(r->ac);
        if (r->ac != NULL && (r->want & POLLOUT) && (ev & (POLLOUT | POLLERR | POLLHUP)))
            redisAsyncHandleWrite(r->ac);
        r->in_hiredis--;
    }
    if (r->dead) {
        if (r->ac != NULL) /* destroyed from a callback: now hiredis may be freed */
            redisAsyncFree(r->ac);
        maybe_free(r);
        return;
    }
    arm_io(r);
    arm_tick(r);
}

/* ---- hiredis's event hooks ---- */

static void ev_add_read(void *p)
{
    srv__redis_t *r = p;
    r->want |= POLLIN;
    arm_io(r);
}

static void ev_del_read(void *p)
{
    ((srv__redis_t *)p)->want &= ~(uint32_t)POLLIN; /* an armed poll's completion is ignored */
}

static void ev_add_write(void *p)
{
    srv__redis_t *r = p;
    r->want |= POLLOUT;
    arm_io(r);
}

static void ev_del_write(void *p)
{
    ((srv__redis_t *)p)->want &= ~(uint32_t)POLLOUT;
}

/* hiredis frees the context (an error, a disconnect, our free): it is no longer ours. */
static void ev_cleanup(void *p)
{
    srv__redis_t *r = p;
    r->ac = NULL;
    r->want = 0;
    if (r->io_armed)
        srv__loop_cancel(r->loop, &r->io); /* before hiredis closes the socket */
}

/* ---- connecting, the handshake, losing it ---- */

static uint32_t jitter(srv__redis_t *r, uint32_t ms)
{
    r->rng = r->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    uint32_t span = ms / 5 + 1; /* +-20 % */
    return ms - span + (uint32_t)((r->rng >> 33) % (2 * span + 1));
}

/* The connection (or the attempt) is gone: say so once, then wait before the next attempt. */
static void lost(srv__redis_t *r, const char *why)
{
    bool was_up = r->state == R_UP;
    snprintf(r->why, sizeof(r->why), "%s", why);
    r->st.losses++;
    r->st.up = false;
    r->state = R_WAIT;
    int wait = (int)jitter(r, (uint32_t)r->backoff_ms);
    r->deadline_ms = srv__mono_ms() + wait;
    if (r->backoff_ms < r->backoff_max_ms)
        r->backoff_ms =
            r->backoff_ms * 2 < r->backoff_max_ms ? r->backoff_ms * 2 : r->backoff_max_ms;
    if (was_up || r->st.losses == 1)
        srv__log(SRV_LOG_WARN, "redis", 0, "%s: redis %s: %s; retrying in %d ms", r->name, r->addr,
                 why, wait);
    if (was_up && r->on_down && !r->dead)
        r->on_down(r, why, r->arg);
    arm_tick(r);
}

static void now_up(srv__redis_t *r)
{
    r->state = R_UP;
    r->st.up = true;
    r->st.connects++;
    r->backoff_ms = r->backoff_min_ms;
    if (r->st.losses > 0)
        srv__log(SRV_LOG_NOTICE, "redis", 0, "%s: redis %s: connected again", r->name, r->addr);
    if (r->on_up)
        r->on_up(r, r->arg);
}

static void on_handshake(redisAsyncContext *ac, void *reply, void *priv)
{
    srv__redis_t *r = priv;
    const redisReply *rep = reply;
    if (rep == NULL || r->state != R_HANDSHAKE)
        return; /* the connection went: on_disconnect says so */
    const char *what = r->hs[r->hs_done++];
    if (rep->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof(why), "%s refused: %s", what, rep->str);
        r->state = R_WAIT; /* on_disconnect: not the loss of a connection that was up */
        redisAsyncDisconnect(ac);
        lost(r, why);
        return;
    }
    if (r->hs_done == r->hs_total)
        now_up(r);
}

/* Queue one handshake command. */
static void handshake(srv__redis_t *r, redisAsyncContext *ac, const char *cmd, const char *arg)
{
    const char *argv[] = {cmd, arg};
    if (redisAsyncCommandArgv(ac, on_handshake, r, 2, argv, NULL) == REDIS_OK)
        r->hs[r->hs_total++] = cmd;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    srv__redis_t *r = ac->data;
    if (status != REDIS_OK) {
        char why[160];
        snprintf(why, sizeof(why), "cannot connect: %s", ac->errstr);
        lost(r, why); /* hiredis frees the context after this */
        return;
    }
    redisAsyncContext *a = (redisAsyncContext *)ac;
    r->hs_total = r->hs_done = 0;
    if (r->password[0])
        handshake(r, a, "AUTH", r->password);
    char db[16];
    snprintf(db, sizeof(db), "%d", r->db);
    if (r->db > 0)
        handshake(r, a, "SELECT", db);
    if (r->hs_total == 0) {
        now_up(r);
        return;
    }
    r->state = R_HANDSHAKE;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    srv__redis_t *r = ac->data;
    if (r->dead || r->state == R_WAIT)
        return;
    lost(r, status == REDIS_OK ? "disconnected" : ac->errstr[0] ? ac->errstr : "connection lost");
}

static void start_connect(srv__redis_t *r)
{
    redisAsyncContext *ac =
        r->port ? redisAsyncConnect(r->host, r->port) : redisAsyncConnectUnix(r->host);
    if (ac == NULL) {
        lost(r, "out of memory");
        return;
    }
    if (ac->err) {
        char why[160];
        snprintf(why, sizeof(why), "cannot connect: %s", ac->errstr);
        redisAsyncFree(ac);
        lost(r, why);
        return;
    }
    ac->data = r;
    ac->ev.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    r->ac = ac;
    r->want = 0;
    r->state = R_CONNECTING;
    r->deadline_ms = srv__mono_ms() + r->connect_timeout_ms;
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    redisAsyncSetConnectCallback(ac, on_connect); /* asks for the first write readiness */
    arm_tick(r);
}

static void on_tick(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data, uint32_t fl)
{
    (void)loop, (void)res, (void)data, (void)fl;
    srv__redis_t *r = op->data;
    r->tick_armed = false;
    if (r->dead) {
        maybe_free(r);
        return;
    }
    int64_t now = srv__mono_ms();
    if ((r->state == R_CONNECTING || r->state == R_HANDSHAKE) && now >= r->deadline_ms) {
        redisAsyncContext *ac = r->ac;
        r->state = R_WAIT;
        if (ac != NULL)
            redisAsyncFree(ac);
        lost(r, "no answer within the connect timeout");
    } else if (r->state == R_WAIT && now >= r->deadline_ms) {
        start_connect(r);
    }
    arm_tick(r);
}

/* ---- the owner's calls ---- */

int srv__redis_addr_parse(const char *addr, char *host, size_t cap, int *port)
{
    *port = 0;
    if (addr[0] == '/')
        return snprintf(host, cap, "%s", addr) < (int)cap ? 0 : -EINVAL;
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr)
        return -EINVAL;
    char *end;
    long n = strtol(colon + 1, &end, 10);
    if (*end != '\0' || n < 1 || n > 65535)
        return -EINVAL;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') { /* [::1]:6379 */
        addr++;
        hl -= 2;
    }
    if (hl == 0 || hl >= cap)
        return -EINVAL;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    *port = (int)n;
    return 0;
}

redisContext *srv__redis_connect_sync(const char *addr, const char *password, int db,
                                      int timeout_ms, char *why, size_t len)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    char host[256];
    int port;
    if (srv__redis_addr_parse(addr, host, sizeof(host), &port) < 0) {
        snprintf(why, len, "address is not host:port");
        return NULL;
    }
    redisContext *c =
        port ? redisConnectWithTimeout(host, port, tv) : redisConnectUnixWithTimeout(host, tv);
    if (c == NULL || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(why, len, "cannot connect: %s", c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    char dbs[16];
    snprintf(dbs, sizeof(dbs), "%d", db);
    const char *steps[][2] = {{"AUTH", password}, {"SELECT", dbs}};
    for (int i = 0; i < 2; i++) {
        if ((i == 0 && (password == NULL || password[0] == '\0')) || (i == 1 && db <= 0))
            continue;
        redisReply *r = redisCommandArgv(c, 2, steps[i], NULL);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            snprintf(why, len, "%s refused: %s", steps[i][0], r ? r->str : c->errstr);
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
}

int srv__redis_create(srv__redis_t **out, srv__loop_t *loop, const srv__redis_opts_t *o)
{
    srv__redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    if (o->addr == NULL || srv__redis_addr_parse(o->addr, r->host, sizeof(r->host), &r->port) < 0 ||
        snprintf(r->addr, sizeof(r->addr), "%s", o->addr) >= (int)sizeof(r->addr) ||
        (o->password && strlen(o->password) >= sizeof(r->password))) {
        free(r);
        return -EINVAL;
    }
    r->loop = loop;
    r->quiet = (pending_t){.r = r};
    snprintf(r->password, sizeof(r->password), "%s", o->password ? o->password : "");
    snprintf(r->name, sizeof(r->name), "%s", o->name ? o->name : "srv");
    r->db = o->db;
    r->max_pending = o->max_pending ? o->max_pending : DEFAULT_MAX_PENDING;
    r->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000;
    r->backoff_min_ms = o->backoff_min_ms > 0 ? o->backoff_min_ms : 100;
    r->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 5000;
    if (r->backoff_max_ms < r->backoff_min_ms)
        r->backoff_max_ms = r->backoff_min_ms;
    r->backoff_ms = r->backoff_min_ms;
    r->on_up = o->on_up;
    r->on_down = o->on_down;
    r->arg = o->arg;
    r->rng = (uint64_t)srv__mono_ms() ^ ((uint64_t)(uintptr_t)r << 7);
    snprintf(r->why, sizeof(r->why), "connecting");
    start_connect(r);
    *out = r;
    return 0;
}

void srv__redis_destroy(srv__redis_t *r)
{
    if (r == NULL || r->dead)
        return;
    r->dead = true;
    if (r->ac != NULL && !r->in_hiredis) /* else on_io frees it once hiredis returns */
        redisAsyncFree(r->ac);
    if (r->io_armed)
        srv__loop_cancel(r->loop, &r->io);
    if (r->tick_armed)
        srv__loop_cancel(r->loop, &r->tick);
    maybe_free(r);
}

/* Commands refused while down: counted, and one line a second says how many. */
static int refuse(srv__redis_t *r, int err)
{
    if (err == -EAGAIN)
        r->st.overflow++;
    else
        r->st.refused++;
    r->refused_unlogged++;
    int64_t now = srv__mono_ms();
    if (now - r->refuse_log_ms >= 1000) {
        srv__log(SRV_LOG_WARN, "redis", 0, "%s: redis %s: %llu command(s) not sent: %s", r->name,
                 r->addr, (unsigned long long)r->refused_unlogged,
                 err == -EAGAIN ? "over the bound of unsent bytes" : r->why);
        r->refuse_log_ms = now;
        r->refused_unlogged = 0;
    }
    return err;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    pending_t *p = priv;
    const redisReply *rep = reply;
    if (rep == NULL)
        p->r->st.failed++;
    if (p->cb)
        p->cb(p->r, rep, p->arg);
    if (p == &p->r->quiet)
        return; /* (shared by every command without a callback: never freed) */
    bool last = !p->subscribe || rep == NULL;
    if (!last && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
        rep->element[0]->type == REDIS_REPLY_STRING)
        last = strcasecmp(rep->element[0]->str, "unsubscribe") == 0 ||
               strcasecmp(rep->element[0]->str, "punsubscribe") == 0;
    if (last)
        free(p);
}

int srv__redis_command(srv__redis_t *r, srv__redis_cb cb, void *arg, int argc, const char **argv,
                       const size_t *argvlen)
{
    if (r->state != R_UP || r->ac == NULL)
        return refuse(r, -ENOTCONN);
    if (sdslen(r->ac->c.obuf) >= r->max_pending)
        return refuse(r, -EAGAIN);
    bool sub = argc > 0 &&
               (strcasecmp(argv[0], "subscribe") == 0 || strcasecmp(argv[0], "psubscribe") == 0);
    if (sub && argc != 2)
        return -EINVAL; /* one channel per command: hiredis calls back once per channel */
    pending_t *p = cb == NULL && !sub ? &r->quiet : malloc(sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    if (p != &r->quiet)
        *p = (pending_t){.r = r, .cb = cb, .arg = arg, .subscribe = sub};
    if (redisAsyncCommandArgv(r->ac, on_reply, p, argc, argv, argvlen) != REDIS_OK) {
        if (p != &r->quiet)
            free(p);
        return refuse(r, -ENOTCONN);
    }
    r->st.sent++;
    return 0;
}

bool srv__redis_up(const srv__redis_t *r)
{
    return r->state == R_UP;
}

void srv__redis_stats(const srv__redis_t *r, srv__redis_stats_t *out)
{
    *out = r->st;
    out->pending = r->ac ? sdslen(r->ac->c.obuf) : 0;
}
