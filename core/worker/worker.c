/* Worker processes. Process mode: read request frames from one channel per reactor, run the
 * app, write response frames back through the loop, one send per batch. Base mode: run an
 * engine of our own on the inherited listeners and call the app in place, no IPC. */
#include "core/worker/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/un.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/server/app.h"
#include "core/server/child.h"
#include "core/net/conn.h"
#include "core/net/tls_keys.h"
#include "core/net/tls_listen.h"
#include "core/net/conninfo.h"
#include "core/worker/cluster.h"
#include "core/worker/engine_ipc.h"
#include "core/worker/flow.h"
#include "core/ipc/ipc.h"
#include "core/base/alog.h"
#include "core/base/log.h"
#include "core/server/msg.h"
#include "core/loop/loop.h"
#include "core/worker/response.h"
#include "core/server/server.h"
#include "protocols/http.h"
#include "timer/timer.h"

typedef struct wchan {
    int fd;
    int fdsock; /* file responses pass their descriptor here (SRV_IPC_F_FD) */
    int reactor;
    srv__loop_op_t op;
    bool armed;
    bool eof;
    srv__ipc_buf_t in;
    /* Frames go out through the loop: built in out while the kernel holds sending. Past soft
     * bytes in out a send starts at once; out's max is the hard bound (-ENOBUFS). */
    srv__ipc_buf_t out;
    srv__ipc_buf_t sending;
    size_t sent, soft;
    struct iovec iov;
    srv__loop_op_t send_op;
    bool send_armed;
    bool dead;           /* the reactor is gone: frames for it are dropped */
    srv__ipc_buf_t part; /* a request arriving in pieces (SRV_IPC_F_MORE) */
    uint64_t part_session;
} wchan_t;

static struct {
    int slot;
    srv__loop_t *loop;
    srv__engine_t *eng; /* base mode */
    wchan_t *chans;
    int nchans;
    int open_chans;
    const srv_handlers_t *handlers[SRV_CONFIG_MAX_LISTEN];
    srv__worker_stat_t *stat;
    uint64_t requests;
    uint64_t recycle_at;
    bool recycle_sent;
    volatile sig_atomic_t stop;
    volatile sig_atomic_t reopen;
    srv__resp_sink_t sink;
} W;

/* Start sending what is queued unless a send is in flight; the completion sends the rest.
 * Nothing here waits: a slow reactor leaves frames queued, up to the channel's bound. */
static void chan_flush(wchan_t *ch)
{
    if (ch->dead) {
        srv__ipc_buf_consume(&ch->out, ch->out.len);
        return;
    }
    if (ch->send_armed)
        return;
    if (ch->sending.len == 0 && ch->out.len > 0) {
        srv__ipc_buf_t t = ch->sending;
        ch->sending = ch->out;
        ch->out = t;
        ch->sent = 0;
    }
    if (ch->sending.len <= ch->sent)
        return;
    ch->iov.iov_base = ch->sending.data + ch->sent;
    ch->iov.iov_len = ch->sending.len - ch->sent;
    if (srv__loop_send(W.loop, &ch->send_op, ch->fd, &ch->iov, 1) == 0)
        ch->send_armed = true;
    else
        ch->dead = true;
}

static void on_chan_send(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                         uint32_t flags)
{
    wchan_t *ch = op->data;
    ch->send_armed = false;
    if (res < 0 && res != -EAGAIN && res != -EINTR) {
        /* The reactor shut down: nobody can receive these frames. */
        srv__log_debug("ipc", "channel to reactor %d: %s", ch->reactor, srv_strerror(res));
        ch->dead = true;
        ch->sending.len = ch->sent = 0;
    }
    if (res > 0)
        ch->sent += (size_t)res;
    if (ch->sent >= ch->sending.len)
        ch->sending.len = ch->sent = 0;
    chan_flush(ch);
    if (ch->out.len < ch->soft)
        srv__flow_kick(); /* responses that waited for room go on */
}

/* The flow layer's view: past its soft bound, with the kernel still holding the last batch, a
 * channel takes no streamed bytes (srv_response_write gets -EAGAIN) until it drains. */
static bool chan_busy(void *arg, uint64_t session)
{
    int r = SRV_SESSION_ENGINE(session);
    if (r < 0 || r >= W.nchans)
        return false;
    const wchan_t *ch = &W.chans[r];
    return ch->send_armed && ch->out.len >= ch->soft;
}

/* A frame of plen payload bytes for ch, or NULL when the channel is at its bound (the reactor
 * that far behind). */
static char *chan_frame(wchan_t *ch, uint64_t session, uint16_t type, uint16_t flags, size_t plen)
{
    /* Only before reserving: a send submitted after would cover bytes not written yet. */
    if (ch->out.len >= ch->soft)
        chan_flush(ch);
    char *p = srv__ipc_frame_begin(&ch->out, session, type, flags, (uint32_t)plen);
    if (p == NULL && ch->out.len > 0) {
        chan_flush(ch); /* moves out to the kernel when nothing else is there */
        p = srv__ipc_frame_begin(&ch->out, session, type, flags, (uint32_t)plen);
    }
    return p;
}

