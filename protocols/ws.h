/* WebSocket (RFC 6455) as a pure state machine: the handshake check and 101 response, then
 * bytes in -> events out (whole messages, close, pong, protocol errors) and frames out into an
 * output buffer the caller drains. permessage-deflate (RFC 7692) via zlib. No sockets, no
 * threads: the same code runs in a reactor thread (process mode) or a worker (base mode). */
#ifndef SRV_PROTOCOLS_WS_H
#define SRV_PROTOCOLS_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "srv/srv.h"

/* Opcodes (RFC 6455 section 5.2). */
#define SRV_WS_CONT 0x0
#define SRV_WS_TEXT 0x1
#define SRV_WS_BINARY 0x2
#define SRV_WS_CLOSE 0x8
#define SRV_WS_PING 0x9
#define SRV_WS_PONG 0xA

/* Close codes we send. */
#define SRV_WS_NORMAL 1000
#define SRV_WS_GOING_AWAY 1001
#define SRV_WS_PROTOCOL_ERROR 1002
#define SRV_WS_NO_STATUS 1005 /* reported when the peer's close frame carried no code */
#define SRV_WS_INVALID_DATA 1007
#define SRV_WS_POLICY 1008
#define SRV_WS_TOO_BIG 1009
#define SRV_WS_INTERNAL 1011

/* Largest server frame header: 2 + 8 bytes of length (server frames are never masked). */
#define SRV_WS_FRAME_HEADER_MAX 10
/* Sec-WebSocket-Accept is 28 base64 characters. */
#define SRV_WS_ACCEPT_LEN 28

/* Per-connection settings. max_message_size and output_limit come from the listener config
 * (websocket_max_message_size, buffer_output_size); the deflate fields are filled by
 * srv__ws_handshake_response(). */
typedef struct srv__ws_options {
    size_t max_message_size; /* whole reassembled (decompressed) message; 0 = 16 MiB */
    size_t output_limit;     /* srv__ws_send() fails with -ENOBUFS past it; 0 = no limit */
    bool deflate;            /* permessage-deflate negotiated */
    /* Window we may compress with (9..15): the client's server_max_window_bits, else 15.
     * 0 means "do not compress what we send" (the client asked for 8, which zlib's raw deflate
     * cannot produce); we still inflate what the client sends. */
    uint8_t deflate_window_bits;
} srv__ws_options_t;

/* ---- Handshake -------------------------------------------------------------------------- */

/* Is req a valid WebSocket opening handshake? Returns 0 if so; -ENOENT if it is not an upgrade
 * attempt at all (no Upgrade header, or one without the "websocket" token: serve it as plain
 * HTTP); -EINVAL with *reason (static text for the 400 body) when it tries and fails: method
 * not GET, HTTP older than 1.1, Connection without "upgrade", Sec-WebSocket-Key not base64 of
 * 16 bytes, Sec-WebSocket-Version not 13. Any thread; req is only read. */
int srv__ws_handshake_check(const srv_request_t *req, const char **reason);

/* Sec-WebSocket-Accept for a client key: base64(SHA1(key + GUID)), NUL-terminated into out.
 * Returns 0, or -EIO if OpenSSL fails. */
int srv__ws_accept_key(const char *key, size_t key_len, char out[SRV_WS_ACCEPT_LEN + 1]);

/* Write the "101 Switching Protocols" response for a request that passed
 * srv__ws_handshake_check() into buf. subprotocol (the app's choice, may be NULL) is echoed in
 * Sec-WebSocket-Protocol. When allow_deflate and the client offers permessage-deflate, the
 * first acceptable offer is accepted and the deflate fields of *negotiated are set (its other
 * fields are left alone); otherwise negotiated->deflate is set false.
 * We always answer with server_no_context_takeover and client_no_context_takeover, so no zlib
 * state lives between messages: an idle connection holds no zlib memory.
 * Returns the response length, -ENOSPC if cap is too small, -EINVAL for a subprotocol with
 * characters a header cannot carry. */
int srv__ws_handshake_response(const srv_request_t *req, bool allow_deflate,
                               const char *subprotocol, char *buf, size_t cap,
                               srv__ws_options_t *negotiated);

/* ---- Connection state machine ----------------------------------------------------------- */

/* One connection's WebSocket state. Owned by whoever owns the connection (the reactor thread
 * in process mode, the worker in base mode), freed with srv__ws_destroy(). Not thread-safe.
 * Idle, it is one small allocation: message, output and zlib buffers exist only while used. */
typedef struct srv__ws srv__ws_t;

