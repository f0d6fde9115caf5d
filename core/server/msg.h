/* This process's side of the mailboxes: reading its own mailbox, keeping messages that arrive
 * while it waits for a specific one (a task result, a custom process's reply), dispatching the
 * rest to the app. Used by workers, task workers, the timer process and custom processes. */
#ifndef SRV_MSG_H
#define SRV_MSG_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ipc/mbox.h"
#include "core/loop/loop.h"

/* Set up for slot (its mailbox id). */
void srv__msg_init(int slot);
int srv__msg_self(void);
/* Take every waiting message (own mailbox and kept ones) and hand each to the app. */
void srv__msg_dispatch(void);
/* Wait up to timeout_ms for a message of type `type` with id `id` in our mailbox, keeping
 * others for srv__msg_dispatch. Returns the payload length (copied to buf, truncated to cap)
 * with *flags set, or -ETIMEDOUT / -ENOBUFS (too much kept meanwhile) / -ECANCELED (stopping). */
int srv__msg_wait(uint32_t type, uint64_t id, void *buf, size_t cap, uint32_t *flags,
                  int timeout_ms);
/* Who takes SRV_MSG_ACTION messages (connection actions sent to the worker owning a session);
 * the worker registers itself, other process kinds ignore them. */
typedef void (*srv__msg_action_fn)(const srv__msg_t *m, const void *data);
void srv__msg_on_action(srv__msg_action_fn fn);
/* Set by signal handlers: waits give up with -ECANCELED. */
void srv__msg_set_stop(volatile sig_atomic_t *flag);
/* Watch our mailbox on loop and dispatch what arrives. The watch is one-shot: call this again
 * after every loop iteration (it does nothing while still armed, or once stopping). */
void srv__msg_arm(srv__loop_t *loop);

/* Also hand every srv_broadcast_message of this process to fn (the cluster's publisher). */
void srv__msg_on_broadcast(int (*fn)(const void *data, size_t len));

#endif
