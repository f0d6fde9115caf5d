/* The connection engine, as its owner sees it: accept, receive, protocols (HTTP, WebSocket, TCP
 * framing), bounded output queues, timeouts. One engine runs per reactor thread (process mode)
 * or per worker (base mode); its connections belong to it alone. Everyone else names a
 * connection by its session id (session.h) and acts on it with srv__engine_action; the engine
 * reports requests and events through srv__engine_ops_t. It speaks its own vocabulary: how an
 * owner carries it (IPC frames) is the owner's business. */
#ifndef SRV_CONN_H
#define SRV_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "config/config.h"
#include "core/loop/loop.h"
#include "core/net/session.h"
#include "srv/srv.h"

typedef struct srv__engine srv__engine_t;
typedef struct srv__conn srv__conn_t;

/* What the engine tells its owner about a connection. */
typedef enum srv__engine_event {
    SRV_ENGINE_EV_REQUEST = 1, /* an HTTP request: answered with SRV_ENGINE_RESPOND* */
    SRV_ENGINE_EV_WS_OPEN,     /* a WebSocket handshake: answered with SRV_ENGINE_WS_ACCEPT */
    SRV_ENGINE_EV_CONNECT,     /* a TCP connection opened */
    SRV_ENGINE_EV_RECEIVE,     /* data: one TCP frame */
    SRV_ENGINE_EV_CLOSED,      /* a TCP connection closed */
    SRV_ENGINE_EV_WS_MESSAGE,  /* arg: opcode; data: the whole message */
    SRV_ENGINE_EV_WS_CLOSED,   /* data: uint16 code (host order) + reason */
} srv__engine_event_t;

/* What the engine's owner asks of a session (srv__engine_action). */
typedef enum srv__engine_action {
    SRV_ENGINE_SEND = 1,     /* TCP bytes */
    SRV_ENGINE_CLOSE,        /* close after the queued output */
    SRV_ENGINE_WS_ACCEPT,    /* arg: 0 accepts, else the refusing close code; data: subprotocol */
    SRV_ENGINE_WS_PUSH,      /* arg: opcode; data: message */
    SRV_ENGINE_WS_CLOSE,     /* data: uint16 code (host order) + reason */
    SRV_ENGINE_WS_BROADCAST, /* session: listener + 1 (0: all); arg: opcode; data: message */
    SRV_ENGINE_BIND,         /* data: uint32 uid */
    SRV_ENGINE_RESPOND,      /* arg: SRV_ENGINE_F_*; data: response bytes (copied) */
    SRV_ENGINE_RESPOND_FD,   /* arg: SRV_ENGINE_F_*; data: srv__engine_file_t */
} srv__engine_action_t;

/* Flags of a response piece. */
#define SRV_ENGINE_F_FINAL 0x1u /* the last piece of the response */
#define SRV_ENGINE_F_CLOSE 0x2u /* close the connection once the response is written */
#define SRV_ENGINE_F_ERROR 0x4u /* the producer failed mid-response: close without finishing */
#define SRV_ENGINE_F_FLOW 0x8u  /* report progress through ops.progress */

/* A file range as the body: fd is taken over (closed by the engine, also on failure). The
 * engine never opens a file: its owner did (the worker, off the reactor threads). */
typedef struct srv__engine_file {
    int fd;
    uint64_t off, len;
} srv__engine_file_t;

/* What an engine does with a parsed request: hand it to a worker over IPC (process mode) or
 * call the app in place (base mode). */
