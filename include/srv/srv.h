/* srv: the C API an application module is written against.
 *
 * An app is a shared object exporting one symbol, `srv_app` (use SRV_APP), that describes it:
 * the ABI version and the callbacks it implements. Each worker process dlopen()s the module
 * after it is forked, so `srv reload` runs the code on disk now. The callbacks of srv_app_t and
 * srv_handlers_t, timer callbacks and custom process entries run on the only thread of their
 * process, and the srv_* functions for that kind of process are called on that thread; none
 * blocks on a client. The exception is cron: each [[cron]] job's handler runs on its own thread
 * of the timer process (see "Cron jobs" below for what it may call). Tables and atomics
 * (srv/table.h) are safe from any thread. Functions that can fail return >= 0 on success and
 * -errno on failure; srv_strerror() names the error. */
#ifndef SRV_SRV_H
#define SRV_SRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "srv/table.h" /* shared-memory tables and atomics */

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever srv_app_t, a callback signature or an API function's signature changes; a
 * module built for another value is refused at load with a clear error. (5: TLS, srv_tls_t in
 * srv_request_t and srv_conn_info_t.) */
#define SRV_ABI_VERSION 5

/* A borrowed byte string; not NUL-terminated unless said otherwise. */
typedef struct srv_str {
    const char *ptr;
    size_t len;
} srv_str_t;

typedef struct srv_header {
    srv_str_t name;
    srv_str_t value;
} srv_header_t;

/* What a connection negotiated over TLS; every string is NUL-terminated, "" on a plain
 * connection. */
typedef struct srv_tls {
    bool on;                  /* the connection is TLS */
    char version[16];         /* "TLSv1.3" */
    char cipher[64];          /* OpenSSL's name: "TLS_AES_256_GCM_SHA384" */
    char sni[256];            /* the server name the client asked for */
    char client_subject[256]; /* mutual TLS: the verified client certificate's subject */
} srv_tls_t;

/* Request flags. */
#define SRV_REQ_KEEP_ALIVE 0x01u      /* the connection stays open after the response */
#define SRV_REQ_HEAD 0x02u            /* HEAD: the response body is not sent */
#define SRV_REQ_EXPECT_CONTINUE 0x04u /* the client sent Expect: 100-continue */
#define SRV_REQ_UPGRADE 0x08u         /* Connection: upgrade with an Upgrade header */
#define SRV_REQ_CHUNKED 0x10u         /* the body arrived chunked */

/* A parsed HTTP request. It and everything it points at are owned by srv and valid while
 * on_request runs. A detached response keeps its own copy, reachable with
 * srv_response_request() until the response is finished. */
typedef struct srv_request {
    uint64_t session; /* the connection's session id (not reused before 2^24 - 1 more
                         connections on its slot; in a cluster it names the instance too) */
    srv_str_t method; /* "GET" */
    srv_str_t url;    /* raw request target: "/a%20b?x=1" */
    srv_str_t path;   /* target before '?', still percent-encoded */
    srv_str_t query;  /* after '?', without it; len 0 when absent */
    int http_major;
    int http_minor;
    uint32_t flags; /* SRV_REQ_* */
    const srv_header_t *headers;
    size_t nheaders;
    srv_str_t body; /* whole body (chunked bodies already decoded) */
    srv_str_t peer; /* client address text: "127.0.0.1", "::1", "unix" */
    int peer_port;  /* 0 for unix sockets */
    int listener;   /* index of the [[listen]] entry it came in on */
    const srv_tls_t *tls; /* TLS details; NULL on a plain connection */
} srv_request_t;

/* Case-insensitive header lookup: the first value of name, or {NULL, 0}. */
SRV_API srv_str_t srv_request_header(const srv_request_t *req, const char *name);
/* The value of query parameter name, percent-decoded into buf (NUL-terminated). Returns its
 * length, -ENOENT when absent, -ENOSPC when buf is too small. */
SRV_API int srv_request_query(const srv_request_t *req, const char *name, char *buf, size_t len);

/* The response to one request. Owned by srv; valid until it is finished. A handler either
 * finishes it before returning, or calls srv_response_detach() and finishes it later (from a
 * timer or finish callback of the same worker). */
typedef struct srv_response srv_response_t;

