/* The connection engine: accept, receive, HTTP parsing, one request in flight per connection
 * (pipelined requests wait, parsed in order, so responses go out in request order whatever
 * worker answers), bounded output queues with sendfile, timeouts, lingering close. */
#include "core/net/conn.h"
#include "core/net/conn_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/net/static.h"
#include "protocols/http.h"

static void process_input(srv__conn_t *c, const char *data, size_t len);
static void arm_recv(srv__conn_t *c);

int64_t srv__engine_now_ms(srv__engine_t *e)
{
    return srv__loop_now(e->loop) / 1000000;
}

void srv__stat_add(_Atomic uint64_t *s, int64_t d)
{
    if (s)
        atomic_fetch_add_explicit(s, (uint64_t)d, memory_order_relaxed);
}

/* ---- output queue ---- */

static seg_t *seg_tail_mem(srv__conn_t *c, size_t need)
{
    if (c->qn > 0) {
        seg_t *t = &c->q[(c->qh + c->qn - 1) % OUTQ_MAX];
        /* The kernel reads the bytes of the segments a send in flight covers, up to the
         * lengths they had at submission: appending after them is safe, moving them
         * (realloc) is not. */
        bool busy = (c->flags & F_SEND) && c->qn - 1 < c->sending_segs;
        if (t->kind == SEG_MEM && t->cap - t->len >= need)
            return t;
        if (t->kind == SEG_MEM && !busy && t->off == 0 && c->qn >= OUTQ_MAX - 1) {
            size_t cap = t->cap * 2;
            while (cap - t->len < need)
                cap *= 2;
            char *p = realloc(t->buf, cap);
            if (p == NULL)
                return NULL;
            t->buf = p;
            t->cap = cap;
            return t;
        }
    }
    if (c->qn >= OUTQ_MAX)
        return NULL;
    seg_t *s = &c->q[(c->qh + c->qn) % OUTQ_MAX];
    size_t cap = need < SEG_MIN ? SEG_MIN : need;
    s->buf = malloc(cap);
    if (s->buf == NULL)
        return NULL;
    s->kind = SEG_MEM;
    s->cap = cap;
    s->len = s->off = 0;
    c->qn++;
    return s;
}

/* Queue bytes; -ENOBUFS past buffer_output_size. */
static int out_append(srv__conn_t *c, const struct iovec *iov, int iovcnt, size_t limit)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    if (c->qbytes + total > limit)
        return -ENOBUFS;
    bool was_idle = !srv__out_pending(c);
    seg_t *s = seg_tail_mem(c, total);
    if (s == NULL)
        return -ENOBUFS;
    if (was_idle)
        c->last_write = srv__engine_now_ms(c->eng); /* the send timeout counts from here */
    c->out_total += total;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(s->buf + s->len, iov[i].iov_base, iov[i].iov_len);
        s->len += iov[i].iov_len;
    }
    c->qbytes += total;
    return 0;
}

int srv__out_write(srv__conn_t *c, const struct iovec *iov, int iovcnt)
{
    return out_append(c, iov, iovcnt, (size_t)c->eng->cfg->buffer_output_size + (64u << 10));
}

static int out_str(srv__conn_t *c, const char *p, size_t n)
{
    struct iovec v = {.iov_base = (void *)p, .iov_len = n};
    return srv__out_write(c, &v, 1);
}

static int out_file(srv__conn_t *c, int fd, uint64_t off, uint64_t len)
{
    if (c->qn >= OUTQ_MAX)
        return -ENOBUFS;
    if (!srv__out_pending(c))
        c->last_write = srv__engine_now_ms(c->eng);
    c->out_total += len;
    seg_t *s = &c->q[(c->qh + c->qn) % OUTQ_MAX];
    memset(s, 0, sizeof(*s));
    s->kind = SEG_FILE;
    s->file_fd = fd;
    s->foff = off;
    s->fleft = len;
    c->qn++;
    return 0;
}

static void seg_free(seg_t *s)
{
    if (s->kind == SEG_MEM)
        free(s->buf);
    else if (s->file_fd >= 0)
        close(s->file_fd);
    s->buf = NULL;
    s->file_fd = -1;
}

static void out_clear(srv__conn_t *c)
{
    while (c->qn > 0) {
        seg_free(&c->q[c->qh]);
        c->qh = (uint8_t)((c->qh + 1) % OUTQ_MAX);
        c->qn--;
    }
    c->qbytes = 0;
}

/* ---- connection life ---- */

static void conn_release(srv__conn_t *c)
{
    srv__engine_t *e = c->eng;
    if (c->proto != PROTO_HTTP || c->ws_pending)
        srv__stream_release(c);
    if (c->info)
        atomic_store_explicit(&c->info->session, 0, memory_order_release);
    close(c->fd);
    out_clear(c);
    free(c->in);
    uint32_t slot = SRV_SESSION_SLOT(c->session);
    e->slots[slot] = NULL;
    e->gens[slot]++;
    e->free_stack[e->nfree++] = slot;
    e->nconns--;
    srv__stat_add(e->stat_conns, -1);
    if (c->flags & F_INFLIGHT)
        e->inflight--;
    if (e->ncached < 256 && !e->destroying) {
        /* A cached connection keeps its parser (reset now, so no request view outlives the
         * connection): the next HTTP connection reuses it without a malloc. */
        if (c->http)
            srv__http_parser_reset(c->http);
        c->next_free = e->conn_cache;
        e->conn_cache = c;
        e->ncached++;
    } else {
        srv__http_parser_destroy(c->http);
        free(c);
    }
}

