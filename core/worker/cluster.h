/* Several srv instances sharing one Redis (`cluster = true`) as one server, for broadcasts:
 * srv_ws_broadcast and srv_broadcast_message called in a worker of one instance reach the
 * WebSocket sessions and the workers of every instance. Each worker publishes on its own
 * asynchronous Redis connection (core/ipc/redis.h) to one channel shared by the cluster;
 * worker 0 of each instance subscribes to it and delivers what other instances sent as if one
 * of its workers had broadcast it. Redis pub/sub is at-most-once: a message published while
 * Redis or an instance's worker 0 is away is lost; what was published, received and could not
 * be sent is counted per worker (srv info, /metrics). Order is kept per sending worker. */
#ifndef SRV_WORKER_CLUSTER_H
#define SRV_WORKER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/loop/loop.h"

/* The Redis channel every instance's broadcasts go through; each instance also has one of its
 * own, "srv:cluster:instance:<number>", for actions on its sessions. */
#define SRV_CLUSTER_CHANNEL "srv:cluster:broadcast"

/* This instance's number (1 .. SRV_SESSION_INST_MAX, carried in its session ids), from its
 * instance_id; 0 without cluster. */
int srv__cluster_number(const srv__config_t *cfg);

/* Master, at start: put this instance's number in its session ids and claim the number in
 * Redis (HSETNX srv:cluster:instances), so that two instance ids hashing to one number are
 * caught. Returns 0, or -EEXIST with why set (start refused); Redis unreachable is a warning. */
int srv__cluster_register(const srv__config_t *cfg, char *why, size_t len);

/* Worker `slot`, its loop running: connect (and subscribe in worker 0). A no-op unless the
 * configuration has cluster = true. */
void srv__cluster_start(srv__loop_t *loop, int slot);
/* Disconnect (the memory goes with the loop's next run or its destruction). */
void srv__cluster_stop(void);

/* After a local broadcast: publish it to the other instances. listener: -1 for every
 * WebSocket listener, else its index; opcode: the frame's. Returns 0, or -ENOTCONN / -EAGAIN
 * (not published: counted and logged) or 0 when there is no cluster. */
int srv__cluster_ws_broadcast(int listener, int opcode, const void *data, size_t len);
int srv__cluster_message(const void *data, size_t len);

/* Whether session belongs to another instance of the cluster. */
bool srv__cluster_elsewhere(uint64_t session);
/* An action (srv_ws_push, srv_send, srv_close, ... as SRV_IPC_* type and flags) on a session
 * of another instance: published to that instance's channel, done there by its worker 0 (at
 * most once). Returns 0, -ENOTCONN / -EAGAIN (not published), -ENOMEM. */
int srv__cluster_action(uint64_t session, uint16_t type, uint16_t flags, const void *data,
                        size_t len);

#endif
