/* HTTP/2, server side, as a state machine over libnghttp2 (framing, HPACK, flow control): bytes
 * in, requests out; responses in, frames out. No socket: the connection engine moves the bytes
 * (issue 14 wires it to listeners; this is its protocol half). A stream's request reaches the
 * caller once whole (END_STREAM), as srv_request_t; its response goes back as a status, headers
 * and body pieces that become DATA frames as the peer's window allows. */
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
    size_t body_max;                 /* request body limit (package_max_length): 413 past */
} srv__h2_opts_t;

typedef struct srv__h2_ops {
    /* Stream's request is whole. req and what it points at are valid during the call only;
     * req->http_major is 2 and req->session is 0 (the caller fills its own). */
    void (*request)(void *arg, int32_t stream, const srv_request_t *req);
    /* The peer reset stream (or it closed) before its response was complete. May be NULL. */
    void (*reset)(void *arg, int32_t stream, uint32_t error_code);
    void *arg;
} srv__h2_ops_t;

/* A server session; the server's SETTINGS are queued (srv__h2_out). 0 or -ENOMEM. */
int srv__h2_create(srv__h2_t **out, const srv__h2_opts_t *o, const srv__h2_ops_t *ops);
void srv__h2_destroy(srv__h2_t *h);

/* Bytes from the peer, all taken (the client's connection preface first). Returns 0, or
 * -EPROTO when the peer broke the protocol: a GOAWAY is queued; send it, then close. */
int srv__h2_feed(srv__h2_t *h, const char *data, size_t len);

/* The response head of stream: status and headers (names are lower-cased; connection-specific
 * ones are dropped, as HTTP/2 forbids them). end: no body follows. Returns 0, -ENOENT when the
 * stream is gone, -EALREADY when it was answered. */
int srv__h2_respond(srv__h2_t *h, int32_t stream, int status, const srv_header_t *headers,
                    size_t nheaders, bool end);
/* Body bytes of stream's response (copied); final ends the stream. They go out as the peer's
 * flow-control window allows. Returns 0, -ENOENT (stream gone), -EPROTO (no head yet). */
int srv__h2_data(srv__h2_t *h, int32_t stream, const void *data, size_t len, bool final);
/* Body bytes of stream queued and not yet framed (the caller's back-pressure). */
size_t srv__h2_pending(const srv__h2_t *h, int32_t stream);

/* Graceful end: GOAWAY with the last stream id seen; streams in flight finish. */
void srv__h2_goaway(srv__h2_t *h);

/* Frames waiting to be sent: their bytes at *p, valid until the next call on h. */
size_t srv__h2_out(srv__h2_t *h, const char **p);
void srv__h2_out_consume(srv__h2_t *h, size_t n);

/* Nothing more will be read or written: close once the output has gone. */
bool srv__h2_done(const srv__h2_t *h);

#endif
