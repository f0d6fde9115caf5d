/* HTTP/1.1 as a pure state machine: request bytes in (split anywhere), whole requests out as
 * srv_request_t views; plus the request's IPC encoding and the response-head writer. Built on
 * llhttp. No sockets, no clock except the per-thread Date cache, no globals shared by threads. */
#ifndef SRV_PROTOCOLS_HTTP_H
#define SRV_PROTOCOLS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "srv/srv.h"

#define SRV_HTTP_HEADER_MAX_DEFAULT 8192
#define SRV_HTTP_BODY_MAX_DEFAULT (2u * 1024 * 1024) /* Swoole's package_max_length default */
#define SRV_HTTP_MAX_HEADERS_DEFAULT 100

/* A zero field means its default. */
typedef struct srv__http_limits {
    size_t header_max;  /* bytes of request line + headers (and of trailers); beyond: 414 when
                           the request line alone took them, else 431 */
    size_t body_max;    /* decoded body bytes; 413 beyond */
    size_t max_headers; /* header lines; 431 beyond */
} srv__http_limits_t;

typedef enum {
    SRV_HTTP_NEED_MORE, /* everything consumed, request incomplete */
    SRV_HTTP_REQUEST,   /* a whole request is ready: srv__http_parser_request() */
    SRV_HTTP_CONTINUE,  /* headers done, Expect: 100-continue, body to come */
    SRV_HTTP_ERROR,     /* srv__http_parser_error(); answer it and close */
} srv__http_event_t;

/* One per connection; owned by whoever owns the connection. Not thread-safe (one thread at a
 * time), but holds no global state, so parsers in many threads are independent. */
typedef struct srv__http_parser srv__http_parser_t;

/* limits may be NULL (defaults). Returns 0 or -ENOMEM. */
int srv__http_parser_create(srv__http_parser_t **out, const srv__http_limits_t *limits);
/* NULL is a no-op. Invalidates the current request view. */
void srv__http_parser_destroy(srv__http_parser_t *p);
/* Back to the state srv__http_parser_create() gives (same limits) for a new connection, keeping
 * its small buffers (those next() keeps): connection caches reuse parsers without a malloc.
 * Invalidates the current request view. */
void srv__http_parser_reset(srv__http_parser_t *p);

/* Feed len bytes; *consumed says how many were used, the caller keeps the rest and feeds them
 * again (after srv__http_parser_next() for a REQUEST, at once for CONTINUE).
 * NEED_MORE: all bytes consumed, no complete request yet.
 * CONTINUE: the headers are complete, the client sent Expect: 100-continue and a body follows;
 *   *consumed stops at the end of the headers. The caller may send "HTTP/1.1 100 Continue" (or
 *   reject) and keeps feeding. Returned once per request, whether or not the body is already
 *   in the buffer, so the event sequence does not depend on how reads split.
 * REQUEST: *consumed stops right after the request. The parser stays paused (feeding returns
 *   REQUEST with *consumed 0) until srv__http_parser_next(). For an upgrade request the bytes
 *   after it belong to the new protocol: a caller that switches protocols stops feeding; one
 *   that declines the upgrade calls next() and keeps speaking HTTP.
 *   After a request without SRV_REQ_KEEP_ALIVE, answer and close: llhttp drops later bytes.
 * ERROR: see srv__http_parser_error(); the parser stays in error. The connection must be closed
 *   after the error response. */
srv__http_event_t srv__http_parser_feed(srv__http_parser_t *p, const char *data, size_t len,
                                      size_t *consumed);
/* The ready request (after REQUEST), else NULL. Valid until next()/destroy(). session, peer,
 * peer_port and listener are zero: the caller fills them in its own copy if it needs them. */
const srv_request_t *srv__http_parser_request(srv__http_parser_t *p);
/* Release the request and resume parsing (keep-alive, pipelining). Large buffers are freed here
 * so idle connections stay small. */
void srv__http_parser_next(srv__http_parser_t *p);
/* The HTTP status for the error (400, 413, 414, 431, 500, 501, 505) and a short static reason
 * (may be NULL); 0 when the parser is not in error. */
int srv__http_parser_error(const srv__http_parser_t *p, const char **reason);
/* True when no byte of a next request has arrived (choose keep-alive vs header timeout). */
bool srv__http_parser_idle(const srv__http_parser_t *p);
/* True once the request line and headers of the current request are complete (the header
 * timeout no longer applies; the body timeout does). */
bool srv__http_parser_headers_done(const srv__http_parser_t *p);
/* Free every buffer while idle (for connections idle a long time); a no-op otherwise. */
void srv__http_parser_shrink(srv__http_parser_t *p);

/* IPC encoding of a request: one self-contained block (a fixed header, a table of header
 * offsets, room for the srv_header_t array, then the bytes), offsets not pointers, so a worker
 * never re-parses. The encoding carries session, peer, peer_port and listener too. */
size_t srv__http_request_encoded_size(const srv_request_t *req);
/* out must hold srv__http_request_encoded_size(req) bytes and be 8-byte aligned. Returns the
 * bytes written (== encoded_size). */
size_t srv__http_request_encode(const srv_request_t *req, void *out);
/* Build view whose pointers point into block (no copy). Writes the srv_header_t array inside
 * the block (which is why block is not const); the block must be 8-byte aligned and outlive the
 * view. Decoding the same block again is fine. Returns 0, or -EPROTO on a malformed or short
 * block. */
int srv__http_request_decode(void *block, size_t len, srv_request_t *view);

/* "OK", "Not Found", ...; "Unknown" for codes it does not know. */
const char *srv__http_status_reason(int status);
/* Write a response head: "HTTP/1.1 <status> <reason>", Server: srv, Date (cached per second per
 * thread), extra_headers verbatim (already "Name: value\r\n" lines), then Content-Length
 * (content_length >= 0), or Transfer-Encoding: chunked (content_length == -1 on HTTP/1.1), or
 * nothing (content_length == -1 on HTTP/1.0: close-delimited, keep_alive forced off); then
 * Connection: keep-alive|close and the blank line. 1xx, 204 and 304 get no length headers.
 * Returns the bytes written or -ENOSPC (buf content then unspecified). */
int srv__http_response_head(char *buf, size_t cap, int status, int http_minor, bool keep_alive,
                           int64_t content_length, srv_str_t extra_headers);
/* A complete small error response: head plus a text/plain body "<reason>\n" (reason NULL:
 * the status reason), with extra_headers verbatim ("Name: value\r\n" lines, may be empty).
 * Connection: close unless keep_alive. Returns bytes or -ENOSPC. */
int srv__http_error_response(char *buf, size_t cap, int status, const char *reason,
                             bool keep_alive, srv_str_t extra_headers);
/* "<len in hex>\r\n" before a chunk of len bytes (the chunk is followed by "\r\n"; the last
 * chunk is "0\r\n\r\n"). Returns bytes written or -ENOSPC. */
int srv__http_chunk_header(char *buf, size_t cap, size_t len);

#endif
