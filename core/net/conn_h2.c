/* HTTP/2 on the engine (protocols/h2.c does the protocol): a connection that opened with the
 * preface (prior knowledge, or ALPN h2) or upgraded from HTTP/1.1 (Upgrade: h2c). Each stream's
 * request goes to the app like an HTTP/1.1 request, with a request id of its own from the
 * engine's table, so streams of one connection are answered independently, by any worker. The
 * worker answers as it answers HTTP/1.1 (a head in HTTP/1.1 text, then the body, never
 * chunked): the head becomes a HEADERS frame, the body DATA frames within the peer's window,
 * files read a frame at a time. Frames leave the session only as the socket takes them, so
 * what waits for a slow client is bounded by the producers' flow control. Limits end the
 * connection with a GOAWAY sent before the close, and a log line. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/base/log.h"
#include "core/net/conn_internal.h"
#include "core/net/maint.h"
#include "protocols/h2_guard.h"

#define PUMP_LOW (64u << 10) /* frames are pulled while less than this waits for the socket */
#define HEAD_MAX (64u << 10) /* a response head from the worker (HDR_MAX and the status line) */

typedef struct h2_req {
    srv__req_t r; /* r.id: its id in the request table; r.tag, r.flow, r.resp_bytes, r.acked */
    int32_t stream;
    struct h2_req *prev, *next; /* the connection's requests with the app */
    bool gone;                  /* the stream ended first: what the app still sends is dropped */
    bool head_done;
    srv__buf_t head; /* the response head, until its blank line */
} h2_req_t;

static void pump(srv__conn_t *c);
static void pull(srv__conn_t *c);

static void goaway_log(srv__conn_t *c)
{
    uint32_t code = 0;
    const char *why = srv__h2_error(c->h2, &code);
    if (why == NULL || c->h2_goaway)
        return;
    c->h2_goaway = true;
    srv__log(SRV_LOG_WARN, "h2", 0, "session %llx from %s: %s; GOAWAY %s",
             (unsigned long long)c->session, c->peer, why,
             code == SRV__H2_ENHANCE_YOUR_CALM ? "ENHANCE_YOUR_CALM"
             : code == SRV__H2_PROTOCOL_ERROR  ? "PROTOCOL_ERROR"
                                               : "error");
}

/* ---- requests with the app ---- */

/* The app is done with q (its last piece came, or its worker died, or the connection went). */
static void req_done(h2_req_t *q)
{
    srv__conn_t *c = q->r.conn;
    srv__engine_t *e = c->eng;
    if (q->prev)
        q->prev->next = q->next;
    else
        c->h2_reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    c->h2_nreq--;
    c->h2_idle_since = 0; /* idle from the next tick on: the loop's clock may be old here */
    if (q->r.flow)
        c->h2_nflow--;
    if (c->h2_cur == q)
        c->h2_cur = NULL;
    e->inflight--;
    srv__access_end(c, &q->r, q->r.resp_bytes);
    srv__req_del(e, &q->r);
    if (!q->gone && c->h2)
        srv__h2_set_user(c->h2, q->stream, NULL);
    srv__buf_free(&q->head);
    free(q);
}

/* How much of q's response the client's window has taken. */
static uint64_t req_written(srv__conn_t *c, h2_req_t *q)
{
    uint64_t pending = c->h2 ? srv__h2_pending(c->h2, q->stream) : 0;
    return q->r.resp_bytes > pending ? q->r.resp_bytes - pending : 0;
}

static void report(srv__conn_t *c, bool force)
{
    srv__engine_t *e = c->eng;
    if (e->ops.progress == NULL || c->h2_nflow == 0)
        return;
    for (h2_req_t *q = c->h2_reqs; q; q = q->next) {
        if (!q->r.flow || q->gone)
            continue;
        uint64_t w = req_written(c, q);
        bool dry = srv__h2_pending(c->h2, q->stream) == 0;
        if (w == q->r.acked || (!force && !dry && w - q->r.acked < e->ack_step))
            continue;
        if (e->ops.progress(e, q->r.id, q->r.tag, w) == 0)
            q->r.acked = w;
    }
}