static int chan_put(wchan_t *ch, uint64_t session, uint16_t type, uint16_t flags, const void *data,
                    size_t len)
{
    char *p = chan_frame(ch, session, type, flags, len);
    if (p == NULL)
        return -ENOBUFS;
    if (len)
        memcpy(p, data, len);
    return 0;
}

/* Frames queue up to four times ipc_buffer_size while the reactor catches up. */
static void chan_init_out(wchan_t *ch, size_t bound)
{
    ch->soft = bound;
    srv__ipc_buf_init(&ch->out, 4 * bound);
    srv__ipc_buf_init(&ch->sending, 4 * bound);
    ch->send_op.cb = on_chan_send;
    ch->send_op.data = ch;
}

static void flush_all(void)
{
    for (int i = 0; i < W.nchans; i++)
        if (W.chans[i].out.len > 0)
            chan_flush(&W.chans[i]);
}

/* Leaving: give what is queued a bounded time to reach the reactors. */
static void chans_finish(void)
{
    int64_t deadline = srv__mono_ms() + 2000;
    for (;;) {
        flush_all();
        bool busy = false;
        for (int i = 0; i < W.nchans; i++)
            busy |= W.chans[i].send_armed;
        if (!busy || srv__mono_ms() >= deadline)
            break;
        srv__loop_run(W.loop, 10);
    }
}

/* Process-mode sink: frames into the channel of the reactor that owns the session. */
static int chan_emit(void *arg, uint64_t session, const struct iovec *iov, int iovcnt,
                     unsigned flags)
{
    int r = SRV_SESSION_ENGINE(session);
    if (r < 0 || r >= W.nchans)
        return -ENOENT;
    wchan_t *ch = &W.chans[r];
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total > SRV_IPC_MAX_PAYLOAD)
        return -EMSGSIZE;
    char *p = chan_frame(ch, session, SRV_IPC_RESPONSE, (uint16_t)flags, total);
    if (p == NULL)
        return -ENOBUFS;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    return 0;
}

static int chan_emit_file(void *arg, uint64_t session, int fd, const char *path, uint64_t off,
                          uint64_t len, unsigned flags)
{
    int r = SRV_SESSION_ENGINE(session);
    if (r < 0 || r >= W.nchans) {
        close(fd);
        return -ENOENT;
    }
    wchan_t *ch = &W.chans[r];
    srv__ipc_file_t f = {.offset = off, .length = len};
    char *p = chan_frame(ch, session, SRV_IPC_FILE, (uint16_t)(flags | SRV_IPC_F_FD), sizeof(f));
    if (p == NULL) {
        close(fd);
        return -ENOBUFS;
    }
    memcpy(p, &f, sizeof(f));
    /* The descriptor goes ahead of the frame (queued, sent later by the loop): the reactor
     * finds it when the frame arrives. Without it the frame must not go at all. */
    int rc = srv__ipc_fd_send(ch->fdsock, fd);
    close(fd);
    if (rc < 0) {
        ch->out.len -= sizeof(srv__ipc_hdr_t) + SRV_IPC_ALIGN(sizeof(f));
        srv__log(SRV_LOG_WARN, "ipc", -rc, "cannot pass a file to reactor %d", ch->reactor);
        return rc == -EAGAIN ? -ENOBUFS : rc;
    }
    return 0;
}

/* request_timeout: the watchdog sends SIGXCPU, then SIGKILL a moment later. Base mode owns the
 * client's socket: when the request is plain HTTP/1.1 and nothing of its response was sent,
 * the handler writes a last 504 (Connection: close) to it. TLS and HTTP/2 connections are just
 * closed (their framing cannot be written from a signal handler). Process mode: the reactor
 * answers 504 when the channel dies. */
static volatile sig_atomic_t g_hk_fd = -1;
static uint64_t g_hk_rid;

static void on_harakiri(int sig)
{
    static const char r[] = "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 37\r\nConnection: close\r\n\r\n"
                            "the request ran past request_timeout\n";
    (void)sig;
    int fd = g_hk_fd;
    if (fd >= 0) {
        ssize_t n = write(fd, r, sizeof(r) - 1);
        (void)n;
    }
    _exit(70);
}

/* Base-mode transport: straight into our own engine's connection. */
static int eng_emit(void *arg, uint64_t session, const struct iovec *iov, int iovcnt,
                    unsigned flags)
{
    return srv__engine_respond(W.eng, session, iov, iovcnt, srv__ipc_to_resp_flags(flags));
}

static int eng_emit_file(void *arg, uint64_t session, int fd, const char *path, uint64_t off,
                         uint64_t len, unsigned flags)
{
    srv__engine_file_t f = {.fd = fd, .off = off, .len = len};
    return srv__engine_action(W.eng, session, SRV_ENGINE_RESPOND_FD,
                              (uint16_t)srv__ipc_to_resp_flags(flags), &f, sizeof(f));
}

