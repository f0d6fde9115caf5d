/* srv: the C API an application module is written against.
 *
 * An app is a shared object exporting one symbol, `srv_app` (use SRV_APP), that describes it:
 * the ABI version and the callbacks it implements. Each worker process dlopen()s the module
 * after it is forked, so `srv reload` runs the code on disk now. Every srv_* function here is
 * callable from the worker process that is running the callback, on its only thread; none
 * blocks on a client. Functions that can fail return >= 0 on success and -errno on failure;
 * srv_strerror() names the error. */
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

/* Bumped whenever srv_app_t or a callback signature changes; a module built for another value
 * is refused at load with a clear error. */
#define SRV_ABI_VERSION 1

/* A borrowed byte string; not NUL-terminated unless said otherwise. */
typedef struct srv_str {
    const char *ptr;
    size_t len;
} srv_str_t;

typedef struct srv_header {
    srv_str_t name;
    srv_str_t value;
} srv_header_t;

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
    uint64_t session;    /* the connection's session id, never reused */
    srv_str_t method;    /* "GET" */
    srv_str_t url;       /* raw request target: "/a%20b?x=1" */
    srv_str_t path;      /* target before '?', still percent-encoded */
    srv_str_t query;     /* after '?', without it; len 0 when absent */
    int http_major;
    int http_minor;
    uint32_t flags;      /* SRV_REQ_* */
    const srv_header_t *headers;
    size_t nheaders;
    srv_str_t body;      /* whole body (chunked bodies already decoded) */
    srv_str_t peer;      /* client address text: "127.0.0.1", "::1", "unix" */
    int peer_port;       /* 0 for unix sockets */
    int listener;        /* index of the [[listen]] entry it came in on */
} srv_request_t;

/* Case-insensitive header lookup: the first value of name, or {NULL, 0}. */
srv_str_t srv_request_header(const srv_request_t *req, const char *name);
/* The value of query parameter name, percent-decoded into buf (NUL-terminated). Returns its
 * length, -ENOENT when absent, -ENOSPC when buf is too small. */
int srv_request_query(const srv_request_t *req, const char *name, char *buf, size_t len);

/* The response to one request. Owned by srv; valid until it is finished. A handler either
 * finishes it before returning, or calls srv_response_detach() and finishes it later (from a
 * timer or finish callback of the same worker). */
typedef struct srv_response srv_response_t;

/* Set the status (default 200). Before the head is sent only. */
int srv_response_status(srv_response_t *res, int status);
/* Add a header (copied). Date, Server, Content-Length, Transfer-Encoding and Connection are
 * srv's own and refused with -EINVAL. Before the head is sent only; -EMSGSIZE if the header
 * block would pass 16 KiB. */
int srv_response_header(srv_response_t *res, const char *name, const char *value);
/* Send the whole response with this body (copied) and finish it. */
int srv_response_send(srv_response_t *res, const void *body, size_t len);
/* Send a file as the body and finish. -ENOENT / -EACCES / -EISDIR when it cannot be opened
 * (nothing is sent: the handler may still respond otherwise). */
int srv_response_file(srv_response_t *res, const char *path);
/* Stream: the first call sends the head with Transfer-Encoding: chunked (HTTP/1.1) or
 * close-delimited (HTTP/1.0); each call sends one chunk (copied). */
int srv_response_write(srv_response_t *res, const void *chunk, size_t len);
/* Finish a streamed response (sends the last chunk). */
int srv_response_end(srv_response_t *res);
/* Keep the response open after on_request returns; finish it later in this worker. */
int srv_response_detach(srv_response_t *res);
/* The request this response answers (valid while the response is). */
const srv_request_t *srv_response_request(const srv_response_t *res);

/* The worker running the code. */
typedef struct srv_worker {
    int id;          /* 0..worker_num-1 for workers */
    pid_t pid;
    int worker_num;  /* workers in this server */
    const char *role; /* "worker" */
} srv_worker_t;

/* Handlers a listener uses; a listener's `handler` key names a set, "" is the app's default. */
typedef struct srv_handlers {
    const char *name;
    /* HTTP: called once per request, in the worker chosen by dispatch_mode. */
    void (*on_request)(srv_request_t *req, srv_response_t *res);
} srv_handlers_t;

typedef struct srv_app {
    uint32_t abi_version; /* SRV_ABI_VERSION */
    const char *name;
    /* Called in each worker after the module is loaded, before any request. Non-zero refuses
     * to start: the worker exits and a reload stops there. */
    int (*on_worker_start)(const srv_worker_t *w);
    /* Called when the worker stops (graceful stop, reload, max_request). */
    void (*on_worker_stop)(const srv_worker_t *w);
    srv_handlers_t handlers;             /* the default set */
    const srv_handlers_t *const *named;  /* NULL-terminated extra sets, or NULL */
} srv_app_t;

/* Define the module's descriptor: SRV_APP(.name = "demo", .handlers = {.on_request = f}); */
#define SRV_APP(...)                                                                               \
    __attribute__((visibility("default"))) const srv_app_t srv_app = {                             \
        .abi_version = SRV_ABI_VERSION, __VA_ARGS__}

/* This worker. */
const srv_worker_t *srv_worker_self(void);

/* Text for a -errno value returned by srv_* calls. */
const char *srv_strerror(int err);

/* Log a line through srv's logger (level: 0 error, 1 warn, 2 notice, 3 info, 4 debug). */
void srv_app_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