/* Set the status (default 200). Before the head is sent only. */
SRV_API int srv_response_status(srv_response_t *res, int status);
/* Add a header (copied). Date, Server, Content-Length, Transfer-Encoding and Connection are
 * srv's own and refused with -EINVAL. Before the head is sent only; -EMSGSIZE if the header
 * block would pass 16 KiB. */
SRV_API int srv_response_header(srv_response_t *res, const char *name, const char *value);
/* Send the whole response with this body (copied) and finish it. A body of any size is
 * taken; what does not fit in buffer_output_size waits in this worker until the client reads.
 * -EPIPE when the client has gone. */
SRV_API int srv_response_send(srv_response_t *res, const void *body, size_t len);
/* Send a file as the body and finish. -ENOENT / -EACCES / -EISDIR when it cannot be opened
 * (nothing is sent: the handler may still respond otherwise). */
SRV_API int srv_response_file(srv_response_t *res, const char *path);
/* Stream: the first call sends the head with Transfer-Encoding: chunked (HTTP/1.1) or
 * close-delimited (HTTP/1.0); each call sends one chunk (copied). Back-pressure: a response
 * keeps at most buffer_output_size bytes that its client has not read yet; past that the call
 * returns -EAGAIN and takes nothing (call it again with the same chunk after
 * srv_response_on_writable's callback). -EPIPE: the client has gone; stop and call
 * srv_response_end() to release the response. A worker never blocks on a slow client. */
SRV_API int srv_response_write(srv_response_t *res, const void *chunk, size_t len);
/* Call cb(res, arg) once, later in this worker, when a write that returned -EAGAIN can be
 * retried (the client read half of what was pending) or the client has gone (the next write
 * returns -EPIPE). To go on after on_request returns, the response must be detached. cb NULL
 * cancels. Returns 0, -EALREADY for a finished response. */
SRV_API int srv_response_on_writable(srv_response_t *res, void (*cb)(srv_response_t *res, void *arg),
                             void *arg);
/* Finish a streamed response (sends the last chunk). Never refused for lack of room: what the
 * client has not read yet is kept and sent as it reads. */
SRV_API int srv_response_end(srv_response_t *res);
/* Keep the response open after on_request returns; finish it later in this worker. */
SRV_API int srv_response_detach(srv_response_t *res);
/* The request this response answers (valid while the response is). */
SRV_API const srv_request_t *srv_response_request(const srv_response_t *res);

/* The worker running the code. */
typedef struct srv_worker {
    int id; /* 0..worker_num-1 for workers */
    pid_t pid;
    int worker_num;   /* workers in this server */
    const char *role; /* "worker" */
} srv_worker_t;

/* What srv knows of a connection (TCP or WebSocket), in any process. */
typedef struct srv_conn_info {
    uint64_t session;
    int listener;  /* index of its [[listen]] entry */
    char peer[46]; /* client address text ("unix" for unix sockets) */
    int peer_port;
    int64_t connect_time; /* wall clock, ms */
    int64_t last_time;    /* last byte received, wall clock ms */
    bool websocket;       /* an upgraded WebSocket connection */
    uint32_t uid;         /* srv_bind() value, 0 when unbound */
    srv_tls_t tls;        /* TLS details (tls.on false on a plain connection) */
} srv_conn_info_t;

/* A UDP datagram. Valid during on_packet only. */
typedef struct srv_packet {
    int listener;
    const void *data;
    size_t len;
    char peer[108]; /* sender address text, or the sender's path for unix datagram sockets */
    int peer_port;
} srv_packet_t;

/* WebSocket opcodes and close codes (RFC 6455). */
#define SRV_WS_TEXT 0x1
#define SRV_WS_BINARY 0x2
#define SRV_WS_CLOSE_NORMAL 1000
#define SRV_WS_CLOSE_GOING_AWAY 1001
#define SRV_WS_CLOSE_POLICY 1008

/* Handlers a listener uses; a listener's `handler` key names a set, "" is the app's default.
 * Every callback runs in a worker; which one follows dispatch_mode (2, 4 and 5 keep a
 * connection on one worker for its life). For a connection, on_close comes after the last
 * on_receive / on_ws_message, in every mode. */