/* The app's responses go through the flow layer, which bounds what each one has in flight. */
static int sink_emit(void *arg, uint64_t session, const struct iovec *iov, int iovcnt,
                     unsigned flags)
{
    if (session == g_hk_rid)
        g_hk_fd = -1; /* part of the answer is out: a 504 can no longer follow */
    return srv__flow_emit(session, iov, iovcnt, flags);
}

static int sink_emit_file(void *arg, uint64_t session, int fd, const char *path, uint64_t off,
                          uint64_t len, unsigned flags)
{
    if (session == g_hk_rid)
        g_hk_fd = -1;
    return srv__flow_emit_file(session, fd, path, off, len, flags);
}

static int sink_on_writable(void *arg, uint64_t session, void (*fn)(void *), void *fnarg)
{
    return srv__flow_on_writable(session, fn, fnarg);
}

static void count_request(void)
{
    W.requests++;
    atomic_fetch_add_explicit(&W.stat->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&W.stat->total_requests, 1, memory_order_relaxed);
    if (W.recycle_at && W.requests >= W.recycle_at && !W.recycle_sent) {
        W.recycle_sent = true;
        srv__child_tell(SRV_WMSG_RECYCLE, NULL);
    }
}

/* Tell the manager's watchdog what the handler is busy with (request_timeout: the listener's,
 * else [server]'s), or that it is idle again (req NULL). */
static void publish_busy(const srv_request_t *req, uint64_t rid)
{
    if (req == NULL) {
        atomic_store_explicit(&W.stat->busy_ms, 0, memory_order_release);
        return;
    }
    const srv__config_t *cfg = &srv__server.cfg;
    int limit = cfg->request_timeout;
    if (req->listener >= 0 && req->listener < cfg->nlisten &&
        cfg->listen[req->listener].request_timeout >= 0)
        limit = cfg->listen[req->listener].request_timeout;
    atomic_store_explicit(&W.stat->busy_limit, limit, memory_order_relaxed);
    if (limit <= 0)
        return;
    snprintf(W.stat->busy_what, sizeof(W.stat->busy_what), "%.*s %.*s", (int)req->method.len,
             req->method.ptr, (int)(req->path.len > 100 ? 100 : req->path.len), req->path.ptr);
    atomic_store_explicit(&W.stat->busy_session, rid, memory_order_relaxed);
    atomic_store_explicit(&W.stat->busy_ms, srv__mono_ms(), memory_order_release);
}

/* Run the app on one request. The response object is reused from request to request; one
 * the app detaches stays where it is (the app holds its pointer) and the next request gets a
 * new one. A detached response keeps its own copy of the request. */
static srv_response_t *g_res;

/* rid: what the response names (the session for HTTP/1.1, the stream's request id for
 * HTTP/2); req->session stays the connection's, for the app. */
static void run_request(const srv_request_t *req, uint64_t rid, const void *block,
                        size_t block_len)
{
    count_request();
    const srv_handlers_t *h = W.handlers[req->listener];
    if (g_res == NULL) {
        g_res = calloc(1, sizeof(*g_res));
        if (g_res == NULL) {
            srv__log(SRV_LOG_ERROR, "worker", ENOMEM, "no memory for a response");
            struct iovec v = {NULL, 0};
            W.sink.emit(W.sink.arg, rid, &v, 0, SRV_IPC_F_ERROR | SRV_IPC_F_FINAL);
            return;
        }
    }
    srv_response_t *res = g_res;
    srv__response_init(res, req, &W.sink);
    res->session = rid;
    if (h == NULL || h->on_request == NULL) {
        srv_response_status(res, 404);
        srv_response_header(res, "Content-Type", "text/plain");
        static const char msg[] = "no handler for this listener\n";
        srv_response_send(res, msg, sizeof(msg) - 1);
        return;
    }
    publish_busy(req, rid);
    h->on_request(req, res);
    publish_busy(NULL, 0);
    if (!srv__response_after_handler(res))
        return;
    /* Detached: this object now belongs to the app until it finishes the response. */
    g_res = NULL;
    res->heap = true;
    res->req_view = *req;
    if (block) {
        void *copy = malloc(block_len);
        if (copy != NULL)
            memcpy(copy, block, block_len);
        if (copy == NULL || srv__http_request_decode(copy, block_len, &res->req_view) < 0) {
            free(copy);
            res->req_view = *req;
            res->req_view.tls = NULL;
            srv__log(SRV_LOG_ERROR, "worker", ENOMEM, "cannot keep a detached request");
        } else {
            res->req_view.session = req->session;
            res->req_copy = copy;
        }
    } else if (req->tls) {
        /* Base mode: the connection's TLS details go with it; the response keeps its own. */
        res->tls_copy = malloc(sizeof(*res->tls_copy));
        if (res->tls_copy)
            *res->tls_copy = *req->tls;
        res->req_view.tls = res->tls_copy;
    }
    res->req = &res->req_view;
}

