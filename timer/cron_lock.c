/* Redis lock for cron beats; see cron_lock.h. */
#include "timer/cron_lock.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "timer/cron_sched.h"

struct srv__cron_lock {
    redisContext *rc;
    char addr[256];
    char job[SRV_CRON_NAME_MAX];
    char owner[128];
    int64_t ttl_ms;
    _Atomic uint64_t won, lost, errors;
};

srv__cron_lock_t *srv__cron_lock_create(const char *addr, const char *job, const char *owner,
                                      int64_t ttl_ms)
{
    srv__cron_lock_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    snprintf(l->addr, sizeof(l->addr), "%s", addr);
    snprintf(l->job, sizeof(l->job), "%s", job);
    snprintf(l->owner, sizeof(l->owner), "%s", owner);
    l->ttl_ms = ttl_ms > 0 ? ttl_ms : 1;
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

static int connect_redis(srv__cron_lock_t *l, struct timeval tv, char *err, size_t errlen)
{
    if (l->addr[0] == '/') {
        l->rc = redisConnectUnixWithTimeout(l->addr, tv);
    } else {
        char host[256];
        snprintf(host, sizeof(host), "%s", l->addr);
        char *colon = strrchr(host, ':');
        if (colon == NULL)
            return fail(l, err, errlen, "address is not host:port");
        *colon = '\0';
        /* [::1]:6379 */
        char *h = host;
        size_t hl = strlen(h);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
            h[hl - 1] = '\0';
            h++;
        }
        l->rc = redisConnectWithTimeout(h, atoi(colon + 1), tv);
    }
    if (l->rc == NULL)
        return fail(l, err, errlen, "out of memory");
    if (l->rc->err) {
        char why[160];
        snprintf(why, sizeof(why), "cannot connect: %s", l->rc->errstr);
        return fail(l, err, errlen, why);
    }
    if (redisSetTimeout(l->rc, tv) != REDIS_OK)
        return fail(l, err, errlen, "cannot set the command timeout");
    return 0;
}

int srv__cron_lock_claim(srv__cron_lock_t *l, int64_t slot, int timeout_ms, char *err,
                         size_t errlen)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    err[0] = '\0';
    if (l->rc == NULL && connect_redis(l, tv, err, errlen) < 0)
        return -EIO;
    char key[SRV_CRON_NAME_MAX + 48];
    snprintf(key, sizeof(key), "srv:cron:%s:%lld", l->job, (long long)slot);
    redisReply *r =
        redisCommand(l->rc, "SET %s %s NX PX %lld", key, l->owner, (long long)l->ttl_ms);
    if (r == NULL) {
        char why[160];
        snprintf(why, sizeof(why), "SET failed: %s", l->rc->errstr);
        return fail(l, err, errlen, why);
    }
    int ret;
    if (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0) {
        atomic_fetch_add(&l->won, 1);
        ret = 1;
    } else if (r->type == REDIS_REPLY_NIL) {
        atomic_fetch_add(&l->lost, 1);
        ret = 0;
    } else {
        char why[200];
        snprintf(why, sizeof(why), "SET answered %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
        freeReplyObject(r);
        return fail(l, err, errlen, why);
    }
    freeReplyObject(r);
    return ret;
}

void srv__cron_lock_stats(const srv__cron_lock_t *l, srv__cron_lock_stats_t *out)
{
    out->won = atomic_load(&l->won);
    out->lost = atomic_load(&l->lost);
    out->errors = atomic_load(&l->errors);
}