static void maybe_release(srv__conn_t *c)
{
    if ((c->flags & F_CLOSING) && c->refs == 0)
        conn_release(c);
}

void srv__conn_hold(srv__conn_t *c)
{
    c->refs++;
}

bool srv__conn_unhold(srv__conn_t *c)
{
    c->refs--;
    if (!(c->flags & F_CLOSING))
        return true;
    maybe_release(c);
    return false;
}

void srv__conn_close(srv__conn_t *c)
{
    if (c->flags & F_CLOSING)
        return;
    c->flags |= F_CLOSING;
    if ((c->flags & F_INFLIGHT) && c->eng->ops.abandoned)
        c->eng->ops.abandoned(c->eng, c);
    if (c->flags & F_RECV)
        srv__loop_cancel(c->eng->loop, &c->recv_op);
    if (c->flags & F_SEND)
        srv__loop_cancel(c->eng->loop, &c->send_op);
    maybe_release(c);
}

/* After the last byte of an answer we must close: half-close and keep reading (discarding)
 * for a moment, so a client still sending its body gets our response instead of a reset. */
static void begin_linger(srv__conn_t *c)
{
    if (c->flags & (F_EOF | F_CLOSING)) {
        srv__conn_close(c);
        return;
    }
    /* Unless the client itself asked to close and all it sent was read: nothing more is coming,
     * so there is nothing to reset and it closes at once (as nginx does: no shutdown, no wait
     * for the client's FIN). */
    if (c->proto == PROTO_HTTP && !c->req_keepalive && c->in_len == 0 && c->http != NULL &&
        !(c->flags & F_DONE_PENDING) && srv__http_parser_idle(c->http)) {
        /* The fd is closed once the recv in flight is cancelled, which may wait behind the
         * other callbacks of this run (a long handler in base mode): send the FIN now. */
        shutdown(c->fd, SHUT_WR);
        srv__conn_close(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->flags |= F_LINGER | F_NO_READ;
    c->linger_until = srv__engine_now_ms(c->eng) + LINGER_MS;
    if (!(c->flags & F_RECV))
        srv__conn_close(c);
}

static void on_send(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                    uint32_t flags);

/* Tell the producer of the response in flight how much of it reached the socket, so it can
 * send more (it keeps at most buffer_output_size unacknowledged): at least every ack_step
 * bytes, and whenever the queue ran dry. A report the producer could not take (its channel
 * full) is retried by the tick. */
static void flow_report(srv__conn_t *c, bool force)
{
    srv__engine_t *e = c->eng;
    if (!c->flow || !(c->flags & F_INFLIGHT) || e->ops.progress == NULL)
        return;
    uint64_t w = c->out_done > c->resp_start ? c->out_done - c->resp_start : 0;
    if (w == c->acked)
        return;
    if (!force && w - c->acked < e->ack_step && srv__out_pending(c))
        return;
    if (e->ops.progress(e, c, w) == 0)
        c->acked = w;
}

void srv__conn_flush(srv__conn_t *c)
{
    if (c->flags & (F_SEND | F_CLOSING))
        return;
    while (c->qn > 0) {
        seg_t *s = &c->q[c->qh];
        if (s->kind == SEG_MEM) {
            int n = 0;
            for (int i = 0; i < c->qn; i++) {
                seg_t *t = &c->q[(c->qh + i) % OUTQ_MAX];
                if (t->kind != SEG_MEM)
                    break;
                c->iov[n].iov_base = t->buf + t->off;
                c->iov[n].iov_len = t->len - t->off;
                n++;
            }
            c->flags |= F_SEND;
            c->refs++;
            c->sending_segs = (uint8_t)n;
            int rc = srv__loop_send(c->eng->loop, &c->send_op, c->fd, c->iov, n);
            if (rc < 0) {
                c->flags &= ~(uint32_t)F_SEND;
                c->refs--;
                srv__conn_close(c);
            }
            return;
        }
        /* A file: sendfile in place while the socket takes it; wait for POLLOUT otherwise. */
        while (s->fleft > 0) {
            off_t off = (off_t)s->foff;
            size_t chunk = s->fleft > (1u << 20) ? (1u << 20) : (size_t)s->fleft;
            ssize_t n = sendfile(c->fd, s->file_fd, &off, chunk);
            if (n > 0) {
                s->foff += (uint64_t)n;
                s->fleft -= (uint64_t)n;
                c->out_done += (uint64_t)n;
                c->last_write = srv__engine_now_ms(c->eng);
                flow_report(c, false);
                if (c->flags & F_CLOSING)
                    return;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN) {
                c->flags |= F_SEND;
                c->refs++;
                if (srv__loop_poll(c->eng->loop, &c->send_op, c->fd, POLLOUT) < 0) {
                    c->flags &= ~(uint32_t)F_SEND;
                    c->refs--;
                    srv__conn_close(c);
                }
                return;
            }
            /* File shrank under us (n == 0) or the socket failed: the response is broken. */
            srv__conn_close(c);
            return;
        }
        seg_free(s);
        c->qh = (uint8_t)((c->qh + 1) % OUTQ_MAX);
        c->qn--;
    }
    if ((c->flags & F_CLOSE_AFTER) && !(c->flags & F_INFLIGHT))
        begin_linger(c);
}

static void on_send(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                    uint32_t flags)
{
    srv__conn_t *c = op->data;
    c->flags &= ~(uint32_t)F_SEND;
    c->sending_segs = 0;
    c->refs--;
    if (c->flags & F_CLOSING) {
        maybe_release(c);
        return;
    }
    if (res < 0) {
        if (res == -EAGAIN || res == -EINTR) {
            srv__conn_flush(c);
            return;
        }
        srv__log_debug("conn", "session %llx: send: %s", (unsigned long long)c->session,
                      srv_strerror(res));
        srv__conn_close(c);
        return;
    }
    if (c->qn > 0 && c->q[c->qh].kind == SEG_FILE) {
        srv__conn_flush(c); /* that was the POLLOUT wait of a sendfile */
        return;
    }
    size_t n = (size_t)res;
    c->last_write = srv__engine_now_ms(c->eng);
    c->qbytes -= n < c->qbytes ? n : c->qbytes;
    c->out_done += n;
    flow_report(c, false);
    if (c->flags & F_CLOSING)
        return;
    while (n > 0 && c->qn > 0) {
        seg_t *s = &c->q[c->qh];
        size_t left = s->len - s->off;
        if (n < left) {
            s->off += n;
            break;
        }
        n -= left;
        /* HTTP keeps one small buffer for the next response instead of a malloc per
         * request; WebSocket and TCP connections mostly sit idle, so they give it back. */
        if (c->qn == 1 && s->cap <= SEG_MIN && c->proto == PROTO_HTTP) {
            s->len = s->off = 0;
            if (c->flags & F_CLOSE_AFTER)
                break;
            return;
        }
        seg_free(s);
        c->qh = (uint8_t)((c->qh + 1) % OUTQ_MAX);
        c->qn--;
    }
    if (c->qn == 1 && c->q[c->qh].kind == SEG_MEM && c->q[c->qh].len == c->q[c->qh].off) {
        if (c->flags & F_CLOSE_AFTER) {
            seg_free(&c->q[c->qh]);
            c->qn = 0;
        } else
            return;
    }
    srv__conn_flush(c);
}

bool srv__out_pending(const srv__conn_t *c)
{
    for (int i = 0; i < c->qn; i++) {
        const seg_t *s = &c->q[(c->qh + i) % OUTQ_MAX];
        if (s->kind == SEG_FILE || s->len > s->off)
            return true;
    }
    return false;
}

/* ---- requests ---- */

static void send_error(srv__conn_t *c, int status, const char *reason)
{
    char buf[512];
    int n = srv__http_error_response(buf, sizeof(buf), status, reason, false);
    if (n > 0)
        out_str(c, buf, (size_t)n);
    c->flags |= F_CLOSE_AFTER | F_NO_READ;
    srv__conn_flush(c);
}

/* The response to the request in flight is complete. */
static void request_done(srv__conn_t *c)
{
    srv__engine_t *e = c->eng;
    c->flags &= ~(uint32_t)F_INFLIGHT;
    e->inflight--;
    c->resp_bytes = 0;
    c->tag = -1;
    if (c->flags & F_IN_PROCESS) {
        c->flags |= F_DONE_PENDING; /* the app may still read the request view */
        return;
    }
    srv__http_parser_next(c->http);
    c->req_start = 0;
    if (c->in_len > 0 && !(c->flags & (F_CLOSING | F_NO_READ | F_CLOSE_AFTER)))
        process_input(c, NULL, 0);
    if ((c->flags & F_EOF) && !(c->flags & F_INFLIGHT) && !srv__out_pending(c))
        c->flags |= F_CLOSE_AFTER;
    arm_recv(c);
    srv__conn_flush(c);
}

static void dispatch(srv__conn_t *c, srv_request_t *req)
{
    srv__engine_t *e = c->eng;
    req->session = c->session;
    req->peer.ptr = c->peer;
    req->peer.len = strlen(c->peer);
    req->peer_port = c->peer_port;
    req->listener = c->listener;
    if (e->draining)
        req->flags &= ~(uint32_t)SRV_REQ_KEEP_ALIVE;
    srv__stat_add(e->stat_requests, 1);
    c->flags |= F_INFLIGHT;
    c->req_keepalive = (req->flags & SRV_REQ_KEEP_ALIVE) != 0;
    e->inflight++;
    c->resp_bytes = 0;
    c->resp_start = c->out_total;
    c->acked = 0;
    c->flow = false;
    if ((req->flags & SRV_REQ_UPGRADE) && e->cfg->listen[c->listener].websocket) {
        int up = srv__ws_upgrade(c, req);
        if (up < 0) {
            const char *why = NULL;
            srv__ws_handshake_check(req, &why);
            srv__log(SRV_LOG_INFO, "ws", 0, "session %llx from %s: bad handshake: %s",
                    (unsigned long long)c->session, c->peer, why ? why : "?");
            c->flags &= ~(uint32_t)F_INFLIGHT;
            e->inflight--;
            send_error(c, 400, why ? why : "invalid WebSocket handshake");
            return;
        }
        if (up > 0) {
            if (e->ops.dispatch(e, c, SRV_ENGINE_EV_WS_OPEN, req) < 0) {
                c->flags &= ~(uint32_t)F_INFLIGHT;
                e->inflight--;
                send_error(c, 503, "no worker available");
            }
            return;
        }
    }
    srv__static_t *st = e->statics[c->listener];
    if (st) {
        int rc = srv__static_serve(st, req, c);
        if (rc > 0)
            return; /* answered (request_done already called) */
    }
    int rc = e->ops.dispatch(e, c, SRV_ENGINE_EV_REQUEST, req);
    if (rc < 0) {
        srv__stat_add(e->stat_503, 1);
        srv__log(SRV_LOG_WARN, "conn", rc, "session %llx: cannot hand the request to a worker",
                (unsigned long long)c->session);
        char buf[512];
        int n = srv__http_error_response(buf, sizeof(buf), 503, "no worker available",
                                        (req->flags & SRV_REQ_KEEP_ALIVE) != 0);
        struct iovec v = {.iov_base = buf, .iov_len = n > 0 ? (size_t)n : 0};
        srv__conn_respond(e, c->session, &v, 1,
                          SRV_ENGINE_F_FINAL |
                              ((req->flags & SRV_REQ_KEEP_ALIVE) ? 0 : SRV_ENGINE_F_CLOSE));
    }
}

/* Bytes that arrive while a request is with the app wait here (pipelining); past this bound
 * we stop reading until the app answered. */
static size_t stash_bound(const srv__conn_t *c)
{
    return c->eng->limits[c->listener].header_max + (64u << 10);
}

static int stash_append(srv__conn_t *c, const char *data, size_t len)
{
    if (c->in_len + len > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 1024;
        while (cap < c->in_len + len)
            cap *= 2;
        char *p = realloc(c->in, cap);
        if (p == NULL)
            return -ENOMEM;
        c->in = p;
        c->in_cap = (uint32_t)cap;
    }
    memcpy(c->in + c->in_len, data, len);
    c->in_len += (uint32_t)len;
    return 0;
}

static void stash_consume(srv__conn_t *c, size_t n)
{
    if (n >= c->in_len) {
        c->in_len = 0;
        if (c->in_cap > 4096) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
        return;
    }
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= (uint32_t)n;
}

static void on_recv(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                    uint32_t flags);

static void arm_recv(srv__conn_t *c)
{
    if (c->flags & (F_RECV | F_CLOSING | F_EOF))
        return;
    if (c->in_len >= stash_bound(c) && !(c->flags & F_LINGER))
        return;
    c->flags |= F_RECV;
    c->refs++;
    if (srv__loop_recv(c->eng->loop, &c->recv_op, c->fd) < 0) {
        c->flags &= ~(uint32_t)F_RECV;
        c->refs--;
        srv__conn_close(c);
    }
}

static void process_input(srv__conn_t *c, const char *data, size_t len)
{
    bool from_stash = data == NULL;
    if (!from_stash && (c->in_len > 0 || (c->flags & F_INFLIGHT))) {
        if (stash_append(c, data, len) < 0) {
            srv__conn_close(c);
            return;
        }
        if (c->in_len >= stash_bound(c) && (c->flags & F_RECV))
            srv__loop_cancel(c->eng->loop, &c->recv_op); /* paused: re-armed when drained */
        if (c->flags & F_INFLIGHT)
            return;
        from_stash = true;
    }
    if (from_stash) {
        data = c->in;
        len = c->in_len;
    }
    srv__engine_t *e = c->eng;
    size_t off = 0;
    c->flags |= F_IN_PROCESS;
    while (off < len && !(c->flags & (F_INFLIGHT | F_CLOSING | F_NO_READ | F_CLOSE_AFTER))) {
        size_t used = 0;
        if (c->req_start == 0)
            c->req_start = srv__engine_now_ms(e);
        srv__http_event_t ev = srv__http_parser_feed(c->http, data + off, len - off, &used);
        off += used;
        if (ev == SRV_HTTP_NEED_MORE)
            break;
        if (ev == SRV_HTTP_CONTINUE) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            out_str(c, cont, sizeof(cont) - 1);
            srv__conn_flush(c);
            continue;
        }
        if (ev == SRV_HTTP_ERROR) {
            const char *reason = "bad request";
            int status = srv__http_parser_error(c->http, &reason);
            srv__log(SRV_LOG_INFO, "http", 0, "session %llx from %s: %d %s",
                    (unsigned long long)c->session, c->peer, status, reason);
            send_error(c, status, reason);
            break;
        }
        srv_request_t req = *srv__http_parser_request(c->http);
        dispatch(c, &req);
        if (c->proto != PROTO_HTTP) {
            /* Upgraded in place (base mode): the rest of the bytes are WebSocket frames. */
            c->flags &= ~(uint32_t)F_IN_PROCESS;
            char *rest = NULL;
            size_t n = len - off;
            if (n > 0 && (rest = malloc(n)) != NULL)
                memcpy(rest, data + off, n);
            if (from_stash)
                stash_consume(c, len);
            if (rest) {
                srv__stream_input(c, rest, n);
                free(rest);
            }
            return;
        }
        if (c->flags & F_DONE_PENDING) {
            c->flags &= ~(uint32_t)F_DONE_PENDING;
            srv__http_parser_next(c->http);
            c->req_start = 0;
        }
    }
    c->flags &= ~(uint32_t)F_IN_PROCESS;
    if (c->flags & F_CLOSING)
        return;
    if (from_stash)
        stash_consume(c, off);
    else if (off < len && !(c->flags & (F_NO_READ | F_CLOSE_AFTER)) &&
             stash_append(c, data + off, len - off) < 0) {
        srv__conn_close(c);
        return;
    }
    if ((c->flags & F_EOF) && !(c->flags & F_INFLIGHT))
        c->flags |= F_CLOSE_AFTER;
    srv__conn_flush(c);
}

static void on_recv(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                    uint32_t flags)
{
    srv__conn_t *c = op->data;
    if (!(flags & SRV_LOOP_MORE)) {
        c->flags &= ~(uint32_t)F_RECV;
        c->refs--;
    }
    if (c->flags & F_CLOSING) {
        maybe_release(c);
        return;
    }
    if (res > 0) {
        c->last_read = srv__engine_now_ms(c->eng);
        if (c->info)
            atomic_store_explicit(&c->info->last_ms, srv__engine_wall_ms(c->eng),
                                  memory_order_relaxed);
        /* The app (base mode) or a failed hand-off may close c while its parser or framer is
         * still working on these bytes: c and its protocol state outlive this call. */
        srv__conn_hold(c);
        if (c->flags & F_NO_READ)
            ;
        else if (c->proto == PROTO_HTTP)
            process_input(c, data, (size_t)res);
        else
            srv__stream_input(c, data, (size_t)res);
        if (!(c->flags & (F_RECV | F_CLOSING)) && !(flags & SRV_LOOP_MORE))
            arm_recv(c);
        srv__conn_unhold(c);
        return;
    }
    if (res == 0 && c->proto != PROTO_HTTP && !(c->flags & F_LINGER)) {
        c->flags |= F_EOF;
        srv__stream_eof(c);
        return;
    }
    if (res == 0) {
        c->flags |= F_EOF;
        if ((c->flags & F_LINGER) || (!(c->flags & F_INFLIGHT) && !srv__out_pending(c))) {
            srv__conn_close(c);
            return;
        }
        /* Half-close: answer what was asked, then close. */
        c->flags |= F_CLOSE_AFTER;
        srv__conn_flush(c);
        return;
    }
    if (res == -ECANCELED) {
        arm_recv(c); /* a pause that has since been lifted re-arms here */
        return;
    }
    srv__log_debug("conn", "session %llx: recv: %s", (unsigned long long)c->session,
                  srv_strerror(res));
    srv__conn_close(c);
}

static uint64_t total_conns(const srv__engine_t *e)
{
    return e->conns_total ? e->conns_total() : e->nconns;
}

static void new_conn(srv__engine_t *e, int li, int fd)
{
    uint32_t slot;
    if (total_conns(e) >= (uint64_t)e->cfg->max_conn ||
        (e->nfree == 0 && e->used_slots >= e->max_slots)) {
        int64_t now = srv__engine_now_ms(e);
        if (now - e->last_limit_log > 1000) {
            e->last_limit_log = now;
            srv__log(SRV_LOG_WARN, "conn", 0, "max_conn (%d) reached; refusing connections",
                    e->cfg->max_conn);
        }
        close(fd);
        return;
    }
    srv__conn_t *c = e->conn_cache;
    srv__http_parser_t *http = NULL;
    if (c) {
        e->conn_cache = c->next_free;
        e->ncached--;
        http = c->http;
        /* A parser keeps the limits it was made with: one from a listener with other limits
         * (package_max_length per listener) is not reused. */
        const srv__http_limits_t *was = &e->limits[c->listener], *now = &e->limits[li];
        if (http && (was->body_max != now->body_max || was->header_max != now->header_max)) {
            srv__http_parser_destroy(http);
            http = NULL;
        }
    } else {
        c = malloc(sizeof(*c));
        if (c == NULL) {
            close(fd);
            return;
        }
    }
    memset(c, 0, sizeof(*c));
    bool tcp = e->cfg->listen[li].type == SRV_LISTEN_TCP;
    if (tcp) {
        srv__http_parser_destroy(http);
    } else if (http != NULL) {
        c->http = http;
    } else if (srv__http_parser_create(&c->http, &e->limits[li]) < 0) {
        free(c);
        close(fd);
        return;
    }
    slot = e->nfree ? e->free_stack[--e->nfree] : e->used_slots++;
    c->session = SRV_SESSION_MAKE(e->id, e->gens[slot], slot);
    e->slots[slot] = c;
    c->eng = e;
    c->fd = fd;
    c->listener = (uint16_t)li;
    c->worker = -1;
    c->tag = -1;
    c->recv_op.cb = on_recv;
    c->recv_op.data = c;
    c->send_op.cb = on_send;
    c->send_op.data = c;
    c->last_read = c->last_write = srv__engine_now_ms(e);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    strcpy(c->peer, "unix");
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, c->peer, sizeof(c->peer));
            c->peer_port = ntohs(a->sin_port);
            c->peer_hash = a->sin_addr.s_addr * 2654435761u;
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, c->peer, sizeof(c->peer));
            c->peer_port = ntohs(a->sin6_port);
            uint32_t h = 2166136261u;
            for (int i = 0; i < 16; i++)
                h = (h ^ a->sin6_addr.s6_addr[i]) * 16777619u;
            c->peer_hash = h;
        }
    }
    e->nconns++;
    srv__stat_add(e->stat_conns, 1);
    srv__stat_add(e->stat_accepted, 1);
    if (e->conninfo) {
        c->info = &e->conninfo[slot];
        c->info->listener = li;
        c->info->peer_port = c->peer_port;
        memcpy(c->info->peer, c->peer, sizeof(c->peer));
        c->info->connect_ms = srv__engine_wall_ms(e);
        atomic_store(&c->info->last_ms, c->info->connect_ms);
        atomic_store(&c->info->uid, 0);
        atomic_store(&c->info->websocket, 0);
        atomic_store_explicit(&c->info->session, c->session, memory_order_release);
    }
    if (tcp && srv__stream_open(c) < 0)
        return;
    arm_recv(c);
}

