/* Internals of the connection engine shared by conn.c (connections, output, HTTP) and
 * conn_stream.c (TCP framing and WebSocket). Nothing outside core/conn*.c includes this. */
#ifndef SRV_CONN_INTERNAL_H
#define SRV_CONN_INTERNAL_H

#include <stdatomic.h>

#include "core/net/conn.h"
#include "core/net/conninfo.h"
#include "core/net/static.h"
#include "protocols/frame.h"
#include "protocols/http.h"
#include "protocols/ws.h"

#define OUTQ_MAX 8
#define SEG_MIN 1024
#define TICK_MS 250
#define LINGER_MS 2000
#define DRAIN_IDLE_MS 1000 /* stopping: idle keep-alive connections get this long to ask */

enum {
    F_RECV = 1u << 0,        /* recv op armed */
    F_SEND = 1u << 1,        /* send or poll op armed */
    F_CLOSING = 1u << 2,     /* close requested: fd goes once no op is armed */
    F_EOF = 1u << 3,         /* peer sent FIN */
    F_INFLIGHT = 1u << 4,    /* a request is with the app */
    F_CLOSE_AFTER = 1u << 5, /* close once the output queue is empty */
    F_IN_PROCESS = 1u << 6,  /* inside process_input: defer parser release */
    F_DONE_PENDING = 1u << 7,
    F_LINGER = 1u << 8,  /* output sent, write side shut, discarding input */
    F_NO_READ = 1u << 9, /* stop feeding the parser (after an error) */
    F_RECV_WANTED = 1u << 10,
};

enum { SEG_MEM = 0, SEG_FILE = 1 };

typedef struct seg {
    uint8_t kind;
    char *buf;
    size_t len, off, cap;
    int file_fd;
    uint64_t foff, fleft;
} seg_t;

enum { PROTO_HTTP = 0, PROTO_WS = 1, PROTO_TCP = 2 };

struct srv__conn {
    uint64_t session;
    srv__engine_t *eng;
    int fd;
    uint16_t listener;
    uint32_t flags;
    uint8_t refs; /* armed ops */
    uint8_t qh, qn;
    uint8_t sending_segs; /* memory segments the send in flight covers */
    srv__loop_op_t recv_op;
    srv__loop_op_t send_op;
    srv__http_parser_t *http;
    char *in;
    uint32_t in_len, in_cap;
    seg_t q[OUTQ_MAX];
    size_t qbytes;
    struct iovec iov[OUTQ_MAX];
    int worker, tag;
    uint64_t resp_bytes;
    /* Flow control of the response in flight: bytes ever queued and ever sent on this
     * connection, the first one of this response, and what was last reported as written. */
    uint64_t out_total, out_done, resp_start, acked;
    bool flow; /* the producer wants progress reports (a piece carried SRV_ENGINE_F_FLOW) */
    int64_t last_read, last_write, req_start, linger_until;
    uint32_t peer_hash;
    bool req_keepalive;
    uint16_t peer_port;
    uint8_t proto;
    bool ws_closing; /* we sent a close frame; waiting for the peer's */
    bool ws_refused; /* upgraded only to carry the app's refusal (close code): not open */
    char peer[46];
    srv__framer_t framer; /* TCP */
    srv__ws_t *ws;        /* WebSocket, after the upgrade */
    int64_t last_ping, close_deadline;
    uint16_t ws_code; /* close code the peer sent (1006 if none arrived) */
    char *ws_pending; /* 101 response (and later the close reason) while deciding */
    uint32_t ws_pending_len;
    srv__ws_options_t ws_opts;
    srv__conninfo_t *info; /* this connection's entry in the shared table */
    srv__conn_t *next_free;
};

