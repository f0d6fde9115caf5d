/* Connections and the engine that drives them: accept, receive, protocol parsing, bounded
 * output queues, timeouts. One engine runs per reactor thread (process mode) or per worker
 * (base mode); its connections belong to it alone. Everyone else names a connection by its
 * session id: [engine:8][generation:36][slot:20], never reused. */
#ifndef SRV_CONN_H
#define SRV_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "config/config.h"
#include "core/loop/loop.h"
#include "srv/srv.h"

typedef struct srv__engine srv__engine_t;
typedef struct srv__conn srv__conn_t;

#define SRV_SESSION_SLOT_BITS 20
#define SRV_SESSION_ENGINE(s) ((int)((s) >> 56))

/* What an engine does with a parsed request: hand it to a worker over IPC (process mode) or
 * call the app in place (base mode). */
typedef struct srv__engine_ops {
    /* Take the request (type SRV_IPC_REQUEST, answered later with srv__conn_respond) or the
     * WebSocket handshake (SRV_IPC_WS_OPEN, answered with srv__conn_ws_accept). The request
     * view is valid only during the call. Return 0, or -errno to have the engine answer 503. */
    int (*dispatch)(srv__engine_t *e, srv__conn_t *c, uint16_t type, const srv_request_t *req);
    /* A TCP or WebSocket event (SRV_IPC_CONNECT, _RECEIVE, _CLOSED, _WS_MESSAGE, _WS_CLOSED)
     * for the app. Data is valid only during the call. Returns 0 or -errno (queue full: the
     * engine closes the connection). */
    int (*event)(srv__engine_t *e, srv__conn_t *c, uint16_t type, uint16_t flags, const void *data,
                 size_t len);
    /* The connection is closing while a request is still with the app: its producer should
     * stop (srv_response_write then fails with -EPIPE). May be NULL. */
    void (*abandoned)(srv__engine_t *e, srv__conn_t *c);
    /* written bytes of the response in flight reached the socket (cumulative, counted from
     * its first byte). Only for a response whose frames asked for it (SRV_IPC_F_FLOW). Returns
     * 0, or -errno when the report could not be passed on (retried later). May be NULL. */
    int (*progress)(srv__engine_t *e, srv__conn_t *c, uint64_t written);
} srv__engine_ops_t;

typedef struct srv__engine_opts {
    int id;           /* engine number: reactor id, or worker id in base mode */
    srv__loop_t *loop; /* owned by the caller, outlives the engine */
    const srv__config_t *cfg;
    const int *listen_fds; /* cfg->nlisten fds; -1 entries are skipped */
    bool accept;           /* arm accept on the listeners now */
    srv__engine_ops_t ops;
    void *data;                   /* for the ops */
    _Atomic uint64_t *stat_conns; /* shared counters, may be NULL */
    _Atomic uint64_t *stat_accepted;
    _Atomic uint64_t *stat_requests;
    _Atomic uint64_t *stat_503;
} srv__engine_opts_t;

int srv__engine_create(srv__engine_t **out, const srv__engine_opts_t *o);
/* Free everything; connections must have been closed (srv__engine_close_all + run). */
void srv__engine_destroy(srv__engine_t *e);
void *srv__engine_data(srv__engine_t *e);
srv__loop_t *srv__engine_loop(srv__engine_t *e);
/* Stop or restart accepting on every listener. */
void srv__engine_accept_stop(srv__engine_t *e);
/* Graceful: finish in-flight requests, close idle keep-alive connections, answer the next
 * responses with Connection: close. */
void srv__engine_drain(srv__engine_t *e);
/* Close every connection now. */
void srv__engine_close_all(srv__engine_t *e);
/* Connections open, and requests dispatched but not answered. */
uint64_t srv__engine_conns(const srv__engine_t *e);
uint64_t srv__engine_inflight(const srv__engine_t *e);

/* Response bytes for the request in flight on session (SRV_IPC_F_* flags: FINAL ends the
 * response, CLOSE closes after it, ERROR aborts the connection, FLOW asks for progress reports
 * through ops.progress). Bytes are copied. A stale session returns -ENOENT, a session with no
 * request in flight -EPROTO. The producer bounds what it sends ahead of those reports; a
 * connection whose queue passes twice buffer_output_size anyway is closed (-ENOBUFS). */
int srv__conn_respond(srv__engine_t *e, uint64_t session, const struct iovec *iov, int iovcnt,
                      unsigned flags);
/* Queue a file range as the body (after bytes already queued); the engine opens path itself. */
int srv__conn_respond_file(srv__engine_t *e, uint64_t session, const char *path, uint64_t off,
                           uint64_t len, unsigned flags);
/* Queue an already open file (taken over: closed by the engine). */
int srv__conn_respond_fd(srv__engine_t *e, uint64_t session, int fd, uint64_t off, uint64_t len,
                         unsigned flags);
/* Every connection with a request in flight whose tag == tag: answered 503 (nothing sent yet)
 * or closed (partly answered). For a dead worker channel. */
void srv__engine_fail_inflight(srv__engine_t *e, int tag);

/* Actions on a session from the app (through IPC in process mode). -ENOENT when gone. */
int srv__conn_send(srv__engine_t *e, uint64_t session, const void *data, size_t len);
int srv__conn_close_session(srv__engine_t *e, uint64_t session);
/* After on_ws_open: code 0 accepts (101), else refuse (403, close). */
int srv__conn_ws_accept(srv__engine_t *e, uint64_t session, int code, const char *proto,
                        size_t proto_len);
int srv__conn_ws_push(srv__engine_t *e, uint64_t session, int opcode, const void *data, size_t len);
int srv__conn_ws_close(srv__engine_t *e, uint64_t session, int code, const char *reason,
                       size_t len);
/* Push to every open WebSocket of this engine (listener < 0: all). Returns the count. */
int srv__engine_ws_broadcast(srv__engine_t *e, int listener, int opcode, const void *data,
                             size_t len);
int srv__conn_bind(srv__engine_t *e, uint64_t session, uint32_t uid);

/* Per-connection fields the dispatcher may use. */
uint64_t srv__conn_session(const srv__conn_t *c);
int srv__conn_listener(const srv__conn_t *c);
/* A small integer the dispatcher stores (chosen worker, channel): -1 initially. */
int srv__conn_get_worker(const srv__conn_t *c);
void srv__conn_set_worker(srv__conn_t *c, int worker);
void srv__conn_set_tag(srv__conn_t *c, int tag); /* tag of the in-flight request */
int srv__conn_get_tag(const srv__conn_t *c);
const char *srv__conn_peer(const srv__conn_t *c);
uint32_t srv__conn_peer_hash(const srv__conn_t *c);

#endif
