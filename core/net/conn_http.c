/* HTTP/1.1 on the engine: parsing, one request in flight per connection (pipelined requests
 * wait, parsed in order, so responses go out in request order whatever worker answers),
 * static files, the upgrades to WebSocket and to HTTP/2 (Upgrade: h2c, the preface of a client
 * with prior knowledge, ALPN h2), request and keep-alive timeouts. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/net/conn_internal.h"
#include "core/net/maint.h"
#include "protocols/tls.h"

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN 24

static void process_input(srv__conn_t *c, const char *data, size_t len);

static void send_error(srv__conn_t *c, int status, const char *reason)
{
    char buf[768], id[SRV_REQUEST_ID_MAX + 24];
    size_t idn = srv__access_error_begin(c, id, sizeof(id));
    int n = srv__http_error_response(buf, sizeof(buf), status, reason, false,
                                     (srv_str_t){id, idn});
    if (n > 0)
        srv__out_write(c, &(struct iovec){.iov_base = buf, .iov_len = (size_t)n}, 1);
    srv__access_error(c, status, n > 0 ? buf : NULL, n > 0 ? (size_t)n : 0);
    c->flags |= F_CLOSE_AFTER | F_NO_READ;
    srv__conn_flush(c);
}

/* The response to the request in flight is complete. */
static void http_done(srv__conn_t *c)
{
    if (c->flags & F_IN_PROCESS) {
        c->flags |= F_DONE_PENDING; /* the app may still read the request view */
        return;
    }
    srv__http_parser_next(c->http);
    c->req_start = 0;
    if (c->in_len > 0 && !(c->flags & (F_CLOSING | F_NO_READ | F_CLOSE_AFTER)))
        process_input(c, NULL, 0);
    if ((c->flags & F_EOF) && c->req == NULL && !srv__out_pending(c))
        c->flags |= F_CLOSE_AFTER;
    srv__conn_arm_recv(c);
    srv__conn_flush(c);
}

/* srv's own answer to the request in flight: an error (status, why), or maintenance mode's
 * 503 (status 0). */
static void http_fail(srv__conn_t *c, int status, const char *why)
{
    char buf[SRV_MAINT_RESPONSE_MAX], id[SRV_REQUEST_ID_MAX + 24];
    bool ka = c->req->keepalive;
    size_t idn = srv__access_id_header(c->req, id, sizeof(id));
    srv_str_t extra = {id, idn};
    int n = status ? srv__http_error_response(buf, sizeof(buf), status, why, ka, extra)
                   : srv__maint_response(buf, sizeof(buf), ka, extra);
    struct iovec v = {.iov_base = buf, .iov_len = n > 0 ? (size_t)n : 0};
    srv__conn_respond(c->eng, c->session, &v, 1,
                      SRV_ENGINE_F_FINAL | (ka ? 0 : SRV_ENGINE_F_CLOSE));
}

/* A static file answers the request: head, then the file. Returns false when none does. */
static bool serve_static(srv__conn_t *c, const srv_request_t *req)
{
    srv__static_t *st = c->eng->statics[c->listener];
    srv__static_reply_t out;
    if (st == NULL || srv__static_serve(st, req, &out) <= 0)
        return false;
    unsigned fin = SRV_ENGINE_F_FINAL | (out.close ? SRV_ENGINE_F_CLOSE : 0);
    struct iovec v = {.iov_base = out.head, .iov_len = out.head_len};
    if (out.fd < 0) {
        srv__conn_respond(c->eng, c->session, &v, 1, fin);
        return true;
    }
    if (srv__conn_respond(c->eng, c->session, &v, 1, 0) < 0) {
        close(out.fd);
        return true;
    }
    srv__conn_respond_fd(c->eng, c->session, out.fd, out.off, out.len, fin);
    return true;
}

/* A WebSocket handshake: hand it to the app. Returns false when it is none (plain HTTP). */
static bool dispatch_upgrade(srv__conn_t *c, const srv_request_t *req)
{
    srv__engine_t *e = c->eng;
    int up = srv__ws_upgrade(c, req);
    if (up == 0)
        return false;
    if (up < 0) {
        const char *why = NULL;
        srv__ws_handshake_check(req, &why);
        srv__log(SRV_LOG_INFO, "ws", 0, "session %llx from %s: bad handshake: %s",
                 (unsigned long long)c->session, c->peer, why ? why : "?");
        srv__req_cancel(c);
        send_error(c, 400, why ? why : "invalid WebSocket handshake");
        return true;
    }
    if (e->ops.dispatch(e, c, SRV_ENGINE_EV_WS_OPEN, req) < 0) {
        srv__req_cancel(c);
        send_error(c, 503, "no worker available");
    }
    return true;
}

/* Upgrade: h2c with HTTP2-Settings on a cleartext HTTP/2 listener (RFC 7540 3.2): the
 * settings, or {NULL, 0} when the request asks for no such thing. */
