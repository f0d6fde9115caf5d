/* Internals of the connection engine, shared by its files: conn.c (connections, the transport,
 * output queues, timeouts), request.c (the request in flight and its response), the protocols
 * (conn_http.c, conn_ws.c, conn_tcp.c) and engine.c (engine set-up). Nothing outside core/net
 * includes this. */
#ifndef SRV_CONN_INTERNAL_H
#define SRV_CONN_INTERNAL_H

#include <stdatomic.h>

#include "core/net/conn.h"
#include "core/net/conninfo.h"
#include "core/net/netstat.h"
#include "core/net/static.h"
#include "protocols/frame.h"
#include "protocols/h2.h"
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
    F_CLOSE_AFTER = 1u << 5, /* close once the output queue is empty */
    F_IN_PROCESS = 1u << 6,  /* inside the protocol's input: defer parser release */
    F_DONE_PENDING = 1u << 7,
    F_LINGER = 1u << 8,  /* output sent, write side shut, discarding input */
    F_NO_READ = 1u << 9, /* stop feeding the protocol (after an error) */
    F_PRE_OPEN = 1u << 10, /* the transport is still setting up (TLS handshake): the protocol
                            * has not been opened and hears nothing */
    F_SEND_FILE = 1u << 11, /* the send in flight carries a file segment read into memory */
    F_FINISHED = 1u << 12,  /* the transport's closing bytes (close_notify) were queued */
};

enum { SEG_MEM = 0, SEG_FILE = 1 };

typedef struct seg {
    uint8_t kind;
    char *buf;
    size_t len, off, cap;
    int file_fd;
    uint64_t foff, fleft;
} seg_t;

/* A connection kind: what its bytes mean. The engine calls these; a protocol acts on the
 * connection only through the engine's functions (srv__out_*, srv__conn_flush/close, the
 * request's srv__req_*). Ops that may be NULL say so. */
typedef struct srv__proto {
    const char *name;
    /* A connection of this kind was accepted. Returns 0, or -errno (c was closed). */
    int (*open)(srv__conn_t *c);
    /* Bytes from the peer, after the transport. */
    void (*input)(srv__conn_t *c, const char *data, size_t len);
    /* Output reached the socket (flow-control reports). May be NULL. */
    void (*writable)(srv__conn_t *c);
    /* Every TICK_MS, for a connection neither lingering nor past its send timeout. */
    void (*tick)(srv__conn_t *c, int64_t now);
    /* The peer sent FIN (F_EOF is set). */
    void (*eof)(srv__conn_t *c);
    /* c is about to be freed: release the protocol's state, tell the app. */
    void (*close)(srv__conn_t *c);
    /* The request in flight was answered in full (srv__req_finish). May be NULL. */
    void (*done)(srv__conn_t *c);
    /* The engine is stopping: wind down gracefully. May be NULL. */
    void (*drain)(srv__conn_t *c);
    /* Nothing of the peer's is half-read: once answered, close at once rather than linger.
     * May be NULL (always linger). */
    bool (*quiet)(const srv__conn_t *c);
    /* Answer the request in flight, nothing of it sent yet, with an error status. */
    void (*fail)(srv__conn_t *c, int status, const char *why);
    /* Keep one small output buffer between responses instead of a malloc per response. */
    bool keep_buffer;
} srv__proto_t;

/* Between the loop and the protocol: plain (conn.c) or TLS (transport_tls.c). */
typedef struct srv__transport {
    const char *name;
    /* A connection was accepted on it. 0 with F_PRE_OPEN set when the protocol is to be opened
     * later (srv__conn_open), or -errno. May be NULL: the protocol opens at once. */
    int (*start)(srv__conn_t *c);
    /* Bytes the socket received: the protocol's input after whatever the transport does. */
    void (*input)(srv__conn_t *c, const char *data, size_t len);
    /* Start sending iov (one send in flight per connection); completion comes to the engine
     * as bytes of iov written. Returns 0 or -errno. The iov's memory is the caller's again
     * once it returns when copies is set (the transport keeps its own bytes). */
    int (*send)(srv__conn_t *c, const struct iovec *iov, int iovcnt);
    /* The send in flight completed with res: returns what the engine sees (bytes of the iov
     * written, or -errno), or -EINPROGRESS when the transport is still sending or the send was
     * its own. May be NULL (res as is). */
    int (*sent)(srv__conn_t *c, int res);
    /* Every TICK_MS while F_PRE_OPEN (a handshake timeout). May be NULL. */
    void (*tick)(srv__conn_t *c, int64_t now);
    /* c is about to be freed. May be NULL. */
    void (*release)(srv__conn_t *c);
    /* The last byte of output went and the write side is to be shut: queue the transport's
     * own goodbye (TLS close_notify). Returns true when nothing is on its way, false when its
     * bytes are being sent (the engine comes back through srv__conn_flush). May be NULL. */
    bool (*finish)(srv__conn_t *c);
    /* File segments can go from the file to the socket directly (sendfile). */
    bool sendfile;
    bool copies;
} srv__transport_t;

