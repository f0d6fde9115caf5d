/* The shared connection table: one entry per engine slot, in the shared region, so any
 * process can describe a session (srv_conn_info), test it (srv_ws_exists) or iterate open
 * WebSocket sessions (srv_ws_foreach) without asking the reactor that owns it. The owner writes
 * an entry; readers copy it and re-check the session id, so a slot reused meanwhile is seen as
 * gone, never as another client. */
#ifndef SRV_CONNINFO_H
#define SRV_CONNINFO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "srv/srv.h"

typedef struct srv__conninfo {
    _Atomic uint64_t session; /* 0 while free */
    int32_t listener;
    int32_t peer_port;
    int64_t connect_ms;
    _Atomic int64_t last_ms;
    _Atomic uint32_t uid;
    _Atomic uint8_t websocket;
    _Atomic uint8_t tls; /* its TLS details are in the TLS table (set once negotiated) */
    char peer[46];
} srv__conninfo_t;

/* Master, before fork: room for nengines x slots entries, and as many TLS details when tls
 * (some listener has ssl). Returns 0 or -ENOMEM. */
int srv__conninfo_create(int nengines, uint32_t slots, bool tls);
/* Bytes of the shared region srv__conninfo_create(nengines, slots, tls) takes. */
size_t srv__conninfo_region_size(int nengines, uint32_t slots, bool tls);
/* The entries of engine id (NULL when the table was not created: unit tests). */
srv__conninfo_t *srv__conninfo_engine(int id);
/* Record what entry ci's connection negotiated over TLS (its owner, once). */
void srv__conninfo_set_tls(srv__conninfo_t *ci, const srv_tls_t *tls);
/* Copy a live session's entry; -ENOENT when it is gone. */
int srv__conninfo_get(uint64_t session, srv_conn_info_t *out);
/* Every open WebSocket session (listener < 0: all listeners). */
int srv__conninfo_foreach_ws(int listener, int (*cb)(uint64_t session, void *arg), void *arg);

#endif