static srv_str_t h2c_settings(const srv__conn_t *c, const srv_request_t *req)
{
    srv_str_t none = {NULL, 0};
    if (!(req->flags & SRV_REQ_UPGRADE) || c->tls != NULL ||
        !c->eng->cfg->listen[c->listener].open_http2_protocol || c->eng->draining)
        return none;
    srv_str_t up = srv_request_header(req, "Upgrade");
    srv_str_t settings = srv_request_header(req, "HTTP2-Settings");
    if (up.ptr == NULL || settings.ptr == NULL || up.len != 3 || strncasecmp(up.ptr, "h2c", 3))
        return none;
    return settings;
}

static void dispatch(srv__conn_t *c, srv_request_t *req)
{
    srv__engine_t *e = c->eng;
    srv_str_t h2c = h2c_settings(c, req);
    if (h2c.ptr != NULL) {
        req->session = c->session;
        srv__h2c_upgrade(c, req, h2c); /* the request is stream 1 of the new connection */
        return;
    }
    req->session = c->session;
    req->peer.ptr = c->peer;
    req->peer.len = strlen(c->peer);
    req->peer_port = c->peer_port;
    req->listener = c->listener;
    req->tls = c->tls_info;
    if (e->draining)
        req->flags &= ~(uint32_t)SRV_REQ_KEEP_ALIVE;
    srv__req_begin(c, req);
    if (srv__maint_blocks(e->cfg, req->path)) {
        c->req->log.worker = -1; /* srv's own answer, WebSocket upgrades included */
        http_fail(c, 0, NULL);
        return;
    }
    if (e->cfg->mode == SRV_MODE_BASE)
        c->req->log.worker = (int16_t)e->id; /* (it may answer before dispatch returns) */
    if ((req->flags & SRV_REQ_UPGRADE) && e->cfg->listen[c->listener].websocket &&
        dispatch_upgrade(c, req))
        return;
    c->req->log.worker = -1; /* a static file is srv's own answer */
    if (serve_static(c, req))
        return; /* answered (the request already finished) */
    if (e->cfg->mode == SRV_MODE_BASE)
        c->req->log.worker = (int16_t)e->id;
    int rc = e->ops.dispatch(e, c, SRV_ENGINE_EV_REQUEST, req);
    if (rc < 0) {
        srv__stat_add(e->stat_503, 1);
        srv__log(SRV_LOG_WARN, "conn", rc, "session %llx: cannot hand the request to a worker",
                 (unsigned long long)c->session);
        http_fail(c, 503, "no worker available");
    }
}

/* Upgraded in place (base mode): the rest of the bytes are WebSocket frames. */
static void hand_over(srv__conn_t *c, const char *data, size_t len, size_t off, bool from_stash)
{
    c->flags &= ~(uint32_t)F_IN_PROCESS;
    char *rest = NULL;
    size_t n = len - off;
    if (n > 0 && (rest = malloc(n)) != NULL)
        memcpy(rest, data + off, n);
    if (from_stash)
        srv__conn_in_consume(c, len);
    if (rest) {
        c->proto->input(c, rest, n);
        free(rest);
    }
}

/* Parse what is at hand; returns how much was used, or SIZE_MAX when the connection changed
 * protocol (everything handed over). */
static size_t parse(srv__conn_t *c, const char *data, size_t len, bool from_stash)
{
    size_t off = 0;
    while (off < len && c->req == NULL && !(c->flags & (F_CLOSING | F_NO_READ | F_CLOSE_AFTER))) {
        size_t used = 0;
        if (c->req_start == 0)
            c->req_start = srv__engine_now_ms(c->eng);
        srv__http_event_t ev = srv__http_parser_feed(c->http, data + off, len - off, &used);
        off += used;
        if (ev == SRV_HTTP_NEED_MORE)
            break;
        if (ev == SRV_HTTP_CONTINUE) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            srv__out_write(c, &(struct iovec){(void *)cont, sizeof(cont) - 1}, 1);
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
        if (c->proto != &srv__proto_http) {
            hand_over(c, data, len, off, from_stash);
            return SIZE_MAX;
        }
        if (c->flags & F_DONE_PENDING) {
            c->flags &= ~(uint32_t)F_DONE_PENDING;
            srv__http_parser_next(c->http);
            c->req_start = 0;
        }
    }
    return off;
}

static void process_input(srv__conn_t *c, const char *data, size_t len)
{
    bool from_stash = data == NULL;
    if (!from_stash && (c->in_len > 0 || c->req)) {
        if (srv__conn_in_append(c, data, len) < 0) {
            srv__conn_close(c);
            return;
        }
        srv__conn_in_pause(c);
        if (c->req)
            return;
        from_stash = true;
    }
    if (from_stash) {
        data = c->in;
        len = c->in_len;
    }
    c->flags |= F_IN_PROCESS;
    size_t off = parse(c, data, len, from_stash);
    if (off == SIZE_MAX)
        return;
    c->flags &= ~(uint32_t)F_IN_PROCESS;
    if (c->flags & F_CLOSING)
        return;
    if (from_stash)
        srv__conn_in_consume(c, off);
    else if (off < len && !(c->flags & (F_NO_READ | F_CLOSE_AFTER)) &&
             srv__conn_in_append(c, data + off, len - off) < 0) {
        srv__conn_close(c);
        return;
    }
    if ((c->flags & F_EOF) && c->req == NULL)
        c->flags |= F_CLOSE_AFTER;
    srv__conn_flush(c);
}

