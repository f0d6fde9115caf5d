/* Broadcasts and session actions across the instances of a cluster; see cluster.h. A published
 * message is "srv1" (4 bytes), its kind (1: WebSocket broadcast, 2: worker message, 3: an
 * action on a session), then for kinds 1 and 2 the listener + 1 (0: every WebSocket listener,
 * two bytes, big-endian) and the opcode (one byte), for kind 3 the same three bytes hold the
 * action's SRV_IPC type (two bytes) and its flags (one byte) and the session (8 bytes,
 * big-endian) follows the id; then the sending instance's id (one length byte, then the
 * bytes), then the data. */
#include "core/worker/cluster.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/log.h"
#include "core/ipc/ipc.h"
#include "core/ipc/mbox.h"
#include "core/ipc/redis.h"
#include "core/net/session.h"
#include "core/server/server.h"
#include "core/worker/worker.h"

enum { KIND_WS = 1, KIND_MSG = 2, KIND_ACTION = 3 };
#define HEAD 9 /* magic, kind, listener, opcode, id length */

static struct {
    srv__redis_t *pub, *sub;
    srv__worker_stat_t *stat;
    const char *id;
    size_t idlen;
    char *buf;
    size_t cap;
    char own_channel[64]; /* srv:cluster:instance:<number> */
} C;

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* A message from another instance: deliver it here as a local broadcast would. */
static void deliver(const unsigned char *p, size_t len)
{
    if (len < HEAD || memcmp(p, "srv1", 4) != 0 || len < HEAD + (size_t)p[8])
        return;
    size_t idlen = p[8];
    if (idlen == C.idlen && memcmp(p + HEAD, C.id, idlen) == 0)
        return; /* ours: delivered here when it was sent */
    int kind = p[4];
    unsigned listener1 = (unsigned)p[5] << 8 | p[6];
    uint16_t opcode = p[7];
    const unsigned char *data = p + HEAD + idlen;
    size_t n = len - HEAD - idlen;
    atomic_fetch_add(&C.stat->cluster_received, 1);
    if (kind == KIND_ACTION && n >= 8) {
        /* (listener1 holds the SRV_IPC type, opcode its flags) */
        uint64_t session = get_be64(data);
        if (!srv__cluster_elsewhere(session))
            srv__worker_action(session, (uint16_t)listener1, opcode, (const char *)data + 8, n - 8);
    } else if (kind == KIND_WS && (int)listener1 <= srv__server.cfg.nlisten) {
        srv__worker_action(listener1, SRV_IPC_WS_BROADCAST, opcode, data, n);
    } else if (kind == KIND_MSG) {
        srv__msg_t m = {.type = SRV_MSG_PIPE, .from = -1, .len = (uint32_t)n};
        for (int i = 0; i < srv__server.cfg.worker_num; i++)
            srv__mbox_put(srv__slot_box(i), &m, data);
    }
}

static void on_message(srv__redis_t *r, const redisReply *rep, void *arg)
{
    (void)r, (void)arg;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
        rep->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(rep->element[0]->str, "message") == 0 && rep->element[2]->type == REDIS_REPLY_STRING)
        deliver((const unsigned char *)rep->element[2]->str, rep->element[2]->len);
}

/* Worker 0's subscriber, to the broadcasts and to this instance's channel: (again) after
 * every connect. */
static void subscribe(srv__redis_t *r, void *arg)
{
    (void)arg;
    const char *all[] = {"SUBSCRIBE", SRV_CLUSTER_CHANNEL};
    const char *own[] = {"SUBSCRIBE", C.own_channel};
    srv__redis_command(r, on_message, NULL, 2, all, NULL);
    srv__redis_command(r, on_message, NULL, 2, own, NULL);
}

int srv__cluster_number(const srv__config_t *cfg)
{
    if (!cfg->cluster)
        return 0;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = cfg->instance_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return (int)(h % SRV_SESSION_INST_MAX) + 1;
}

int srv__cluster_register(const srv__config_t *cfg, char *why, size_t len)
{
    int number = srv__cluster_number(cfg);
    srv__session_set_instance(number);
    if (number == 0)
        return 0;
    char err[200];
    redisContext *c =
        srv__redis_connect_sync(cfg->redis, cfg->redis_password, cfg->redis_db, 1000, err,
                                sizeof(err));
    if (c == NULL) {
        srv__log(SRV_LOG_WARN, "cluster", 0,
                 "instance %s (number %d): redis %s: %s; its number is not checked against the "
                 "other instances'",
                 cfg->instance_id, number, cfg->redis, err);
        return 0;
    }
    char num[16];
    snprintf(num, sizeof(num), "%d", number);
    const char *set[] = {"HSETNX", "srv:cluster:instances", num, cfg->instance_id};
    const char *get[] = {"HGET", "srv:cluster:instances", num};
    freeReplyObject(redisCommandArgv(c, 4, set, NULL));
    redisReply *r = redisCommandArgv(c, 3, get, NULL);
    int rc = 0;
    if (r && r->type == REDIS_REPLY_STRING && strcmp(r->str, cfg->instance_id) != 0) {
        snprintf(why, len,
                 "instance_id \"%s\" has instance number %d, which \"%s\" has already (in "
                 "redis hash srv:cluster:instances): choose another instance_id, or HDEL that "
                 "field if that instance is gone for good",
                 cfg->instance_id, number, r->str);
        rc = -EEXIST;
    }
    freeReplyObject(r);
    redisFree(c);
    if (rc == 0)
        srv__log(SRV_LOG_NOTICE, "cluster", 0, "instance %s is number %d of the cluster on %s",
                 cfg->instance_id, number, cfg->redis);
    return rc;
}

