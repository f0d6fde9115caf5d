/* The fenced Redis lock for cron beats; see cron_lock.h. */
#include "timer/cron_lock.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "core/ipc/redis.h"
#include "timer/cron_sched.h"

/* KEYS: last, lock, fence. ARGV: slot, owner, ttl_ms. Returns the token, 0 (claimed already)
 * or -1 (busy). */
static const char claim_lua[] =
    "local slot = tonumber(ARGV[1])\n"
    "if tonumber(redis.call('GET', KEYS[1]) or '-1') >= slot then return 0 end\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end\n"
    "local token = redis.call('INCR', KEYS[3])\n"
    "redis.call('SET', KEYS[2], ARGV[2] .. ':' .. token, 'PX', ARGV[3])\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "return token\n";

/* KEYS: lock. ARGV: the value we set. Compare-and-delete. */
static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

struct srv__cron_lock {
    redisContext *rc;
    char addr[256];
    char password[256];
    int db;
    char job[SRV_CRON_NAME_MAX];
    char owner[128];
    char held[160]; /* the lock's value while we hold it, "" otherwise */
    int64_t ttl_ms;
    _Atomic uint64_t won, lost, busy, errors, stale;
    _Atomic int64_t token;
};

srv__cron_lock_t *srv__cron_lock_create(const srv__cron_lock_redis_t *where, const char *job,
                                      const char *owner, int64_t ttl_ms)
{
    srv__cron_lock_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    snprintf(l->addr, sizeof(l->addr), "%s", where->addr);
    snprintf(l->password, sizeof(l->password), "%s", where->password ? where->password : "");
    l->db = where->db;
    snprintf(l->job, sizeof(l->job), "%s", job);
    snprintf(l->owner, sizeof(l->owner), "%s", owner);
    l->ttl_ms = ttl_ms > 1000 ? ttl_ms : 1000;
    return l;
}

void srv__cron_lock_destroy(srv__cron_lock_t *l)
{
    if (l == NULL)
        return;
    if (l->rc)
        redisFree(l->rc);
    free(l);
}

static int fail(srv__cron_lock_t *l, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "redis %s: %s", l->addr, what);
    if (l->rc) {
        redisFree(l->rc);
        l->rc = NULL;
    }
    atomic_fetch_add(&l->errors, 1);
    return -EIO;
}

/* One script on the connection (made first if needed): its reply, or NULL after fail(). */
static redisReply *eval(srv__cron_lock_t *l, int timeout_ms, const char *script, int nkeys,
                        const char **args, int nargs, char *err, size_t errlen)
{
    err[0] = '\0';
    if (l->rc == NULL) {
        char why[200];
        l->rc = srv__redis_connect_sync(l->addr, l->password, l->db, timeout_ms, why, sizeof(why));
        if (l->rc == NULL) {
            fail(l, err, errlen, why);
            return NULL;
        }
    }
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    const char *argv[3 + 6] = {"EVAL", script, nk};
    if (nargs > 6)
        nargs = 6;
    for (int i = 0; i < nargs; i++)
        argv[3 + i] = args[i];
    redisReply *r = redisCommandArgv(l->rc, 3 + nargs, argv, NULL);
    char why[200];
    if (r == NULL) {
        snprintf(why, sizeof(why), "EVAL failed: %s", l->rc->errstr);
        fail(l, err, errlen, why);
        return NULL;
    }
    if (r->type != REDIS_REPLY_INTEGER) {
        snprintf(why, sizeof(why), "EVAL answered %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
        freeReplyObject(r);
        fail(l, err, errlen, why);
        return NULL;
    }
    return r;
}

int64_t srv__cron_lock_claim(srv__cron_lock_t *l, int64_t slot, int timeout_ms, char *err,
                             size_t errlen)
{
    char last[SRV_CRON_NAME_MAX + 32], lock[SRV_CRON_NAME_MAX + 32], fence[SRV_CRON_NAME_MAX + 32];
    char slot_s[24], ttl_s[24];
    snprintf(last, sizeof(last), "srv:cron:{%s}:last", l->job);
    snprintf(lock, sizeof(lock), "srv:cron:{%s}:lock", l->job);
    snprintf(fence, sizeof(fence), "srv:cron:{%s}:fence", l->job);
    snprintf(slot_s, sizeof(slot_s), "%lld", (long long)slot);
    snprintf(ttl_s, sizeof(ttl_s), "%lld", (long long)l->ttl_ms);
    const char *args[] = {last, lock, fence, slot_s, l->owner, ttl_s};
    redisReply *r = eval(l, timeout_ms, claim_lua, 3, args, 6, err, errlen);
    if (r == NULL)
        return -EIO;
    int64_t token = r->integer;
    freeReplyObject(r);
    if (token > 0) {
        snprintf(l->held, sizeof(l->held), "%s:%lld", l->owner, (long long)token);
        atomic_store(&l->token, token);
        atomic_fetch_add(&l->won, 1);
        return token;
    }
    atomic_fetch_add(token == 0 ? &l->lost : &l->busy, 1);
    return 0;
}

int srv__cron_lock_release(srv__cron_lock_t *l, int timeout_ms, char *err, size_t errlen)
{
    err[0] = '\0';
    if (l->held[0] == '\0')
        return 0;
    char lock[SRV_CRON_NAME_MAX + 32];
    snprintf(lock, sizeof(lock), "srv:cron:{%s}:lock", l->job);
    const char *args[] = {lock, l->held};
    redisReply *r = eval(l, timeout_ms, release_lua, 1, args, 2, err, errlen);
    l->held[0] = '\0';
    if (r == NULL)
        return -EIO;
    int released = r->integer == 1;
    freeReplyObject(r);
    if (!released)
        atomic_fetch_add(&l->stale, 1);
    return released;
}

void srv__cron_lock_stats(const srv__cron_lock_t *l, srv__cron_lock_stats_t *out)
{
    out->won = atomic_load(&l->won);
    out->lost = atomic_load(&l->lost);
    out->busy = atomic_load(&l->busy);
    out->errors = atomic_load(&l->errors);
    out->stale = atomic_load(&l->stale);
    out->token = atomic_load(&l->token);
}
