/* The one place IPC frame types and the connection engine's vocabulary meet: a reactor turns
 * frames from a worker into engine actions and engine events into frames; a worker turns
 * frames back into engine events, and (base mode) its app's calls into engine actions. */
#ifndef SRV_ENGINE_IPC_H
#define SRV_ENGINE_IPC_H

#include "core/ipc/ipc.h"
#include "core/net/conn.h"

/* Response flags cross unchanged: no work per frame on the hot path. */
_Static_assert(SRV_ENGINE_F_FINAL == SRV_IPC_F_FINAL && SRV_ENGINE_F_CLOSE == SRV_IPC_F_CLOSE &&
                   SRV_ENGINE_F_ERROR == SRV_IPC_F_ERROR && SRV_ENGINE_F_FLOW == SRV_IPC_F_FLOW,
               "response flags differ between the engine and IPC");
#define SRV_ENGINE_IPC_RESP_FLAGS                                                                  \
    (SRV_IPC_F_FINAL | SRV_IPC_F_CLOSE | SRV_IPC_F_ERROR | SRV_IPC_F_FLOW)

static inline unsigned srv__ipc_to_resp_flags(unsigned ipc_flags)
{
    return ipc_flags & SRV_ENGINE_IPC_RESP_FLAGS;
}

/* A worker-to-reactor frame type as an engine action; 0 for none. */
static inline srv__engine_action_t srv__ipc_to_action(uint16_t type)
{
    switch (type) {
    case SRV_IPC_RESPONSE:
        return SRV_ENGINE_RESPOND;
    case SRV_IPC_FILE:
        return SRV_ENGINE_RESPOND_FD;
    case SRV_IPC_SEND:
        return SRV_ENGINE_SEND;
    case SRV_IPC_CLOSE:
        return SRV_ENGINE_CLOSE;
    case SRV_IPC_WS_ACCEPT:
        return SRV_ENGINE_WS_ACCEPT;
    case SRV_IPC_WS_PUSH:
        return SRV_ENGINE_WS_PUSH;
    case SRV_IPC_WS_CLOSE:
        return SRV_ENGINE_WS_CLOSE;
    case SRV_IPC_WS_BROADCAST:
        return SRV_ENGINE_WS_BROADCAST;
    case SRV_IPC_BIND:
        return SRV_ENGINE_BIND;
    default:
        return (srv__engine_action_t)0;
    }
}

/* An engine event as a reactor-to-worker frame type, and back (0 for none). */
static inline uint16_t srv__event_to_ipc(srv__engine_event_t ev)
{
    switch (ev) {
    case SRV_ENGINE_EV_REQUEST:
        return SRV_IPC_REQUEST;
    case SRV_ENGINE_EV_WS_OPEN:
        return SRV_IPC_WS_OPEN;
    case SRV_ENGINE_EV_CONNECT:
        return SRV_IPC_CONNECT;
    case SRV_ENGINE_EV_RECEIVE:
        return SRV_IPC_RECEIVE;
    case SRV_ENGINE_EV_CLOSED:
        return SRV_IPC_CLOSED;
    case SRV_ENGINE_EV_WS_MESSAGE:
        return SRV_IPC_WS_MESSAGE;
    case SRV_ENGINE_EV_WS_CLOSED:
        return SRV_IPC_WS_CLOSED;
    }
    return 0;
}

static inline srv__engine_event_t srv__ipc_to_event(uint16_t type)
{
    switch (type) {
    case SRV_IPC_REQUEST:
        return SRV_ENGINE_EV_REQUEST;
    case SRV_IPC_WS_OPEN:
        return SRV_ENGINE_EV_WS_OPEN;
    case SRV_IPC_CONNECT:
        return SRV_ENGINE_EV_CONNECT;
    case SRV_IPC_RECEIVE:
        return SRV_ENGINE_EV_RECEIVE;
    case SRV_IPC_CLOSED:
        return SRV_ENGINE_EV_CLOSED;
    case SRV_IPC_WS_MESSAGE:
        return SRV_ENGINE_EV_WS_MESSAGE;
    case SRV_IPC_WS_CLOSED:
        return SRV_ENGINE_EV_WS_CLOSED;
    default:
        return (srv__engine_event_t)0;
    }
}

#endif
