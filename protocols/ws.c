/* WebSocket (RFC 6455) connection state: a frame parser that reassembles messages and answers
 * pings and closes itself, and a frame writer into a chain of output chunks. Framing is done
 * here rather than with wslay's event API: its context is ~9.4 KiB per connection (two 4 KiB
 * frame buffers), over the whole 4 KiB budget for an idle WebSocket connection (issue 4); this
 * state is ~250 bytes and allocates only while a message or output is in flight. */
#include "protocols/ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/utf8.h"
#include "protocols/ws_deflate.h"

#define WS_DEFAULT_MAX_MESSAGE ((size_t)16 << 20)
/* zlib counts in uInt; keep every message well inside it. */
#define WS_HARD_MAX_MESSAGE ((size_t)1 << 31)
/* Compressing tiny messages costs a zlib stream and rarely saves a byte. */
#define WS_DEFLATE_MIN 32

enum { ST_HEADER, ST_PAYLOAD };

struct srv_ws {
    size_t max_message;
    size_t output_limit;
    /* frame being parsed */
    uint64_t frame_len;
    uint64_t frame_off;
    uint8_t hdr[14];
    uint8_t hdr_have;
    uint8_t state;
    uint8_t frame_op;
    bool frame_fin;
    bool frame_drop; /* data frame after we sent close: parsed and discarded */
    uint8_t mask[4];
    /* message being reassembled; msg is NULL between messages */
    uint8_t msg_op; /* 0 when no message is in progress */
    bool msg_compressed;
    uint32_t utf8;
    char *msg;
    size_t msg_len;
    size_t msg_cap;
    /* control frame payload */
    uint8_t ctl_len;
    uint8_t ctl[125];
    /* negotiated */
    bool deflate;
    uint8_t wbits;
    /* close handshake */
    bool close_sent;
    bool close_rcvd;
    bool failed;
    /* output: a chain of chunks, pending bytes in order; out_len is their total */
    struct ws_chunk *out_head;
    struct ws_chunk *out_tail;
    size_t out_len;
};

/* Output never moves once written: srv_ws_output() may hand it to the kernel (an io_uring send
 * in flight) while the app queues more, so growing means a new chunk, never a realloc. */
typedef struct ws_chunk {
    struct ws_chunk *next;
    size_t off; /* bytes already consumed */
    size_t len; /* bytes written */
    size_t cap;
    char data[];
} ws_chunk_t;

#define WS_CHUNK_MIN 512
#define WS_CHUNK_GROW_MAX ((size_t)64 << 10)

/* ---- Frames out ------------------------------------------------------------------------- */