static const srv_handlers_t *handlers_for(int listener)
{
    if (listener < 0 || listener >= srv__server.cfg.nlisten)
        return NULL;
    return W.handlers[listener];
}

/* on_ws_open decides; the answer goes back to whoever owns the connection. The app may pick a
 * subprotocol meanwhile (srv_ws_select_protocol). */
static bool g_in_ws_open;
static char g_ws_proto[128];

int srv_ws_select_protocol(const char *name)
{
    if (!g_in_ws_open)
        return -EPERM;
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= sizeof(g_ws_proto))
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if (*p <= ' ' || *p >= 127 || strchr("()<>@,;:\\\"/[]?={}", *p))
            return -EINVAL;
    memcpy(g_ws_proto, name, n + 1);
    return 0;
}

static int ws_open(const srv_request_t *req)
{
    const srv_handlers_t *h = handlers_for(req->listener);
    int code = 0;
    g_ws_proto[0] = '\0';
    g_in_ws_open = true;
    if (h && h->on_ws_open)
        code = h->on_ws_open(req);
    g_in_ws_open = false;
    if (code != 0 && (code < 1000 || code > 4999))
        code = SRV_WS_CLOSE_POLICY;
    count_request();
    return code;
}

/* A TCP or WebSocket event for the app, from the connection on listener. */
static void run_event(uint64_t session, srv__engine_event_t ev, int listener, uint16_t arg,
                      const char *data, size_t len)
{
    const srv_handlers_t *h = handlers_for(listener);
    if (h == NULL)
        return;
    int op = arg & 0xff;
    switch (ev) {
    case SRV_ENGINE_EV_CONNECT:
        if (h->on_connect) {
            srv_conn_info_t info;
            if (srv__conninfo_get(session, &info) == 0)
                h->on_connect(session, &info);
        }
        break;
    case SRV_ENGINE_EV_RECEIVE:
        count_request();
        if (h->on_receive)
            h->on_receive(session, data, len);
        break;
    case SRV_ENGINE_EV_CLOSED:
        if (h->on_close)
            h->on_close(session);
        break;
    case SRV_ENGINE_EV_WS_MESSAGE:
        count_request();
        if (h->on_ws_message)
            h->on_ws_message(session, op, data, len);
        break;
    case SRV_ENGINE_EV_WS_CLOSED:
        if (h->on_ws_close && len >= 2) {
            uint16_t code;
            memcpy(&code, data, 2);
            h->on_ws_close(session, code, data + 2, len - 2);
        }
        break;
    default:
        break;
    }
}

/* A piece of a large request: collect it; returns the whole block once the last piece is in
 * (valid until the next frame), else NULL. */
static const char *collect_piece(wchan_t *ch, const srv__ipc_hdr_t *h, const char *payload,
                                 size_t *len)
{
    if (ch->part.len > 0 && ch->part_session != h->session) {
        /* The reactor sends one large request's pieces before the next one's. */
        srv__log(SRV_LOG_ERROR, "ipc", EPROTO, "reactor %d: interleaved request pieces",
                ch->reactor);
        srv__ipc_buf_consume(&ch->part, ch->part.len);
    }
    ch->part_session = h->session;
    char *p = srv__ipc_buf_reserve(&ch->part, h->len);
    if (p == NULL) {
        srv__log(SRV_LOG_ERROR, "ipc", ENOBUFS, "reactor %d: request larger than any limit",
                ch->reactor);
        srv__ipc_buf_consume(&ch->part, ch->part.len);
        return NULL;
    }
    memcpy(p, payload, h->len);
    ch->part.len += h->len;
    if (h->flags & SRV_IPC_F_MORE)
        return NULL;
    *len = ch->part.len;
    return ch->part.data;
}

static void on_frame(void *arg, const srv__ipc_hdr_t *h, const char *payload)
{
    wchan_t *ch = arg;
    if (h->type == SRV_IPC_ACK) {
        uint64_t written;
        if (h->len >= sizeof(written)) {
            memcpy(&written, payload, sizeof(written));
            srv__flow_ack(h->session, written);
        }
        return;
    }
    if (h->type == SRV_IPC_GONE) {
        srv__flow_gone(h->session);
        return;
    }
    if (h->type == SRV_IPC_REQUEST || h->type == SRV_IPC_WS_OPEN) {
        srv_request_t req;
        size_t len = h->len;
        /* Small requests of other sessions may come between the pieces of a large one. */
        if ((h->flags & SRV_IPC_F_MORE) || (ch->part.len > 0 && ch->part_session == h->session)) {
            payload = collect_piece(ch, h, payload, &len);
            if (payload == NULL)
                return;
        }
        bool whole = payload == ch->part.data;
        if (srv__http_request_decode((void *)payload, len, &req) < 0) {
            srv__log(SRV_LOG_ERROR, "ipc", EPROTO, "undecodable request frame");
            return;
        }
        if (h->type == SRV_IPC_REQUEST) {
            run_request(&req, h->session, payload, len);
        } else {
            int code = ws_open(&req);
            srv__worker_action(h->session, SRV_IPC_WS_ACCEPT, (uint16_t)code, g_ws_proto,
                               code == 0 ? strlen(g_ws_proto) : 0);
        }
        if (whole) {
            srv__ipc_buf_consume(&ch->part, ch->part.len);
            if (ch->part.cap > (4u << 20)) { /* do not keep a large request's buffer */
                srv__ipc_buf_deinit(&ch->part);
                srv__ipc_buf_init(&ch->part, ch->part.max);
            }
        }
        return;
    }
    run_event(h->session, srv__ipc_to_event(h->type), h->listener, h->flags, payload, h->len);
}

