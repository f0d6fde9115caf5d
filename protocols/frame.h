/* TCP stream framing with Swoole's options: raw (every read as it came), delimiter-terminated
 * (open_eof_check/package_eof/open_eof_split) and length-prefixed (open_length_check). Pure:
 * bytes in, whole frames out through a callback, in order, however the stream was cut into
 * reads. No sockets, no logging: the caller logs and closes on an error. */
#ifndef SRV_PROTOCOLS_FRAME_H
#define SRV_PROTOCOLS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_FRAME_EOF_MAX 8

typedef enum {
    SRV_FRAME_NONE,   /* every read goes up as it came, nothing buffered */
    SRV_FRAME_EOF,    /* open_eof_check: frames end with eof[0..eof_len) */
    SRV_FRAME_LENGTH, /* open_length_check: a length field gives the body length */
} srv__frame_mode_t;

/* A listener's framing options; one per listener, shared (read-only) by its connections.
 * max_length is package_max_length: no frame (EOF: delimiter included; LENGTH: header included;
 * EOF without split: one delivered chunk) may be longer. Ignored in SRV_FRAME_NONE. */
typedef struct srv__frame_opts {
    srv__frame_mode_t mode;
    char eof[SRV_FRAME_EOF_MAX]; /* package_eof, 1..8 bytes, any byte value */
    int eof_len;
    /* open_eof_split. true: each delimited frame is delivered on its own. false (Swoole's
     * default): the pending bytes are delivered in one piece when a read leaves them ending
     * with the delimiter, which may hold several frames (and delimiters in its middle). */
    bool eof_split;
    /* package_length_type: c (int8), C (uint8), n (uint16 big endian), N (uint32 big endian),
     * v (uint16 little endian), V (uint32 little endian). */
    char length_type;
    int length_offset; /* package_length_offset: where the length field starts */
    /* package_body_offset: the frame is body_offset + value bytes long (Swoole's rule). With 0,
     * the value counts the whole frame, header included. */
    int body_offset;
    size_t max_length;
} srv__frame_opts_t;

/* Check o for the mode it names. Returns 0, or -EINVAL with *why (if why != NULL) set to a
 * static English sentence naming the bad option. Run it when the config is loaded; a framer
 * given options that fail it returns -EINVAL from every feed. */
int srv__frame_opts_check(const srv__frame_opts_t *o, const char **why);

/* One connection's framing state, in caller storage (a connection struct). The fields are
 * private. It holds heap memory only while a frame is incomplete (never more than
 * o->max_length bytes); an idle framer owns nothing. */
typedef struct srv__framer {
    const srv__frame_opts_t *o;
    char *buf;   /* the incomplete frame's bytes, NULL when none */
    size_t len;  /* bytes in buf */
    size_t cap;  /* bytes allocated at buf */
    size_t scan; /* EOF: no delimiter starts before buf + scan; LENGTH: frame size, 0 = unknown */
    int err;     /* sticky: a framing error, or -EINVAL for options that fail the check */
} srv__framer_t;

/* Frame callback: frame[0..len) is one whole frame (len > 0), borrowed for the call only: it
 * points into the data given to srv__framer_feed() when the frame lies entirely in that read,
 * else into the framer's buffer. Return 0 to go on, non-zero to stop: srv__framer_feed() then
 * returns that value at once and drops every byte after this frame (use a positive value, so
 * it is not mistaken for a framing error). The callback must not call srv__framer_feed() or
 * srv__framer_deinit() on the same framer (stop instead, then deinit). */
typedef int (*srv__frame_cb)(void *arg, const char *frame, size_t len);

/* Start f empty. o is NOT copied (a framer is per connection and must stay small): it must
 * outlive f and not change under it (it is the listener's). Cannot fail; options that
 * srv__frame_opts_check() rejects (or o == NULL) make every feed return -EINVAL. */
void srv__framer_init(srv__framer_t *f, const srv__frame_opts_t *o);
/* Free what f holds (a pending partial frame is dropped). f may be init'ed again after. */
void srv__framer_deinit(srv__framer_t *f);

/* Feed one read's bytes data[0..len) (len 0 is a no-op). Calls cb(arg, frame, frame_len) for
 * each frame completed, in stream order; keeps an incomplete tail for the next call. Returns:
 *   0         all bytes consumed (some may be buffered);
 *   -EMSGSIZE a frame is (or would be) longer than max_length; for LENGTH this is known from
 *             the header alone, before the body arrives;
 *   -EPROTO   LENGTH: negative length (type c) or a frame ending before its own length field;
 *   -EINVAL   f was initialised with options srv__frame_opts_check() rejects;
 *   -ENOMEM   no memory to hold a partial frame;
 *   other     the non-zero value cb returned to stop.
 * Every frame before the failing point has been delivered. After an error the stream cannot be
 * resynchronised: close the connection. The error is sticky (later feeds return it and deliver
 * nothing); after a stop by cb, the framer is left empty and usable. */
int srv__framer_feed(srv__framer_t *f, const char *data, size_t len, srv__frame_cb cb, void *arg);

/* Bytes of an incomplete frame held by f (0 when idle). */
size_t srv__framer_buffered(const srv__framer_t *f);

/* Size in bytes of a length field of type type: 1, 2 or 4, or -EINVAL for an unknown type. */
int srv__frame_length_size(char type);

/* Write len as a length field of type type at out (which must have room for 4 bytes), for
 * senders and tests. Returns the field size (1, 2 or 4), -ERANGE if len does not fit the type
 * (c holds 0..127: negative values are malformed by definition), -EINVAL for an unknown type. */
int srv__frame_length_encode(char type, uint64_t len, char *out);

#endif