/* The worker's head (HTTP/1.1 text) as a status and headers for the HEADERS frame. */
static int submit_head(srv__conn_t *c, h2_req_t *q, bool end)
{
    const char *p = q->head.data, *lim = q->head.data + q->head.len;
    const char *eol = memchr(p, '\n', (size_t)(lim - p));
    if (q->head.len < 12 || memcmp(p, "HTTP/", 5) != 0 || eol == NULL)
        return -EPROTO;
    int status = atoi(p + 9);
    srv__access_head(&q->r, q->head.data, q->head.len);
    size_t cap = 8;
    for (const char *k = eol; k && k < lim; k = memchr(k + 1, '\n', (size_t)(lim - k - 1)))
        cap++;
    srv_header_t *hv = calloc(cap, sizeof(*hv));
    if (hv == NULL)
        return -ENOMEM;
    size_t n = 0;
    for (p = eol + 1; p < lim && n < cap; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(lim - p));
        const char *colon = eol ? memchr(p, ':', (size_t)(eol - p)) : NULL;
        if (colon == NULL)
            break; /* the blank line */
        const char *v = colon + 1, *ve = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        hv[n].name = (srv_str_t){p, (size_t)(colon - p)};
        hv[n].value = (srv_str_t){v, (size_t)(ve - v)};
        n++;
    }
    int rc = srv__h2_respond(c->h2, q->stream, status, hv, n, end);
    free(hv);
    return rc;
}

/* Bytes of the head: kept until its blank line. Returns how many of p were head bytes, or
 * -errno. */
static ssize_t take_head(h2_req_t *q, const char *p, size_t n)
{
    size_t old = q->head.len;
    size_t want = n < HEAD_MAX ? n : HEAD_MAX;
    if (srv__buf_append(&q->head, p, want, 512, HEAD_MAX) < 0)
        return -EMSGSIZE;
    /* Look for the blank line from a little before the new bytes. */
    size_t from = old > 3 ? old - 3 : 0;
    const char *end = memmem(q->head.data + from, q->head.len - from, "\r\n\r\n", 4);
    if (end == NULL) {
        if (q->head.len >= HEAD_MAX)
            return -EMSGSIZE;
        return (ssize_t)n;
    }
    size_t head_len = (size_t)(end - q->head.data) + 4;
    q->head.len = head_len;
    q->head_done = true;
    return (ssize_t)(head_len - old);
}

static int respond_pieces(srv__conn_t *c, h2_req_t *q, const struct iovec *iov, int iovcnt,
                          unsigned flags)
{
    bool final = (flags & SRV_ENGINE_F_FINAL) != 0;
    size_t left = 0;
    for (int i = 0; i < iovcnt; i++)
        left += iov[i].iov_len;
    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t n = iov[i].iov_len;
        left -= n;
        if (!q->head_done) {
            ssize_t k = take_head(q, p, n);
            if (k < 0)
                return (int)k;
            p += k;
            n -= (size_t)k;
            if (!q->head_done)
                continue;
            int rc = submit_head(c, q, final && n == 0 && left == 0);
            if (rc < 0)
                return rc;
        }
        if (n > 0 && srv__h2_data(c->h2, q->stream, p, n, false) < 0)
            return -ENOMEM;
    }
    if (!final)
        return 0;
    if (!q->head_done)
        return -EPROTO;
    int rc = srv__h2_data(c->h2, q->stream, NULL, 0, true);
    return rc == -ENOMEM ? rc : 0; /* (-EPROTO: the head ended the stream) */
}

/* After a piece of q's response: the last one ends the request; frames go out (unless inside
 * the session's input, which sends them once it returns). */
static int piece_done(srv__conn_t *c, h2_req_t *q, unsigned flags)
{
    if (flags & (SRV_ENGINE_F_FINAL | SRV_ENGINE_F_ERROR))
        req_done(q);
    if (!(c->flags & F_IN_PROCESS))
        pump(c);
    return 0;
}

int srv__h2c_respond(srv__req_t *r, const struct iovec *iov, int iovcnt, unsigned flags)
{
    h2_req_t *q = (h2_req_t *)r;
    srv__conn_t *c = r->conn;
    if ((flags & SRV_ENGINE_F_FLOW) && !r->flow) {
        r->flow = true;
        c->h2_nflow++;
    }
    for (int i = 0; i < iovcnt; i++)
        r->resp_bytes += iov[i].iov_len;
    int rc = 0;
    if (flags & SRV_ENGINE_F_ERROR) {
        if (!q->gone)
            srv__h2_reset(c->h2, q->stream, SRV__H2_INTERNAL_ERROR);
    } else if (!q->gone) {
        rc = respond_pieces(c, q, iov, iovcnt, flags);
        if (rc < 0) {
            srv__log(SRV_LOG_WARN, "h2", rc, "session %llx stream %d: bad response from the app",
                     (unsigned long long)c->session, q->stream);
            srv__h2_reset(c->h2, q->stream, SRV__H2_INTERNAL_ERROR);
        }
    }
    return piece_done(c, q, flags);
}