extern const srv__transport_t srv__transport_plain, srv__transport_tls;
extern const srv__proto_t srv__proto_http, srv__proto_ws, srv__proto_tcp, srv__proto_h2;

/* The longest request id kept from a client (X-Request-Id), and one srv makes (32 hex). */
#define SRV_REQUEST_ID_MAX 128
#define SRV_REQUEST_ID_GEN 32

/* What is known of a request for its access log line, its counters and the slow log
 * (access.c), from srv__access_begin to srv__access_end. */
typedef struct srv__reqlog {
    bool open;          /* begun and not yet ended */
    uint8_t major, minor; /* HTTP version */
    int16_t worker;     /* who answered: a worker id, -1 srv itself */
    int status;         /* of the response head; 0 until it passed */
    uint32_t head_len;  /* bytes of that head */
    int64_t t0;         /* monotonic ns */
    char *fields;       /* with the access log on: method, uri, user agent, referer and
                         * X-Forwarded-For, each NUL-terminated (malloc) */
    uint8_t rid_len;
    char rid[SRV_REQUEST_ID_MAX + 1];
} srv__reqlog_t;

/* A request on a connection: from dispatch to the last byte of its response queued. HTTP/1
 * has at most one per connection (c->req points at c->req_store, and its id is the session's);
 * HTTP/2 has one per stream with the app, each with an id of its own from the engine's request
 * table (srv__req_add), which is what the worker answers to. */
typedef struct srv__req {
    uint64_t id;         /* what responses name: the session (HTTP/1) or a request id */
    srv__conn_t *conn;
    int tag;             /* the dispatcher's (its worker channel), -1 none */
    bool keepalive;      /* the request allows the connection to stay open */
    bool flow;           /* the producer wants progress reports (SRV_ENGINE_F_FLOW) */
    uint64_t resp_bytes; /* response bytes queued so far */
    /* Flow control: the connection's out_total when the response began, and what was last
     * reported written. */
    uint64_t resp_start, acked;
    int64_t start; /* when its first byte arrived (ms, the engine's clock) */
    srv__reqlog_t log;
} srv__req_t;

struct srv__conn {
    uint64_t session;
    srv__engine_t *eng;
    const srv__proto_t *proto;
    const srv__transport_t *transport;
    int fd;
    uint16_t listener;
    uint8_t stat_proto; /* the SRV_NETSTAT_* protocol it is counted under */
    uint32_t flags;
    uint8_t refs; /* armed ops */
    uint8_t qh, qn;
    uint8_t sending_segs; /* memory segments the send in flight covers */
    srv__loop_op_t recv_op;
    srv__loop_op_t send_op;
    char *in; /* input not consumed yet (pipelined requests, bytes after a handshake) */
    uint32_t in_len, in_cap;
    seg_t q[OUTQ_MAX];
    size_t qbytes;
    struct iovec iov[OUTQ_MAX];
    int worker;
    srv__req_t *req; /* the request with the app, NULL when none */
    srv__req_t req_store;
    /* Bytes ever queued and ever sent on this connection (flow control). */
    uint64_t out_total, out_done;
    int64_t last_read, last_write, linger_until;
    uint32_t peer_hash;
    uint16_t peer_port;
    char peer[46];
    srv__conninfo_t *info; /* this connection's entry in the shared table */
    srv__conn_t *next_free;
    /* HTTP: the parser (kept across connections of a cache), and when a request began. */
    srv__http_parser_t *http;
    uint16_t http_listener; /* the listener whose limits the parser was made with */
    uint32_t http_epoch;    /* the engine's limits_epoch then */
    int64_t req_start;
    /* TCP */
    srv__framer_t framer;
    int64_t close_deadline;
    /* WebSocket: the upgrade being decided (ws_pending: 101 response, later the close
     * reason), then the session. */
    srv__ws_t *ws;
    bool ws_refused;  /* upgraded only to carry the app's refusal (close code): not open */
    uint16_t ws_code; /* close code the peer sent (1006 if none arrived) */
    int64_t last_ping;
    char *ws_pending;
    uint32_t ws_pending_len;
    srv__ws_options_t ws_opts;
    /* TLS (transport_tls.c): the session, the plaintext bytes the send in flight carries, the
     * handshake's deadline, and what it negotiated (for requests and srv_conn_info). */
    struct srv__tls *tls;
    size_t tls_plain;
    int64_t tls_deadline;
    srv_tls_t *tls_info;
    /* HTTP/2 (conn_h2.c): the session, its requests with the app, and since when it has had
     * no stream (the idle timeout). h2_sniff: a cleartext HTTP/1.1 connection that may yet
     * open with the HTTP/2 preface. */
    srv__h2_t *h2;
    struct h2_req *h2_reqs, *h2_cur;
    uint32_t h2_nreq, h2_nflow; /* requests with the app; those whose producer wants reports */
    int64_t h2_idle_since;
    bool h2_sniff, h2_goaway;
};

