/* WebSocket (RFC 6455) connection state: frames are read and written by wslay's frame layer
 * (wslay_frame_recv/wslay_frame_send); on top of it this file reassembles messages, checks
 * what RFC 6455 and 7692 ask of a server, answers pings and closes, and queues output in a
 * chain of chunks.
 *
 * wslay's event API is not used: its context is ~9.4 KiB per connection (two 4 KiB frame
 * buffers), over the whole 4 KiB budget for an idle WebSocket connection (issue 4). A frame
 * context (~4.2 KiB, its 4 KiB input buffer inside) is only held by a connection while a frame
 * is partly read: at a frame boundary with nothing buffered it goes back to a per-thread cache
 * for the next connection that reads. The encoder never keeps state between frames (output
 * always completes into memory we reserved), so one per thread serves every connection. */
#include "protocols/ws.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <wslay/wslay.h>

#include "core/base/buf.h"
#include "protocols/utf8.h"
#include "protocols/ws_deflate.h"

#define WS_DEFAULT_MAX_MESSAGE ((size_t)16 << 20)
/* zlib counts in uInt; keep every message well inside it. */
#define WS_HARD_MAX_MESSAGE ((size_t)1 << 31)
/* Compressing tiny messages costs a zlib stream and rarely saves a byte. */
#define WS_DEFLATE_MIN 32