int srv__worker_action(uint64_t session, uint16_t type, uint16_t flags, const void *data,
                       size_t len)
{
    if (srv__cluster_elsewhere(session)) /* a connection of another instance */
        return srv__cluster_action(session, type, flags, data, len);
    int r = SRV_SESSION_ENGINE(session);
    if (W.eng) {
        /* Base mode: a connection belongs to the worker that accepted it; another worker's
         * goes through that worker's mailbox, and a broadcast to every worker. */
        if (type == SRV_IPC_WS_BROADCAST) {
            srv__msg_t m = {.type = SRV_MSG_ACTION,
                           .from = W.slot,
                           .id = session,
                           .flags = (uint32_t)type << 16 | flags,
                           .len = (uint32_t)len};
            for (int i = 0; i < srv__server.cfg.worker_num; i++)
                if (i != W.slot)
                    srv__mbox_put(srv__slot_box(i), &m, data);
        } else if (r != W.slot) {
            if (r < 0 || r >= srv__server.cfg.worker_num)
                return -ENOENT;
            srv__msg_t m = {.type = SRV_MSG_ACTION,
                           .from = W.slot,
                           .id = session,
                           .flags = (uint32_t)type << 16 | flags,
                           .len = (uint32_t)len};
            return srv__mbox_put(srv__slot_box(r), &m, data);
        }
        return srv__engine_action(W.eng, session, srv__ipc_to_action(type), flags, data, len);
    }
    if (W.nchans == 0)
        return -ENOTSUP; /* task workers and other processes own no reactor channel */
    if (type == SRV_IPC_WS_BROADCAST) {
        for (int i = 0; i < W.nchans; i++)
            if (chan_put(&W.chans[i], session, type, flags, data, len) < 0)
                return -ENOBUFS;
        return 0;
    }
    if (r < 0 || r >= W.nchans)
        return -ENOENT;
    return chan_put(&W.chans[r], session, type, flags, data, len);
}

/* ---- UDP: every worker reads the shared datagram sockets itself (no reactor hop) ---- */

typedef struct udp {
    int fd;
    int listener;
    size_t max; /* the listener's package_max_length: larger datagrams are dropped */
    char *buf;
    size_t cap;
    int64_t last_log;
    srv__loop_op_t op;
} udp_t;

static udp_t g_udp[SRV_CONFIG_MAX_LISTEN];
static int g_nudp;

/* Read one datagram whole into u->buf. Returns its length, -2 when it was dropped (larger
 * than the listener allows: counted and logged), -1 when none is waiting. A unix datagram
 * can be far larger than 64 KiB: while the buffer is smaller than the limit, the length is
 * peeked first (MSG_TRUNC reports the real length), so nothing is ever cut short. */
static ssize_t udp_read(udp_t *u, struct sockaddr_storage *ss, socklen_t *sl)
{
    ssize_t n;
    /* A unix datagram may be larger than 64 KiB. Every worker reads the shared socket, so a
     * peeked size may belong to a datagram another worker takes first: the buffer holds the
     * largest datagram the listener accepts (package_max_length), grown on first use. */
    if (u->max > u->cap) {
        char *p = realloc(u->buf, u->max);
        if (p == NULL)
            return -1;
        u->buf = p;
        u->cap = u->max;
    }
    *sl = sizeof(*ss);
    n = recvfrom(u->fd, u->buf, u->cap, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)ss, sl);
    if (n < 0)
        return -1;
    if ((size_t)n <= u->cap && (size_t)n <= u->max)
        return n;
    atomic_fetch_add_explicit(&W.stat->udp_dropped, 1, memory_order_relaxed);
    int64_t now = srv__mono_ms();
    if (now - u->last_log >= 1000) {
        u->last_log = now;
        srv__log(SRV_LOG_INFO, "udp", 0,
                "listener %s: dropped a %zd-byte datagram (package_max_length %zu)",
                srv__server.cfg.listen[u->listener].name, n, u->max);
    }
    return -2;
}