typedef enum srv__ws_event_type {
    SRV_WS_EV_MESSAGE = 1, /* opcode TEXT or BINARY, data/len the whole message */
    SRV_WS_EV_CLOSE,       /* peer's close: code (1005 if none), data/len the reason; our reply
                              close is already queued: flush, then close the TCP connection */
    SRV_WS_EV_PONG,        /* a pong arrived (liveness); data/len its payload */
    SRV_WS_EV_ERROR,       /* protocol error: code 1002/1007/1008/1009, data/len a short reason;
                              a close frame with that code is already queued: flush, then close */
} srv__ws_event_type_t;

typedef struct srv__ws_event {
    srv__ws_event_type_t type;
    int opcode;       /* MESSAGE: SRV_WS_TEXT or SRV_WS_BINARY; 0 otherwise */
    int code;         /* CLOSE, ERROR: status code; 0 otherwise */
    const char *data; /* borrowed: valid only during the callback */
    size_t len;
} srv__ws_event_t;

/* Called by srv__ws_feed() for each event. It may call srv__ws_send/close/ping on the same ws
 * (never srv__ws_destroy). Return 0 to go on; a negative value stops srv__ws_feed(), which
 * returns it (the rest of the input is dropped: the caller is expected to close). */
typedef int (*srv__ws_event_cb)(void *arg, const srv__ws_event_t *ev);

/* Create the state for an upgraded connection; opts is copied. NULL on ENOMEM. */
srv__ws_t *srv__ws_create(const srv__ws_options_t *opts);
/* Free it and everything it holds (pending output is dropped). NULL is fine. */
void srv__ws_destroy(srv__ws_t *ws);

/* Parse len bytes from the peer (any split: partial frames are kept), calling cb for each
 * event. Pings are answered with pongs automatically; a close from the peer is answered with
 * the same code. Returns 0; -EPROTO after a protocol error (an ERROR event was delivered and
 * a close queued; later input is ignored); -ENOMEM; or the callback's negative value. Input
 * after the close handshake finished is ignored. */
int srv__ws_feed(srv__ws_t *ws, const char *data, size_t len, srv__ws_event_cb cb, void *arg);

/* Queue a TEXT or BINARY message (copied; compressed when deflate was negotiated and it pays).
 * Returns 0; -ENOBUFS if pending output would pass output_limit (nothing queued: the caller
 * closes with 1008 and logs); -EINVAL for another opcode or TEXT that is not UTF-8;
 * -EPIPE once a close was sent; -EMSGSIZE from 2 GiB; -ENOMEM. */
int srv__ws_send(srv__ws_t *ws, int opcode, const void *data, size_t len);

/* Queue a frame already made by srv__ws_frame_encode() (broadcast: encode once, queue on many
 * connections). Same returns as srv__ws_send(). */
int srv__ws_send_frame(srv__ws_t *ws, const void *frame, size_t len);

/* Start (or answer) the close handshake: queue a close frame with code (1000..4999; 0 sends
 * no code) and reason (NULL or up to 123 bytes, truncated). Later messages are refused with
 * -EPIPE and data frames from the peer are dropped until its close arrives; then
 * srv__ws_want_close() turns true. Returns 0, -EALREADY if a close was already sent, -EINVAL
 * for a code that may not be sent, -ENOMEM. Control frames ignore output_limit (bounded). */
int srv__ws_close_frame(srv__ws_t *ws, int code, const char *reason);

/* Queue a ping (heartbeat: the caller counts PONG events). Returns 0, -EPIPE after close,
 * -ENOMEM. */
int srv__ws_ping(srv__ws_t *ws);

/* Bytes queued for the peer. */
size_t srv__ws_pending(const srv__ws_t *ws);

/* Point iov at the pending output, in order, without copying (at most max entries; the
 * output is a chain of chunks, so several may be filled). Returns the number filled, 0 when
 * nothing is pending. The bytes stay where they are until srv__ws_consumed() releases them or
 * srv__ws_destroy(): later sends append elsewhere and never move them, so they may be handed to
 * the kernel (a send in flight) while the app keeps queueing. */
int srv__ws_output(srv__ws_t *ws, struct iovec *iov, int max);

/* The first n pending bytes were sent: release them (idle connections keep no output
 * memory). */
void srv__ws_consumed(srv__ws_t *ws, size_t n);

/* True once the connection should be closed after flushing the pending output: the close
 * handshake finished (both closes seen) or a protocol error queued its close. */
bool srv__ws_want_close(const srv__ws_t *ws);

/* Encode one unmasked, uncompressed, final server frame into out. Returns its size
 * (len + 2..10), or 0 if cap is too small or opcode is a control opcode with len > 125.
 * Stateless: any thread. */
size_t srv__ws_frame_encode(uint8_t *out, size_t cap, int opcode, const void *payload, size_t len);

#endif