struct srv__engine {
    int id;
    srv__loop_t *loop;
    const srv__config_t *cfg;
    srv__engine_ops_t ops;
    void *data;
    int nlisten;
    int listen_fd[SRV_CONFIG_MAX_LISTEN];
    srv__loop_op_t accept_op[SRV_CONFIG_MAX_LISTEN];
    bool accept_armed[SRV_CONFIG_MAX_LISTEN];
    bool accepting;
    bool draining;
    int64_t drain_start;
    srv__loop_op_t tick_op;
    bool tick_armed;
    bool destroying;
    uint32_t max_slots;
    uint32_t used_slots; /* high-water mark */
    srv__conn_t **slots;
    uint64_t *gens;
    uint32_t *free_stack;
    uint32_t nfree;
    srv__conn_t *conn_cache;
    uint32_t ncached;
    uint64_t nconns;
    uint64_t inflight;
    srv__http_limits_t limits[SRV_CONFIG_MAX_LISTEN]; /* per listener (package_max_length) */
    uint64_t ack_step; /* report progress at least every this many bytes written */
    _Atomic uint64_t *stat_conns, *stat_accepted, *stat_requests, *stat_503;
    uint64_t (*conns_total)(void);
    int64_t last_limit_log;
    srv__static_t *statics[SRV_CONFIG_MAX_LISTEN];
    srv__frame_opts_t frame[SRV_CONFIG_MAX_LISTEN];
    int64_t idle_ms[SRV_CONFIG_MAX_LISTEN]; /* heartbeat: close after this long silent; 0 off */
    srv__conninfo_t *conninfo;               /* this engine's slots in the shared table */
};

int64_t srv__engine_now_ms(srv__engine_t *e);
int64_t srv__engine_wall_ms(srv__engine_t *e); /* wall clock, for connection info */
void srv__stat_add(_Atomic uint64_t *s, int64_t d);
/* Queue bytes (copied); -ENOBUFS past buffer_output_size. */
int srv__out_write(srv__conn_t *c, const struct iovec *iov, int iovcnt);
bool srv__out_pending(const srv__conn_t *c);
/* Start sending what is queued (no-op while a send is in flight). */
void srv__conn_flush(srv__conn_t *c);
/* Close now: cancel operations; freed once none is in flight. */
void srv__conn_close(srv__conn_t *c);
/* Keep c (and its protocol state) alive across code that may close it, e.g. app callbacks
 * inside a parser's feed: a close in between only marks it, and srv__conn_unhold() releases
 * it. Returns false when c was closed meanwhile (then it must not be touched again). */
void srv__conn_hold(srv__conn_t *c);
bool srv__conn_unhold(srv__conn_t *c);
srv__conn_t *srv__conn_lookup(srv__engine_t *e, uint64_t session);

/* The actions behind srv__engine_action (action.c). */
int srv__conn_respond(srv__engine_t *e, uint64_t session, const struct iovec *iov, int iovcnt,
                      unsigned flags);
int srv__conn_respond_file(srv__engine_t *e, uint64_t session, const char *path, uint64_t off,
                           uint64_t len, unsigned flags);
int srv__conn_respond_fd(srv__engine_t *e, uint64_t session, int fd, uint64_t off, uint64_t len,
                         unsigned flags);
int srv__conn_send(srv__engine_t *e, uint64_t session, const void *data, size_t len);
int srv__conn_close_session(srv__engine_t *e, uint64_t session);
/* After on_ws_open: code 0 accepts (101), else refuse (close frame with that code). */
int srv__conn_ws_accept(srv__engine_t *e, uint64_t session, int code, const char *proto,
                        size_t proto_len);
int srv__conn_ws_push(srv__engine_t *e, uint64_t session, int opcode, const void *data, size_t len);
int srv__conn_ws_close(srv__engine_t *e, uint64_t session, int code, const char *reason,
                       size_t len);
/* Push to every open WebSocket of this engine (listener < 0: all). Returns the count. */
int srv__engine_ws_broadcast(srv__engine_t *e, int listener, int opcode, const void *data,
                             size_t len);
int srv__conn_bind(srv__engine_t *e, uint64_t session, uint32_t uid);

/* conn_stream.c */
int srv__stream_open(srv__conn_t *c); /* TCP accepted */
void srv__stream_input(srv__conn_t *c, const char *data, size_t len);
void srv__stream_release(srv__conn_t *c);                      /* about to be freed */
int srv__ws_upgrade(srv__conn_t *c, const srv_request_t *req); /* 1: taken over */
void srv__stream_tick(srv__conn_t *c, int64_t now);
void srv__stream_eof(srv__conn_t *c);
int srv__ws_decided(srv__conn_t *c, int code, const char *proto, size_t proto_len, bool *accepted);
/* Queue what the WebSocket state has for the peer and send it. */
void srv__ws_flush(srv__conn_t *c);

#endif