static void on_udp(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data, uint32_t flags)
{
    udp_t *u = op->data;
    if (res == -ECANCELED || W.stop)
        return;
    const srv_handlers_t *h = handlers_for(u->listener);
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl;
        ssize_t n = udp_read(u, &ss, &sl);
        if (n == -2)
            continue;
        if (n < 0)
            break;
        srv_packet_t pkt = {.listener = u->listener, .data = u->buf, .len = (size_t)n};
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, pkt.peer, sizeof(pkt.peer));
            pkt.peer_port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, pkt.peer, sizeof(pkt.peer));
            pkt.peer_port = ntohs(a->sin6_port);
        } else if (ss.ss_family == AF_UNIX && sl > offsetof(struct sockaddr_un, sun_path)) {
            const char *path = ((struct sockaddr_un *)&ss)->sun_path;
            size_t plen = strnlen(path, sl - offsetof(struct sockaddr_un, sun_path));
            if (plen >= sizeof(pkt.peer))
                plen = sizeof(pkt.peer) - 1;
            memcpy(pkt.peer, path, plen);
            pkt.peer[plen] = '\0';
        }
        count_request();
        if (h && h->on_packet)
            h->on_packet(&pkt);
    }
    srv__loop_poll(W.loop, &u->op, u->fd, POLLIN);
}

static void udp_start(void)
{
    const srv__config_t *cfg = &srv__server.cfg;
    for (int i = 0; i < cfg->nlisten; i++) {
        const srv__listen_config_t *l = &cfg->listen[i];
        if (l->type != SRV_LISTEN_UDP)
            continue;
        udp_t *u = &g_udp[g_nudp++];
        u->fd = srv__server.listen_fd[i];
        u->listener = i;
        u->max = (size_t)(l->package_max_length >= 0 ? l->package_max_length
                                                     : cfg->package_max_length);
        /* An IP datagram is at most 64 KiB; a unix one may be larger (grown on first use). */
        u->cap = u->max < 65536 ? u->max : 65536;
        u->buf = malloc(u->cap);
        if (u->buf == NULL) {
            srv__log(SRV_LOG_ERROR, "udp", ENOMEM, "listener %s", l->name);
            g_nudp--;
            continue;
        }
        u->op.cb = on_udp;
        u->op.data = u;
        srv__loop_poll(W.loop, &u->op, u->fd, POLLIN);
    }
}

/* The largest frame a reactor sends us: a TCP frame or a WebSocket message whole (requests
 * larger than a piece come in pieces), whichever listener allows the most. */
static size_t frame_bound(const srv__config_t *cfg)
{
    int64_t m = cfg->package_max_length;
    for (int i = 0; i < cfg->nlisten; i++) {
        const srv__listen_config_t *l = &cfg->listen[i];
        if (l->package_max_length > m)
            m = l->package_max_length;
        if (l->websocket && l->websocket_max_message_size > m)
            m = l->websocket_max_message_size;
    }
    return (size_t)m + 2 * (size_t)cfg->http_header_max + (1u << 20);
}

static void on_chan_recv(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                         uint32_t flags)
{
    wchan_t *ch = op->data;
    if (!(flags & SRV_LOOP_MORE))
        ch->armed = false;
    if (res > 0) {
        if (srv__ipc_feed(&ch->in, data, (size_t)res, on_frame, ch) < 0) {
            srv__log(SRV_LOG_ERROR, "ipc", EPROTO, "corrupt stream from reactor %d", ch->reactor);
            res = -EPROTO;
        } else {
            if (!ch->armed && !ch->eof)
                ch->armed = srv__loop_recv(loop, &ch->op, ch->fd) == 0;
            return;
        }
    }
    if (res == -ECANCELED && !W.stop)
        return;
    /* EOF: the reactor replaced us (reload) or is stopping; answer what we have and go. */
    if (!ch->eof) {
        ch->eof = true;
        W.open_chans--;
    }
}

static int base_dispatch(srv__engine_t *e, srv__conn_t *c, srv__engine_event_t ev,
                         const srv_request_t *req)
{
    if (ev == SRV_ENGINE_EV_WS_OPEN) {
        int code = ws_open(req);
        srv__engine_action(e, req->session, SRV_ENGINE_WS_ACCEPT, (uint16_t)code, g_ws_proto,
                           code == 0 ? strlen(g_ws_proto) : 0);
        return 0;
    }
    uint64_t rid = srv__conn_request_id(c);
    bool plain = req->tls == NULL && req->http_major == 1 && !SRV_SESSION_IS_REQ(rid);
    g_hk_rid = rid;
    g_hk_fd = plain ? srv__conn_fd(c) : -1;
    run_request(req, rid, NULL, 0);
    g_hk_fd = -1;
    g_hk_rid = 0;
    return 0;
}

static int base_event(srv__engine_t *e, srv__conn_t *c, srv__engine_event_t ev, uint16_t arg,
                      const void *data, size_t len)
{
    run_event(srv__conn_session(c), ev, srv__conn_listener(c), arg, data, len);
    return 0;
}

