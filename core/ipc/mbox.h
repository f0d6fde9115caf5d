/* Mailboxes: bounded byte rings in the shared region, one per process that receives messages
 * (each worker, task worker and custom process) plus the task queue, each with an eventfd the
 * receiver's loop polls. Any process can post to any mailbox: messages between workers, task
 * delivery and results, custom-process pipes all travel this way. The producer lock survives a
 * producer killed while holding it (the region's pid lock). */
#ifndef SRV_MBOX_H
#define SRV_MBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SRV_MSG_PIPE = 1,       /* srv_send_message: worker to worker */
    SRV_MSG_TASK = 2,       /* a task for a task worker (id, from, tries) */
    SRV_MSG_FINISH = 3,     /* a task's result for the deliverer (flags: 0 ok, 1 failed) */
    SRV_MSG_PROC = 4,       /* a message for a custom process (id: call id, 0 = no reply) */
    SRV_MSG_PROC_REPLY = 5, /* a custom process's reply (id: call id) */
    SRV_MSG_ACTION = 6,     /* base mode: act on a session this worker owns (id: session;
                               flags: SRV_IPC_* type << 16 | its flags) */
} srv__msg_type_t;

typedef struct srv__msg {
    uint32_t type;
    int32_t from; /* sender's mailbox id */
    uint64_t id;
    uint32_t flags;
    uint32_t len; /* payload bytes after this header */
} srv__msg_t;

/* Master, before fork: n mailboxes; mailbox i holds up to cap[i] bytes and max_msgs[i]
 * messages (0 = no count bound). Returns 0 or -errno. */
int srv__mbox_create(int n, const size_t *cap, const uint32_t *max_msgs);
/* Bytes of the shared region srv__mbox_create(n, cap, ...) takes, alignment included. */
size_t srv__mbox_region_size(int n, const size_t *cap);
int srv__mbox_count(void);
/* The eventfd to poll for mailbox i (readable when messages may be waiting). */
int srv__mbox_fd(int i);
/* Post one message (header + payload). -ENOBUFS when the mailbox is full, -EMSGSIZE when the
 * message could never fit, -EINVAL for a bad mailbox. Wakes the receiver. */
int srv__mbox_put(int i, const srv__msg_t *m, const void *data);
/* Take one message: 1 (header in *m, payload in buf), 0 when empty, -EMSGSIZE when the payload
 * is larger than cap (the message is dropped). Several receivers may share a mailbox. */
int srv__mbox_get(int i, srv__msg_t *m, void *buf, size_t cap);
/* Clear the eventfd's count (after it polled readable, before draining). */
void srv__mbox_ack(int i);
/* Make mailbox i's eventfd readable again (another receiver should look). */
void srv__mbox_kick(int i);
/* The process reading mailbox i (set by that process when it starts). */
void srv__mbox_set_owner(int i, int pid);
/* true when the process that read mailbox i is gone (its messages wait for a successor). */
bool srv__mbox_orphaned(int i);
/* Messages waiting in mailbox i. */
uint32_t srv__mbox_pending(int i);
/* The largest payload mailbox i accepts. */
size_t srv__mbox_max_payload(int i);

/* Tests only: die (_exit) holding mailbox i's lock right after a producer's tail moved and
 * before its count did, as a process killed there would. */
__attribute__((noreturn)) void srv__mbox_test_die_holding(int i);

#endif