struct srv__engine {
    int id;
    srv__loop_t *loop;
    uint32_t limits_epoch; /* bumped when a reload changes the limits: parsers are remade */
    const srv__config_t *cfg;
    srv__engine_ops_t ops;
    void *data;
    int nlisten;
    int listen_fd[SRV_CONFIG_MAX_LISTEN];
    const srv__proto_t *listen_proto[SRV_CONFIG_MAX_LISTEN];
    const srv__transport_t *listen_transport[SRV_CONFIG_MAX_LISTEN];
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
    void (*conn_free)(srv__conn_t *c);  /* frees what a cached connection kept, then c */
    void (*conn_reset)(srv__conn_t *c); /* clears a cached connection but for what it kept */
    uint64_t nconns;
    uint64_t inflight;
    srv__http_limits_t limits[SRV_CONFIG_MAX_LISTEN]; /* per listener (package_max_length) */
    size_t in_max[SRV_CONFIG_MAX_LISTEN]; /* unconsumed input past which reading pauses */
    uint64_t ack_step; /* report progress at least every this many bytes written */
    _Atomic uint64_t *stat_conns, *stat_accepted, *stat_requests, *stat_503;
    uint64_t (*conns_total)(void);
    int64_t last_limit_log;
    srv__static_t *statics[SRV_CONFIG_MAX_LISTEN];
    srv__frame_opts_t frame[SRV_CONFIG_MAX_LISTEN];
    int64_t idle_ms[SRV_CONFIG_MAX_LISTEN]; /* heartbeat: close after this long silent; 0 off */
    srv__conninfo_t *conninfo;              /* this engine's slots in the shared table */
    /* HTTP/2: each listener's settings, and the request table (ids of streams with the app) */
    srv__h2_opts_t h2opts[SRV_CONFIG_MAX_LISTEN];
    int64_t h2_idle_ms[SRV_CONFIG_MAX_LISTEN];
    srv__req_t **reqs;
    uint64_t *req_gens;
    uint32_t *req_free;
    uint32_t req_nfree, req_used, req_max;
    _Atomic uint64_t *stat_h2_conns, *stat_h2_streams;
    /* Observability (access.c): counters per listener, which listeners write the access log,
     * the slow log's threshold (us, 0 off), the header array a request id is added with. */
    srv__netstat_t *net;
    srv__netstat_t *net_own; /* when the owner gave none */
    bool alog[SRV_CONFIG_MAX_LISTEN];
    int64_t slow_us;
    srv_header_t *hv;
    size_t hv_cap;
    char *alog_line; /* the access log line being written (access.c), alog_cap bytes */
    size_t alog_cap;
};

/* conn.c */
int64_t srv__engine_now_ms(srv__engine_t *e);
int64_t srv__engine_wall_ms(srv__engine_t *e); /* wall clock, for connection info */
void srv__stat_add(_Atomic uint64_t *s, int64_t d);
/* Queue bytes (copied); -ENOBUFS past limit bytes queued. */
int srv__out_append(srv__conn_t *c, const struct iovec *iov, int iovcnt, size_t limit);
/* Queue bytes (copied); -ENOBUFS past buffer_output_size. */
int srv__out_write(srv__conn_t *c, const struct iovec *iov, int iovcnt);
/* Queue a file range (fd taken over on success); -ENOBUFS when the queue is full. */
int srv__out_file(srv__conn_t *c, int fd, uint64_t off, uint64_t len);
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
/* Receive again unless c is paused, closing, or has its input bound of unconsumed bytes. */
void srv__conn_arm_recv(srv__conn_t *c);
/* The unconsumed input (c->in): add to it (-ENOMEM), or drop its first n bytes. */
int srv__conn_in_append(srv__conn_t *c, const char *data, size_t len);
void srv__conn_in_consume(srv__conn_t *c, size_t n);
/* Stop receiving while the unconsumed input is at its bound (re-armed once consumed). */
void srv__conn_in_pause(srv__conn_t *c);
/* Heartbeat: close c when silent longer than its listener's heartbeat_idle_time. Returns
 * true when it did. */