static void arm_accept(srv__engine_t *e, int i);

static void on_accept(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                      uint32_t flags)
{
    srv__engine_t *e = op->data;
    int i = (int)(op - e->accept_op);
    if (!(flags & SRV_LOOP_MORE))
        e->accept_armed[i] = false;
    if (res >= 0) {
        /* Draining still serves what the kernel already accepted for us (with
         * Connection: close); only a destroyed engine drops it. */
        if (!e->destroying)
            new_conn(e, i, res);
        else
            close(res);
    } else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        int64_t now = srv__engine_now_ms(e);
        if (now - e->last_limit_log > 1000) {
            e->last_limit_log = now;
            srv__log(SRV_LOG_WARN, "conn", -res, "accept: out of descriptors; retrying");
        }
        return; /* the tick re-arms it */
    } else if (res != -ECANCELED && res != -EAGAIN && res != -EINTR && res != -ECONNABORTED) {
        srv__log(SRV_LOG_ERROR, "conn", -res, "accept on listener %d", i);
    }
    if (!e->accept_armed[i] && e->accepting && !e->destroying && res != -ECANCELED)
        arm_accept(e, i);
}

static void arm_accept(srv__engine_t *e, int i)
{
    if (e->accept_armed[i] || e->listen_fd[i] < 0)
        return;
    e->accept_op[i].cb = on_accept;
    e->accept_op[i].data = e;
    if (srv__loop_accept(e->loop, &e->accept_op[i], e->listen_fd[i]) == 0)
        e->accept_armed[i] = true;
}