typedef struct srv_handlers {
    const char *name;
    /* HTTP: called once per request, in the worker chosen by dispatch_mode. */
    void (*on_request)(const srv_request_t *req, srv_response_t *res);
    /* WebSocket (listeners with websocket = true). on_ws_open sees the handshake request and
     * returns 0 to accept, or a close code (4000-4999 for the app's own reasons, or 1008) to
     * refuse: the client is upgraded and at once gets a close frame with that code and the
     * reason "refused" (as a browser's WebSocket can read it; an HTTP status it cannot), and
     * the app hears no more of that session (no on_ws_message, no on_ws_close). Codes a close
     * frame cannot carry become 1008. NULL accepts every handshake. */
    int (*on_ws_open)(const srv_request_t *req);
    void (*on_ws_message)(uint64_t session, int opcode, const void *data, size_t len);
    void (*on_ws_close)(uint64_t session, int code, const char *reason, size_t reason_len);
    /* TCP listeners: on_receive gets one whole frame as the listener's framing defines it. */
    void (*on_connect)(uint64_t session, const srv_conn_info_t *info);
    void (*on_receive)(uint64_t session, const void *data, size_t len);
    void (*on_close)(uint64_t session);
    /* UDP listeners: one datagram. */
    void (*on_packet)(const srv_packet_t *pkt);
} srv_handlers_t;

/* A task as a task worker sees it (valid during on_task). */
typedef struct srv_task {
    uint64_t id;
    int from_worker; /* the worker (or task worker) that delivered it */
    int attempt;     /* 1 for the first try */
    const void *data;
    size_t len;
} srv_task_t;

typedef struct srv_app {
    uint32_t abi_version; /* SRV_ABI_VERSION */
    const char *name;
    /* Called in each worker after the module is loaded, before any request. Non-zero refuses
     * to start: the worker exits and a reload stops there. */
    int (*on_worker_start)(const srv_worker_t *w);
    /* Called when the worker stops (graceful stop, reload, max_request). */
    void (*on_worker_stop)(const srv_worker_t *w);
    srv_handlers_t handlers;            /* the default set */
    const srv_handlers_t *const *named; /* NULL-terminated extra sets, or NULL */
    /* Task workers: run one task; set its result with srv_task_result(). Return 0 for
     * success; non-zero fails this attempt (retried while tries are left). */
    int (*on_task)(srv_task_t *task);
    /* In the worker that delivered a task (unless it waits for it synchronously): the result.
     * status 0: done, data = result; -EIO: failed after every try (or its task worker died). */
    void (*on_finish)(uint64_t task_id, int status, const void *data, size_t len);
    /* A message from another worker (srv_send_message / srv_broadcast_message); from_worker
     * is -1 for a broadcast from a worker of another instance (cluster = true). */
    void (*on_pipe_message)(int from_worker, const void *data, size_t len);
} srv_app_t;

/* Define the module's descriptor: SRV_APP(.name = "demo", .handlers = {.on_request = f}); */
#define SRV_APP(...)                                                                               \
    __attribute__((visibility("default")))                                                         \
    const srv_app_t srv_app = {.abi_version = SRV_ABI_VERSION, __VA_ARGS__}

/* This worker. */
SRV_API const srv_worker_t *srv_worker_self(void);

/* ---- Connections by session id, from any worker ---- */

/* Send bytes on a TCP connection (copied). Queued behind what is already pending; a peer that
 * stops reading past buffer_output_size is closed. -ENOENT for a session that is gone (never
 * another client's), -EINVAL for a WebSocket or HTTP session, -EMSGSIZE over buffer_output_size.
 * In base mode a session another worker accepted is reached through that worker's mailbox
 * (-ENOBUFS when it is full). */
SRV_API int srv_send(uint64_t session, const void *data, size_t len);
/* Close a TCP or WebSocket connection after what is queued was sent (WebSocket: close frame
 * 1000). on_close / on_ws_close follow. -ENOENT when gone. */
SRV_API int srv_close(uint64_t session);
/* Fill *info for a live connection; -ENOENT when gone. */
SRV_API int srv_conn_info(uint64_t session, srv_conn_info_t *info);
/* dispatch_mode 5: from now on this connection's events go to worker uid % worker_num. */
SRV_API int srv_bind(uint64_t session, uint32_t uid);
/* Send one datagram from UDP listener `listener` to addr:port (addr "unix" style paths for
 * unix datagram listeners: pass the path and port 0). */