static void base_abandoned(srv__engine_t *e, uint64_t id, int tag)
{
    srv__flow_gone(id);
}

static int base_progress(srv__engine_t *e, uint64_t id, int tag, uint64_t written)
{
    srv__flow_ack(id, written);
    return 0;
}

/* Base mode: another worker asked us to act on one of our connections. */
/* Base mode: another worker's action on a connection of ours, or its broadcast: done on our
 * engine alone (handing a broadcast on would send it around the workers for ever). */
void srv__worker_mailbox_action(const srv__msg_t *m, const void *data)
{
    if (W.eng)
        srv__engine_action(W.eng, m->id, srv__ipc_to_action((uint16_t)(m->flags >> 16)),
                           (uint16_t)(m->flags & 0xffff), data, m->len);
}

/* The app is loaded: find each listener's handler set and let the app start. */
static void start_app(const srv_app_t *app)
{
    const srv__config_t *cfg = &srv__server.cfg;
    char err[2048];
    for (int i = 0; i < cfg->nlisten; i++) {
        W.handlers[i] = srv__app_handlers(cfg->listen[i].handler);
        if (W.handlers[i] == NULL) {
            snprintf(err, sizeof(err), "app %s has no handler set '%s' (listener %s)", cfg->app,
                     cfg->listen[i].handler, cfg->listen[i].name);
            srv__child_fail(err);
        }
    }
    if (app->on_worker_start && app->on_worker_start(srv_worker_self()) != 0) {
        snprintf(err, sizeof(err), "on_worker_start of %s refused to start", cfg->app);
        srv__child_fail(err);
    }
    if (cfg->max_request > 0) {
        uint64_t grace = cfg->max_request_grace > 0 ? (uint64_t)cfg->max_request_grace : 0;
        W.recycle_at =
            (uint64_t)cfg->max_request + (grace ? (uint64_t)(getpid() * 7919u) % (grace + 1) : 0);
    }
}

/* Process mode: responses go to the reactors' channels, requests come from them. */
static void open_channels(const int *chans, int nchans)
{
    const srv__config_t *cfg = &srv__server.cfg;
    srv__flow_init(&(srv__flow_transport_t){.put = chan_emit,
                                            .put_file = chan_emit_file,
                                            .busy = chan_busy},
                   (uint64_t)cfg->buffer_output_size);
    W.chans = calloc((size_t)nchans, sizeof(wchan_t));
    W.nchans = nchans;
    for (int i = 0; i < nchans; i++) {
        wchan_t *ch = &W.chans[i];
        ch->fd = chans[i];
        ch->fdsock = chans[nchans + i];
        ch->reactor = i;
        ch->op.cb = on_chan_recv;
        ch->op.data = ch;
        srv__ipc_buf_init(&ch->in, frame_bound(cfg));
        srv__ipc_buf_init(&ch->part, frame_bound(cfg));
        chan_init_out(ch, (size_t)cfg->ipc_buffer_size);
        ch->armed = srv__loop_recv(W.loop, &ch->op, ch->fd) == 0;
    }
    W.open_chans = nchans;
}

/* Base mode: an engine of our own accepts on the inherited listeners. */
static void open_engine(void)
{
    srv__server_t *S = &srv__server;
    int k = W.slot % SRV_MAX_REACTORS;
    /* TLS: the certificates as they are on disk now (a reload starts new workers). */
    char terr[512];
    if (srv__tls_listen_any(&S->cfg) &&
        srv__tls_listen_load(&S->cfg, srv__tls_keys(), terr, sizeof(terr)) < 0)
        srv__child_fail(terr);
    srv__flow_init(&(srv__flow_transport_t){.put = eng_emit, .put_file = eng_emit_file},
                   (uint64_t)S->cfg.buffer_output_size);
    srv__engine_opts_t o = {
        .id = W.slot,
        .loop = W.loop,
        .cfg = &S->cfg,
        .listen_fds = S->listen_fd,
        .accept = true,
        .ops = {.dispatch = base_dispatch,
                .event = base_event,
                .abandoned = base_abandoned,
                .progress = base_progress},
        .stat_conns = &S->stats->reactors[k].connections,
        .stat_accepted = &S->stats->reactors[k].accepted,
        .stat_requests = &S->stats->reactors[k].requests,
        .stat_503 = &S->stats->reactors[k].errors_503,
        .stat_h2_conns = &S->stats->reactors[k].h2_connections,
        .stat_h2_streams = &S->stats->reactors[k].h2_streams,
        .conns_total = srv__stats_connections,
        .netstat = srv__stats_net(W.slot),
    };
    /* Connections a previous process of this slot had (it may have been killed) are gone. */
    srv__netstat_t *net = srv__stats_net(W.slot);
    for (int i = 0; net != NULL && i < S->cfg.nlisten; i++)
        for (int pr = 0; pr < SRV_NETSTAT_NPROTO; pr++)
            atomic_store(&net[i].open[pr], 0);
    int rc = srv__engine_create(&W.eng, &o);
    if (rc < 0) {
        char err[128];
        snprintf(err, sizeof(err), "cannot start serving: %s", srv_strerror(rc));
        srv__child_fail(err);
    }
}