static void on_tick(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                    uint32_t flags);

static void arm_tick(srv__engine_t *e)
{
    if (e->tick_armed || e->destroying)
        return;
    e->tick_op.cb = on_tick;
    e->tick_op.data = e;
    if (srv__loop_timer(e->loop, &e->tick_op, TICK_MS) == 0)
        e->tick_armed = true;
}

static void on_tick(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                    uint32_t flags)
{
    srv__engine_t *e = op->data;
    e->tick_armed = false;
    if (e->destroying)
        return;
    int64_t now = srv__engine_now_ms(e);
    const srv__config_t *cfg = e->cfg;
    for (uint32_t i = 0; i < e->used_slots; i++) {
        srv__conn_t *c = e->slots[i];
        if (c == NULL || (c->flags & F_CLOSING))
            continue;
        if (c->flags & F_LINGER) {
            if (now >= c->linger_until)
                srv__conn_close(c);
            continue;
        }
        /* A client that takes none of its output for send_timeout is gone or hostile, whether
         * or not a request of its is still with the app. */
        if (srv__out_pending(c) && now - c->last_write > cfg->send_timeout) {
            srv__log(SRV_LOG_INFO, "conn", 0, "session %llx from %s: send timeout (%d ms)",
                    (unsigned long long)c->session, c->peer, cfg->send_timeout);
            srv__conn_close(c);
            continue;
        }
        if (c->flags & F_INFLIGHT) {
            flow_report(c, true);
            continue;
        }
        if (c->proto != PROTO_HTTP) {
            srv__stream_tick(c, now);
            continue;
        }
        if (srv__out_pending(c))
            continue;
        if (!srv__http_parser_idle(c->http) || c->in_len > 0) {
            /* A request has begun: it must arrive whole in time, whatever its pace
             * (slowloris), and never stall longer than the body timeout between reads. */
            bool headers = srv__http_parser_headers_done(c->http);
            if ((!headers && now - c->req_start > cfg->http_header_timeout) ||
                now - c->last_read > cfg->http_body_timeout) {
                srv__log(SRV_LOG_INFO, "http", 0, "session %llx from %s: request timeout",
                        (unsigned long long)c->session, c->peer);
                send_error(c, 408, "request timeout");
            }
            continue;
        }
        int64_t last = c->last_read > c->last_write ? c->last_read : c->last_write;
        if (e->draining && now - (last > e->drain_start ? last : e->drain_start) > DRAIN_IDLE_MS) {
            c->flags |= F_CLOSE_AFTER;
            srv__conn_flush(c); /* half-close and linger: a request in flight gets no reset */
        } else if (now - last > cfg->http_keepalive_timeout ||
                   (e->idle_ms[c->listener] > 0 && now - last > e->idle_ms[c->listener])) {
            /* Idle between requests: the keep-alive timeout, or the listener's heartbeat
             * (heartbeat_idle_time) when that is shorter. */
            srv__conn_close(c);
        }
    }
    for (int i = 0; i < e->nlisten; i++)
        if (e->accepting && !e->accept_armed[i])
            arm_accept(e, i);
    arm_tick(e);
}