static srv__redis_t *connect_redis(srv__loop_t *loop, const char *name,
                                   void (*on_up)(srv__redis_t *, void *))
{
    const srv__config_t *cfg = &srv__server.cfg;
    srv__redis_opts_t o = {.addr = cfg->redis,
                           .password = cfg->redis_password,
                           .db = cfg->redis_db,
                           .name = name,
                           .on_up = on_up};
    srv__redis_t *r = NULL;
    int rc = srv__redis_create(&r, loop, &o);
    if (rc < 0)
        srv__log(SRV_LOG_ERROR, "cluster", rc, "%s: cannot use redis %s", name, cfg->redis);
    return r;
}

void srv__cluster_start(srv__loop_t *loop, int slot)
{
    const srv__config_t *cfg = &srv__server.cfg;
    if (!cfg->cluster)
        return;
    C.stat = &srv__server.stats->workers[slot];
    C.id = cfg->instance_id;
    C.idlen = strlen(C.id) < 255 ? strlen(C.id) : 255;
    snprintf(C.own_channel, sizeof(C.own_channel), "srv:cluster:instance:%d",
             srv__cluster_number(cfg));
    C.pub = connect_redis(loop, "cluster publisher", NULL);
    if (slot == 0)
        C.sub = connect_redis(loop, "cluster subscriber", subscribe);
}

void srv__cluster_stop(void)
{
    srv__redis_destroy(C.pub);
    srv__redis_destroy(C.sub);
    C.pub = C.sub = NULL;
    free(C.buf);
    C.buf = NULL;
    C.cap = 0;
}

static int publish_to(const char *channel, int kind, unsigned a, unsigned b, uint64_t session,
                      const void *data, size_t len)
{
    if (C.pub == NULL)
        return 0;
    size_t extra = kind == KIND_ACTION ? 8 : 0;
    size_t need = HEAD + C.idlen + extra + len;
    if (need > C.cap) {
        char *grown = realloc(C.buf, need);
        if (grown == NULL)
            return -ENOMEM;
        C.buf = grown;
        C.cap = need;
    }
    unsigned char *p = (unsigned char *)C.buf;
    memcpy(p, "srv1", 4);
    p[4] = (unsigned char)kind;
    p[5] = (unsigned char)(a >> 8);
    p[6] = (unsigned char)a;
    p[7] = (unsigned char)b;
    p[8] = (unsigned char)C.idlen;
    memcpy(p + HEAD, C.id, C.idlen);
    for (size_t i = 0; i < extra; i++)
        p[HEAD + C.idlen + i] = (unsigned char)(session >> (56 - 8 * i));
    if (len)
        memcpy(p + HEAD + C.idlen + extra, data, len);
    const char *argv[] = {"PUBLISH", channel, C.buf};
    size_t lens[] = {7, strlen(channel), need};
    int rc = srv__redis_command(C.pub, NULL, NULL, 3, argv, lens);
    atomic_fetch_add(rc == 0 ? &C.stat->cluster_published : &C.stat->cluster_unsent, 1);
    return rc;
}

int srv__cluster_ws_broadcast(int listener, int opcode, const void *data, size_t len)
{
    return publish_to(SRV_CLUSTER_CHANNEL, KIND_WS, listener < 0 ? 0u : (unsigned)listener + 1,
                      (unsigned)opcode, 0, data, len);
}

int srv__cluster_message(const void *data, size_t len)
{
    return publish_to(SRV_CLUSTER_CHANNEL, KIND_MSG, 0, 0, 0, data, len);
}

bool srv__cluster_elsewhere(uint64_t session)
{
    int n = SRV_SESSION_INSTANCE(session);
    return n != 0 && (uint64_t)n << SRV_SESSION_INST_SHIFT != srv__session_inst;
}

int srv__cluster_action(uint64_t session, uint16_t type, uint16_t flags, const void *data,
                        size_t len)
{
    if (C.pub == NULL)
        return -ENOENT; /* no cluster here (a task worker, a custom process): not ours */
    char channel[64];
    snprintf(channel, sizeof(channel), "srv:cluster:instance:%d", SRV_SESSION_INSTANCE(session));
    return publish_to(channel, KIND_ACTION, type, flags, session, data, len);
}