SRV_API int srv_sendto(int listener, const char *addr, int port, const void *data, size_t len);

/* ---- WebSocket ---- */

/* Push one message (opcode SRV_WS_TEXT or SRV_WS_BINARY) to a WebSocket session. Text must be
 * UTF-8 (-EINVAL otherwise). -ENOENT when the session is gone or not a WebSocket.
 * With cluster = true, srv_send, srv_close, srv_ws_push and srv_ws_close also take a session of
 * another instance (from an event worker): the action is published to that instance through
 * Redis and done there (at most once; a session gone there is dropped there, so 0 here means
 * published, not delivered). srv_conn_info and srv_ws_exists know only this instance's. */
SRV_API int srv_ws_push(uint64_t session, int opcode, const void *data, size_t len);
/* Close with a code (1000-4999) and a reason (up to 123 bytes). */
SRV_API int srv_ws_close(uint64_t session, int code, const char *reason);
/* Inside on_ws_open only: answer with this subprotocol (one the client offered in
 * Sec-WebSocket-Protocol; copied). -EINVAL for a name that is not a token, -EPERM outside
 * on_ws_open. Without it no subprotocol is selected. */
SRV_API int srv_ws_select_protocol(const char *name);
/* 1 while session is an open WebSocket connection, 0 when it is not (gone, never was, or not a
 * WebSocket). Never fails. */
SRV_API int srv_ws_exists(uint64_t session);
/* Push one message to every open WebSocket connection (listener >= 0: only that listener's).
 * Encoded once; returns 0 (delivery to each connection is asynchronous). With cluster = true,
 * from an event worker, the other instances' connections get it too (through Redis pub/sub:
 * at most once). */
SRV_API int srv_ws_broadcast(int listener, int opcode, const void *data, size_t len);
/* Call cb for every open WebSocket session (listener >= 0: only that listener's) until it
 * returns non-zero. A snapshot: connections may open or close meanwhile. Returns the count. */
SRV_API int srv_ws_foreach(int listener, int (*cb)(uint64_t session, void *arg), void *arg);

/* ---- Task workers ---- */

typedef struct srv_task_opts {
    uint64_t delay_ms; /* queue it this much later (0: now) */
    int tries;         /* attempts before it fails (0 or 1: one) */
} srv_task_opts_t;

/* Queue a task (data copied) for the task workers; opts may be NULL. Returns the task id
 * (> 0), or -EAGAIN when task_max_queue tasks are waiting, -EMSGSIZE when data is too large,
 * -ENOTSUP without task workers. Callable from workers, task workers and cron jobs. */
SRV_API int64_t srv_task_deliver(const void *data, size_t len, const srv_task_opts_t *opts);
/* Wait for task id's result (the task's on_finish is then not called). Returns the result
 * length (copied into buf, truncated to cap), -EIO when the task failed, -ETIMEDOUT. Other
 * messages arriving meanwhile are kept and handled after the caller returns. */
SRV_API int srv_task_wait(uint64_t id, void *buf, size_t cap, int timeout_ms);
/* Wait for several tasks at once: results[i] gets task ids[i]'s status (0 done, -EIO failed,
 * -ETIMEDOUT) and lens[i] its result length (copied into bufs[i], caps[i] bytes). Returns how
 * many finished. */
SRV_API int srv_task_wait_many(const uint64_t *ids, int n, void **bufs, const size_t *caps, int *results,
                       size_t *lens, int timeout_ms);
/* In on_task, with the task pointer on_task received: the task's result (copied). -EINVAL for
 * another pointer or outside on_task, -EMSGSIZE when too large, -ENOMEM. */
SRV_API int srv_task_result(srv_task_t *task, const void *data, size_t len);

/* ---- Timers (every process with an event loop: workers and task workers) ---- */

typedef void (*srv_timer_fn)(uint64_t timer_id, void *arg);
/* Call cb once after ms milliseconds. Returns the timer id (> 0), -EINVAL (cb NULL, ms out of
 * range) or -ENOMEM. */
SRV_API int64_t srv_timer_after(uint64_t ms, srv_timer_fn cb, void *arg);
/* Call cb every ms milliseconds until cleared; as srv_timer_after, and -EINVAL for ms 0. */
SRV_API int64_t srv_timer_tick(uint64_t ms, srv_timer_fn cb, void *arg);
/* Stop a timer; -ENOENT when it already ran (one-shot) or is unknown. */
SRV_API int srv_timer_clear(uint64_t timer_id);