/* ---- engine ---- */

int srv__engine_create(srv__engine_t **out, const srv__engine_opts_t *o)
{
    srv__engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    e->id = o->id;
    e->loop = o->loop;
    e->cfg = o->cfg;
    e->ops = o->ops;
    e->data = o->data;
    e->stat_conns = o->stat_conns;
    e->stat_accepted = o->stat_accepted;
    e->stat_requests = o->stat_requests;
    e->stat_503 = o->stat_503;
    e->conns_total = o->conns_total;
    e->max_slots = (uint32_t)o->cfg->max_conn;
    if (e->max_slots > (1u << SRV_SESSION_SLOT_BITS))
        e->max_slots = 1u << SRV_SESSION_SLOT_BITS;
    e->slots = calloc(e->max_slots, sizeof(*e->slots));
    e->gens = calloc(e->max_slots, sizeof(*e->gens));
    e->free_stack = calloc(e->max_slots, sizeof(*e->free_stack));
    if (e->slots == NULL || e->gens == NULL || e->free_stack == NULL) {
        srv__engine_destroy(e);
        return -ENOMEM;
    }
    e->ack_step = (uint64_t)o->cfg->buffer_output_size / 4;
    e->nlisten = o->cfg->nlisten;
    for (int i = 0; i < e->nlisten; i++) {
        const srv__listen_config_t *l = &o->cfg->listen[i];
        e->limits[i].header_max = (size_t)o->cfg->http_header_max;
        e->limits[i].body_max = (size_t)(l->package_max_length >= 0 ? l->package_max_length
                                                                    : o->cfg->package_max_length);
        e->limits[i].max_headers = 100;
        /* Stream listeners (HTTP, TCP) here; UDP sockets are read by the workers themselves. */
        e->listen_fd[i] = l->type != SRV_LISTEN_UDP && o->listen_fds ? o->listen_fds[i] : -1;
        srv__config_frame_opts(o->cfg, i, &e->frame[i]);
        int idle =
            l->heartbeat_idle_time >= 0 ? l->heartbeat_idle_time : o->cfg->heartbeat_idle_time;
        int interval = l->heartbeat_check_interval >= 0 ? l->heartbeat_check_interval
                                                        : o->cfg->heartbeat_check_interval;
        if (idle <= 0 && interval > 0)
            idle = 2 * interval; /* Swoole's default: twice the check interval */
        e->idle_ms[i] = (int64_t)idle * 1000;
        if (l->type == SRV_LISTEN_HTTP && l->document_root[0]) {
            int rc = srv__static_create(&e->statics[i], l->document_root, e);
            if (rc < 0) {
                srv__log(SRV_LOG_ERROR, "http", rc, "document_root %s", l->document_root);
                srv__engine_destroy(e);
                return rc;
            }
        }
    }
    e->conninfo = srv__conninfo_engine(e->id);
    if (o->accept) {
        e->accepting = true;
        for (int i = 0; i < e->nlisten; i++)
            arm_accept(e, i);
    }
    arm_tick(e);
    *out = e;
    return 0;
}