typedef struct srv__engine_ops {
    /* Take the request (SRV_ENGINE_EV_REQUEST) or the WebSocket handshake (_EV_WS_OPEN). The
     * request view is valid only during the call. Return 0, or -errno to have the engine
     * answer 503. */
    int (*dispatch)(srv__engine_t *e, srv__conn_t *c, srv__engine_event_t ev,
                    const srv_request_t *req);
    /* A TCP or WebSocket event for the app (srv__conn_listener(c) names its handler set).
     * Data is valid only during the call. Returns 0 or -errno (queue full: the engine closes
     * the connection). */
    int (*event)(srv__engine_t *e, srv__conn_t *c, srv__engine_event_t ev, uint16_t arg,
                 const void *data, size_t len);
    /* Request id (srv__conn_request_id at dispatch; tag: srv__conn_set_tag's) is still with the
     * app while its client has gone (connection closed, HTTP/2 stream reset): its producer
     * should stop (srv_response_write then fails with -EPIPE). May be NULL. */
    void (*abandoned)(srv__engine_t *e, uint64_t id, int tag);
    /* written bytes of request id's response reached the client (cumulative, counted from
     * its first byte). Only for a response whose pieces asked for it (SRV_ENGINE_F_FLOW).
     * Returns 0, or -errno when the report could not be passed on (retried later). May be
     * NULL. */
    int (*progress)(srv__engine_t *e, uint64_t id, int tag, uint64_t written);
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
    _Atomic uint64_t *stat_h2_conns;   /* HTTP/2 connections open */
    _Atomic uint64_t *stat_h2_streams; /* HTTP/2 streams handed to the app */
    /* Connections open in every engine of the server, for max_conn; NULL: this engine's. */
    uint64_t (*conns_total)(void);
    /* This engine's counters, one per listener (netstat.h); may be NULL. */
    struct srv__netstat *netstat;
} srv__engine_opts_t;

int srv__engine_create(srv__engine_t **out, const srv__engine_opts_t *o);
/* A reload: from now on the engine follows cfg (same listeners; the caller keeps cfg alive
 * until the engine is given another): limits, timeouts, framing, HTTP/2 settings, document
 * roots, the access log and slow log switches. Connections open keep their parsers' limits
 * until their next request. Returns 0, or -EINVAL (other listeners) / -ENOMEM. */
int srv__engine_set_cfg(srv__engine_t *e, const srv__config_t *cfg);
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

/* Act on session for its owner: one entry for both modes (the reactor maps IPC frames to it,
 * a base-mode worker its app's calls). Data is borrowed for the call. Returns 0 (a count for
 * SRV_ENGINE_WS_BROADCAST) or -errno: -ENOENT for a stale session, -EPROTO for a response to
 * a session with no request in flight, -EINVAL for an action its protocol does not take. A
 * response's producer bounds what it sends ahead of the progress reports; a connection whose
 * queue passes twice buffer_output_size anyway is closed (-ENOBUFS). */
int srv__engine_action(srv__engine_t *e, uint64_t session, srv__engine_action_t a, uint16_t arg,
                       const void *data, size_t len);
/* SRV_ENGINE_RESPOND from pieces, without gathering them first (base mode). */
int srv__engine_respond(srv__engine_t *e, uint64_t session, const struct iovec *iov, int iovcnt,
                        unsigned flags);
/* Every connection with a request in flight whose tag == tag: answered 503 (nothing sent yet)
 * or closed (partly answered). For a dead worker channel. */
void srv__engine_fail_inflight(srv__engine_t *e, int tag);
/* The request of session ran past request_timeout and its worker was killed: 504 when nothing
 * was sent yet (an HTTP/1.1 session); else nothing (srv__engine_fail_inflight closes it). */
void srv__engine_fail_timeout(srv__engine_t *e, uint64_t session);

/* Per-connection fields the dispatcher may use. */
uint64_t srv__conn_session(const srv__conn_t *c);
/* In ops.dispatch: the id the request's response names (engine actions, IPC frames): the
 * session for HTTP/1.1, a request id of its own for an HTTP/2 stream. */
uint64_t srv__conn_request_id(const srv__conn_t *c);
int srv__conn_listener(const srv__conn_t *c);
/* Its socket (base mode's request_timeout writes a last 504 to it from a signal handler). */
int srv__conn_fd(const srv__conn_t *c);
/* A small integer the dispatcher stores (chosen worker, channel): -1 initially. */
int srv__conn_get_worker(const srv__conn_t *c);
void srv__conn_set_worker(srv__conn_t *c, int worker);
/* The in-flight request went to the worker with this channel tag and worker id. */
void srv__conn_set_tag(srv__conn_t *c, int tag, int worker);
int srv__conn_get_tag(const srv__conn_t *c);
const char *srv__conn_peer(const srv__conn_t *c);
uint32_t srv__conn_peer_hash(const srv__conn_t *c);

#endif
