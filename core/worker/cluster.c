/* Broadcasts across the instances of a cluster; see cluster.h. A published message is
 * "srv1" (4 bytes), its kind (1: WebSocket broadcast, 2: worker message), the listener + 1
 * (0: every WebSocket listener) and the opcode as two big-endian 16-bit numbers, the sending
 * instance's id (one length byte, then the bytes), then the data. */
#include "core/worker/cluster.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/log.h"
#include "core/ipc/ipc.h"
#include "core/ipc/mbox.h"
#include "core/ipc/redis.h"
#include "core/server/server.h"
#include "core/worker/worker.h"

enum { KIND_WS = 1, KIND_MSG = 2 };
#define HEAD 9 /* magic, kind, listener, opcode, id length */

static struct {
    srv__redis_t *pub, *sub;
    srv__worker_stat_t *stat;
    const char *id;
    size_t idlen;
    char *buf;
    size_t cap;
} C;

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
    const void *data = p + HEAD + idlen;
    size_t n = len - HEAD - idlen;
    atomic_fetch_add(&C.stat->cluster_received, 1);
    if (kind == KIND_WS && (int)listener1 <= srv__server.cfg.nlisten) {
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

/* Worker 0's subscriber: (again) after every connect. */
static void subscribe(srv__redis_t *r, void *arg)
{
    (void)arg;
    const char *argv[] = {"SUBSCRIBE", SRV_CLUSTER_CHANNEL};
    srv__redis_command(r, on_message, NULL, 2, argv, NULL);
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

static int publish(int kind, int listener, int opcode, const void *data, size_t len)
{
    if (C.pub == NULL)
        return 0;
    size_t need = HEAD + C.idlen + len;
    if (need > C.cap) {
        char *b = realloc(C.buf, need);
        if (b == NULL)
            return -ENOMEM;
        C.buf = b;
        C.cap = need;
    }
    unsigned char *p = (unsigned char *)C.buf;
    unsigned listener1 = listener < 0 ? 0u : (unsigned)listener + 1;
    memcpy(p, "srv1", 4);
    p[4] = (unsigned char)kind;
    p[5] = (unsigned char)(listener1 >> 8);
    p[6] = (unsigned char)listener1;
    p[7] = (unsigned char)opcode;
    p[8] = (unsigned char)C.idlen;
    memcpy(p + HEAD, C.id, C.idlen);
    if (len)
        memcpy(p + HEAD + C.idlen, data, len);
    const char *argv[] = {"PUBLISH", SRV_CLUSTER_CHANNEL, C.buf};
    size_t lens[] = {7, sizeof(SRV_CLUSTER_CHANNEL) - 1, need};
    int rc = srv__redis_command(C.pub, NULL, NULL, 3, argv, lens);
    atomic_fetch_add(rc == 0 ? &C.stat->cluster_published : &C.stat->cluster_unsent, 1);
    return rc;
}

int srv__cluster_ws_broadcast(int listener, int opcode, const void *data, size_t len)
{
    return publish(KIND_WS, listener, opcode, data, len);
}

int srv__cluster_message(const void *data, size_t len)
{
    return publish(KIND_MSG, -1, 0, data, len);
}