void srv__engine_destroy(srv__engine_t *e)
{
    if (e == NULL)
        return;
    e->destroying = true;
    for (uint32_t i = 0; i < e->used_slots && e->slots; i++) {
        srv__conn_t *c = e->slots[i];
        if (c) {
            c->flags |= F_CLOSING;
            c->refs = 0;
            conn_release(c);
        }
    }
    while (e->conn_cache) {
        srv__conn_t *c = e->conn_cache;
        e->conn_cache = c->next_free;
        srv__http_parser_destroy(c->http);
        free(c);
    }
    for (int i = 0; i < e->nlisten; i++)
        if (e->statics[i])
            srv__static_destroy(e->statics[i]);
    free(e->slots);
    free(e->gens);
    free(e->free_stack);
    free(e);
}

void *srv__engine_data(srv__engine_t *e)
{
    return e->data;
}

srv__loop_t *srv__engine_loop(srv__engine_t *e)
{
    return e->loop;
}

void srv__engine_accept_stop(srv__engine_t *e)
{
    e->accepting = false;
    for (int i = 0; i < e->nlisten; i++)
        if (e->accept_armed[i])
            srv__loop_cancel(e->loop, &e->accept_op[i]);
}

void srv__engine_drain(srv__engine_t *e)
{
    srv__engine_accept_stop(e);
    if (!e->draining)
        e->drain_start = srv__engine_now_ms(e);
    e->draining = true;
    for (uint32_t i = 0; i < e->used_slots; i++) {
        srv__conn_t *c = e->slots[i];
        if (c == NULL || (c->flags & (F_CLOSING | F_INFLIGHT)))
            continue;
        if (c->proto == PROTO_WS) {
            srv__conn_ws_close(e, c->session, SRV_WS_GOING_AWAY, "server stopping", 15);
        } else if (c->proto == PROTO_TCP) {
            c->flags |= F_CLOSE_AFTER | F_NO_READ;
            srv__conn_flush(c);
        }
        /* HTTP: an idle keep-alive connection may have a request on its way; it is answered
         * with Connection: close, and one still idle after a grace period is closed gently
         * (see on_tick), so a reload resets no client. */
    }
}

