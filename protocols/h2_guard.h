/* The limits libnghttp2 does not keep for an HTTP/2 server: how many frames of each kind a
 * peer may send that make the server work without asking for anything (SETTINGS, PING,
 * WINDOW_UPDATE, empty DATA), how long a header block may run on in CONTINUATION frames, and
 * how fast streams may be reset (CVE-2023-44487). Each answers with the GOAWAY code that ends
 * the connection and the reason the log gives. Counted per connection, in one-second windows
 * or a token bucket; pure arithmetic on frame headers and a clock. */
#ifndef SRV_H2_GUARD_H
#define SRV_H2_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Frame types and flags as RFC 9113 numbers them (nghttp2 uses the same). */
enum {
    SRV__H2_DATA = 0,
    SRV__H2_HEADERS = 1,
    SRV__H2_PRIORITY = 2,
    SRV__H2_RST_STREAM = 3,
    SRV__H2_SETTINGS = 4,
    SRV__H2_PING = 6,
    SRV__H2_WINDOW_UPDATE = 8,
    SRV__H2_CONTINUATION = 9,
};
#define SRV__H2_FLAG_END_STREAM 0x1u
#define SRV__H2_FLAG_ACK 0x1u
#define SRV__H2_FLAG_END_HEADERS 0x4u

/* Error codes (RFC 9113 section 7): the GOAWAY codes the guard answers with, and the resets
 * of streams. */
#define SRV__H2_PROTOCOL_ERROR 0x1u
#define SRV__H2_INTERNAL_ERROR 0x2u
#define SRV__H2_REFUSED_STREAM 0x7u
#define SRV__H2_ENHANCE_YOUR_CALM 0xbu

/* Per second, per connection. */
#define SRV__H2_MAX_SETTINGS 10
#define SRV__H2_MAX_PING 100
#define SRV__H2_MAX_EMPTY_DATA 100
#define SRV__H2_MAX_PRIORITY 100
#define SRV__H2_WINDOW_UPDATE_BASE 100 /* + 4 per DATA frame sent and per stream opened */
/* A header block: CONTINUATION frames, and bytes beyond the header list limit. */
#define SRV__H2_MAX_CONTINUATION 64
#define SRV__H2_BLOCK_SLACK 16384

typedef struct srv__h2_guard {
    uint32_t max_streams;     /* http2_max_concurrent_streams */
    uint32_t header_list_max; /* http2_max_header_list_size */
    int64_t window_start;     /* ms */
    uint32_t settings, pings, empty_data, priority, window_updates;
    uint32_t data_sent, streams_opened; /* in this window: what earns WINDOW_UPDATEs */
    uint32_t block_frames;              /* CONTINUATIONs of the header block being read */
    uint64_t block_bytes;
    double reset_tokens; /* rapid reset: a bucket of 2 x max_streams, max_streams per second */
    int64_t reset_at;
    uint64_t resets, completed; /* streams the peer reset, streams that ended without one */
} srv__h2_guard_t;

void srv__h2_guard_init(srv__h2_guard_t *g, uint32_t max_streams, uint32_t header_list_max,
                        int64_t now);
/* A frame header from the peer (before its payload). Returns 0, or the GOAWAY code with *why. */
uint32_t srv__h2_guard_frame(srv__h2_guard_t *g, uint8_t type, uint8_t flags, size_t length,
                             int64_t now, const char **why);
/* The peer reset an open stream: too fast (the bucket), or most streams end so (more than
 * 2 x max_streams resets, more than streams completed). 0, or the GOAWAY code with *why. */
uint32_t srv__h2_guard_reset(srv__h2_guard_t *g, int64_t now, const char **why);
/* What earns WINDOW_UPDATEs: a DATA frame we sent, a stream the peer opened. */
void srv__h2_guard_data_sent(srv__h2_guard_t *g, int64_t now);
void srv__h2_guard_stream(srv__h2_guard_t *g, int64_t now);
/* A stream ended without a reset from the peer. */
void srv__h2_guard_completed(srv__h2_guard_t *g);

#endif
