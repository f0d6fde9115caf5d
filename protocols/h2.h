/* HTTP/2, server side, as a state machine over libnghttp2 (framing, HPACK, flow control): bytes
 * in, requests out; responses in, frames out. No socket: the connection engine moves the bytes
 * (core/net/conn_h2.c). A stream's request reaches the caller once whole (END_STREAM), as
 * srv_request_t; its response goes back as a status, headers and body pieces (or a file) that
 * become DATA frames as the peer's window allows. The abuse limits nghttp2 does not keep are
 * in h2_guard.h. */
#ifndef SRV_H2_H
#define SRV_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "srv/srv.h"

typedef struct srv__h2 srv__h2_t;

typedef struct srv__h2_opts {
    uint32_t max_concurrent_streams; /* advertised and enforced; nginx's default 128 */
    uint32_t initial_window_size;    /* per stream, bytes we accept before the app reads */
    uint32_t max_frame_size;         /* 16384 .. 16777215 */
    uint32_t max_header_list_size;   /* decoded header bytes (name + value + 32 each): 431 past */
    size_t header_max; /* the same headers as an HTTP/1.1 head (http_header_max): 431 past */
    size_t body_max;   /* request body limit (package_max_length): 413 past */
} srv__h2_opts_t;

typedef struct srv__h2_ops {
    /* Stream's request is whole. req and what it points at are valid during the call only;
     * req->http_major is 2 and req->session is 0 (the caller fills its own). Returns the
     * caller's pointer for the stream (srv__h2_set_user), or NULL. */
    void *(*request)(void *arg, int32_t stream, const srv_request_t *req);
    /* The stream closed (peer reset, or the session ended) while it had a user pointer and its
     * response was not complete. May be NULL. */
    void (*reset)(void *arg, int32_t stream, void *user, uint32_t error_code);
    /* A request was answered here, never reaching the caller (413, 431, 408). May be NULL. */
    void (*answered)(void *arg, int status);
    void *arg;
} srv__h2_ops_t;

/* A server session; the server's SETTINGS are queued (srv__h2_out). 0 or -ENOMEM. */
int srv__h2_create(srv__h2_t **out, const srv__h2_opts_t *o, const srv__h2_ops_t *ops);
/* Closes the streams (ops.reset for those with a user pointer) and frees the session. */
void srv__h2_destroy(srv__h2_t *h);

/* Bytes from the peer, all taken (the client's connection preface first). Returns 0, or -EPROTO
 * when the peer broke the protocol or a limit: a GOAWAY is queued (srv__h2_error says why);
 * send it, then close. */
int srv__h2_feed(srv__h2_t *h, const char *data, size_t len);

/* HTTP/1.1's Upgrade: h2c. settings is the HTTP2-Settings header (base64url); req, the
 * request that asked, becomes stream 1 and is handed to ops.request at once. 0, -EINVAL (bad
 * settings), -ENOMEM. */
int srv__h2_upgrade(srv__h2_t *h, srv_str_t settings, const srv_request_t *req);

/* The response head of stream: status and headers (names are lower-cased; connection-specific
 * ones are dropped, as HTTP/2 forbids them). end: no body follows. Returns 0, -ENOENT when the
 * stream is gone, -EALREADY when it was answered. */
int srv__h2_respond(srv__h2_t *h, int32_t stream, int status, const srv_header_t *headers,
                    size_t nheaders, bool end);
/* Body bytes of stream's response (copied); final ends the stream. They go out as the peer's
 * flow-control window allows. Returns 0, -ENOENT (stream gone), -EPROTO (no head yet). */
int srv__h2_data(srv__h2_t *h, int32_t stream, const void *data, size_t len, bool final);
/* A file range as body bytes of stream, after what is queued: read a frame at a time as the
 * window allows, never whole into memory. fd is taken over (closed also on failure). */
int srv__h2_file(srv__h2_t *h, int32_t stream, int fd, uint64_t off, uint64_t len, bool final);
/* Body bytes of stream queued and not yet framed (the caller's back-pressure). */
uint64_t srv__h2_pending(const srv__h2_t *h, int32_t stream);
/* Attach (or clear, NULL) the caller's pointer to a stream. */
void srv__h2_set_user(srv__h2_t *h, int32_t stream, void *user);
/* Reset stream (RST_STREAM with code); its user pointer is cleared first. */
void srv__h2_reset(srv__h2_t *h, int32_t stream, uint32_t code);

/* Graceful end: GOAWAY with the last stream id seen; streams in flight finish. */
void srv__h2_goaway(srv__h2_t *h);
/* End the session now: GOAWAY with code (the reason is what srv__h2_error reports). */
void srv__h2_terminate(srv__h2_t *h, uint32_t code, const char *why);
/* Why the session ended (NULL while it has not) and the GOAWAY code it sent. */
const char *srv__h2_error(const srv__h2_t *h, uint32_t *code);
/* Requests that made no progress for idle_ms before they were whole: answered 408 and reset
 * (or, when the client stopped inside a header block, the session ends). Returns how many. */
int srv__h2_expire(srv__h2_t *h, int64_t idle_ms);
/* Streams open now (the peer's, request not yet answered in full or closed). */
uint32_t srv__h2_streams(const srv__h2_t *h);
/* How long body bytes have waited for the peer's window without any going (0: none wait). */
int64_t srv__h2_stalled_ms(const srv__h2_t *h);

/* Frames waiting to be sent: the bytes of the next one (or of its rest) at *p, valid until
 * the next call on h; 0 when none waits. */
size_t srv__h2_out(srv__h2_t *h, const char **p);
void srv__h2_out_consume(srv__h2_t *h, size_t n);

/* Frames wait to be sent (srv__h2_out would give one). */
bool srv__h2_want_write(const srv__h2_t *h);
/* Nothing more will be read or written: close once the output has gone. */
bool srv__h2_done(const srv__h2_t *h);

#endif