void srv__engine_close_all(srv__engine_t *e)
{
    for (uint32_t i = 0; i < e->used_slots; i++)
        if (e->slots[i])
            srv__conn_close(e->slots[i]);
    if (e->tick_armed)
        srv__loop_cancel(e->loop, &e->tick_op);
    srv__engine_accept_stop(e);
}

uint64_t srv__engine_conns(const srv__engine_t *e)
{
    return e->nconns;
}

uint64_t srv__engine_inflight(const srv__engine_t *e)
{
    return e->inflight;
}

srv__conn_t *srv__conn_lookup(srv__engine_t *e, uint64_t session)
{
    uint32_t slot = SRV_SESSION_SLOT(session);
    if (slot >= e->used_slots)
        return NULL;
    srv__conn_t *c = e->slots[slot];
    if (c == NULL || c->session != session || (c->flags & F_CLOSING))
        return NULL;
    return c;
}

int srv__conn_respond(srv__engine_t *e, uint64_t session, const struct iovec *iov, int iovcnt,
                      unsigned flags)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL)
        return -ENOENT;
    if (!(c->flags & F_INFLIGHT))
        return -EPROTO;
    if (flags & SRV_ENGINE_F_ERROR) {
        srv__conn_close(c);
        return 0;
    }
    /* The producer keeps at most buffer_output_size of a response unacknowledged (see
     * flow_report), so this bound is only met by one that ignores flow control, or by a
     * previous response's tail plus this one: a safety net, not a second limit. */
    size_t bound = (size_t)e->cfg->buffer_output_size;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (flags & SRV_ENGINE_F_FLOW)
        c->flow = true;
    int rc = out_append(c, iov, iovcnt, 2 * bound + (1u << 20));
    if (rc < 0) {
        srv__log(SRV_LOG_INFO, "conn", 0,
                "session %llx from %s: output over buffer_output_size (%lld bytes); closing",
                (unsigned long long)c->session, c->peer, (long long)e->cfg->buffer_output_size);
        srv__conn_close(c);
        return rc;
    }
    c->resp_bytes += total;
    if (flags & SRV_ENGINE_F_CLOSE)
        c->flags |= F_CLOSE_AFTER;
    if (flags & SRV_ENGINE_F_FINAL)
        request_done(c);
    else if (!(c->flags & F_IN_PROCESS))
        srv__conn_flush(c); /* inside the app's handler (base mode) we send once it returns */
    return 0;
}