/* ---- Messages between workers ---- */

/* Send bytes to worker worker_id's on_pipe_message. -ENOBUFS when its mailbox is full,
 * -EINVAL for a bad id or yourself. */
SRV_API int srv_send_message(int worker_id, const void *data, size_t len);
/* Send to every other worker (with cluster = true, from an event worker: and every worker of
 * the other instances, at most once). Returns how many workers of this instance it reached. */
SRV_API int srv_broadcast_message(const void *data, size_t len);

/* ---- Cron jobs ----
 *
 * Handlers run in the timer process, one thread per [[cron]] job: a job's beats run one after
 * another on its thread, while different jobs run at the same time on theirs, so state shared
 * between handlers needs the app's own locking. That process has no event loop and serves no
 * connection. From a handler call only: srv_cron_*() on its own job, srv_task_deliver() with
 * delay_ms 0 (no loop there keeps a delay), srv_app_log(), srv_strerror(), and tables and
 * atomics (srv/table.h). Everything else here (responses, connections, WebSocket, timers,
 * messages, srv_task_wait*, srv_worker_self) belongs to a process's main thread and must not be
 * called from a cron thread. */

typedef struct srv_cron_job srv_cron_job_t;
/* A [[cron]] handler is an exported function of the app: void name(srv_cron_job_t *job). */
typedef void (*srv_cron_handler_t)(srv_cron_job_t *job);
/* The job's name; end the job for good (it runs no more until the next start or reload). */
SRV_API const char *srv_cron_name(srv_cron_job_t *job);
SRV_API void srv_cron_stop(srv_cron_job_t *job);
/* true once the server is stopping or reloading: return soon. */
SRV_API bool srv_cron_stopping(srv_cron_job_t *job);

/* ---- Custom processes ---- */

typedef struct srv_process srv_process_t;
/* A [[process]] entry is an exported function of the app: void name(srv_process_t *p). When
 * it returns, the process exits and is restarted after restart_interval seconds (unless the
 * server is stopping). */
typedef void (*srv_process_entry_t)(srv_process_t *p);
SRV_API const char *srv_process_name(const srv_process_t *p);
SRV_API int srv_process_instance(const srv_process_t *p); /* 0..num-1 */
/* true once the process should finish (the server stops or reloads). */
SRV_API bool srv_process_stopping(srv_process_t *p);
/* Hooks run once, on the process's own thread, at its next srv_process_recv or
 * srv_process_stopping call after a reload (the replacement is already running) or a stop;
 * the entry should return soon after. The manager kills the process after max_wait_time. */
SRV_API void srv_process_hooks(srv_process_t *p, void (*on_reload)(srv_process_t *p),
                       void (*on_stop)(srv_process_t *p));
/* Wait up to timeout_ms for a message from a worker: returns its length (copied into buf,
 * truncated to cap), -ETIMEDOUT, or -ECANCELED once stopping. *call identifies it for
 * srv_process_reply (0 when the sender wants no reply). */
SRV_API int srv_process_recv(srv_process_t *p, void *buf, size_t cap, uint64_t *call, int timeout_ms);
/* Answer the message with call id `call`. */
SRV_API int srv_process_reply(srv_process_t *p, uint64_t call, const void *data, size_t len);
/* From a worker: send to custom process `name` (instance chosen round robin) and wait up to
 * timeout_ms for its reply. Returns the reply length (copied into reply, truncated to cap),
 * -ENOENT for no such process, -ENOTSUP for one declared with pipe = false, -ETIMEDOUT,
 * -ENOBUFS when its mailbox is full. */
SRV_API int srv_process_call(const char *name, const void *data, size_t len, void *reply, size_t cap,
                     int timeout_ms);
/* Send without waiting for a reply. */
SRV_API int srv_process_send(const char *name, const void *data, size_t len);

/* Text for a -errno value returned by srv_* calls. */
SRV_API const char *srv_strerror(int err);

/* Log a line through srv's logger (level: 0 error, 1 warn, 2 notice, 3 info, 4 debug). */
SRV_API void srv_app_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