/* A cleartext connection of an HTTP/2 listener opens with HTTP/1.1 or with the HTTP/2
 * preface (prior knowledge). Returns true when the bytes were taken: kept until they tell, or
 * handed to HTTP/2. */
static bool h2_sniff(srv__conn_t *c, const char *data, size_t len)
{
    size_t have = c->in_len, k = have + len < H2_PREFACE_LEN ? have + len : H2_PREFACE_LEN;
    char head[H2_PREFACE_LEN];
    size_t from_in = have < k ? have : k;
    if (from_in > 0)
        memcpy(head, c->in, from_in);
    memcpy(head + from_in, data, k - from_in);
    if (memcmp(head, h2_preface, k) != 0) {
        c->h2_sniff = false;
        return false;
    }
    if (srv__conn_in_append(c, data, len) < 0) {
        srv__conn_close(c);
        return true;
    }
    if (c->in_len < H2_PREFACE_LEN)
        return true;
    c->h2_sniff = false;
    char *all = c->in;
    size_t n = c->in_len;
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    if (srv__h2c_start(c) == 0)
        c->proto->input(c, all, n);
    free(all);
    return true;
}

static void http_input(srv__conn_t *c, const char *data, size_t len)
{
    if (c->h2_sniff && h2_sniff(c, data, len))
        return;
    process_input(c, data, len);
}

static void http_writable(srv__conn_t *c)
{
    srv__req_report(c, false);
}

static void http_tick(srv__conn_t *c, int64_t now)
{
    srv__engine_t *e = c->eng;
    const srv__config_t *cfg = e->cfg;
    if (c->req) {
        srv__req_report(c, true);
        return;
    }
    if (srv__out_pending(c))
        return;
    if (!srv__http_parser_idle(c->http) || c->in_len > 0) {
        /* A request has begun: it must arrive whole in time, whatever its pace (slowloris),
         * and never stall longer than the body timeout between reads. */
        bool headers = srv__http_parser_headers_done(c->http);
        if ((!headers && now - c->req_start > cfg->http_header_timeout) ||
            now - c->last_read > cfg->http_body_timeout) {
            srv__log(SRV_LOG_INFO, "http", 0, "session %llx from %s: request timeout",
                     (unsigned long long)c->session, c->peer);
            send_error(c, 408, "request timeout");
        }
        return;
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

static void http_eof(srv__conn_t *c)
{
    if (c->req == NULL && !srv__out_pending(c)) {
        srv__conn_close(c);
        return;
    }
    /* Half-close: answer what was asked, then close. */
    c->flags |= F_CLOSE_AFTER;
    srv__conn_flush(c);
}

/* The client itself asked to close and all it sent was read: nothing more is coming, so there
 * is nothing to reset and it closes at once (as nginx does: no shutdown, no wait for the
 * client's FIN). */
static bool http_quiet(const srv__conn_t *c)
{
    return c->req_store.keepalive == false && c->in_len == 0 && c->http != NULL &&
           !(c->flags & F_DONE_PENDING) && srv__http_parser_idle(c->http);
}

static int http_open(srv__conn_t *c)
{
    srv__engine_t *e = c->eng;
    /* A parser keeps the limits it was made with: one from a listener with other limits
     * (package_max_length per listener) is not reused. */
    const srv__http_limits_t *was = &e->limits[c->http_listener], *now = &e->limits[c->listener];
    if (c->http && (was->body_max != now->body_max || was->header_max != now->header_max ||
                    c->http_epoch != e->limits_epoch)) {
        srv__http_parser_destroy(c->http);
        c->http = NULL;
    }
    if (c->http == NULL && srv__http_parser_create(&c->http, now) < 0)
        return -ENOMEM;
    c->http_listener = c->listener;
    c->http_epoch = e->limits_epoch;
    if (e->cfg->listen[c->listener].open_http2_protocol) {
        if (c->tls == NULL)
            c->h2_sniff = true;
        else if (strcmp(srv__tls_alpn(c->tls), "h2") == 0)
            return srv__h2c_start(c); /* ALPN chose HTTP/2 */
    }
    return 0;
}

static void http_close(srv__conn_t *c)
{
    /* An upgrade still being decided holds the 101 it would send. */
    free(c->ws_pending);
    c->ws_pending = NULL;
    c->ws_pending_len = 0;
    /* The parser stays for the next connection of the cache: reset now, so no request view
     * outlives the connection. */
    if (c->http)
        srv__http_parser_reset(c->http);
}

const srv__proto_t srv__proto_http = {
    .name = "http",
    .open = http_open,
    .input = http_input,
    .writable = http_writable,
    .tick = http_tick,
    .eof = http_eof,
    .close = http_close,
    .done = http_done,
    .quiet = http_quiet,
    .fail = http_fail,
    .keep_buffer = true,
};