int srv__h2c_respond_fd(srv__req_t *r, int fd, uint64_t off, uint64_t len, unsigned flags)
{
    h2_req_t *q = (h2_req_t *)r;
    srv__conn_t *c = r->conn;
    r->resp_bytes += len;
    if (q->gone || !q->head_done)
        close(fd);
    else if (srv__h2_file(c->h2, q->stream, fd, off, len, (flags & SRV_ENGINE_F_FINAL) != 0) < 0)
        srv__h2_reset(c->h2, q->stream, SRV__H2_INTERNAL_ERROR);
    return piece_done(c, q, flags);
}

/* An answer from here (503, a static file's head): as the worker would give it. */
static void answer(srv__conn_t *c, h2_req_t *q, const char *head, size_t len, unsigned flags)
{
    struct iovec v = {(void *)head, len};
    srv__h2c_respond(&q->r, &v, 1, flags);
}

void srv__h2c_fail(srv__req_t *r)
{
    h2_req_t *q = (h2_req_t *)r;
    srv__conn_t *c = r->conn;
    if (q->gone || q->r.resp_bytes > 0) {
        if (!q->gone)
            srv__h2_reset(c->h2, q->stream, SRV__H2_INTERNAL_ERROR);
        req_done(q);
        pump(c);
        return;
    }
    srv__stat_add(c->eng->stat_503, 1);
    char buf[768], id[SRV_REQUEST_ID_MAX + 24];
    size_t idn = srv__access_id_header(&q->r, id, sizeof(id));
    int n = srv__http_error_response(buf, sizeof(buf), 503, "the worker handling it died", true,
                                     (srv_str_t){id, idn});
    answer(c, q, buf, n > 0 ? (size_t)n : 0, SRV_ENGINE_F_FINAL);
}

/* ---- streams from the session ---- */

static bool serve_static(srv__conn_t *c, h2_req_t *q, const srv_request_t *req)
{
    srv__static_t *st = c->eng->statics[c->listener];
    srv__static_reply_t out;
    if (st == NULL || srv__static_serve(st, req, &out) <= 0)
        return false;
    if (out.fd < 0) {
        answer(c, q, out.head, out.head_len, SRV_ENGINE_F_FINAL);
        return true;
    }
    answer(c, q, out.head, out.head_len, 0);
    srv__h2c_respond_fd(&q->r, out.fd, out.off, out.len, SRV_ENGINE_F_FINAL);
    return true;
}

/* Maintenance mode's 503 for the stream. */
static void maint_answer(srv__conn_t *c, h2_req_t *q)
{
    char buf[SRV_MAINT_RESPONSE_MAX], id[SRV_REQUEST_ID_MAX + 24];
    size_t idn = srv__access_id_header(&q->r, id, sizeof(id));
    int n = srv__maint_response(buf, sizeof(buf), true, (srv_str_t){id, idn});
    answer(c, q, buf, n > 0 ? (size_t)n : 0, SRV_ENGINE_F_FINAL);
}

static void dispatch(srv__conn_t *c, h2_req_t *q, srv_request_t *req)
{
    srv__engine_t *e = c->eng;
    if (srv__maint_blocks(e->cfg, req->path)) {
        maint_answer(c, q);
        return;
    }
    if (serve_static(c, q, req))
        return;
    c->req = &q->r; /* what the dispatcher's srv__conn_set_tag and _request_id see */
    if (e->cfg->mode == SRV_MODE_BASE)
        q->r.log.worker = (int16_t)e->id;
    int rc = e->ops.dispatch(e, c, SRV_ENGINE_EV_REQUEST, req);
    c->req = NULL;
    if (rc < 0 && c->h2_cur == q) {
        srv__stat_add(e->stat_503, 1);
        srv__log(SRV_LOG_WARN, "conn", rc, "session %llx: cannot hand the request to a worker",
                 (unsigned long long)c->session);
        char buf[768], id[SRV_REQUEST_ID_MAX + 24];
        size_t idn = srv__access_id_header(&q->r, id, sizeof(id));
        int n = srv__http_error_response(buf, sizeof(buf), 503, "no worker available", true,
                                         (srv_str_t){id, idn});
        answer(c, q, buf, n > 0 ? (size_t)n : 0, SRV_ENGINE_F_FINAL);
    }
}