struct srv__ws {
    size_t max_message;
    size_t output_limit;
    /* input: wslay's frame context while a frame is partly read (NULL between frames) */
    wslay_frame_context_ptr in;
    uint64_t in_buffered; /* bytes handed to wslay and not yet seen in a frame it returned */
    /* frame being read */
    uint64_t frame_len;
    uint64_t frame_off;
    bool in_frame; /* its first piece came back from wslay and its last has not */
    uint8_t frame_op;
    bool frame_fin;
    bool frame_drop; /* data frame after we sent close: parsed and discarded */
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

/* Output never moves once written: srv__ws_output() may hand it to the kernel (an io_uring send
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

/* ---- wslay glue ------------------------------------------------------------------------- */

/* Per-thread state: the cached idle decoder, the encoder, and the buffers wslay's callbacks
 * read from and write to during one call. Callbacks find it through t_ws, not user_data, so a
 * context is not tied to the thread that made it. */
typedef struct ws_thread {
    wslay_frame_context_ptr idle; /* a decoder at a frame boundary with nothing buffered */
    wslay_frame_context_ptr enc;
    srv__ws_t *in_ws; /* connection being fed: its in_buffered counts what wslay takes */
    const uint8_t *in;
    size_t in_left;
    uint8_t *out;
    size_t out_left;
} ws_thread_t;

static __thread ws_thread_t *t_ws;
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;

static void ws_thread_free(void *p)
{
    ws_thread_t *t = p;
    if (t->idle)
        wslay_frame_context_free(t->idle);
    if (t->enc)
        wslay_frame_context_free(t->enc);
    free(t);
}

static void ws_key_init(void)
{
    /* A thread that ends (a reactor thread at shutdown) frees its contexts. */
    (void)pthread_key_create(&ws_key, ws_thread_free);
}

static ws_thread_t *ws_thread(void)
{
    if (t_ws)
        return t_ws;
    pthread_once(&ws_once, ws_key_init);
    ws_thread_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    pthread_setspecific(ws_key, t);
    t_ws = t;
    return t;
}

static ssize_t ws_recv_cb(uint8_t *buf, size_t len, int flags, void *user_data)
{
    ws_thread_t *t = t_ws;
    (void)flags, (void)user_data;
    if (len > t->in_left)
        len = t->in_left;
    memcpy(buf, t->in, len);
    t->in += len;
    t->in_left -= len;
    t->in_ws->in_buffered += len;
    return (ssize_t)len; /* 0: wslay answers WSLAY_ERR_WANT_READ */
}

static ssize_t ws_send_cb(const uint8_t *data, size_t len, int flags, void *user_data)
{
    ws_thread_t *t = t_ws;
    (void)flags, (void)user_data;
    if (len > t->out_left)
        len = t->out_left;
    memcpy(t->out, data, len);
    t->out += len;
    t->out_left -= len;
    return (ssize_t)len;
}

static int ws_genmask_cb(uint8_t *buf, size_t len, void *user_data)
{
    /* Server frames are never masked; wslay only asks when iocb.mask is set. */
    (void)user_data;
    memset(buf, 0, len);
    return 0;
}

static const struct wslay_frame_callbacks ws_callbacks = {ws_send_cb, ws_recv_cb, ws_genmask_cb};

static wslay_frame_context_ptr ctx_new(void)
{
    wslay_frame_context_ptr c;
    return wslay_frame_context_init(&c, &ws_callbacks, NULL) == 0 ? c : NULL;
}

/* Header size of a frame of len payload bytes (wslay writes and accepts only the shortest
 * length encoding). */
static size_t header_len(uint64_t len, bool masked)
{
    return 2 + (len >= 65536 ? 8 : len >= 126 ? 2 : 0) + (masked ? 4 : 0);
}

/* ---- Frames out ------------------------------------------------------------------------- */

/* One final, unmasked frame into out (which has room for it) through wslay's encoder. */
static size_t encode(uint8_t *out, size_t cap, bool rsv1, int opcode, const void *payload,
                     size_t len)
{
    ws_thread_t *t = ws_thread();
    size_t total = header_len(len, false) + len;

    if (!t || cap < total || (!t->enc && !(t->enc = ctx_new())))
        return 0;
    struct wslay_frame_iocb io = {
        .fin = 1,
        .rsv = rsv1 ? WSLAY_RSV1_BIT : WSLAY_RSV_NONE,
        .opcode = (uint8_t)opcode,
        .payload_length = len,
        .mask = 0,
        .data = payload,
        .data_length = len,
    };
    t->out = out;
    t->out_left = total;
    ssize_t r = wslay_frame_send(t->enc, &io);
    if (r != (ssize_t)len || t->out_left != 0) {
        /* Refused (a control frame over 125 bytes) or cut short: the encoder may be left
         * inside a frame, so it is replaced. */
        wslay_frame_context_free(t->enc);
        t->enc = NULL;
        return 0;
    }
    return total;
}

size_t srv__ws_frame_encode(uint8_t *out, size_t cap, int opcode, const void *payload, size_t len)
{
    if ((opcode & 0x08) && len > 125)
        return 0;
    return encode(out, cap, false, opcode, payload, len);
}

/* n contiguous writable bytes after the pending output (a frame never spans chunks, so a
 * writer may fill it and out_commit() what it used). NULL on ENOMEM. */
static uint8_t *out_reserve(srv__ws_t *ws, size_t n)
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

static void out_commit(srv__ws_t *ws, size_t n)
{
    ws->out_tail->len += n;
    ws->out_len += n;
}

static void out_free(srv__ws_t *ws)
{
    while (ws->out_head) {
        ws_chunk_t *c = ws->out_head;
        ws->out_head = c->next;
        free(c);
    }
    ws->out_tail = NULL;
    ws->out_len = 0;
}

static bool over_limit(const srv__ws_t *ws, size_t add)
{
    return ws->output_limit && ws->out_len + add > ws->output_limit;
}

static int queue_frame(srv__ws_t *ws, bool rsv1, int opcode, const void *data, size_t len)
{
    size_t total = header_len(len, false) + len;
    uint8_t *t = out_reserve(ws, total);
    if (!t)
        return -ENOMEM;
    if (encode(t, total, rsv1, opcode, data, len) != total)
        return -ENOMEM; /* only when the encoder cannot be allocated */
    out_commit(ws, total);
    return 0;
}

static bool close_code_sendable(int code)
{
    return code == 0 || (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static int queue_close(srv__ws_t *ws, int code, const char *reason, size_t rlen)
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

srv__ws_t *srv__ws_create(const srv__ws_options_t *opts)
{
    srv__ws_t *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->max_message =
        opts && opts->max_message_size ? opts->max_message_size : WS_DEFAULT_MAX_MESSAGE;
    if (ws->max_message > WS_HARD_MAX_MESSAGE)
        ws->max_message = WS_HARD_MAX_MESSAGE;
    ws->output_limit = opts ? opts->output_limit : 0;
    ws->deflate = opts && opts->deflate;
    ws->wbits = opts ? opts->deflate_window_bits : 0;
    return ws;
}

static void msg_reset(srv__ws_t *ws)
{
    free(ws->msg);
    ws->msg = NULL;
    ws->msg_len = ws->msg_cap = 0;
    ws->msg_op = 0;
    ws->msg_compressed = false;
    ws->utf8 = SRV_UTF8_ACCEPT;
}

void srv__ws_destroy(srv__ws_t *ws)
{
    if (!ws)
        return;
    free(ws->msg);
    out_free(ws);
    if (ws->in)
        wslay_frame_context_free(ws->in);
    free(ws);
}

static int send_compressed(srv__ws_t *ws, int opcode, const void *data, size_t len)
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

int srv__ws_send(srv__ws_t *ws, int opcode, const void *data, size_t len)
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

int srv__ws_send_frame(srv__ws_t *ws, const void *frame, size_t len)
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

int srv__ws_close_frame(srv__ws_t *ws, int code, const char *reason)
{
    if (ws->close_sent)
        return -EALREADY;
    if (!close_code_sendable(code))
        return -EINVAL;
    return queue_close(ws, code, reason ? reason : "", reason ? strlen(reason) : 0);
}

int srv__ws_ping(srv__ws_t *ws)
{
    if (ws->close_sent)
        return -EPIPE;
    return queue_frame(ws, false, SRV_WS_PING, NULL, 0);
}

size_t srv__ws_pending(const srv__ws_t *ws)
{
    return ws->out_len;
}

int srv__ws_output(srv__ws_t *ws, struct iovec *iov, int max)
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

void srv__ws_consumed(srv__ws_t *ws, size_t n)
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

bool srv__ws_want_close(const srv__ws_t *ws)
{
    return ws->failed || (ws->close_sent && ws->close_rcvd);
}

/* ---- Frames in -------------------------------------------------------------------------- */

static int emit(srv__ws_event_cb cb, void *arg, srv__ws_event_type_t type, int opcode, int code,
                const void *data, size_t len)
{
    srv__ws_event_t ev = {type, opcode, code, data, len};
    return cb ? cb(arg, &ev) : 0;
}

/* Fail the connection (RFC 6455 7.1.7): queue our close with code, report it, ignore the rest. */
static int fail(srv__ws_t *ws, int code, const char *reason, srv__ws_event_cb cb, void *arg)
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

/* The first piece of a frame came back from wslay (header read, length known): check it
 * before any of its payload is kept. wslay itself refuses control frames over 125 bytes or
 * fragmented and length encodings that are not the shortest or have the top bit set. */
static int frame_start(srv__ws_t *ws, const struct wslay_frame_iocb *io, srv__ws_event_cb cb,
                       void *arg)
{
    int op = io->opcode;
    bool rsv1 = io->rsv & WSLAY_RSV1_BIT;

    if (io->rsv & (WSLAY_RSV2_BIT | WSLAY_RSV3_BIT))
        return fail(ws, SRV_WS_PROTOCOL_ERROR, "reserved bits set", cb, arg);
    if (op != SRV_WS_CONT && op != SRV_WS_TEXT && op != SRV_WS_BINARY && op != SRV_WS_CLOSE &&
        op != SRV_WS_PING && op != SRV_WS_PONG)
        return fail(ws, SRV_WS_PROTOCOL_ERROR, "unknown opcode", cb, arg);
    if (!io->mask)
        return fail(ws, SRV_WS_PROTOCOL_ERROR, "client frame not masked", cb, arg);
    /* RFC 7692 6: RSV1 marks the first frame of a compressed message, nothing else. */
    if (rsv1 && (!ws->deflate || (op != SRV_WS_TEXT && op != SRV_WS_BINARY)))
        return fail(ws, SRV_WS_PROTOCOL_ERROR, "RSV1 set without permessage-deflate", cb, arg);
    if (op == SRV_WS_CONT && !ws->msg_op)
        return fail(ws, SRV_WS_PROTOCOL_ERROR, "continuation without a message", cb, arg);
    if ((op == SRV_WS_TEXT || op == SRV_WS_BINARY) && ws->msg_op)
        return fail(ws, SRV_WS_PROTOCOL_ERROR, "new message inside a fragmented one", cb, arg);

    ws->frame_op = (uint8_t)op;
    ws->frame_fin = io->fin;
    ws->frame_len = io->payload_length;
    ws->frame_off = 0;
    ws->ctl_len = 0;
    ws->frame_drop = false;
    if (op & 0x08)
        return 0;
    if (op != SRV_WS_CONT) {
        ws->msg_op = (uint8_t)op;
        ws->msg_compressed = rsv1;
        ws->utf8 = SRV_UTF8_ACCEPT;
    }
    /* After our close the peer may still be sending: read and discard (RFC 6455 5.5.1). */
    ws->frame_drop = ws->close_sent;
    if (!ws->frame_drop && ws->frame_len > ws->max_message - ws->msg_len)
        return fail(ws, SRV_WS_TOO_BIG, "message too big", cb, arg);
    return 0;
}

/* n payload bytes of the current frame, unmasked by wslay. */
static int payload(srv__ws_t *ws, const uint8_t *p, size_t n, srv__ws_event_cb cb, void *arg)
{
    if (ws->frame_op & 0x08) {
        memcpy(ws->ctl + ws->ctl_len, p, n);
        ws->ctl_len += (uint8_t)n;
        return 0;
    }
    if (ws->frame_drop || n == 0)
        return 0;
    /* Grow geometrically but never past this frame's end (or the message limit): a header
     * announcing a huge frame does not get a huge buffer before its bytes come. */
    size_t rest = (size_t)(ws->frame_len - ws->frame_off);
    size_t lim = ws->msg_len + (rest > n ? rest : n);
    if (srv__grow(&ws->msg, &ws->msg_cap, ws->msg_len + n, 256, lim) < 0)
        return -ENOMEM;
    uint8_t *dst = (uint8_t *)ws->msg + ws->msg_len;
    memcpy(dst, p, n);
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

static int control_end(srv__ws_t *ws, srv__ws_event_cb cb, void *arg)
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

static int message_end(srv__ws_t *ws, srv__ws_event_cb cb, void *arg)
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

static int frame_end(srv__ws_t *ws, srv__ws_event_cb cb, void *arg)
{
    ws->in_frame = false;
    if (ws->frame_op & 0x08)
        return control_end(ws, cb, arg);
    if (ws->frame_fin)
        return message_end(ws, cb, arg);
    return 0;
}

/* One piece of a frame from wslay: its first piece starts the frame, its last ends it (a frame
 * with no payload comes back once, empty). */
static int frame_piece(srv__ws_t *ws, const struct wslay_frame_iocb *io, srv__ws_event_cb cb,
                       void *arg)
{
    int r;
    if (!ws->in_frame) {
        ws->in_buffered -= header_len(io->payload_length, io->mask);
        ws->in_frame = true;
        if ((r = frame_start(ws, io, cb, arg)) < 0)
            return r;
    }
    ws->in_buffered -= io->data_length;
    if ((r = payload(ws, io->data, io->data_length, cb, arg)) < 0)
        return r;
    ws->frame_off += io->data_length;
    return ws->frame_off == ws->frame_len ? frame_end(ws, cb, arg) : 0;
}

int srv__ws_feed(srv__ws_t *ws, const char *data, size_t len, srv__ws_event_cb cb, void *arg)
{
    int r = 0;

    if (ws->failed)
        return -EPROTO;
    if (ws->close_rcvd || len == 0)
        return 0;
    ws_thread_t *t = ws_thread();
    if (!t)
        return -ENOMEM;
    if (!ws->in) {
        ws->in = t->idle ? t->idle : ctx_new();
        t->idle = NULL;
        if (!ws->in)
            return -ENOMEM;
    }
    /* Callbacks may queue output on this connection (encode() uses only t->out*), never feed
     * another one, so t->in* stay ours until we return. */
    t->in_ws = ws;
    t->in = (const uint8_t *)data;
    t->in_left = len;
    while (!ws->close_rcvd) {
        struct wslay_frame_iocb io;
        ssize_t n = wslay_frame_recv(ws->in, &io);
        if (n == WSLAY_ERR_WANT_READ) {
            if (t->in_left == 0)
                break;
            continue;
        }
        if (n < 0)
            r = fail(ws, SRV_WS_PROTOCOL_ERROR, "malformed frame header", cb, arg);
        else
            r = frame_piece(ws, &io, cb, arg);
        if (r < 0)
            break;
    }
    t->in_ws = NULL;
    t->in_left = 0;
    if (r < 0 || ws->close_rcvd || ws->failed) {
        /* Nothing more is read: whatever wslay holds is dropped with it. */
        wslay_frame_context_free(ws->in);
        ws->in = NULL;
        ws->in_buffered = 0;
    } else if (!ws->in_frame && ws->in_buffered == 0) {
        /* At a frame boundary with nothing buffered the context is as good as new: an idle
         * connection holds none (issue 4: under 4 KiB per idle connection). */
        if (!t->idle)
            t->idle = ws->in;
        else
            wslay_frame_context_free(ws->in);
        ws->in = NULL;
    }
    return r;
}