static size_t put_header(uint8_t *h, bool rsv1, int opcode, size_t len)
{
    h[0] = (uint8_t)(0x80 | (rsv1 ? 0x40 : 0) | (opcode & 0x0f));
    if (len < 126) {
        h[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

size_t srv_ws_frame_encode(uint8_t *out, size_t cap, int opcode, const void *payload, size_t len)
{
    uint8_t h[SRV_WS_FRAME_HEADER_MAX];
    size_t hl;

    if ((opcode & 0x08) && len > 125)
        return 0;
    hl = put_header(h, false, opcode, len);
    if (cap < hl || cap - hl < len)
        return 0;
    memcpy(out, h, hl);
    if (len)
        memcpy(out + hl, payload, len);
    return hl + len;
}

/* n contiguous writable bytes after the pending output (a frame never spans chunks, so a
 * writer may fill it and out_commit() what it used). NULL on ENOMEM. */
static uint8_t *out_reserve(srv_ws_t *ws, size_t n)
{
    ws_chunk_t *t = ws->out_tail;
    if (t && t->cap - t->len >= n)
        return (uint8_t *)t->data + t->len;
    /* Chunks double while output piles up (fewer iovecs), from a small first one: most
     * connections only ever queue a few short frames. */
    size_t cap = t ? t->cap * 2 : WS_CHUNK_MIN;
    if (cap > WS_CHUNK_GROW_MAX)
        cap = WS_CHUNK_GROW_MAX;
    if (cap < n)
        cap = n;
    ws_chunk_t *c = malloc(sizeof(*c) + cap);
    if (!c)
        return NULL;
    c->next = NULL;
    c->off = c->len = 0;
    c->cap = cap;
    if (t)
        t->next = c;
    else
        ws->out_head = c;
    ws->out_tail = c;
    return (uint8_t *)c->data;
}

static void out_commit(srv_ws_t *ws, size_t n)
{
    ws->out_tail->len += n;
    ws->out_len += n;
}

static void out_free(srv_ws_t *ws)
{
    while (ws->out_head) {
        ws_chunk_t *c = ws->out_head;
        ws->out_head = c->next;
        free(c);
    }
    ws->out_tail = NULL;
    ws->out_len = 0;
}

static bool over_limit(const srv_ws_t *ws, size_t add)
{
    return ws->output_limit && ws->out_len + add > ws->output_limit;
}

static int queue_frame(srv_ws_t *ws, bool rsv1, int opcode, const void *data, size_t len)
{
    uint8_t *t = out_reserve(ws, SRV_WS_FRAME_HEADER_MAX + len);
    if (!t)
        return -ENOMEM;
    size_t hl = put_header(t, rsv1, opcode, len);
    if (len)
        memcpy(t + hl, data, len);
    out_commit(ws, hl + len);
    return 0;
}

static bool close_code_sendable(int code)
{
    return code == 0 || (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static int queue_close(srv_ws_t *ws, int code, const char *reason, size_t rlen)
{
    uint8_t p[125];
    size_t n = 0;

    if (code) {
        if (rlen > 123) {
            rlen = 123;
            /* Cut on a character boundary: a half character makes the peer fail with 1007. */
            while (rlen && ((unsigned char)reason[rlen] & 0xc0) == 0x80)
                rlen--;
        }
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        if (rlen)
            memcpy(p + 2, reason, rlen);
        n = 2 + rlen;
    }
    ws->close_sent = true;
    return queue_frame(ws, false, SRV_WS_CLOSE, p, n);
}

/* ---- Lifecycle and output API ----------------------------------------------------------- */

srv_ws_t *srv_ws_create(const srv_ws_options_t *opts)
{
    srv_ws_t *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->max_message =
        opts && opts->max_message_size ? opts->max_message_size : WS_DEFAULT_MAX_MESSAGE;
    if (ws->max_message > WS_HARD_MAX_MESSAGE)
        ws->max_message = WS_HARD_MAX_MESSAGE;
    ws->output_limit = opts ? opts->output_limit : 0;
    ws->deflate = opts && opts->deflate;
    ws->wbits = opts ? opts->deflate_window_bits : 0;
    ws->state = ST_HEADER;
    return ws;
}

static void msg_reset(srv_ws_t *ws)
{
    free(ws->msg);
    ws->msg = NULL;
    ws->msg_len = ws->msg_cap = 0;
    ws->msg_op = 0;
    ws->msg_compressed = false;
    ws->utf8 = SRV_UTF8_ACCEPT;
}

void srv_ws_destroy(srv_ws_t *ws)
{
    if (!ws)
        return;
    free(ws->msg);
    out_free(ws);
    free(ws);
}

static int send_compressed(srv_ws_t *ws, int opcode, const void *data, size_t len)
{
    /* Compress into scratch, then queue the exact size: reserving the deflate bound in the
     * output chain would leave chunks sized for the plain message holding a few compressed
     * bytes each, and output_limit counts bytes, not capacity. */
    uint8_t stack[2048], *z = stack;
    size_t bound = srv__ws_deflate_bound(len);
    int r;

    if (bound > sizeof(stack)) {
        z = malloc(bound);
        if (!z)
            return -ENOMEM;
    }
    ssize_t clen = srv__ws_deflate(data, len, ws->wbits, z, bound);
    if (clen == -ENOSPC || (clen >= 0 && (size_t)clen >= len))
        r = 1; /* not worth it: the caller sends it plain */
    else if (clen < 0)
        r = (int)clen;
    else if (over_limit(ws, (size_t)clen + (clen < 126 ? 2 : clen <= 0xffff ? 4 : 10)))
        r = -ENOBUFS;
    else
        r = queue_frame(ws, true, opcode, z, (size_t)clen);
    if (z != stack)
        free(z);
    return r;
}

int srv_ws_send(srv_ws_t *ws, int opcode, const void *data, size_t len)
{
    if (opcode != SRV_WS_TEXT && opcode != SRV_WS_BINARY)
        return -EINVAL;
    if (ws->close_sent)
        return -EPIPE;
    if (len >= WS_HARD_MAX_MESSAGE)
        return -EMSGSIZE;
    if (opcode == SRV_WS_TEXT && !srv__utf8_valid(data, len))
        return -EINVAL;
    if (ws->deflate && ws->wbits && len >= WS_DEFLATE_MIN) {
        /* A full queue is refused before compressing: zlib is not free. */
        if (over_limit(ws, 2))
            return -ENOBUFS;
        int r = send_compressed(ws, opcode, data, len);
        if (r <= 0)
            return r;
    }
    if (over_limit(ws, len + (len < 126 ? 2 : len <= 0xffff ? 4 : 10)))
        return -ENOBUFS;
    return queue_frame(ws, false, opcode, data, len);
}

int srv_ws_send_frame(srv_ws_t *ws, const void *frame, size_t len)
{
    if (ws->close_sent)
        return -EPIPE;
    if (over_limit(ws, len))
        return -ENOBUFS;
    uint8_t *t = out_reserve(ws, len);
    if (!t)
        return -ENOMEM;
    memcpy(t, frame, len);
    out_commit(ws, len);
    return 0;
}

int srv_ws_close_frame(srv_ws_t *ws, int code, const char *reason)
{
    if (ws->close_sent)
        return -EALREADY;
    if (!close_code_sendable(code))
        return -EINVAL;
    return queue_close(ws, code, reason ? reason : "", reason ? strlen(reason) : 0);
}

int srv_ws_ping(srv_ws_t *ws)
{
    if (ws->close_sent)
        return -EPIPE;
    return queue_frame(ws, false, SRV_WS_PING, NULL, 0);
}

size_t srv_ws_pending(const srv_ws_t *ws)
{
    return ws->out_len;
}

int srv_ws_output(srv_ws_t *ws, struct iovec *iov, int max)
{
    int n = 0;
    for (ws_chunk_t *c = ws->out_head; c && n < max; c = c->next) {
        if (c->len == c->off)
            continue;
        iov[n].iov_base = c->data + c->off;
        iov[n].iov_len = c->len - c->off;
        n++;
    }
    return n;
}

void srv_ws_consumed(srv_ws_t *ws, size_t n)
{
    if (n >= ws->out_len) {
        /* Idle connections keep no output memory (issue 4: < 4 KiB per connection). */
        out_free(ws);
        return;
    }
    ws->out_len -= n;
    while (n) {
        ws_chunk_t *c = ws->out_head;
        size_t k = c->len - c->off;
        if (k > n) {
            c->off += n;
            break;
        }
        n -= k;
        ws->out_head = c->next;
        free(c);
    }
    /* out_len > 0, so a chunk with pending bytes is left and out_head is not NULL */
    while (ws->out_head->len == ws->out_head->off && ws->out_head != ws->out_tail) {
        ws_chunk_t *c = ws->out_head;
        ws->out_head = c->next;
        free(c);
    }
}

bool srv_ws_want_close(const srv_ws_t *ws)
{
    return ws->failed || (ws->close_sent && ws->close_rcvd);
}

/* ---- Frames in -------------------------------------------------------------------------- */

static int emit(srv_ws_event_cb cb, void *arg, srv_ws_event_type_t type, int opcode, int code,
                const void *data, size_t len)
{
    srv_ws_event_t ev = {type, opcode, code, data, len};
    return cb ? cb(arg, &ev) : 0;
}

/* Fail the connection (RFC 6455 7.1.7): queue our close with code, report it, ignore the rest. */
static int fail(srv_ws_t *ws, int code, const char *reason, srv_ws_event_cb cb, void *arg)
{
    int r = 0;
    msg_reset(ws);
    ws->failed = true;
    if (!ws->close_sent)
        r = queue_close(ws, code, reason, strlen(reason));
    if (r < 0)
        return r;
    r = emit(cb, arg, SRV_WS_EV_ERROR, 0, code, reason, strlen(reason));
    return r < 0 ? r : -EPROTO;
}

static void unmask_copy(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t mask[4],
                        uint64_t off)
{
    size_t i = 0;
    for (; i < n && ((off + i) & 3); i++)
        dst[i] = src[i] ^ mask[(off + i) & 3];
    /* From here the mask phase is 0: xor a word at a time. */
    uint8_t m8[8] = {mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]};
    uint64_t m;
    memcpy(&m, m8, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= m;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ mask[(off + i) & 3];
}

static size_t header_need(const srv_ws_t *ws)
{
    if (ws->hdr_have < 2)
        return 2;
    uint8_t l7 = ws->hdr[1] & 0x7f;
    return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + 4;
}

/* The first two header bytes are checked at once so bad frames fail before their length. */
static int check_start(srv_ws_t *ws, srv_ws_event_cb cb, void *arg)
{
    uint8_t b0 = ws->hdr[0], b1 = ws->hdr[1];
    int op = b0 & 0x0f;
    bool fin = b0 & 0x80, rsv1 = b0 & 0x40;

    if (b0 & 0x30)
        return fail(ws, SRV_WS_PROTOCOL_ERROR, "reserved bits set", cb, arg);
    if (op != SRV_WS_CONT && op != SRV_WS_TEXT && op != SRV_WS_BINARY && op != SRV_WS_CLOSE &&
        op != SRV_WS_PING && op != SRV_WS_PONG)
        return fail(ws, SRV_WS_PROTOCOL_ERROR, "unknown opcode", cb, arg);
    if (!(b1 & 0x80))
        return fail(ws, SRV_WS_PROTOCOL_ERROR, "client frame not masked", cb, arg);
    if (op & 0x08) {
        if (!fin)
            return fail(ws, SRV_WS_PROTOCOL_ERROR, "fragmented control frame", cb, arg);
        if ((b1 & 0x7f) > 125)
            return fail(ws, SRV_WS_PROTOCOL_ERROR, "control frame over 125 bytes", cb, arg);
    }
    /* RFC 7692 6: RSV1 marks the first frame of a compressed message, nothing else. */
    if (rsv1 && (!ws->deflate || (op != SRV_WS_TEXT && op != SRV_WS_BINARY)))
        return fail(ws, SRV_WS_PROTOCOL_ERROR, "RSV1 set without permessage-deflate", cb, arg);
    if (op == SRV_WS_CONT && !ws->msg_op)
        return fail(ws, SRV_WS_PROTOCOL_ERROR, "continuation without a message", cb, arg);
    if ((op == SRV_WS_TEXT || op == SRV_WS_BINARY) && ws->msg_op)
        return fail(ws, SRV_WS_PROTOCOL_ERROR, "new message inside a fragmented one", cb, arg);
    return 0;
}

static int frame_start(srv_ws_t *ws, srv_ws_event_cb cb, void *arg)
{
    const uint8_t *h = ws->hdr;
    uint8_t l7 = h[1] & 0x7f;
    uint64_t len = l7;
    size_t at = 2;

    if (l7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        at = 4;
    } else if (l7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        at = 10;
        if (len >> 63)
            return fail(ws, SRV_WS_PROTOCOL_ERROR, "frame length has its top bit set", cb, arg);
    }
    memcpy(ws->mask, h + at, 4);
    ws->frame_op = h[0] & 0x0f;
    ws->frame_fin = h[0] & 0x80;
    ws->frame_len = len;
    ws->frame_off = 0;
    ws->ctl_len = 0;
    ws->frame_drop = false;
    if (ws->frame_op & 0x08)
        return 0;
    if (ws->frame_op != SRV_WS_CONT) {
        ws->msg_op = ws->frame_op;
        ws->msg_compressed = h[0] & 0x40;
        ws->utf8 = SRV_UTF8_ACCEPT;
    }
    /* After our close the peer may still be sending: read and discard (RFC 6455 5.5.1). */
    ws->frame_drop = ws->close_sent;
    if (!ws->frame_drop && len > ws->max_message - ws->msg_len)
        return fail(ws, SRV_WS_TOO_BIG, "message too big", cb, arg);
    return 0;
}

static int payload(srv_ws_t *ws, const uint8_t *p, size_t n, srv_ws_event_cb cb, void *arg)
{
    if (ws->frame_op & 0x08) {
        unmask_copy(ws->ctl + ws->ctl_len, p, n, ws->mask, ws->frame_off);
        ws->ctl_len += (uint8_t)n;
        return 0;
    }
    if (ws->frame_drop)
        return 0;
    if (ws->msg_cap - ws->msg_len < n) {
        /* Grow geometrically but never past this frame's end (or the message limit): a
         * header announcing a huge frame does not get a huge buffer before its bytes come. */
        size_t rest = (size_t)(ws->frame_len - ws->frame_off);
        size_t ncap = ws->msg_cap * 2;
        if (ncap < 256)
            ncap = 256;
        if (ncap > ws->msg_len + rest)
            ncap = ws->msg_len + rest;
        if (ncap < ws->msg_len + n)
            ncap = ws->msg_len + n;
        char *nb = realloc(ws->msg, ncap);
        if (!nb)
            return -ENOMEM;
        ws->msg = nb;
        ws->msg_cap = ncap;
    }
    uint8_t *dst = (uint8_t *)ws->msg + ws->msg_len;
    unmask_copy(dst, p, n, ws->mask, ws->frame_off);
    ws->msg_len += n;
    /* Fail fast on bad text instead of buffering the rest of a long message (RFC 6455 8.1). */
    if (ws->msg_op == SRV_WS_TEXT && !ws->msg_compressed && !srv__utf8_step(&ws->utf8, dst, n))
        return fail(ws, SRV_WS_INVALID_DATA, "invalid UTF-8 in text message", cb, arg);
    return 0;
}

static bool close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static int control_end(srv_ws_t *ws, srv_ws_event_cb cb, void *arg)
{
    const uint8_t *p = ws->ctl;
    size_t n = ws->ctl_len;

    switch (ws->frame_op) {
    case SRV_WS_PING:
        if (ws->close_sent)
            return 0;
        /* A peer that pings but never reads must not grow our output without bound. */
        if (over_limit(ws, n + 2))
            return fail(ws, SRV_WS_POLICY, "output buffer full", cb, arg);
        return queue_frame(ws, false, SRV_WS_PONG, p, n);
    case SRV_WS_PONG:
        return emit(cb, arg, SRV_WS_EV_PONG, 0, 0, p, n);
    default: { /* SRV_WS_CLOSE */
        int code = SRV_WS_NO_STATUS, r;
        if (n == 1)
            return fail(ws, SRV_WS_PROTOCOL_ERROR, "close frame of 1 byte", cb, arg);
        if (n >= 2) {
            code = p[0] << 8 | p[1];
            if (!close_code_valid(code))
                return fail(ws, SRV_WS_PROTOCOL_ERROR, "invalid close code", cb, arg);
            if (!srv__utf8_valid(p + 2, n - 2))
                return fail(ws, SRV_WS_INVALID_DATA, "close reason not UTF-8", cb, arg);
        }
        ws->close_rcvd = true;
        msg_reset(ws);
        /* Echo the peer's code and reason (RFC 6455 5.5.1); none for none. */
        if (!ws->close_sent) {
            r = queue_close(ws, code == SRV_WS_NO_STATUS ? 0 : code,
                            n > 2 ? (const char *)p + 2 : "", n > 2 ? n - 2 : 0);
            if (r < 0)
                return r;
        }
        return emit(cb, arg, SRV_WS_EV_CLOSE, 0, code, n > 2 ? (const char *)p + 2 : "",
                    n > 2 ? n - 2 : 0);
    }
    }
}

static int message_end(srv_ws_t *ws, srv_ws_event_cb cb, void *arg)
{
    char *data = ws->msg;
    size_t len = ws->msg_len;
    int op = ws->msg_op, r;

    if (ws->frame_drop) {
        msg_reset(ws);
        return 0;
    }
    if (ws->msg_compressed) {
        char *plain = NULL;
        size_t plen = 0;
        r = srv__ws_inflate(data ? data : "", len, ws->max_message, &plain, &plen);
        if (r == -EMSGSIZE)
            return fail(ws, SRV_WS_TOO_BIG, "message too big", cb, arg);
        if (r == -EBADMSG)
            return fail(ws, SRV_WS_INVALID_DATA, "bad deflate data", cb, arg);
        if (r < 0)
            return r;
        free(ws->msg);
        ws->msg = data = plain;
        ws->msg_len = len = plen;
        ws->msg_cap = plen;
        if (op == SRV_WS_TEXT && !srv__utf8_valid(data, len))
            return fail(ws, SRV_WS_INVALID_DATA, "invalid UTF-8 in text message", cb, arg);
    } else if (op == SRV_WS_TEXT && ws->utf8 != SRV_UTF8_ACCEPT) {
        return fail(ws, SRV_WS_INVALID_DATA, "text message ends inside a character", cb, arg);
    }
    r = emit(cb, arg, SRV_WS_EV_MESSAGE, op, 0, data ? data : "", len);
    msg_reset(ws);
    return r;
}

static int frame_end(srv_ws_t *ws, srv_ws_event_cb cb, void *arg)
{
    ws->state = ST_HEADER;
    ws->hdr_have = 0;
    if (ws->frame_op & 0x08)
        return control_end(ws, cb, arg);
    if (ws->frame_fin)
        return message_end(ws, cb, arg);
    return 0;
}

int srv_ws_feed(srv_ws_t *ws, const char *data, size_t len, srv_ws_event_cb cb, void *arg)
{
    const uint8_t *p = (const uint8_t *)data, *end = p + len;
    int r = 0;

    if (ws->failed)
        return -EPROTO;
    while (p < end && !ws->close_rcvd) {
        if (ws->state == ST_HEADER) {
            size_t need = header_need(ws);
            size_t n = need - ws->hdr_have;
            if (n > (size_t)(end - p))
                n = (size_t)(end - p);
            memcpy(ws->hdr + ws->hdr_have, p, n);
            ws->hdr_have += (uint8_t)n;
            p += n;
            if (ws->hdr_have == 2 && (r = check_start(ws, cb, arg)) < 0)
                return r;
            if (ws->hdr_have < header_need(ws))
                continue;
            if ((r = frame_start(ws, cb, arg)) < 0)
                return r;
            ws->state = ST_PAYLOAD;
        } else {
            size_t n = (size_t)(end - p);
            if (n > ws->frame_len - ws->frame_off)
                n = (size_t)(ws->frame_len - ws->frame_off);
            if ((r = payload(ws, p, n, cb, arg)) < 0)
                return r;
            p += n;
            ws->frame_off += n;
        }
        if (ws->state == ST_PAYLOAD && ws->frame_off == ws->frame_len &&
            (r = frame_end(ws, cb, arg)) < 0)
            return r;
    }
    return 0;
}