static void *on_request(void *arg, int32_t stream, const srv_request_t *rq)
{
    srv__conn_t *c = arg;
    srv__engine_t *e = c->eng;
    const srv__h2_opts_t *o = &e->h2opts[c->listener];
    /* Streams the client reset are still with the app until it answers: a client opening and
     * resetting faster than they are served piles up work (CVE-2023-44487). */
    if (c->h2_nreq >= 2 * o->max_concurrent_streams) {
        srv__h2_terminate(c->h2, SRV__H2_ENHANCE_YOUR_CALM, "rapid reset");
        return NULL;
    }
    h2_req_t *q = calloc(1, sizeof(*q));
    if (q == NULL || srv__req_add(e, &q->r) < 0) {
        free(q);
        srv__h2_reset(c->h2, stream, SRV__H2_REFUSED_STREAM);
        return NULL;
    }
    q->stream = stream;
    q->r.conn = c;
    q->r.tag = -1;
    q->r.keepalive = true;
    q->r.start = srv__engine_now_ms(e);
    q->next = c->h2_reqs;
    if (c->h2_reqs)
        c->h2_reqs->prev = q;
    c->h2_reqs = q;
    c->h2_nreq++;
    e->inflight++;
    srv__stat_add(e->stat_requests, 1);
    srv__stat_add(e->stat_h2_streams, 1);
    srv_request_t req = *rq;
    srv__access_begin(c, &q->r, &req);
    req.session = c->session;
    req.peer = (srv_str_t){c->peer, strlen(c->peer)};
    req.peer_port = c->peer_port;
    req.listener = c->listener;
    req.tls = c->tls_info;
    /* Base mode answers inside the dispatch: q may be gone when it returns. */
    c->h2_cur = q;
    dispatch(c, q, &req);
    q = c->h2_cur;
    c->h2_cur = NULL;
    return q;
}

static void on_answered(void *arg, int status)
{
    srv__access_error(arg, status, NULL, 0);
}

static void on_reset(void *arg, int32_t stream, void *user, uint32_t code)
{
    (void)stream;
    (void)code;
    srv__conn_t *c = arg;
    h2_req_t *q = user;
    q->gone = true;
    if (c->eng->ops.abandoned)
        c->eng->ops.abandoned(c->eng, q->r.id, q->r.tag);
}

/* ---- the connection ---- */

/* Frames to the connection's queue while little waits there; then, once the session is over
 * and its last frame (a GOAWAY) is queued, close after it. */
static void pull(srv__conn_t *c)
{
    if (c->flags & F_CLOSING || c->h2 == NULL)
        return;
    while (c->out_total - c->out_done < PUMP_LOW) {
        const char *p;
        size_t n = srv__h2_out(c->h2, &p);
        if (n == 0)
            break;
        if (srv__out_append(c, &(struct iovec){(void *)p, n}, 1, SIZE_MAX) < 0) {
            srv__conn_close(c);
            return;
        }
        srv__h2_out_consume(c->h2, n);
    }
    report(c, false);
    bool over = srv__h2_error(c->h2, NULL) != NULL || srv__h2_done(c->h2) ||
                (c->eng->draining && srv__h2_streams(c->h2) == 0 && c->h2_nreq == 0) ||
                ((c->flags & F_EOF) && c->h2_nreq == 0);
    if (over) {
        goaway_log(c);
        if (!srv__h2_want_write(c->h2))
            c->flags |= F_CLOSE_AFTER | F_NO_READ;
    }
}

/* ... and to the socket. */
static void pump(srv__conn_t *c)
{
    pull(c);
    if (!(c->flags & F_CLOSING))
        srv__conn_flush(c);
}

static void h2_input(srv__conn_t *c, const char *data, size_t len)
{
    c->flags |= F_IN_PROCESS;
    srv__h2_feed(c->h2, data, len);
    c->flags &= ~(uint32_t)F_IN_PROCESS;
    if (c->flags & F_CLOSING)
        return;
    pump(c);
}

/* (From the engine's send completion, which sends what was queued meanwhile.) */
static void h2_writable(srv__conn_t *c)
{
    pull(c);
}