/* Serve until stopped (then drain for up to max_wait_time) or replaced. */
static void run(void)
{
    int64_t stop_deadline = 0;
    for (;;) {
        int timeout = srv__flow_due() ? 0 : srv__timer_timeout();
        if (W.stop && (timeout < 0 || timeout > 50))
            timeout = 50;
        int rc = srv__loop_run(W.loop, timeout);
        srv__flow_run();
        srv__timer_run();
        srv__msg_arm(W.loop);
        if (rc < 0 && rc != -EINTR) {
            srv__log(SRV_LOG_ERROR, "loop", rc, "worker loop");
            break;
        }
        flush_all();
        if (W.reopen) {
            W.reopen = 0;
            srv__log_reopen();
            srv__alog_reopen();
        }
        if (W.nchans > 0 && W.open_chans == 0)
            break; /* every reactor closed its channel: we were replaced */
        if (W.stop) {
            if (stop_deadline == 0) {
                stop_deadline = srv__mono_ms() + (int64_t)srv__server.cfg.max_wait_time * 1000;
                srv__cluster_stop(); /* a new worker 0 subscribes in our place */
                if (W.eng)
                    srv__engine_drain(W.eng);
            }
            bool idle = W.eng == NULL || srv__engine_conns(W.eng) == 0;
            if (idle || srv__mono_ms() >= stop_deadline)
                break;
        }
    }
}

/* Close what is still open, answer what can be answered, and free what we hold. */
static void close_all(void)
{
    if (W.eng) {
        srv__engine_close_all(W.eng);
        for (int i = 0; i < 100 && srv__engine_conns(W.eng) > 0; i++)
            srv__loop_run(W.loop, 10);
        srv__engine_destroy(W.eng);
    }
    chans_finish();
    for (int i = 0; i < W.nchans; i++) {
        close(W.chans[i].fd);
        close(W.chans[i].fdsock);
        srv__ipc_buf_deinit(&W.chans[i].in);
        srv__ipc_buf_deinit(&W.chans[i].out);
        srv__ipc_buf_deinit(&W.chans[i].sending);
        srv__ipc_buf_deinit(&W.chans[i].part);
    }
    free(W.chans);
    srv__cluster_stop();
    srv__flow_deinit();
    for (int i = 0; i < g_nudp; i++)
        free(g_udp[i].buf);
    srv__loop_destroy(W.loop);
}

void srv__worker_main(int slot, int ctl_fd, const int *chans, int nchans)
{
    srv__server_t *S = &srv__server;
    memset(&W, 0, sizeof(W));
    W.slot = slot;
    char title[16];
    snprintf(title, sizeof(title), "worker %d", slot);
    srv__child_opts_t o = {.role = "worker",
                           .id = slot,
                           .log_id = slot,
                           .title = title,
                           .stop = &W.stop,
                           .reopen = &W.reopen};
    const srv_app_t *app = srv__child_start(slot, ctl_fd, &o);
    W.stat = &S->stats->workers[slot];
    struct sigaction hk = {.sa_handler = on_harakiri};
    sigemptyset(&hk.sa_mask);
    sigaction(SIGXCPU, &hk, NULL);
    atomic_store(&W.stat->busy_ms, 0);
    srv__timer_set_gauge(&W.stat->timers);
    start_app(app);
    W.loop = srv__child_loop();
    const char *why = srv__loop_fallback_reason(W.loop);
    if (S->nreactors == 0 && slot == 0) {
        if (why && why[0])
            srv__log(SRV_LOG_WARN, "loop", 0, "io_uring unavailable (%s); using epoll", why);
        srv__log(SRV_LOG_NOTICE, "loop", 0, "workers on %s", srv__loop_backend_name(W.loop));
        srv__stats_set_backend(srv__loop_backend_name(W.loop));
    }
    W.sink = (srv__resp_sink_t){
        .emit = sink_emit, .emit_file = sink_emit_file, .on_writable = sink_on_writable};
    if (S->nreactors > 0) {
        open_channels(chans, nchans);
    } else {
        srv__server_alog_open(); /* (serving goes on without it) */
        open_engine();
    }
    udp_start();
    srv__cluster_start(W.loop, slot);
    if (S->cfg.cluster)
        srv__msg_on_broadcast(srv__cluster_message);
    srv__msg_on_action(srv__worker_mailbox_action);
    srv__msg_arm(W.loop);
    srv__child_tell(SRV_WMSG_READY, NULL);
    srv__log_debug("worker", "ready");
    run();
    srv__child_retire(app);
    close_all();
    srv__alog_close();
    _exit(0);
}
