/* Worker processes: load the app, then serve requests from reactor channels (process mode)
 * or accept and serve connections themselves (base mode). */
#ifndef SRV_WORKER_H
#define SRV_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Act on a session from app code in this worker: send/close/WebSocket frames (SRV_IPC_*
 * worker-to-reactor types). Process mode: a frame to the reactor that owns it; base mode: the
 * worker's own engine (-EXDEV for another worker's connection). */
int srv__worker_action(uint64_t session, uint16_t type, uint16_t flags, const void *data,
                       size_t len);

struct srv__msg;
/* Base mode: run an action another worker posted to our mailbox (SRV_MSG_ACTION). */
void srv__worker_mailbox_action(const struct srv__msg *m, const void *data);

/* Entry of a forked worker (a srv__child_main_fn); never returns. chans: this worker's end of
 * one channel per reactor (process mode), none in base mode, followed by as many descriptor
 * sockets (chans[nchans + r] belongs to channel r). */
__attribute__((noreturn)) void srv__worker_main(int slot, int ctl_fd, const int *chans, int nchans);

#endif