static void h2_tick(srv__conn_t *c, int64_t now)
{
    srv__engine_t *e = c->eng;
    report(c, true);
    if (srv__h2_error(c->h2, NULL) != NULL)
        return;
    /* A request must keep arriving (http_body_timeout), as over HTTP/1.1 (slowloris). */
    if (srv__h2_expire(c->h2, e->cfg->http_body_timeout) > 0) {
        srv__log(SRV_LOG_INFO, "h2", 0, "session %llx from %s: request timeout",
                 (unsigned long long)c->session, c->peer);
        pump(c);
        return;
    }
    int64_t stalled = srv__h2_stalled_ms(c->h2);
    if (stalled > e->cfg->send_timeout) {
        srv__h2_terminate(c->h2, SRV__H2_ENHANCE_YOUR_CALM, "stalled window");
        pump(c);
        return;
    }
    if (srv__h2_streams(c->h2) > 0 || c->h2_nreq > 0) {
        c->h2_idle_since = 0;
        return;
    }
    if (c->h2_idle_since == 0)
        c->h2_idle_since = now;
    int64_t idle = e->h2_idle_ms[c->listener];
    if (now - c->h2_idle_since > idle ||
        (e->idle_ms[c->listener] > 0 && now - c->last_read > e->idle_ms[c->listener])) {
        srv__log(SRV_LOG_INFO, "h2", 0, "session %llx from %s: idle; GOAWAY",
                 (unsigned long long)c->session, c->peer);
        srv__h2_goaway(c->h2); /* with no stream open, the session is over once it went */
        pump(c);
    }
}

static void h2_eof(srv__conn_t *c)
{
    /* The client will send nothing more; what it asked for is still answered. */
    pump(c);
}

static void h2_close(srv__conn_t *c)
{
    /* Streams with the app: their producers stop; the requests are forgotten. */
    srv__h2_destroy(c->h2); /* (on_reset for those still open) */
    c->h2 = NULL;
    /* The HTTP/1.1 parser stays for the next connection of the cache: nothing of an upgrade's
     * request may outlive this one. */
    if (c->http)
        srv__http_parser_reset(c->http);
    while (c->h2_reqs) {
        h2_req_t *q = c->h2_reqs;
        if (!q->gone && c->eng->ops.abandoned)
            c->eng->ops.abandoned(c->eng, q->r.id, q->r.tag);
        q->gone = true;
        req_done(q);
    }
    srv__stat_add(c->eng->stat_h2_conns, -1);
}

static void h2_drain(srv__conn_t *c)
{
    /* GOAWAY with the last stream: those in flight finish, new ones go to a new connection. */
    srv__h2_goaway(c->h2);
    pump(c);
}

static void h2_fail(srv__conn_t *c, int status, const char *why)
{
    (void)c, (void)status, (void)why; /* (HTTP/2 requests fail one by one: srv__h2c_fail) */
}

static int h2_open(srv__conn_t *c)
{
    srv__h2_ops_t ops = {
        .request = on_request, .reset = on_reset, .answered = on_answered, .arg = c};
    int rc = srv__h2_create(&c->h2, &c->eng->h2opts[c->listener], &ops);
    if (rc < 0)
        return rc;
    srv__stat_add(c->eng->stat_h2_conns, 1);
    srv__access_proto(c, SRV_NETSTAT_H2);
    c->h2_idle_since = srv__engine_now_ms(c->eng);
    return 0;
}

const srv__proto_t srv__proto_h2 = {
    .name = "h2",
    .open = h2_open,
    .input = h2_input,
    .writable = h2_writable,
    .tick = h2_tick,
    .eof = h2_eof,
    .close = h2_close,
    .drain = h2_drain,
    .fail = h2_fail,
};

int srv__h2c_start(srv__conn_t *c)
{
    c->proto = &srv__proto_h2;
    int rc = h2_open(c);
    if (rc < 0) {
        srv__conn_close(c);
        return rc;
    }
    pump(c);
    return 0;
}

int srv__h2c_upgrade(srv__conn_t *c, const srv_request_t *req, srv_str_t settings)
{
    static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             "Upgrade: h2c\r\n\r\n";
    if (srv__out_write(c, &(struct iovec){(void *)ok, sizeof(ok) - 1}, 1) < 0)
        return -ENOBUFS;
    c->proto = &srv__proto_h2;
    int rc = h2_open(c);
    if (rc == 0) {
        c->flags |= F_IN_PROCESS;
        rc = srv__h2_upgrade(c->h2, settings, req);
        c->flags &= ~(uint32_t)F_IN_PROCESS;
    }
    if (rc < 0) {
        srv__conn_close(c);
        return rc;
    }
    pump(c);
    return 0;
}