int srv__conn_respond_file(srv__engine_t *e, uint64_t session, const char *path, uint64_t off,
                           uint64_t len, unsigned flags)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL)
        return -ENOENT;
    if (!(c->flags & F_INFLIGHT))
        return -EPROTO;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        srv__conn_close(c); /* the head is already queued: the response cannot be completed */
        return -EIO;
    }
    return srv__conn_respond_fd(e, session, fd, off, len, flags);
}

int srv__conn_respond_fd(srv__engine_t *e, uint64_t session, int fd, uint64_t off, uint64_t len,
                         unsigned flags)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL || !(c->flags & F_INFLIGHT) || out_file(c, fd, off, len) < 0) {
        close(fd);
        if (c)
            srv__conn_close(c);
        return -ENOENT;
    }
    c->resp_bytes += len;
    if (flags & SRV_ENGINE_F_CLOSE)
        c->flags |= F_CLOSE_AFTER;
    if (flags & SRV_ENGINE_F_FINAL)
        request_done(c);
    else
        srv__conn_flush(c);
    return 0;
}

void srv__engine_fail_inflight(srv__engine_t *e, int tag)
{
    for (uint32_t i = 0; i < e->used_slots; i++) {
        srv__conn_t *c = e->slots[i];
        if (c == NULL || (c->flags & F_CLOSING) || !(c->flags & F_INFLIGHT) || c->tag != tag)
            continue;
        if (c->resp_bytes > 0) {
            srv__conn_close(c); /* partly answered: the only honest thing left is to close */
            continue;
        }
        srv__stat_add(e->stat_503, 1);
        char buf[512];
        int n = srv__http_error_response(buf, sizeof(buf), 503, "the worker handling it died",
                                        c->req_keepalive);
        struct iovec v = {.iov_base = buf, .iov_len = n > 0 ? (size_t)n : 0};
        srv__conn_respond(e, c->session, &v, 1,
                          SRV_ENGINE_F_FINAL | (c->req_keepalive ? 0 : SRV_ENGINE_F_CLOSE));
    }
}

uint64_t srv__conn_session(const srv__conn_t *c)
{
    return c->session;
}

int srv__conn_listener(const srv__conn_t *c)
{
    return c->listener;
}

int srv__conn_get_worker(const srv__conn_t *c)
{
    return c->worker;
}

void srv__conn_set_worker(srv__conn_t *c, int worker)
{
    c->worker = worker;
}

void srv__conn_set_tag(srv__conn_t *c, int tag)
{
    c->tag = tag;
}

int srv__conn_get_tag(const srv__conn_t *c)
{
    return c->tag;
}

const char *srv__conn_peer(const srv__conn_t *c)
{
    return c->peer;
}

uint32_t srv__conn_peer_hash(const srv__conn_t *c)
{
    return c->peer_hash;
}

int srv__conn_ws_accept(srv__engine_t *e, uint64_t session, int code, const char *proto,
                        size_t proto_len)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL)
        return -ENOENT;
    if (!(c->flags & F_INFLIGHT) || c->ws_pending == NULL)
        return -EPROTO;
    bool accepted = false;
    int rc = srv__ws_decided(c, code, proto, proto_len, &accepted);
    c->flags &= ~(uint32_t)F_INFLIGHT;
    e->inflight--;
    c->tag = -1;
    if (rc < 0) {
        srv__conn_close(c);
        return rc;
    }
    if (!accepted) {
        srv__log(SRV_LOG_INFO, "ws", 0,
                "session %llx from %s: the app refused the upgrade; closing with %d",
                (unsigned long long)c->session, c->peer, c->ws_code);
        srv__ws_flush(c);
        c->flags |= F_CLOSE_AFTER;
        srv__conn_flush(c);
        return 0;
    }
    /* Bytes that followed the handshake are already WebSocket frames. */
    srv__conn_hold(c);
    if (c->in_len > 0) {
        char *in = c->in;
        uint32_t n = c->in_len;
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        srv__stream_input(c, in, n);
        free(in);
    }
    arm_recv(c);
    srv__conn_flush(c);
    srv__conn_unhold(c);
    return 0;
}

int64_t srv__engine_wall_ms(srv__engine_t *e)
{
    (void)e;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