bool srv__conn_heartbeat(srv__conn_t *c, int64_t now);
/* Hand an event to the app (ops.event); a refusal closes c. */
int srv__conn_app_event(srv__conn_t *c, srv__engine_event_t ev, uint16_t arg, const void *data,
                        size_t len);
/* Open the protocol of a connection its transport set up (F_PRE_OPEN); closes c on failure. */
int srv__conn_open(srv__conn_t *c);
/* Submit a send of iov on the socket with the engine's completion (on_send -> transport->sent)
 * and no transport in between: for transports sending their own bytes. The loop keeps the iov
 * pointer until the send completes (epoll retries with it): pass c->iov, never a local. */
int srv__conn_send_raw(srv__conn_t *c, const struct iovec *iov, int iovcnt);
/* Arm accepting (when accept) and the tick of a new engine. */
void srv__engine_start(srv__engine_t *e, bool accept);
/* Free every connection now, whatever is in flight (engine destroy). */
void srv__engine_free_conns(srv__engine_t *e);

/* request.c: the request in flight on c. */
srv__req_t *srv__req_begin(srv__conn_t *c, srv_request_t *req);
/* Undo srv__req_begin: the request never reached the app. */
void srv__req_cancel(srv__conn_t *c);
/* Its response is complete: forget it and let the protocol go on (proto->done). */
void srv__req_finish(srv__conn_t *c);
/* The request table: give r an id (-EAGAIN when full), take it back, find one by id. */
int srv__req_add(srv__engine_t *e, srv__req_t *r);
void srv__req_del(srv__engine_t *e, srv__req_t *r);
srv__req_t *srv__req_find(srv__engine_t *e, uint64_t id);
/* Report progress of the response in flight to its producer (at least every ack_step bytes,
 * and whenever the queue ran dry; force: whatever changed). */
void srv__req_report(srv__conn_t *c, bool force);

/* The actions behind srv__engine_action. */
int srv__conn_respond(srv__engine_t *e, uint64_t session, const struct iovec *iov, int iovcnt,
                      unsigned flags);
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

/* access.c: a request's counters, access log line and slow log; request ids. */
/* The request r (on c) is handed on: time it, give it its request id (req's headers may be
 * replaced by a copy with X-Request-Id set, valid until the next request of the engine), and
 * keep what its log line needs. */
void srv__access_begin(srv__conn_t *c, srv__req_t *r, srv_request_t *req);
/* The first bytes of r's response (a head in HTTP/1.1 text): its status and length. */
void srv__access_head(srv__req_t *r, const char *p, size_t n);
/* r ended: answered in full (bytes queued), or cut short (status 499 if no head passed). */
void srv__access_end(srv__conn_t *c, srv__req_t *r, uint64_t bytes);
/* "X-Request-Id: <r's id>\r\n" into hdr; returns its length (0: it did not fit). */
size_t srv__access_id_header(const srv__req_t *r, char *hdr, size_t cap);
/* An answer of srv's own on c to bytes that never made a request (400, 408, 413...), or to the
 * request whose handshake failed (c->req_store still open): begin gives it its id (and writes
 * the header line as srv__access_id_header does, hdr may be NULL); error logs and counts it
 * once resp (n bytes, the whole response; NULL when none was sent) is queued. */
size_t srv__access_error_begin(srv__conn_t *c, char *hdr, size_t cap);
void srv__access_error(srv__conn_t *c, int status, const char *resp, size_t n);
/* Count c under another protocol (an upgrade). */
void srv__access_proto(srv__conn_t *c, int proto);

/* conn_h2.c: the actions on a request of an HTTP/2 stream (id from the request table). */
int srv__h2c_respond(srv__req_t *r, const struct iovec *iov, int iovcnt, unsigned flags);
int srv__h2c_respond_fd(srv__req_t *r, int fd, uint64_t off, uint64_t len, unsigned flags);
/* Its worker died: 503 when nothing was answered yet, else the stream is reset. */
void srv__h2c_fail(srv__req_t *r);
/* conn_http.c hands a connection over: the preface arrived (prior knowledge, or ALPN h2), or
 * an HTTP/1.1 request asked for Upgrade: h2c (req; 101 sent here). 0, or -errno (closed). */
int srv__h2c_start(srv__conn_t *c);
int srv__h2c_upgrade(srv__conn_t *c, const srv_request_t *req, srv_str_t settings);

/* conn_ws.c, for the HTTP upgrade: 1 taken over (decided later), 0 not an upgrade,
 * -errno a bad handshake. */
int srv__ws_upgrade(srv__conn_t *c, const srv_request_t *req);
/* Close an open WebSocket with 1000 (the app's SRV_ENGINE_CLOSE). */
int srv__ws_close_normal(srv__conn_t *c);

#endif
